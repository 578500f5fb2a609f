"""Batches: manifests, shape buckets, bad rows, a job == the same job run alone, reruns.

Tolerance: a job runs the same program as a solo ``stylize`` through a batched
convolution: images atol 1e-5 (in [0, 1]), losses rtol 1e-4 (observed on
XLA:CPU: identical).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import cells
from jaxstyle.batch import _buckets, _check
from jaxstyle.cli import main
from jaxstyle.images import to_uint8
from jaxstyle.manifest import FIELDS, Job, read_manifest
from jaxstyle.resume import CHECKPOINTS

SETTINGS = dict(steps=3, optimizer="adam")


@pytest.fixture(scope="module")
def images(shared_image):
    names = ("tubingen", "starry_night", "the_scream")
    return {name: shared_image(f"{name}.jpg") for name in names}


def test_manifest_jsonl_rows_and_errors_by_line(images, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "photo.jpg").write_bytes(images["tubingen"].read_bytes())
    lines = [
        {"content": "sub/photo.jpg", "style": str(images["starry_night"]), "style_weight": "1e3"},
        {"content": "sub/photo.jpg", "style": [str(images["the_scream"])], "output": "b.jpg"},
        "",
        {"style": str(images["the_scream"]), "output": "texture.png", "seed": 2, "size": 48},
        {"content": "missing.jpg", "style": str(images["the_scream"])},
        {"content": "sub/photo.jpg", "style": str(images["the_scream"]), "colour": 1},
        {"content": "sub/photo.jpg", "style": str(images["the_scream"]), "seed": 1.5},
        {"content": "sub/photo.jpg", "style": str(images["the_scream"]), "output": "b.png"},
        {"content": "sub/photo.jpg", "style": str(images["the_scream"]), "output": "../x.png"},
        {"content": "sub/photo.jpg"},
        "{not json",
        {"content": "sub/photo.jpg", "style": str(images["the_scream"]), "size": float("nan")},
        {"content": "sub/photo.jpg", "style": str(images["the_scream"]), "seed": float("inf")},
        {"content": "sub/photo.jpg", "style": str(images["the_scream"]), "seed": True},
        {"content": "sub", "style": str(images["the_scream"])},
        {"content": "sub/photo.jpg", "style": str(images["the_scream"]), "output": "a\0b.png"},
        {"content": "x" * 300 + ".jpg", "style": str(images["the_scream"])},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    jobs, errors = read_manifest(manifest)
    assert [j.line for j in jobs] == [1, 2, 4]
    assert jobs[0].output == "photo_starry_night.png" and jobs[0].overrides == {"style_weight": 1e3}
    assert jobs[0].content == tmp_path / "sub" / "photo.jpg"
    assert jobs[2].content is None and jobs[2].overrides == {"seed": 2, "size": 48}
    reasons = dict(errors)
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    assert "no such image file" in reasons[5] and "colour" in reasons[6]
    assert "integer" in reasons[7] and "line 2" in reasons[8] and "plain file name" in reasons[9]
    assert "no style" in reasons[10] and "not JSON" in reasons[11]
    assert reasons[12] == "size must be an integer, not nan"  # NaN and Infinity: JSON extensions
    assert reasons[13] == "seed must be an integer, not inf"
    assert reasons[14] == "seed must be a number, not true"
    assert reasons[15] == f"{tmp_path / 'sub'} is a directory, not an image file"
    assert reasons[16] == "output must be a plain file name, not 'a\\x00b.png'"
    assert reasons[17] == f"cannot read {tmp_path / ('x' * 300 + '.jpg')}: File name too long"


def test_manifest_jsonl_nulls_are_fields_not_given(images, tmp_path):
    """pandas' to_json(lines=True) writes null for a row's missing value: not given, as an
    empty CSV cell; an empty path in a list is refused as such, not read as the directory."""
    style = str(images["the_scream"])
    rows = [
        {"content": None, "style": style, "output": None, "mask": None, "style_weight": None},
        {"content": str(images["tubingen"]), "style": style, "seed": 3, "size": None},
        {"content": str(images["tubingen"]), "style": [style, ""], "output": "c.png"},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("\n".join(map(json.dumps, rows)))
    jobs, errors = read_manifest(manifest)
    assert [(j.content, j.output, j.mask, j.overrides) for j in jobs] == [
        (None, "the_scream_the_scream.png", None, {}),
        (images["tubingen"], "tubingen_the_scream.png", None, {"seed": 3}),
    ]
    assert errors == [(3, "image paths must be non-empty strings, not ''")]


def test_manifest_csv(images, tmp_path):
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "# jobs for the test\n"
        "\n"
        "content,style,style_weight,output\n"
        f"{images['tubingen']},{images['starry_night']};{images['the_scream']},100,a.png\n"
        "\n"
        "# the next one is bad\n"
        f"{images['tubingen']},{images['starry_night']},lots,b.png\n"
    )
    jobs, errors = read_manifest(manifest)
    assert len(jobs) == 1 and jobs[0].styles == (images["starry_night"], images["the_scream"])
    assert jobs[0].overrides == {"style_weight": 100.0} and jobs[0].line == 4
    assert errors == [(7, "style_weight must be a number, not 'lots'")]
    with pytest.raises(jaxstyle.JaxstyleError, match="jsonl"):
        read_manifest(tmp_path / "jobs.txt")


def test_manifest_lines_end_only_at_line_breaks(images, tmp_path):
    """JSON may hold U+2028 unescaped (json.dumps(ensure_ascii=False) writes it), and a CSV
    cell a form feed: str.splitlines() broke such a row in two, and numbered the later rows
    one too many; CRLF and a BOM (Excel's "CSV UTF-8") are read too."""
    t, s = str(images["tubingen"]), str(images["starry_night"])
    rows = [{"content": t, "style": s, "output": "a\u2028b.png"}, {"style": "nope.jpg"}]
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    jobs, errors = read_manifest(jsonl)
    assert [(j.line, j.output) for j in jobs] == [(1, "a\u2028b.png")]
    assert [e.line for e in errors] == [2]
    csv = tmp_path / "jobs.csv"
    csv.write_text(f'\ufeffstyle,output\r\n{s},"a\fb.png"\r\nnope.jpg,c.png\r\n', "utf-8")
    jobs, errors = read_manifest(csv)
    assert [(j.line, j.output) for j in jobs] == [(2, "a\fb.png")]
    assert [e.line for e in errors] == [3]


def test_manifest_style_blend_of_commas_names_the_separator(images, tmp_path):
    """A CSV row's blend written as on the command line (1,0, quoted) is refused by
    naming the list form, not as if the column took one number."""
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "content,style,style_blend\n"
        f'{images["tubingen"]},{images["starry_night"]};{images["the_scream"]},"1,0"\n'
        f"{images['tubingen']},{images['starry_night']},[[1]]\n"
    )
    jobs, errors = read_manifest(manifest)
    expected = "style_blend must be numbers separated by ';' (or a JSON list), not "
    assert not jobs and errors == [(2, expected + "'1,0'"), (3, expected + "'[[1]]'")]


