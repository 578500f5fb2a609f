"""Running a finished run again from its record: ``stylize --from RESULT`` and
``jaxstyle.recorded_run``.

Tolerance: a run again from a sweep cell's record equals the cell to float32
rounding (tests/test_sweep.py: 1e-5), so the 8-bit PNGs agree to 1 code.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.cli import main
from jaxstyle.sweep import AXES

SWEEP = ["--size", "64", "--steps", "3", "-q", "--optimizer", "adam"]
SWEEP += ["--style-weight", "1e2,1e3", "--coarse-to-fine", "32"]  # test_sweep's shapes


@pytest.fixture(scope="module")
def swept(tmp_path_factory, shared_image):
    """A finished 2-cell coarse-to-fine sweep: (directory, content, style, cell file)."""
    pair = [str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))]
    out = tmp_path_factory.mktemp("recorded") / "grid"
    assert main(["sweep", *pair, "-o", str(out), *SWEEP]) == 0
    cell = json.loads((out / "sweep.json").read_text())["cells"][1]
    assert cell["style_weight"] == 1000.0
    return out, *pair, out / cell["file"]


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.int16)


def test_stylize_from_a_sweep_cell_repeats_it_and_takes_new_settings(swept, tmp_path, capsys):
    out, content, style, cell = swept
    again = tmp_path / "again.png"
    assert main(["stylize", "--from", str(cell), "-o", str(again), "-q"]) == 0
    assert np.abs(pixels(again) - pixels(cell)).max() <= 1
    record = json.loads(again.with_suffix(".json").read_text())
    assert record["from"] == str(cell)
    assert record["inputs"] == {
        "content": content,
        "styles": [style],
        "init": "content",
        "mask": None,
    }
    settings = record["settings"]
    assert (settings["style_weight"], settings["coarse_to_fine"], settings["steps"]) == (
        1e3,
        [32],
        3,
    )

    small = tmp_path / "small.png"  # a new size: the passes chosen for the old one dropped
    assert main(["stylize", "--from", str(cell), "-o", str(small), "--size", "32", "-q"]) == 0
    settings = json.loads(small.with_suffix(".json").read_text())["settings"]
    assert (settings["size"], settings["coarse_to_fine"], settings["style_weight"]) == (32, [], 1e3)
    assert Image.open(small).size == (32, 24)

    # and from a stylize result's own record, in Python: the same image
    run = jaxstyle.recorded_run(again)
    assert run["content"] == content and run["style"] == [style] and run["style_weight"] == 1e3
    result = jaxstyle.stylize(**run)
    assert (
        np.abs(jaxstyle.images.to_uint8(result.image).astype(np.int16) - pixels(again)).max() <= 1
    )
    assert "conv_algorithm" not in run  # chosen anew for the size and device
    assert "coarse_to_fine" not in jaxstyle.recorded_run(cell, size=32)
    assert jaxstyle.recorded_run(cell, coarse_to_fine=[16])["coarse_to_fine"] == [16]


def test_from_with_new_images_takes_the_settings_only(swept, tmp_path, shared_image):
    out, content, style, cell = swept
    other = str(shared_image("golden_gate.jpg"))
    run = jaxstyle.recorded_run(cell, content=other)
    assert (run["content"], run["style"], run["style_weight"]) == (other, [style], 1e3)
    texture = jaxstyle.recorded_run(cell, content=None)
    assert texture["content"] is None and "content_weight" not in texture
    new = tmp_path / "bridge.png"
    args = ["stylize", other, style, "--from", str(cell), "-o", str(new), "--size", "32", "-q"]
    assert main(args) == 0
    record = json.loads(new.with_suffix(".json").read_text())
    assert record["inputs"]["content"] == other and record["settings"]["style_weight"] == 1e3


@pytest.mark.parametrize(
    ("source", "extra", "needle"),
    [
        ("../nothing.png", [], "no record of .*nothing.png: neither nothing.json nor a sweep"),
        ("sweep.json", [], "records a whole sweep: name one of its cells' images instead"),
        ("other.png", [], "sweep.json has no cell other.png"),
        ("CELL", ["--preset", "gatys"], "is a run of preset jaxstyle: its settings are that loss"),
        ("CELL", ["-o", "CELL"], "exists and was not written by jaxstyle; not overwriting it"),
    ],
)
def test_from_errors_are_one_line_and_overwrite_nothing(
    swept, tmp_path, capsys, source, extra, needle
):
    copy = tmp_path / "grid"
    shutil.copytree(swept[0], copy)
    Image.new("RGB", (4, 4)).save(copy / "other.png")  # an image no record names
    cell = str(copy / swept[3].name)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    args = ["-o", str(tmp_path / "x.png"), *extra] if "-o" not in extra else extra
    given = [cell if a == "CELL" else a for a in args]
    assert (
        main(["stylize", "--from", cell if source == "CELL" else str(copy / source), *given]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(needle, err), err
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_records_that_cannot_be_run_again_are_refused(swept, tmp_path, capsys):
    out, content, style, cell = swept
    sweep = json.loads((out / "sweep.json").read_text())
    axes = {k: sweep["cells"][0][k] for k in AXES}
    run = {"output": "r.png", "inputs": sweep["inputs"], "settings": sweep["settings"] | axes}
    records = {
        "unfinished": {"output": "u.png", "status": "unfinished: interrupted"},
        "weights": {**run, "weights": "vgg19-torchvision"},
        "moved": {**run, "inputs": {**run["inputs"], "content": str(tmp_path / "gone.jpg")}},
        "partial": {**run, "settings": {"size": 64}},
        "list": [run],
    }
    needles = {
        "unfinished": "records an unfinished run: unfinished: interrupted",
        "weights": "a run with the weight set vgg19-torchvision: give it",
        "moved": "cannot read .*gone.jpg: no such file",
        "partial": "lacks settings ",
        "list": "not a JSON record",
        "missing": "cannot read .*missing.json: no such file",
    }
    for name, record in records.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    for name, needle in needles.items():
        path = tmp_path / f"{name}.json"
        assert main(["stylize", "--from", str(path), "-o", str(tmp_path / "x.png"), "-q"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(needle, err), (name, err)
    assert not (tmp_path / "x.png").exists()
    assert main(["stylize", "--from", str(tmp_path / "weights.json"), "--weights", "nowhere",
                 "-o", str(tmp_path / "x.png"), "-q"]) == 2  # fmt: skip
    assert "nowhere" in capsys.readouterr().err  # the weights given are the ones loaded


def test_sweep_from_a_cell_sweeps_around_it(swept, tmp_path):
    """The cell's settings with the original axis given again: the same sweep."""
    out, content, style, cell = swept
    again = tmp_path / "again"
    assert main(["sweep", "--from", str(cell), "-o", str(again), "--style-weight", "1e2,1e3"]) == 0
    record = json.loads((again / "sweep.json").read_text())
    assert record["from"] == str(cell) and record["inputs"]["content"] == content
    assert record["settings"]["coarse_to_fine"] == [32] and record["settings"]["steps"] == 3
    for c in record["cells"]:
        assert np.abs(pixels(again / c["file"]) - pixels(out / c["file"])).max() <= 1


