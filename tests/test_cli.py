"""The command line end to end on tiny images: outputs, records, errors."""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.cli import main

SMALL = ["--size", "64", "--steps", "3", "--optimizer", "adam", "-q"]


@pytest.fixture(scope="module")
def pair(shared_image):
    return str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))


def stylize(*args: str) -> int:
    return main(["stylize", *map(str, args)])


def test_stylize_writes_image_and_record(pair, tmp_path, capsys):
    out = tmp_path / "result" / "out.png"
    assert stylize(*pair, "-o", out, *SMALL, "--seed", "3", "--save-every", "2") == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["settings"]["steps"] == 3 and record["settings"]["seed"] == 3
    assert record["settings"]["optimizer"] == "adam" and record["settings"]["preset"] == "jaxstyle"
    assert record["inputs"]["content"] == pair[0] and record["inputs"]["styles"] == [pair[1]]
    assert len(record["history"]["style"]) == 3 and record["timings"]["ms_per_step"] > 0
    assert {"jax", "flax", "optax", "jaxstyle"} <= set(record["versions"])
    # at multiples of 2 only: the last step's image is out.png itself
    assert sorted(p.name for p in out.parent.glob("out.step*.png")) == ["out.step00002.png"]
    assert "wrote" in capsys.readouterr().out
    # a rerun replaces its own earlier image, intermediate images and record
    assert stylize(*pair, "-o", out, *SMALL, "--seed", "4", "--save-every", "2") == 0
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["seed"] == 4