def test_manifest_ambiguous_rows_are_errors(images, tmp_path):
    """A JSON key or a CSV column given twice, or a short CSV row: not silently resolved."""
    t, s = images["tubingen"], images["starry_night"]
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(f'{{"content": "{t}", "style": "{s}", "output": "y.png", "output": "z.png"}}')
    assert read_manifest(jsonl) == ([], [(1, 'the key "output" appears twice')])
    short = tmp_path / "short.csv"
    short.write_text(f"content,style,output\n{t},{s}\n{t},{s},a.png\n")
    jobs, errors = read_manifest(short)
    assert [j.line for j in jobs] == [3] and errors == [(2, "fewer values than header columns")]
    twice = tmp_path / "twice.csv"
    twice.write_text(f"# jobs\ncontent,style,output, content\n{t},{s},a.png,{s}\n")
    with pytest.raises(jaxstyle.JaxstyleError, match=f"^{twice}:2: the column content appears"):
        read_manifest(twice)


def test_manifest_files_that_cannot_be_read(images, tmp_path):
    """Missing, a directory, a FIFO, not UTF-8, JSON Lines named .csv: one plain line."""
    t, s = images["tubingen"], images["starry_night"]
    row = json.dumps({"content": str(t), "style": str(s)})
    (tmp_path / "dir.jsonl").mkdir()
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "utf16.jsonl").write_text(row, encoding="utf-16")
    (tmp_path / "latin1.csv").write_bytes(f"content,style\n{t}\u00e9,{s}\n".encode("latin-1"))
    (tmp_path / "lines.csv").write_text(row + "\n")
    (tmp_path / "excel.csv").write_text(f"content;style\n{t};{s}\n")  # Excel's, in some locales
    (tmp_path / "tabs.csv").write_text(f"content\tstyle\n{t}\t{s}\n")
    for name, message in (
        ("none.jsonl", "cannot read manifest {}: no such file"),
        ("dir.jsonl", "cannot read manifest {}: it is a directory, not a manifest"),
        ("pipe.jsonl", "cannot read manifest {}: it is not a regular file"),
        ("utf16.jsonl", "cannot read manifest {}: it is not UTF-8 text; save it as UTF-8"),
        ("latin1.csv", "cannot read manifest {}: it is not UTF-8 text; save it as UTF-8"),
        ("lines.csv", "{}:1: the header has no style column; is this JSON Lines? name it .jsonl"),
        (
            "excel.csv",
            "{}:1: the header has no style column; separate its columns by commas, not semicolons",
        ),
        (
            "tabs.csv",
            "{}:1: the header has no style column; separate its columns by commas, not tabs",
        ),
    ):
        with pytest.raises(jaxstyle.JaxstyleError) as info:
            read_manifest(tmp_path / name)
        assert str(info.value).startswith(message.format(tmp_path / name))