def test_from_a_texture_or_the_examples_fills_in_the_command_line(swept, tmp_path, monkeypatch):
    from jaxstyle.cli import _take_record
    from jaxstyle.cli_parser import build_parser

    out, content, style, cell = swept
    sweep = json.loads((out / "sweep.json").read_text())
    run = {"inputs": sweep["inputs"], "settings": sweep["settings"] | {k: 0 for k in AXES[:3]}}
    run["settings"] |= {k: sweep["cells"][0][k] for k in AXES[3:]}
    examples = {**run["inputs"], "content": "example photo", "styles": ["example painting"]}
    texture = {**run["inputs"], "content": None, "init": "noise", "mask": "m.png"}
    monkeypatch.chdir(tmp_path)  # where the texture's mask is
    Image.new("L", (4, 4), 255).save("m.png")
    for name, inputs in {"examples": examples, "texture": texture}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({**run, "inputs": inputs}))

    def parsed(*argv):
        args = build_parser().parse_args(["stylize", *argv, "-o", str(tmp_path / "o.png")])
        _take_record(args)
        return args

    args = parsed("--from", str(tmp_path / "examples.json"))
    assert (args.images, args.texture, args.init, args.content_weight) == ([], False, "content", 0)
    args = parsed("--from", str(tmp_path / "texture.json"))
    assert (args.images, args.texture, args.init) == ([Path(style)], True, "noise")
    assert args.content_weight is None and args.mask == [Path("m.png")]
    args = parsed(content, style, "--from", str(tmp_path / "texture.json"))  # new images
    assert (args.texture, args.init, args.mask) == (False, "noise", None)
    run = jaxstyle.recorded_run(tmp_path / "examples.json")
    assert run["content"] == jaxstyle.example_content()  # matplotlib's sample photo
    np.testing.assert_array_equal(run["style"][0], jaxstyle.example_style())