def test_coarse_to_fine_numbers_saved_steps_over_its_passes(pair, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert stylize(*pair, "-o", out, *SMALL, "--coarse-to-fine", "32", "--save-every", "2") == 0
    assert [Image.open(p).size for p in sorted(tmp_path.glob("out.step*.png"))] == [
        (32, 24),  # step 2, in the 32 px pass
        (64, 48),  # step 5 = the 64 px pass's step 2
    ]
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["settings"]["coarse_to_fine"] == [32] and len(record["history"]["total"]) == 6
    assert "2 passes of 3 steps" in capsys.readouterr().out
    assert stylize(*pair, "-o", out, *SMALL, "--coarse-to-fine", "64") == 2
    assert "not 64" in capsys.readouterr().err
    out = tmp_path / "steps.png"
    args = ["-o", out, *SMALL, "--coarse-to-fine", "32", "--coarse-to-fine-steps", "4"]
    assert stylize(*pair, *args, "--save-every", "2") == 0
    assert sorted(p.name for p in tmp_path.glob("steps.step*.png")) == [
        "steps.step00002.png",
        "steps.step00004.png",
        "steps.step00006.png",  # the 64 px pass's step 2
    ]
    assert "2 passes of 4+3 steps" in capsys.readouterr().out


def test_stylize_replaces_no_file_it_did_not_write(pair, tmp_path, capsys):
    """Refused before any work, each file as it was: an image or an intermediate
    image without a jaxstyle record beside it, a record-named file that is not one
    (or is a directory, or another output's record), and an intermediate image that
    is an input."""
    files = {
        "user.png": b"the user's picture",
        "notes.json": b"precious",
        "other.json": json.dumps({"output": "other.jpg", "settings": {}}).encode(),
        "mine.step00002.png": b"the user's own step file",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "rec.json").mkdir()
    cases = {
        "user.png": "user.png exists and was not written by jaxstyle",
        "notes.png": "notes.json exists and is not the run record of notes.png",
        "other.png": "other.json exists and is not the run record of other.png",
        "rec.png": "rec.json exists and is not the run record",
        "mine.png": "mine.step00002.png exists and was not written by jaxstyle",
    }
    for output, needle in cases.items():
        assert stylize(*pair, "-o", tmp_path / output, *SMALL, "--save-every", "2") == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("jaxstyle: error: ") and needle in err and "\n" not in err, err
    step_input = tmp_path / "x.step00002.png"
    Image.open(pair[0]).save(step_input)
    args = [step_input, pair[1], "-o", tmp_path / "x.png", *SMALL, "--save-every", "2"]
    assert stylize(*args) == 2
    assert "x.step00002.png is the input" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert {name: (tmp_path / name).read_bytes() for name in files} == files
    assert not any((tmp_path / name).exists() for name in ("notes.png", "other.png", "rec.png"))


def test_same_arguments_same_image(pair, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    args = [*SMALL, "--init", "noise", "--seed", "5"]
    assert stylize(*pair, "-o", a, *args) == 0 and stylize(*pair, "-o", b, *args) == 0
    assert a.read_bytes() == b.read_bytes()


def test_texture_mode_and_init_from_image(pair, tmp_path):
    out = tmp_path / "texture.png"
    assert stylize("--texture", pair[1], "-o", out, *SMALL) == 0
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["content_weight"] == 0.0
    out2 = tmp_path / "init.png"
    assert stylize(*pair, "-o", out2, *SMALL, "--init", pair[1]) == 0


@pytest.mark.parametrize(
    "option,values,other,axes,names,column",
    [
        (
            "--style-blend",
            "1,0;0.5,0.5;0,1",
            "1,0;0.25,0.75;0,1",
            {"style_blend": [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]},
            ["blend1-0", "blend0.5-0.5", "blend0-1"],
            ["1,0", "0.5,0.5", "0,1"],
        ),
        (
            "--style-scale",
            "0.5,1,2",
            "0.5,2",
            {"style_scale": [0.5, 1.0, 2.0]},
            ["scale0.5", "scale1", "scale2"],
            ["0.5", "1.0", "2.0"],
        ),
    ],
)
def test_sweep_over_style_blends_or_scales_names_each_cell_by_its_value(
    pair, shared_image, tmp_path, capsys, option, values, other, axes, names, column
):
    """The interpolation between two styles, or one style at three scales, as one sweep
    (tests/test_sweep.py's BLEND and SCALE: the same programs): a PNG per cell named by
    its blend or scale, a labelled grid, sweep.csv/json with them; the same sweep again
    is done, another blend or scale set into the same directory is another sweep
    (fingerprint)."""
    out = tmp_path / "sweep"
    axis = next(iter(axes))
    images = [*pair, str(shared_image("the_scream.jpg"))] if axis == "style_blend" else pair
    assert main(["sweep", *images, "-o", str(out), *SMALL, option, values]) == 0
    assert "wrote 3 cells" in capsys.readouterr().out
    record = json.loads((out / "sweep.json").read_text())
    assert record["axes"] == axes
    files = [c["file"] for c in record["cells"]]
    assert [f.split("_")[3] for f in files] == names
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*files, "grid.png", "sweep.json", "sweep.csv"]
    )
    grid = np.asarray(Image.open(out / "grid.png").convert("L"))
    assert grid.shape[1] > 3 * 64 and grid[: grid.shape[0] - 48 - 8].min() < 128  # labels
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [(row["file"], row[axis]) for row in rows] == list(zip(files, column, strict=True))
    assert main(["sweep", *images, "-o", str(out), *SMALL, option, values]) == 0
    assert "already holds this finished sweep: nothing to do" in capsys.readouterr().out
    assert main(["sweep", *images, "-o", str(out), *SMALL, option, other]) == 2
    assert "holds a finished sweep with other settings" in capsys.readouterr().err


def test_texture_with_no_image_synthesises_the_built_in_painting(tmp_path, capsys):
    from jaxstyle.examples import example_style
    from jaxstyle.images import resize_longest

    out = tmp_path / "texture.png"
    assert stylize("--texture", "-o", out, *SMALL) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["inputs"]["content"] is None
    assert record["inputs"]["styles"] == ["example painting"]
    assert record["settings"]["content_weight"] == 0.0 and record["settings"]["init"] == "noise"
    painting = resize_longest(example_style(), 64)
    assert np.asarray(Image.open(out)).shape == painting.shape
    assert "texture of jaxstyle's built-in swirl painting" in capsys.readouterr().err