def test_manifest_integers_are_read_exactly(images, tmp_path):
    """A huge seed is reported as given, not rounded through float."""
    big = 99999999999999999999999
    manifest = tmp_path / "jobs.jsonl"
    row = {"content": str(images["tubingen"]), "style": str(images["starry_night"]), "seed": big}
    manifest.write_text(json.dumps(row))
    assert read_manifest(manifest)[0][0].overrides == {"seed": big}
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"content,style,seed\n{images['tubingen']},{images['starry_night']},{big}")
    assert read_manifest(manifest)[0][0].overrides == {"seed": big}


def _five_rows(images, tmp_path):
    """(rows, manifest, out): 3 good jobs (2 at 64 px, 1 at 32), a missing style on line
    3 and, on line 5, an output where the user's own file is."""
    t, s, m = (str(images[k]) for k in ("tubingen", "starry_night", "the_scream"))
    rows = [
        {"content": t, "style": s, "output": "a.png", "style_weight": 1e3},
        {"content": t, "style": m, "output": "b.png", "seed": 4},
        {"content": t, "style": "nope.jpg", "output": "c.png"},
        {"content": t, "style": s, "output": "d.png", "size": 32, "tv_weight": 0.0},
        {"content": t, "style": m, "output": "mine.png"},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.png").write_bytes(b"a file of the user's")
    return rows, manifest, out


def test_cli_batch_buckets_equal_solo_runs_skip_bad_rows_and_resume(
    vgg_weights, images, tmp_path, capsys, monkeypatch, sigterm_after
):
    rows, manifest, out = _five_rows(images, tmp_path)
    args = ["batch", str(manifest), "-o", str(out), "--size", "64", "--steps", "3"]
    args += ["--optimizer", "adam", "-q", "--batch-size", "8"]
    assert main(args) == 1  # some rows failed
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert errors[0].startswith(f"jaxstyle: {manifest}:3: no such image file")
    assert errors[1] == (
        f"jaxstyle: {manifest}:5: {out / 'mine.png'} exists and was not written by jaxstyle; "
        "not overwriting it"
    )
    assert "wrote 3 job(s)" in captured.out and "2 at 64x48, 1 at 32x24" in captured.out
    assert (out / "mine.png").read_bytes() == b"a file of the user's"
    assert not (out / "c.png").exists() and not (out / ".jaxstyle-checkpoint").exists()

    for name, row in (("a", rows[0]), ("b", rows[1]), ("d", rows[3])):
        overrides = {k: row[k] for k in ("style_weight", "seed", "size", "tv_weight") if k in row}
        settings = {"size": 64, **SETTINGS, **overrides}
        alone = jaxstyle.stylize(row["content"], row["style"], weights=vgg_weights, **settings)
        record = json.loads((out / f"{name}.json").read_text())
        png = np.asarray(Image.open(out / f"{name}.png"))
        assert png.shape == alone.image.shape
        assert np.abs(png.astype(int) - to_uint8(alone.image)).max() <= 1
        for k, v in alone.final.items():
            assert record["final_losses"][k] == pytest.approx(v, rel=1e-4)
            # the content loss at the content image: 0 up to rounding (about 1e-7)
            atol = 1e-6 * np.abs(alone.history[k]).max()
            np.testing.assert_allclose(record["history"][k], alone.history[k], rtol=1e-4, atol=atol)

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(args) == 1
    assert "3 already done" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    png = (out / "a.png").read_bytes()
    (out / "a.png").unlink()  # only the image deleted: its job (its record) is redone
    assert main(args) == 1
    assert "wrote 1 job(s)" in capsys.readouterr().out and (out / "a.png").read_bytes() == png

    # Interrupted by SIGTERM in the first chunk, then resumed: the same outputs.
    again = tmp_path / "again"
    jobs = [j for j in read_manifest(manifest)[0] if j.output in ("a.png", "b.png")]
    with monkeypatch.context() as patch:
        patch.setattr(cells, "stop_requests", lambda: sigterm_after(2))
        with pytest.raises(jaxstyle.JaxstyleError, match=r"terminated \(SIGTERM\) at step 2 of 3"):
            jaxstyle.batch(jobs, again, weights=vgg_weights, size=64, **SETTINGS)
    assert not (again / "a.png").exists() and any((again / ".jaxstyle-checkpoint").iterdir())
    report = jaxstyle.batch(jobs, again, weights=vgg_weights, size=64, **SETTINGS)
    assert [p.name for p in report.written] == ["a.png", "b.png"] and not report.failed
    for name in ("a.png", "b.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes()


def test_written_outputs_are_in_manifest_order(vgg_weights, images, tmp_path):
    """Chunks run bucket by bucket: jobs at 64, 32 and 64 px were reported written as the
    first, third and second, though ``BatchReport.written`` is in manifest order."""
    t, s = images["tubingen"], (images["starry_night"],)
    jobs = [Job(1, t, s, "a.png"), Job(2, t, s, "b.png", {"size": 32}), Job(3, t, s, "c.png")]
    report = jaxstyle.batch(jobs, tmp_path, weights=vgg_weights, size=64, **SETTINGS)
    assert [p.name for p in report.written] == ["a.png", "b.png", "c.png"]


def test_dry_run_checks_rows_and_plans_without_running_or_writing(
    vgg_weights, images, tmp_path, capsys
):
    _, manifest, out = _five_rows(images, tmp_path)
    args = ["batch", str(manifest), "-o", str(out), "--size", "64", "--steps", "3"]
    assert main([*args, "--batch-size", "1", "--dry-run"]) == 1  # some rows would fail
    captured = capsys.readouterr()
    assert [line.split(": ")[1] for line in captured.err.splitlines()] == [
        f"{manifest}:3",
        f"{manifest}:5",
    ]
    assert captured.out == (
        f"dry run: would run 3 job(s) in 3 chunk(s) into {out} (2 at 64x48, 1 at 32x24); "
        "2 failed (lines above)\n"
    )
    assert os.listdir(out) == ["mine.png"]  # nothing written, nothing compiled or run
    missing = tmp_path / "missing.jpg"  # an --init image: checked too, not as a chunk starts
    assert main([*args, "--init", str(missing), "--dry-run"]) == 2
    assert capsys.readouterr().err == f"jaxstyle: error: cannot read {missing}: no such file\n"
    assert os.listdir(out) == ["mine.png"]
    image = tmp_path / "out.png"  # an image name: the directory is not what was meant
    assert main([*args[:2], "-o", str(image), "--dry-run"]) == 2
    assert f"give it a name without .png, such as {tmp_path / 'out'}" in capsys.readouterr().err
    assert not image.exists()

    fresh = tmp_path / "not-yet"
    report = jaxstyle.batch(manifest, fresh, weights=vgg_weights, size=64, dry_run=True)
    assert report.written == [] and [e.line for e in report.failed] == [3]
    assert [(b["jobs"], b["chunks"]) for b in report.buckets] == [(3, 1), (1, 1)]  # mine.png too
    assert not fresh.exists()


def test_rerun_with_other_settings_keeps_an_interrupted_chunks_checkpoint(
    vgg_weights, images, tmp_path, capsys, monkeypatch, sigterm_after
):
    """Other steps, or an edited row: refused before any optimisation, the checkpoint
    left as it was (not recomputed from scratch and deleted)."""
    t, s = str(images["tubingen"]), str(images["starry_night"])
    manifest = tmp_path / "jobs.jsonl"
    rows = [{"content": t, "style": s, "output": "a.png"}]
    rows.append({"content": t, "style": s, "output": "b.png", "style_weight": 1000})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(cells, "stop_requests", lambda: sigterm_after(2))
        with pytest.raises(jaxstyle.JaxstyleError, match=r"terminated \(SIGTERM\) at step 2 of 3"):
            jaxstyle.batch(manifest, out, weights=vgg_weights, size=32, **SETTINGS)
    ck = out / CHECKPOINTS
    saved = sorted(ck.rglob("*"))
    args = ["batch", str(manifest), "-o", str(out), "--size", "32", "--steps", "2"]
    assert main([*args, "--optimizer", "adam", "-q"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"jaxstyle: error: checkpoint {ck} was written by a run with other settings, jobs or "
        "batch size; rerun with those, or delete the checkpoint directory to start over"
    ]
    rows[1]["style_weight"] = 10
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(jaxstyle.JaxstyleError, match="other settings, jobs or batch size"):
        jaxstyle.batch(manifest, out, weights=vgg_weights, size=32, **SETTINGS)
    assert sorted(ck.rglob("*")) == saved and not (out / "a.png").exists()

    # Damaged (a partial copy): one line, no tracebacks of Orbax's other reads.
    for state in ck.glob("*/step_*/state"):
        shutil.rmtree(state / "d")
    rows[1]["style_weight"] = 1000
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    command = [sys.executable, "-m", "jaxstyle", *args, "--steps", "3", "--optimizer", "adam"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"jaxstyle: error: checkpoint {ck}/") and "is unreadable (" in line


def test_an_interrupted_chunk_resumes_when_an_earlier_output_was_deleted(
    vgg_weights, images, tmp_path, monkeypatch, sigterm_after
):
    """Chunks (a, b) done and (c) interrupted; a.png deleted to redo it: the same command
    used to chunk (a, c) and refuse c's checkpoint as "other settings, jobs or batch
    size"; now (c) is formed again and resumes, and a is redone on its own."""
    t, s = str(images["tubingen"]), str(images["starry_night"])
    manifest = tmp_path / "jobs.jsonl"
    rows = [{"content": t, "style": s, "output": f"{n}.png", "seed": i} for i, n in enumerate("ab")]
    rows.append({"content": t, "style": s, "output": "c.png", "style_weight": 1000})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, run = tmp_path / "out", dict(size=32, batch_size=2, **SETTINGS)
    stops = iter([sigterm_after(10**6), sigterm_after(2)])  # the second chunk stopped
    with monkeypatch.context() as patch:
        patch.setattr(cells, "stop_requests", lambda: next(stops))
        with pytest.raises(jaxstyle.JaxstyleError, match=r"terminated \(SIGTERM\) at step 2 of 3"):
            jaxstyle.batch(manifest, out, weights=vgg_weights, **run)
    assert (out / "b.png").exists() and not (out / "c.png").exists()
    (out / "a.png").unlink()
    resumed, plain_run = [], cells.CellPlan.run

    def run_chunk(plan, **options):  # notes the step each chunk resumed from
        result = plain_run(plan, **options)
        resumed.append(result.resumed_from)
        return result

    monkeypatch.setattr(cells.CellPlan, "run", run_chunk)
    report = jaxstyle.batch(manifest, out, weights=vgg_weights, **run)
    assert report.written == [out / "a.png", out / "c.png"] and report.skipped == [out / "b.png"]
    assert sorted(resumed) == [0, 2]
    assert not (out / CHECKPOINTS).exists()


def test_a_finished_batch_keeps_another_runs_checkpoint(vgg_weights, images, tmp_path, monkeypatch):
    """A second manifest run into the same output saves its state meanwhile: the
    finished batch removes its own chunks' checkpoints, not the other run's."""
    t, s = str(images["tubingen"]), str(images["starry_night"])
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"content": t, "style": s, "output": "a.png"}) + "\n")
    out, plain_run = tmp_path / "out", cells.CellPlan.run
    other = out / CHECKPOINTS / "another-run"

    def run_chunk(plan, **options):  # the other run saves while this one runs
        (other / "step_00000002").mkdir(parents=True)
        (other / "run.json").write_text("{}\n")
        return plain_run(plan, **options)

    monkeypatch.setattr(cells.CellPlan, "run", run_chunk)
    report = jaxstyle.batch(manifest, out, weights=vgg_weights, size=32, **SETTINGS)
    assert report.written == [out / "a.png"]
    assert sorted(p.name for p in (out / CHECKPOINTS).iterdir()) == ["another-run"]
    assert (other / "step_00000002").is_dir()