def test_what_is_not_given_is_the_records(swept, tmp_path):
    """stylize's --seed left out is the record's seed (not 0); recorded_run's init
    given is the init run."""
    from jaxstyle.cli import _take_record
    from jaxstyle.cli_parser import build_parser

    out, content, style, cell = swept
    sweep = json.loads((out / "sweep.json").read_text())
    run = {"inputs": {**sweep["inputs"], "init": "noise"}, "settings": sweep["settings"]}
    run["settings"] |= {k: sweep["cells"][0][k] for k in AXES} | {"seed": 3, "init": "noise"}
    (tmp_path / "r.json").write_text(json.dumps(run))
    args = build_parser().parse_args(["stylize", "--from", str(tmp_path / "r.json"), "-o", "o.png"])
    _take_record(args)
    assert (args.seed, args.init) == (3, "noise")
    assert jaxstyle.recorded_run(tmp_path / "r.json", init="content")["init"] == "content"
    assert jaxstyle.recorded_run(tmp_path / "r.json", init=style)["init"] == style


def test_lr_is_checked_against_the_recorded_runs_optimizer(swept, tmp_path, capsys):
    """--lr (Adam's) was refused with --from an Adam run: checked against the default
    preset's L-BFGS, before the record was read."""
    out, content, style, cell = swept
    mine = tmp_path / "mine.png"  # the run stops at the output check, after the --lr check
    mine.write_bytes(b"x")
    assert main(["stylize", "--from", str(cell), "-o", str(mine), "--lr", "0.05", "-q"]) == 2
    assert f"{mine} exists and was not written by jaxstyle" in capsys.readouterr().err
    sweep = json.loads((out / "sweep.json").read_text())
    settings = sweep["settings"] | {k: sweep["cells"][0][k] for k in AXES} | {"optimizer": "lbfgs"}
    (tmp_path / "r.json").write_text(json.dumps({"inputs": sweep["inputs"], "settings": settings}))
    assert main(["stylize", "--from", str(tmp_path / "r.json"), "-o", str(mine), "--lr", "1"]) == 2
    assert "--lr is Adam's step size; L-BFGS takes none" in capsys.readouterr().err
    assert main(["stylize", "--from", str(tmp_path / "r.json"), "-o", str(mine)]) == 2  # its lr
    assert f"{mine} exists and was not written by jaxstyle" in capsys.readouterr().err
    assert mine.read_bytes() == b"x"