def bad_cases(pair, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    thin = tmp_path / "thin.png"  # one pixel high: empty feature maps from pool1 on
    Image.fromarray(np.zeros((1, 50, 3), np.uint8)).save(thin)
    ok = ["-o", tmp_path / "o.png", *SMALL]
    return {
        "missing file": ([tmp_path / "nope.jpg", pair[1], *ok], "nope.jpg"),
        "missing file, output in a new directory": (
            [tmp_path / "nope.jpg", pair[1], "-o", tmp_path / "new" / "o.png", *SMALL],
            "nope.jpg",
        ),
        "not an image": ([pair[0], text, *ok], "notes.jpg"),
        "output is a directory": ([*pair, "-o", tmp_path, *SMALL], "directory"),
        "output is the current directory": ([*pair, "-o", ".", *SMALL], "directory"),
        "empty output path": ([*pair, "-o", "", *SMALL], "empty string"),
        "empty image path": (["", pair[1], *ok], "empty string"),
        "empty init path": ([*pair, *ok, "--init", ""], "empty string"),
        "output is an input": ([*pair, "-o", pair[0], *SMALL], "input"),
        "unknown layer": ([*pair, *ok, "--style-layers", "relu9_9"], "relu9_9"),
        "layer twice": ([*pair, *ok, "--style-layers", "relu1_1,relu1_1"], "relu1_1 twice"),
        "negative weight": ([*pair, *ok, "--style-weight", "-1"], "weight"),
        "negative steps": ([*pair, "-o", tmp_path / "o.png", "--steps", "-2"], "steps"),
        "one image only": ([pair[0], *ok], "STYLE"),
        "bad number": ([*pair, *ok, "--size", "big"], "size"),
        "bad compute dtype": ([*pair, *ok, "--compute-dtype", "float16"], "compute-dtype"),
        "bad conv algorithm": ([*pair, *ok, "--conv-algorithm", "fft"], "conv-algorithm"),
        "no style layers": ([*pair, *ok, "--style-layers", ","], "without empty items"),
        "no content layers": ([*pair, *ok, "--content-layers", ","], "without empty items"),
        "empty list item": ([*pair, *ok, "--style-layer-weights", "1,,1"], "empty items"),
        "empty preset": ([*pair, *ok, "--preset", ""], "empty string"),
        "NaN style blend": ([*pair, pair[1], *ok, "--style-blend", "1,nan"], "finite"),
        "infinite style blend": ([*pair, pair[1], *ok, "--style-blend", "1,inf"], "finite"),
        "style blend of 3 for 2 styles": (
            [*pair, pair[1], *ok, "--style-blend", "1,1,1"],
            "style blend weights must be one per style image (2), each >= 0, sum > 0; not 1,1,1",
        ),
        "style blend all 0": ([*pair, pair[1], *ok, "--style-blend", "0,0"], "sum > 0; not 0,0"),
        "infinite learning rate": ([*pair, *ok, "--lr", "inf"], "learning rate"),
        "learning rate for L-BFGS": ([*pair, "-o", tmp_path / "o.png", "--lr", "0.5"], "--lr"),
        "texture from the content": (["--texture", pair[1], *ok, "--init", "content"], "noise"),
        "weight beyond float32": ([*pair, *ok, "--style-weight", "1e39"], "float32"),
        "image too thin": ([thin, pair[1], *ok], "content image is 64x1 px"),
        "coarse pass too small": (
            [*pair, "-o", tmp_path / "o.png", "--size", "64", "--coarse-to-fine", "16"],
            "16x12 px after resizing to 16 px; relu5_1 needs sides of at least 16 px",
        ),
        "style scaled too small": (
            [*pair, *ok, "--style-scale", "0.2"],
            "to 64 px x style scale 0.2; relu5_1 needs",
        ),
        "style scaled too large": ([*pair, *ok, "--style-scale", "1e300"], "not 6.4e+301: use"),
        "seed beyond 64 bits": ([*pair, *ok, "--init", "noise", "--seed", "9" * 20], "seed"),
        "content weight, no content": (
            ["--texture", pair[1], *ok, "--content-weight", "5"],
            "content weight cannot be set without a content image",
        ),
        "output name too long": (  # pathlib's exists() raises OSError for it
            [*pair, "-o", tmp_path / ("x" * 300 + ".png"), *SMALL],
            "File name too long",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "missing file, output in a new directory",
        "not an image",
        "output is a directory",
        "output is the current directory",
        "empty output path",
        "empty image path",
        "empty init path",
        "output is an input",
        "unknown layer",
        "negative weight",
        "negative steps",
        "one image only",
        "bad number",
        "bad compute dtype",
        "bad conv algorithm",
        "no style layers",
        "no content layers",
        "empty list item",
        "empty preset",
        "NaN style blend",
        "infinite style blend",
        "style blend of 3 for 2 styles",
        "style blend all 0",
        "infinite learning rate",
        "learning rate for L-BFGS",
        "texture from the content",
        "weight beyond float32",
        "image too thin",
        "coarse pass too small",
        "style scaled too small",
        "style scaled too large",
        "seed beyond 64 bits",
        "content weight, no content",
        "output name too long",
    ],
)
def test_bad_input_is_one_line_and_exit_2(pair, tmp_path, capsys, case):
    args, needle = bad_cases(pair, tmp_path)[case]
    before = {p: p.stat().st_mtime_ns for p in map(__import__("pathlib").Path, pair)}
    listed = sorted(tmp_path.iterdir())
    assert stylize(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxstyle: error: ") and "\n" not in err, err
    assert needle.lower() in err.lower(), err
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert sorted(tmp_path.iterdir()) == listed  # nothing written: no record, no directory


def test_a_file_name_too_long_is_one_line_for_every_command(pair, tmp_path, capsys):
    """pathlib's exists() and is_dir() raise OSError "File name too long" (not False)."""
    long = str(tmp_path / ("x" * 300))
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"content,style\n{pair[0]},{pair[1]}\n")
    record = tmp_path / "out.json"
    record.write_text('{"history": {"total": [1], "content": [1], "style": [1], "tv": [1]}}')
    for argv in (
        ["sweep", *pair, "-o", long, *SMALL],
        ["batch", str(manifest), "-o", long, *SMALL],
        ["animate", *pair, "-o", long + ".gif", *SMALL],
        ["plot", str(record), "-o", long + ".png"],
        ["estimate", "--size", "32", "--weights", long],
        ["weights", "convert", str(record), "-o", long],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("jaxstyle: error: ") and err.count("\n") == 1, err
        assert "File name too long" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.csv", "out.json"]


def test_sigterm_ends_stylize_with_one_line_and_no_output(pair, tmp_path):
    """SIGTERM mid-run (after the first intermediate image): exit 143 and one line,
    as SIGINT gets; the output is not written, and the record says the run is
    unfinished, so that the same command may replace the intermediate images it left."""
    out = tmp_path / "out.png"
    command = [sys.executable, "-m", "jaxstyle", "stylize", *pair, "-o", str(out)]
    command += [*SMALL[:2], "--steps", "100000", "--optimizer", "adam", "--save-every", "1", "-q"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (tmp_path / "out.step00001.png").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    stopped = "jaxstyle: terminated (SIGTERM): no output written; kept the step images out.step"
    assert err.strip().startswith(stopped) and err.count("\n") == 1
    assert not out.exists()
    assert json.loads(out.with_suffix(".json").read_text())["status"].startswith("unfinished")
    assert stylize(*pair, "-o", out, *SMALL, "--save-every", "1") == 0  # the same command
    assert "status" not in json.loads(out.with_suffix(".json").read_text())


@pytest.mark.parametrize(
    "failure",
    [
        jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes."
        ),
        MemoryError(),
    ],
    ids=["device", "host"],
)
def test_out_of_memory_is_one_line_with_what_to_try(pair, tmp_path, capsys, monkeypatch, failure):
    """An allocation that fails (XLA on a device, Python on the host) is one line naming the
    memory levers; other runtime errors are not disguised as it."""

    def fails(*images, **options):
        raise failure

    module = importlib.import_module("jaxstyle.stylize")
    monkeypatch.setattr(module, "stylize", fails)
    out = tmp_path / "out.png"
    assert stylize(*pair, "-o", out, *SMALL) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxstyle: error: out of memory (") and err.count("\n") == 1
    assert "--split-image" in err and "jaxstyle estimate" in err and not out.exists()
    assert "sweep or batch --batch-size" in err  # a sweep's grid runs in parts too
    other = jax.errors.JaxRuntimeError("INTERNAL: something else")
    monkeypatch.setattr(module, "stylize", lambda *a, **k: (_ for _ in ()).throw(other))
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        stylize(*pair, "-o", out, *SMALL)


def test_an_interrupt_names_the_step_images_kept(pair, tmp_path, capsys, monkeypatch):
    """And the API's step_image_saver writes what --save-every does."""

    def interrupted_at_step_2(*images, callback, callback_every, **options):
        assert callback_every == 1
        for step in (1, 2):
            callback(step, {}, np.full((4, 4, 3), 0.5, np.float32))
        raise KeyboardInterrupt

    monkeypatch.setattr(
        importlib.import_module("jaxstyle.stylize"), "stylize", interrupted_at_step_2
    )
    out = tmp_path / "out.png"
    assert stylize(*pair, "-o", out, *SMALL, "--save-every", "1") == 128 + signal.SIGINT
    assert capsys.readouterr().err == (
        "jaxstyle: interrupted: no output written; kept the step images out.step00001.png .. "
        "out.step00002.png (2 files): the same command replaces them "
        "(--checkpoint-every N makes a run resumable)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.json",
        "out.step00001.png",
        "out.step00002.png",
    ]
    save = jaxstyle.step_image_saver(out)  # the API's --save-every: callback=, callback_every=
    with pytest.raises(jaxstyle.JaxstyleError, match="out.step00002.png exists; not overwriting"):
        save(2, {}, np.zeros((4, 4, 3), np.float32))
    save(3, {}, np.zeros((4, 4, 3), np.float32))
    assert jaxstyle.step_image_path(out, 3).read_bytes()[:4] == b"\x89PNG"


def test_save_every_help_names_the_files_it_writes(capsys):
    """--save-every's help gives the step images' names as step_image_path makes them."""
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"-o out.png: {jaxstyle.step_image_path('out.png', 100).name} at step 100" in text
    assert jaxstyle.step_image_path("out.jpg", 100).suffix == ".jpg"


def test_a_signal_outside_a_checkpointed_loop_is_worded_as_inside_it(capsys, monkeypatch):
    """SIGTERM/SIGINT outside stylize's run and a sweep's or batch's checkpointed loop:
    the same words as there ("terminated (SIGTERM) at step ..."), exit 143/130."""
    cli = importlib.import_module("jaxstyle.cli")
    for signum, raised in ((signal.SIGTERM, cli._Terminated), (signal.SIGINT, KeyboardInterrupt)):

        def stop(args, raised=raised):
            raise raised

        monkeypatch.setattr(cli, "cmd_presets", stop)
        assert main(["presets"]) == 128 + signum
        word = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        assert capsys.readouterr().err == f"jaxstyle: {word}\n"
        assert jaxstyle.errors.stopped_by(signum) == word


def test_a_negative_checkpoint_interval_is_one_check_for_every_command(pair, tmp_path, capsys):
    """stylize, sweep and batch, from the command line and from Python: one wording."""
    refused = "checkpoint every must be >= 0 steps, not -1"
    manifest = tmp_path / "jobs.jsonl"
    for argv in (["stylize", *pair, "-o", "x.png"], ["sweep", *pair], ["batch", manifest]):
        assert main([*map(str, argv), "-o", str(tmp_path / "x"), "--checkpoint-every", "-1"]) == 2
        assert capsys.readouterr().err == f"jaxstyle: error: {refused}\n"
    for run in (jaxstyle.stylize, jaxstyle.sweep):
        with pytest.raises(jaxstyle.JaxstyleError, match=f"^{refused}$"):
            run(*pair, checkpoint_every=-1)
    with pytest.raises(jaxstyle.JaxstyleError, match=f"^{refused}$"):
        jaxstyle.batch([], tmp_path / "out", checkpoint_every=-1)
    assert not any(tmp_path.iterdir())


def test_installed_command_prints_no_traceback(tmp_path):
    """The real entry point, in a fresh process: one line, exit status 2."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxstyle",
            "stylize",
            str(tmp_path / "missing.jpg"),
            str(tmp_path / "style.jpg"),
            "-o",
            str(tmp_path / "out.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "missing.jpg" in proc.stderr


def test_a_huge_step_count_is_checked_without_listing_its_steps(tmp_path):
    """Without --save-every no step is listed: 10**18 steps reach the input check (a
    4 GiB address space, where listing them raised MemoryError)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    missing, out = tmp_path / "missing.jpg", tmp_path / "out.png"
    command = [sys.executable, "-m", "jaxstyle", "stylize", str(missing), str(missing)]
    command += ["-o", str(out), "--steps", str(10**18)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert proc.returncode == 2 and "missing.jpg: no such file" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_a_backend_that_cannot_start_is_one_line(platform):
    """JAX_PLATFORMS copied from another machine: one line naming it, exit status 2."""
    env = {**os.environ, "JAX_PLATFORMS": platform}
    command = [sys.executable, "-m", "jaxstyle", "presets"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "cannot start JAX" in proc.stderr and f"JAX_PLATFORMS='{platform}'" in proc.stderr


@pytest.mark.parametrize(
    "variable", ["JAX_ENABLE_X64=maybe", "JAX_DEFAULT_MATMUL_PRECISION=fastest"]
)
def test_a_jax_variable_jax_refuses_is_one_line(variable):
    """jax raises at import on such a value: the command says it in one line, and the
    API raises jax's error on first use, not at ``import jaxstyle``."""
    name, value = variable.split("=")
    env = {**os.environ, name: value}
    command = [sys.executable, "-m", "jaxstyle", "presets"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "cannot start JAX" in proc.stderr and value in proc.stderr
    use = "import jaxstyle\ntry:\n    jaxstyle.stylize\nexcept ValueError as e:\n    print(e)"
    proc = subprocess.run([sys.executable, "-c", use], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and value in proc.stdout, proc.stderr[-2000:]


def test_a_cache_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "cache").write_text("not a directory")
    monkeypatch.setenv("JAXSTYLE_CACHE", str(tmp_path / "cache"))
    assert main(["presets"]) == 2
    err = capsys.readouterr().err
    assert "is not a writable directory: set JAXSTYLE_CACHE" in err and err.count("\n") == 1


def test_presets_lists_each_with_its_source(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    heads = [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert heads == [name + " (default)" * (name == "jaxstyle") for name in jaxstyle.PRESETS]
    assert "style (MRF patches) relu3_1,relu4_1" in out and "Li & Wand" in out
    assert main(["presets", "gatys"]) == 0
    one = capsys.readouterr().out
    assert one.startswith("gatys: content relu4_2 x1; style (Gram)") and "cnnmrf" not in one
    assert main(["presets", "nope"]) == 2 and "unknown preset" in capsys.readouterr().err


def test_presets_print_where_stdout_cannot_encode_their_sources(monkeypatch):
    """``jaxstyle presets > file`` on Windows writes cp1252, which has no Σ: a
    UnicodeEncodeError traceback, where the sources' symbols can be "?"."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["presets", "gatys"]) == 0
    out.seek(0)
    assert "L_content =\n  1/2 ?(F-P)" in out.read()


def test_a_value_starting_with_a_dash_gets_the_equals_form_hint(capsys):
    assert main(["estimate", "--shape", "-3x5"]) == 2
    err = capsys.readouterr().err
    assert "--shape=VALUE" in err and err.count("\n") == 1
    assert main(["estimate", "--shape=-3x5"]) == 2  # then the value's own error
    assert "at least 16 pixels, not -3x5" in capsys.readouterr().err
    assert main(["stylize", "-o", "x.png", "--size"]) == 2  # no value: the hint still reads true
    assert capsys.readouterr().err == (
        "jaxstyle: error: argument --size: expected one argument "
        "(one that starts with '-' is written --size=VALUE)\n"
    )


def test_coarse_to_fine_auto_on_the_command_line(pair, tmp_path, capsys):
    """At 64 px 'auto' has no pass above 256 px: one pass, recorded as no sizes."""
    out = tmp_path / "out.png"
    assert stylize(*pair, "-o", out, *SMALL, "--coarse-to-fine", "auto") == 0
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["coarse_to_fine"] == []
    assert "(64x48, 3 steps" in capsys.readouterr().out
    assert stylize(*pair, "-o", out, *SMALL, "--coarse-to-fine", "finer") == 2
    assert "expected sizes such as 256,512 or 'auto', got 'finer'" in capsys.readouterr().err


def test_version_names_jaxstyle_and_jax(capsys):
    """``--version``: the package's version (the one pyproject.toml declares) and jax's."""
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert f'\nversion = "{jaxstyle.__version__}"\n' in pyproject
    import jax

    assert out.startswith(f"jaxstyle {jaxstyle.__version__} (jax {jax.__version__}, ")
    assert out.count("\n") == 1


def test_ctrl_c_while_jax_imports_is_one_line(tmp_path):
    """SIGINT while ``python -m jaxstyle`` imports jax (it takes about a second): one
    line and status 130, where it was a traceback (or an ImportError from a C
    extension, or a KeyboardInterrupt swallowed and the command run on)."""
    for delay in (0.5, 1.0):  # after Python starts, before the command ends
        started = subprocess.Popen(
            [sys.executable, "-m", "jaxstyle", "presets"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip
        time.sleep(delay)
        started.send_signal(signal.SIGINT)
        out, err = started.communicate(timeout=60)
        assert (started.returncode, err, out) == (130, "jaxstyle: interrupted\n", ""), delay


def test_ctrl_c_is_noted_during_the_imports_only_in_the_command(monkeypatch, capsys):
    """``interrupts_noted`` turns a SIGINT inside it into the command's one line and
    status 130 once the block ends; in a program importing jaxstyle it changes nothing."""
    from jaxstyle.command_start import interrupts_noted

    monkeypatch.setattr(sys, "argv", ["/usr/bin/jaxstyle", "presets"])
    with pytest.raises(SystemExit) as exit_, interrupts_noted():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs: noted, not raised
        noted_only = True
    assert noted_only and exit_.value.code == 130
    assert capsys.readouterr().err == "jaxstyle: interrupted\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.setattr(sys, "argv", ["my_program.py"])
    with pytest.raises(KeyboardInterrupt), interrupts_noted():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


@pytest.mark.parametrize(
    ("orig_argv", "argv0", "command"),
    [
        (["python", "-m", "jaxstyle", "presets"], "-m", True),
        (["python", "-mjaxstyle", "presets"], "-m", True),
        (["python", "-Im", "jaxstyle"], "-m", True),
        (["python", "-X", "importtime", "-Imjaxstyle"], "-m", True),
        (["C:\\Scripts\\jaxstyle.exe"], "jaxstyle.exe", True),
        (["python", "C:\\Scripts\\jaxstyle-script.py"], "jaxstyle-script.py", True),
        (["python", "-m", "pytest", "jaxstyle"], "-m", False),
        (["python", "-mpytest", "jaxstyle"], "-m", False),
        (["python", "-Ximporttime", "my_program.py", "-m", "jaxstyle"], "my_program.py", False),
        (["python", "-W", "error", "-bb", "-mjaxstyle"], "-m", True),
        (["python", "--check-hash-based-pycs", "always", "-m", "jaxstyle"], "-m", True),
        (["python", "my_program.py", "jaxstyle"], "my_program.py", False),
        (["python", "-c", "import jaxstyle"], "-c", False),
    ],
)
def test_the_command_is_told_from_a_program_importing_jaxstyle(
    monkeypatch, orig_argv, argv0, command
):
    from jaxstyle.command_start import is_command

    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    monkeypatch.setattr(sys, "argv", [argv0])
    assert is_command() == command


@pytest.mark.parametrize("argv", [[], None])
def test_importing_with_no_argv_is_a_library_import(monkeypatch, argv):
    """A program that empties or removes sys.argv (an embedding) still imports jaxstyle."""
    from jaxstyle.command_start import is_command

    if argv is None:
        monkeypatch.delattr(sys, "argv")
    else:
        monkeypatch.setattr(sys, "argv", argv)
    assert not is_command()


@pytest.mark.parametrize(
    ("argv", "names"),
    [([], "'jaxstyle' needs a command: stylize, sweep, batch"), (["weights"], "fetch, convert")],
)
def test_no_command_names_the_commands(argv, names, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert names in err and err.count("\n") == 1


def subcommands(parser) -> dict:
    """{"stylize": its parser, ..., "weights fetch": ...}: every command's parser."""
    import argparse

    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                inner = subcommands(sub)
                found.update({f"{name} {k}": v for k, v in inner.items()} or {name: sub})
    return found


# the options of a run done otherwise in Python (README: "Python API")
CLI_ONLY = {
    "stylize": {"images", "output", "texture", "quiet", "save_every", "live", "live_every"}
    | {"from_result"},  # recorded_run
    "sweep": {"images", "output", "texture", "quiet", "live", "live_every", "distributed"}
    | {"from_result"},
    "batch": {"manifest", "output", "quiet", "live", "live_every", "distributed"},
    "estimate": {"json"},
}


def test_every_option_of_a_run_reaches_the_python_api():
    """Each option of stylize, sweep, batch and estimate is a setting or a keyword of
    the function it calls (or in CLI_ONLY, done otherwise in Python), and every setting
    is an option: the command line and the API stay at parity."""
    import dataclasses
    import inspect

    from jaxstyle.cli import COARSE_TO_FINE, SETTINGS
    from jaxstyle.cli_parser import build_parser
    from jaxstyle.settings import CHOSEN_BY, Settings

    settings = {f.name for f in dataclasses.fields(Settings)} - CHOSEN_BY
    assert {*SETTINGS, *COARSE_TO_FINE, "preset", "init"} == settings
    keywords = {
        "stylize": [jaxstyle.stylize],
        "sweep": [jaxstyle.sweep, jaxstyle.plan_sweep],
        "batch": [jaxstyle.batch],
        "estimate": [jaxstyle.estimate],
    }
    stylize_devices = {"stylize": {"split_image"}}  # stylize(devices=...): README
    parsers = subcommands(build_parser())
    for command, functions in keywords.items():
        api = {k for f in functions for k in inspect.signature(f).parameters} | settings
        dests = {a.dest for a in parsers[command]._actions if a.dest != "help"}
        missing = dests - api - CLI_ONLY[command] - stylize_devices.get(command, set())
        assert not missing, f"jaxstyle {command}: options without a Python form: {missing}"
    assert {"stylize", "sweep", "batch", "estimate", "plot", "presets"} < set(parsers)
    assert {"weights fetch", "weights convert"} < set(parsers)


def test_preset_help_names_every_preset(capsys):
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")
    assert [name for name in jaxstyle.PRESETS if name not in text] == []
    assert "jaxstyle (default)" in text and "cnnmrf (Li & Wand's MRF style loss)" in text