def test_jobs_of_one_shape_whose_sizes_pick_other_convolutions_run_apart(
    vgg_weights, images, tmp_path
):
    """Without a size a job keeps its image's size, and ``auto`` takes it as large
    (Winograd); a 24 x 32 image given ``size=32`` gets direct convolutions (below
    112 px). Same shape, other programs: two buckets."""
    small = tmp_path / "small.png"
    Image.open(images["tubingen"]).convert("RGB").resize((32, 24)).save(small)
    jobs = [
        Job(1, small, (images["starry_night"],), "native.png", {}),
        Job(2, images["tubingen"], (images["starry_night"],), "sized.png", {"size": 32}),
        Job(3, small, (images["the_scream"],), "native2.png", {}),
    ]
    ready = [_check(job, tmp_path, "jaxstyle", {}, vgg_weights) for job in jobs]
    assert [item.shape for item in ready] == [(24, 32)] * 3
    buckets = _buckets(ready)
    assert {key: [item.job.line for item in items] for key, items in buckets.items()} == {
        ((((24, 32), "winograd", None),), None): [1, 3],
        ((((24, 32), "direct", None),), None): [2],
    }


def test_batch_api_refuses_bad_shared_settings(vgg_weights, tmp_path):
    job = Job(1, None, (tmp_path / "x.png",), "y.png", {})
    with pytest.raises(jaxstyle.JaxstyleError, match="batch size"):
        jaxstyle.batch([job], tmp_path, weights=vgg_weights, batch_size=0)
    for bad in (2.5, "8", None):  # TypeErrors, 2.5 only once the jobs were checked
        with pytest.raises(jaxstyle.JaxstyleError, match="batch size must be an integer"):
            jaxstyle.batch([job], tmp_path, weights=vgg_weights, batch_size=bad)
        with pytest.raises(jaxstyle.JaxstyleError, match="checkpoint every must be an integer"):
            jaxstyle.batch([job], tmp_path, weights=vgg_weights, checkpoint_every=bad)
    with pytest.raises(jaxstyle.JaxstyleError, match="callback_every must be >= 0"):  # ignored
        jaxstyle.batch([job], tmp_path, weights=vgg_weights, callback=print, callback_every=-1)
    with pytest.raises(jaxstyle.JaxstyleError, match="steps"):
        jaxstyle.batch([job], tmp_path, weights=vgg_weights, steps=-1)
    row = {"content": "c.png", "style": "s.png", "output": "y.png"}
    for jobs in ([row], None, job):  # None and one Job (not a list of them) were TypeErrors
        with pytest.raises(jaxstyle.JaxstyleError, match="manifest path or jaxstyle.manifest.Job"):
            jaxstyle.batch(jobs, tmp_path, weights=vgg_weights)