def test_a_record_edited_or_run_elsewhere_is_a_one_line_error(swept, tmp_path, capsys, monkeypatch):
    out, content, style, cell = swept
    sweep = json.loads((out / "sweep.json").read_text())
    run = {"inputs": sweep["inputs"], "settings": sweep["settings"]}
    run["settings"] |= {k: sweep["cells"][0][k] for k in AXES}
    edits = {"styles": 3, "content": 5, "mask": 7, "init": ["a.png"]}
    edits = {k: {**run["inputs"], k: v} for k, v in edits.items()}
    edits["one style"] = {**run["inputs"], "styles": style}  # a str, not a list
    edits["elsewhere"] = {**run["inputs"], "content": "photo.jpg"}  # relative to its run's cwd
    needles = {name: f"the recorded {name} .* is not " for name in edits}
    needles |= {"one style": "the recorded styles '.*' is not a list of paths"}
    needles |= {"elsewhere": "cannot read photo.jpg: no such file here; .*r.json's paths are "
                "relative to the directory its run started in: run from there"}  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for name, inputs in edits.items():
        (tmp_path / "r.json").write_text(json.dumps({**run, "inputs": inputs}))
        assert main(["stylize", "--from", "r.json", "-o", "x.png", "-q"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(needles[name], err), (name, err)
        with pytest.raises(jaxstyle.JaxstyleError, match=needles[name]):
            jaxstyle.recorded_run("r.json")
    # a missing input given anew is not the record's
    assert jaxstyle.recorded_run("r.json", content=content)["content"] == content
    assert not (tmp_path / "x.png").exists()


def test_a_texture_of_a_pictures_styles_starts_from_noise_without_its_mask(swept, tmp_path):
    """--texture (recorded_run content=None) from a run with a content image: its init
    content and mask belong to that picture."""
    from jaxstyle.cli import _take_record
    from jaxstyle.cli_parser import build_parser

    out, content, style, cell = swept
    sweep = json.loads((out / "sweep.json").read_text())
    run = {"inputs": {**sweep["inputs"], "mask": style}, "settings": sweep["settings"]}
    run["settings"] |= {k: sweep["cells"][0][k] for k in AXES}
    (tmp_path / "r.json").write_text(json.dumps(run))
    argv = ["stylize", "--from", str(tmp_path / "r.json"), "--texture", "-o", "o.png"]
    args = build_parser().parse_args(argv)
    _take_record(args)
    assert (args.images, args.texture, args.init, args.mask) == ([Path(style)], True, None, None)
    assert args.content_weight is None
    texture = jaxstyle.recorded_run(tmp_path / "r.json", content=None)
    assert (texture["init"], texture["mask"], texture["style"]) == (None, None, [style])


def test_a_texture_of_a_pictures_styles_leaves_out_its_colours_and_style_scale(swept, tmp_path):
    """--texture (recorded_run content=None) from a picture kept in its content's colours
    at a style scale: a texture refuses both, and --preserve-colors has no "none" to give,
    so the record's are left out (one given stays, refused by the run)."""
    from jaxstyle.cli import _take_record
    from jaxstyle.cli_parser import build_parser

    out = swept[0]
    sweep = json.loads((out / "sweep.json").read_text())
    run = {"inputs": sweep["inputs"], "settings": sweep["settings"]}
    run["settings"] |= {k: sweep["cells"][0][k] for k in AXES}
    run["settings"] |= {"preserve_colors": "luminance", "style_scale": 0.5}
    (tmp_path / "r.json").write_text(json.dumps(run))
    argv = ["stylize", "--from", str(tmp_path / "r.json"), "--texture", "-o", "o.png"]
    args = build_parser().parse_args(argv)
    _take_record(args)
    assert (args.preserve_colors, args.style_scale, args.content_weight) == (None, None, None)
    texture = jaxstyle.recorded_run(tmp_path / "r.json", content=None)
    assert not {"preserve_colors", "style_scale", "content_weight"} & set(texture)
    given = jaxstyle.recorded_run(tmp_path / "r.json", content=None, style_scale=2.0)
    assert given["style_scale"] == 2.0  # given: kept, and refused by the run


def test_a_run_split_over_devices_is_noted_where_not_split_so_again(swept, tmp_path, capsys):
    """A run that split its image's rows over 4 devices rounded its height to a multiple
    of 4; run again on one device, its picture came out a row or two otherwise without a
    word: a note on stderr names --split-image 4 (none where it is given, or not split)."""
    from jaxstyle.recorded import read_run_record

    out = swept[0]
    sweep = json.loads((out / "sweep.json").read_text())
    run = {"inputs": sweep["inputs"], "settings": sweep["settings"]}
    run["settings"] |= {k: sweep["cells"][0][k] for k in AXES}
    (tmp_path / "plain.json").write_text(json.dumps(run))
    (tmp_path / "split.json").write_text(json.dumps({**run, "split_over_devices": ["d"] * 4}))
    (tmp_path / "cells.json").write_text(json.dumps({**run, "split_image": 2}))
    capsys.readouterr()
    jaxstyle.recorded_run(tmp_path / "plain.json")
    assert capsys.readouterr().err == ""
    jaxstyle.recorded_run(tmp_path / "split.json")
    err = capsys.readouterr().err
    assert "split its image's rows over 4 devices" in err and "--split-image 4" in err
    jaxstyle.recorded_run(tmp_path / "split.json", devices=jax.devices() * 4)
    assert capsys.readouterr().err == ""
    assert read_run_record(tmp_path / "cells.json").split == 2  # a sweep's or batch's


def test_relative_paths_are_found_from_any_directory(shared_image, tmp_path, monkeypatch):
    """A record holds the directory its run started in: its relative paths are taken
    from there, wherever the run again starts."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    for name in ("tubingen.jpg", "starry_night.jpg"):
        shutil.copy(shared_image(name), first / name)
    monkeypatch.chdir(first)
    args = ["--size", "32", "--steps", "2", "--optimizer", "adam", "-q"]
    assert main(["stylize", "tubingen.jpg", "starry_night.jpg", "-o", "out.png", *args]) == 0
    record = json.loads((first / "out.json").read_text())
    assert record["inputs"]["content"] == "tubingen.jpg" and record["directory"] == str(first)
    monkeypatch.chdir(second)
    assert main(["stylize", "--from", "../first/out.png", "-o", "again.png", "-q"]) == 0
    inputs = json.loads((second / "again.json").read_text())["inputs"]
    assert inputs["content"] == str(first / "tubingen.jpg")
    assert inputs["styles"] == [str(first / "starry_night.jpg")]
    assert np.abs(pixels(second / "again.png") - pixels(first / "out.png")).max() <= 1


RUN = ["--size", "32", "--steps", "2", "--optimizer", "adam", "-q"]  # test_relative_paths's


def test_coarse_to_fine_auto_is_chosen_anew_for_a_new_size(shared_image, tmp_path):
    """A record of ``--coarse-to-fine auto`` holds that auto chose its passes: a new size
    chooses them anew (kept the same at the same size); explicit sizes are dropped."""
    from jaxstyle.cli import COARSE_TO_FINE, SETTINGS, _take_record
    from jaxstyle.cli_parser import build_parser
    from jaxstyle.settings import resolve_settings

    pair = [str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))]
    first = tmp_path / "first.png"
    assert main(["stylize", *pair, "-o", str(first), *RUN, "--coarse-to-fine", "auto"]) == 0
    settings = json.loads(first.with_suffix(".json").read_text())["settings"]
    assert (settings["coarse_to_fine"], settings["coarse_to_fine_auto"]) == ([], True)
    again = tmp_path / "again.png"  # the same size: auto again, recorded again
    assert main(["stylize", "--from", str(first), "-o", str(again), "-q"]) == 0
    assert json.loads(again.with_suffix(".json").read_text())["settings"]["coarse_to_fine_auto"]
    assert np.abs(pixels(again) - pixels(first)).max() <= 1

    record = json.loads(first.with_suffix(".json").read_text())
    record["settings"] |= {"size": 512, "coarse_to_fine": [256], "coarse_to_fine_steps": [5]}
    before = {k: v for k, v in record["settings"].items() if k != "coarse_to_fine_auto"}
    old = {**record, "settings": before}  # a record from before the marker
    for name, r in {"auto": record, "old": old}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(r))

    def passes(name, *argv):
        argv = ["stylize", "--from", str(tmp_path / f"{name}.json"), *argv, "-o", "o.png"]
        args = build_parser().parse_args(argv)
        _take_record(args)
        overrides = {k: getattr(args, k) for k in (*SETTINGS, *COARSE_TO_FINE)}
        return resolve_settings(**overrides).passes

    assert passes("auto") == ((256, 5), (512, 2))
    assert passes("auto", "--size", "1024") == ((256, 5), (512, 5), (1024, 2))
    assert passes("auto", "--size", "1024", "--coarse-to-fine-steps", "4") == (
        (256, 4),
        (512, 4),
        (1024, 2),
    )
    assert passes("auto", "--size", "1024", "--coarse-to-fine", "128") == ((128, 2), (1024, 2))
    assert passes("old", "--size", "1024") == ((1024, 2),)  # as before: dropped
    assert passes("old") == ((256, 5), (512, 2))
    run = jaxstyle.recorded_run(tmp_path / "auto.json", size=1024)
    assert (run["coarse_to_fine"], run["coarse_to_fine_steps"]) == ("auto", [5])
    assert "coarse_to_fine_auto" not in run  # how the sizes were chosen, not a setting
    assert "coarse_to_fine" not in jaxstyle.recorded_run(tmp_path / "old.json", size=1024)


def test_a_record_of_the_contents_own_size_keeps_it(shared_image, tmp_path):
    """A Python run's record of ``size=None`` (the content's own size) runs again at that
    size, not the command's default; ``--size`` given replaces it."""
    content = tmp_path / "small.png"
    Image.open(shared_image("tubingen.jpg")).resize((32, 24)).save(content)
    style = str(shared_image("starry_night.jpg"))
    first = tmp_path / "first.png"
    result = jaxstyle.stylize(content, style, steps=2, optimizer="adam")
    assert result.settings.size is None
    inputs = {"content": str(content), "styles": [style], "init": "content", "mask": None}
    result.save(first, record={"inputs": inputs})
    again = tmp_path / "again.png"
    assert main(["stylize", "--from", str(first), "-o", str(again), "-q"]) == 0
    assert json.loads(again.with_suffix(".json").read_text())["settings"]["size"] is None
    assert Image.open(again).size == (32, 24)
    assert np.abs(pixels(again) - pixels(first)).max() <= 1


def test_a_frame_of_a_clip_is_run_again_without_its_pull_and_says_so(
    shared_image, tmp_path, capsys
):
    """A frame's record (animate, batch(temporal_weight=)): its pull towards its
    neighbours needs the clip's other frames, which a run on its own has not; it says so."""
    import dataclasses

    from jaxstyle.cli import _take_record
    from jaxstyle.cli_parser import build_parser
    from jaxstyle.settings import resolve_settings

    pair = [str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))]
    inputs = {"content": pair[0], "styles": pair[1:], "mask": None}
    settings = dataclasses.asdict(resolve_settings(size=32, steps=2))
    frame = {"inputs": inputs, "settings": settings, "fingerprint": {"temporal_weight": 3e4}}
    frame_json = tmp_path / "frame.json"
    frame_json.write_text(json.dumps(frame))
    (tmp_path / "still.json").write_text(json.dumps({**frame, "fingerprint": {}}))
    assert jaxstyle.recorded_run(tmp_path / "still.json")["steps"] == 2
    assert capsys.readouterr().err == ""
    note = (
        f"jaxstyle: note: {frame_json} is a frame of a clip, held to its "
        "neighbours (temporal weight 30000); run on its own, it is painted without that pull\n"
    )
    assert jaxstyle.recorded_run(frame_json)["steps"] == 2
    assert capsys.readouterr().err == note
    _take_record(build_parser().parse_args(["stylize", "--from", str(frame_json), "-o", "o.png"]))
    assert capsys.readouterr().err == note