def test_job_overrides_none_are_empty_and_others_are_refused(tmp_path):
    """None was a TypeError, as was a list of pairs; a str was refused letter by letter."""
    style = (tmp_path / "s.png",)
    assert Job(1, None, style, "y.png", None).overrides == {}
    assert Job(1, None, style, "y.png").overrides == {}
    for bad, kind in (([("size", 64)], "list"), ("size", "str")):
        with pytest.raises(
            jaxstyle.JaxstyleError, match=f"overrides must be a dict or None, not {kind}"
        ):
            Job(1, None, style, "y.png", bad)


def test_job_takes_one_style_path_and_refuses_unknown_overrides(tmp_path):
    assert Job(1, None, str(tmp_path / "s.png"), "y.png", {}).styles == (tmp_path / "s.png",)
    assert Job(1, None, tmp_path / "s.png", "y.png", {}).styles == (tmp_path / "s.png",)
    with pytest.raises(jaxstyle.JaxstyleError, match="not stlye_weight"):
        Job(1, None, (tmp_path / "s.png",), "y.png", {"stlye_weight": 1})


def test_batch_of_jobs_takes_lists_of_styles_and_masks(vgg_weights, images, tmp_path):
    """A mask list (one per style, as a manifest's JSON list) in a Job made in Python was a
    TypeError traceback from the output check (it took the list for one path), as were
    styles=None and an array mask; a generator of styles was read up by the row check, so
    the run found none."""
    mask = tmp_path / "mask.png"
    Image.new("L", (8, 6), 255).save(mask)
    job = Job(1, images["tubingen"], [images["starry_night"]], "y.png", {}, [mask])
    assert (job.styles, job.mask) == ((images["starry_night"],), (mask,))
    report = jaxstyle.batch([job], tmp_path, weights=vgg_weights, size=32, dry_run=True)
    assert not report.failed and [b["mask"] for b in report.buckets] == ["per style (1)"]
    styles = (str(p) for p in [images["starry_night"]])
    assert Job(1, None, styles, "y.png", mask=str(mask)).styles == (images["starry_night"],)
    for bad, message in (
        (dict(styles=None), "styles must be a path or a list of paths, not NoneType"),
        (dict(mask=np.ones((6, 8))), "mask must be a path or a list of paths, not ndarray"),
        (dict(content=np.ones((6, 8, 3))), "content must be a path or None, not ndarray"),
    ):
        fields = {"line": 1, "content": None, "styles": mask, "output": "y.png", **bad}
        with pytest.raises(jaxstyle.JaxstyleError, match=message):
            Job(**fields)


@pytest.mark.parametrize(
    "output", ["../y.png", "/tmp/y.png", "sub/y.png", ".y.png", "y.json", "y", None, Path("y.png")]
)
def test_job_output_is_a_plain_image_name_in_the_output_directory(output, tmp_path):
    # a Job made in Python was not checked as a manifest's row is: "../y.png" was
    # written outside the output directory
    with pytest.raises(jaxstyle.JaxstyleError, match="output"):
        Job(1, None, tmp_path / "s.png", output, {})
    with pytest.raises(jaxstyle.JaxstyleError, match="line must be an integer, not None"):
        Job(None, None, tmp_path / "s.png", "y.png", {})


def test_batch_of_jobs_refuses_an_output_name_used_twice(vgg_weights, images, tmp_path):
    # both ran, and the second job's image and record replaced the first's
    style = (images["starry_night"],)
    jobs = [Job(1, None, style, "y.png", {}), Job(2, None, style, "y.jpg", {})]
    report = jaxstyle.batch(jobs, tmp_path, weights=vgg_weights, size=32, dry_run=True)
    assert report.failed == [
        (2, "output y.jpg has the same name as line 1's (each output also gets a .json record)")
    ]
    assert [b["jobs"] for b in report.buckets] == [1]
    # é composed and decomposed (as macOS writes names): one file on macOS, so the
    # second job's output replaced the first's there
    jobs = [Job(1, None, style, "\u00e9.png"), Job(2, None, style, "E\u0301.png")]
    report = jaxstyle.batch(jobs, tmp_path, weights=vgg_weights, size=32, dry_run=True)
    assert [(e.line, "same name as line 1's" in e.message) for e in report.failed] == [(2, True)]


SHARDED = """
import os, sys, json
import jax
jax.config.update("jax_compilation_cache_dir", os.environ["JAXSTYLE_CACHE"])
import jaxstyle
jobs, out = sys.argv[1], sys.argv[2]
report = jaxstyle.batch(jobs, out, size=32, steps=2, optimizer="adam")
print(json.dumps({"devices": jax.device_count(), "written": len(report.written)}))
"""