def test_a_python_runs_saved_record_runs_again(shared_image, tmp_path):
    """``result.save`` records the run's image paths, as ``jaxstyle stylize -o`` does:
    ``recorded_run`` of it (or ``--from``) refused it as "not a jaxstyle run record (no
    inputs and settings)" before, unless ``record={"inputs": ...}`` was written by hand."""
    from jaxstyle.stylize import recorded_inputs

    content = tmp_path / "small.png"
    Image.open(shared_image("tubingen.jpg")).resize((32, 24)).save(content)
    style = str(shared_image("starry_night.jpg"))
    result = jaxstyle.stylize(content, style, steps=2, optimizer="adam")
    want = {"content": str(content), "styles": [style], "init": "content", "mask": None}
    assert result.inputs == want
    first = tmp_path / "first.png"
    assert json.loads(result.save(first).read_text())["inputs"] == want
    again = jaxstyle.stylize(**jaxstyle.recorded_run(first))
    assert again.inputs == want and again.settings == result.settings
    np.testing.assert_allclose(again.image, result.image, atol=1e-5)
    assert result.weights == jaxstyle.load_vgg19().name  # recorded: a rerun asks for its set
    other = dataclasses.replace(result, weights="my-vgg19").save(tmp_path / "other.png")
    with pytest.raises(jaxstyle.JaxstyleError, match="is a run with the weight set my-vgg19"):
        jaxstyle.recorded_run(other)
    # arrays and Pillow images are no paths: no inputs recorded, the record refused as before
    image = np.zeros((24, 32, 3), np.float32)
    assert recorded_inputs(image, style, None, "content") is None
    assert recorded_inputs(content, [style, Image.new("RGB", (4, 4))], None, "noise") is None
    assert recorded_inputs(content, style, [content, image], "content") is None
    assert recorded_inputs(content, style, None, image) is None
    texture = recorded_inputs(None, [style, style], [content, content], content)
    assert texture == {
        "content": None,
        "styles": [style, style],
        "init": str(content),
        "mask": [str(content), str(content)],
    }