def test_batch_sharded_over_4_cpu_devices_equals_one_device(vgg_weights, images, tmp_path):
    """3 jobs (not divisible by 4) on 4 host devices, in a subprocess, against this
    process's 1 device: the same PNGs (up to one 8-bit level) and losses (rtol 1e-4)."""
    t, s, m = (str(images[k]) for k in ("tubingen", "starry_night", "the_scream"))
    rows = [
        {"content": t, "style": s, "output": "a.png"},
        {"content": t, "style": m, "output": "b.png", "style_weight": 1e3},
        {"content": t, "style": [s, m], "output": "c.png", "seed": 1},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=4",
    }
    command = [sys.executable, "-c", SHARDED, str(manifest), str(tmp_path / "four")]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {"devices": 4, "written": 3}
    report = jaxstyle.batch(
        manifest, tmp_path / "one", weights=vgg_weights, size=32, steps=2, optimizer="adam"
    )
    assert len(report.written) == 3
    for name in ("a", "b", "c"):
        four = json.loads((tmp_path / "four" / f"{name}.json").read_text())
        one = json.loads((tmp_path / "one" / f"{name}.json").read_text())
        assert four["fingerprint"] == one["fingerprint"]
        for k, v in one["final_losses"].items():
            assert four["final_losses"][k] == pytest.approx(v, rel=1e-4)
        a, b = (np.asarray(Image.open(tmp_path / d / f"{name}.png")) for d in ("four", "one"))
        assert np.abs(a.astype(int) - b).max() <= 1


def test_rows_blend_their_style_images_as_stylize_does(vgg_weights, images, tmp_path):
    """A row's ``style_blend`` (a JSON list, or ``;``-separated) weighs its style
    images' Grams as ``stylize(style_blend=...)`` does; a bad blend is a bad row."""
    tubingen, starry, scream = (str(images[n]) for n in ("tubingen", "starry_night", "the_scream"))
    two = [starry, scream]
    rows = [
        {"content": tubingen, "style": two, "output": "a.png", "style_blend": [0.8, 0.2]},
        {"content": tubingen, "style": two, "output": "b.png", "style_blend": "0.2; 0.8"},
        {"content": tubingen, "style": two, "output": "c.png", "style_blend": [1, 2, 3]},
        {"content": tubingen, "style": two, "output": "d.png", "style_blend": "1;much"},
        {"content": tubingen, "style": two, "output": "e.png", "style_blend": [-1, 2]},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = jaxstyle.batch(manifest, tmp_path / "out", weights=vgg_weights, size=64, **SETTINGS)
    failed = {e.line: e.message for e in report.failed}
    assert sorted(failed) == [3, 4, 5] and [p.name for p in report.written] == ["a.png", "b.png"]
    assert failed[3] == (
        "style blend weights must be one per style image (2), each >= 0, sum > 0; not 1,2,3"
    )
    assert failed[4] == (
        "style_blend must be numbers separated by ';' (or a JSON list), not '1;much'"
    )
    assert failed[5] == "style blend weights must be finite and >= 0"
    for name, blend in (("a", (0.8, 0.2)), ("b", (0.2, 0.8))):
        alone = jaxstyle.stylize(
            tubingen, two, weights=vgg_weights, size=64, style_blend=blend, **SETTINGS
        )
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert np.abs(written.astype(int) - to_uint8(alone.image)).max() <= 1
        record = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert record["settings"]["style_blend"] == pytest.approx(blend)
        np.testing.assert_allclose(record["history"]["total"], alone.history["total"], rtol=1e-4)
    a, b = (np.asarray(Image.open(tmp_path / "out" / n), np.float32) for n in ("a.png", "b.png"))
    assert np.abs(a - b).mean() > 1  # the blends differ


def test_rows_scale_their_style_images_as_stylize_does(vgg_weights, images, tmp_path):
    """A row's ``style_scale`` sizes its style images as ``stylize(style_scale=...)``
    does; rows of several scales run in one chunk (Gram targets are (C, C) whatever
    the style's size); a scale too small for VGG19 is a bad row."""
    tubingen, starry = str(images["tubingen"]), str(images["starry_night"])
    rows = [
        {"content": tubingen, "style": starry, "output": "half.png", "style_scale": 0.5},
        {"content": tubingen, "style": starry, "output": "double.png", "style_scale": "2"},
        {"content": tubingen, "style": starry, "output": "tiny.png", "style_scale": 0.1},
    ]
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "content,style,output,style_scale\n"
        + "".join(f"{r['content']},{r['style']},{r['output']},{r['style_scale']}\n" for r in rows)
    )
    report = jaxstyle.batch(manifest, tmp_path / "out", weights=vgg_weights, size=64, **SETTINGS)
    assert [e.line for e in report.failed] == [4] and "relu5_1 needs" in report.failed[0].message
    assert [b["jobs"] for b in report.buckets] == [2]
    for name, scale in (("half", 0.5), ("double", 2.0)):
        alone = jaxstyle.stylize(
            tubingen, starry, weights=vgg_weights, size=64, style_scale=scale, **SETTINGS
        )
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert np.abs(written.astype(int) - to_uint8(alone.image)).max() <= 1
        record = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert record["settings"]["style_scale"] == scale
        np.testing.assert_allclose(record["history"]["total"], alone.history["total"], rtol=1e-4)


def test_coarse_to_fine_jobs_equal_coarse_to_fine_runs_alone(vgg_weights, images, tmp_path):
    """Each job runs the 32 px pass, then the 64 px one from its own result, as
    ``stylize`` does; a job too small for a pass is a row error."""
    tubingen, starry, scream = (str(images[n]) for n in ("tubingen", "starry_night", "the_scream"))
    rows = [
        {"content": tubingen, "style": starry, "output": "a.png"},
        {"content": tubingen, "style": scream, "output": "b.png", "seed": 3, "style_weight": 1e3},
        {"content": tubingen, "style": scream, "output": "small.png", "size": 32},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = dict(size=64, coarse_to_fine=32, coarse_to_fine_steps=2, **SETTINGS)
    report = jaxstyle.batch(manifest, tmp_path / "out", weights=vgg_weights, **run)
    assert [e.line for e in report.failed] == [3] and "below the size" in report.failed[0].message
    assert [(b["pass_shapes"], b["jobs"]) for b in report.buckets] == [([(24, 32), (48, 64)], 2)]
    assert not (tmp_path / "out" / ".jaxstyle-checkpoint").exists()
    for name, style, extra in (("a", starry, {}), ("b", scream, {"seed": 3, "style_weight": 1e3})):
        alone = jaxstyle.stylize(tubingen, style, weights=vgg_weights, **{**run, **extra})
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert np.abs(written.astype(int) - to_uint8(alone.image)).max() <= 1
        record = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert record["settings"]["coarse_to_fine"] == [32]
        np.testing.assert_allclose(record["history"]["total"], alone.history["total"], rtol=1e-4)
    again = jaxstyle.batch(manifest, tmp_path / "out", weights=vgg_weights, **run)
    assert len(again.skipped) == 2 and not again.written


def test_coarse_to_fine_rows_with_their_own_sizes(vgg_weights, images, tmp_path):
    """No shared size: coarse-to-fine sizes are checked against each row's own, and a
    row without one is a row error, not the whole batch's."""
    tubingen, starry, scream = (str(images[n]) for n in ("tubingen", "starry_night", "the_scream"))
    rows = [
        {"content": tubingen, "style": starry, "output": "a.png", "size": 64},
        {"content": tubingen, "style": scream, "output": "b.png", "size": 64, "seed": 3},
        {"content": tubingen, "style": scream, "output": "no_size.png"},
        {"content": tubingen, "style": scream, "output": "small.png", "size": 32},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = dict(coarse_to_fine=32, coarse_to_fine_steps=2, **SETTINGS)
    report = jaxstyle.batch(manifest, tmp_path / "out", weights=vgg_weights, **run)
    assert [p.name for p in report.written] == ["a.png", "b.png"]
    assert [(e.line, e.message.split(":")[0]) for e in report.failed] == [
        (3, "coarse-to-fine needs a size"),
        (4, "coarse-to-fine sizes must rise from at least 16 px to below the size (32), not 32"),
    ]
    with pytest.raises(jaxstyle.JaxstyleError, match="steps"):  # any other bad shared setting
        jaxstyle.batch(manifest, tmp_path / "out", weights=vgg_weights, **{**run, "steps": -1})


def test_a_failed_write_is_redone_by_the_rerun(vgg_weights, images, tmp_path, monkeypatch):
    """A job's record is written before its image: a write failing at either (a full
    disk) leaves nothing the rerun would refuse as not its own, and the job is redone."""
    manifest = tmp_path / "jobs.jsonl"
    row = {"content": str(images["tubingen"]), "style": str(images["starry_night"])}
    manifest.write_text(json.dumps({**row, "output": "a.png"}) + "\n")
    run = dict(weights=vgg_weights, size=32, steps=2, optimizer="adam")
    out = tmp_path / "out"

    def full_disk(path, *_, **__):
        raise jaxstyle.JaxstyleError(f"cannot write {path}: No space left on device")

    for failing in ("write_text_atomic", "save_image"):  # the record's write, the image's
        monkeypatch.setattr(jaxstyle.images, failing, full_disk)
        with pytest.raises(jaxstyle.JaxstyleError, match="No space left"):
            jaxstyle.batch(manifest, out, **run)
        monkeypatch.undo()
        assert not (out / "a.png").exists()
        report = jaxstyle.batch(manifest, out, **run)
        assert report.written == [out / "a.png"] and (out / "a.png").exists()
        (out / "a.png").unlink()
        (out / "a.json").unlink()


def test_batch_help_names_every_manifest_field(images, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["batch", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert [field for field in FIELDS if field not in text] == []
    # content and output are optional, as the help says: a texture, the default name
    manifest = tmp_path / "jobs.jsonl"
    pair = {"content": str(images["tubingen"]), "style": str(images["starry_night"])}
    manifest.write_text(f"{json.dumps(pair)}\n{json.dumps({'style': pair['style']})}\n")
    (photo, texture), failed = read_manifest(manifest)
    assert not failed and texture.content is None
    assert "optionally content (none: texture synthesis)" in text
    assert f"(default: CONTENT_STYLE.png, e.g. {photo.output}; a texture's: STYLE_STYLE" in text
    assert texture.output == "starry_night_starry_night.png"
