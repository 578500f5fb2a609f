"""``jaxstyle plot``: loss curves read back from the records of real runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.cli import main

SMALL = ["--size", "64", "--steps", "3", "--optimizer", "adam", "-q"]


@pytest.fixture(scope="module")
def records(shared_image, tmp_path_factory):
    """A stylize record and a 2-cell sweep's sweep.json, from the CLI."""
    pair = [str(shared_image(n)) for n in ("tubingen.jpg", "starry_night.jpg")]
    work = tmp_path_factory.mktemp("runs")
    assert main(["stylize", *pair, "-o", str(work / "out.png"), *SMALL]) == 0
    sweep = ["sweep", *pair, "-o", str(work / "grid"), "--style-weight", "1e3,1e4", *SMALL]
    assert main(sweep) == 0
    return work / "out.json", work / "grid" / "sweep.json"


def test_histories_are_read_back_from_stylize_and_sweep_records(records):
    single, sweep = records
    got = jaxstyle.read_histories(single)
    assert list(got) == ["out.png"]
    recorded = json.loads(single.read_text())["history"]
    for term in ("total", "content", "style", "tv"):
        np.testing.assert_array_equal(got["out.png"][term], recorded[term])
    cells = jaxstyle.read_histories(sweep)
    files = [c["file"] for c in json.loads(sweep.read_text())["cells"]]
    assert list(cells) == [f.removesuffix(".png") for f in files] and len(files) == 2
    assert all(len(h["style"]) == 3 for h in cells.values())


def test_cli_plot_draws_every_curve_and_replaces_nothing(records, tmp_path, capsys):
    single, sweep = records
    out = tmp_path / "losses.png"
    assert main(["plot", str(single), str(sweep), str(single), "-o", str(out)]) == 0
    assert "4 curve(s)" in capsys.readouterr().out  # the repeated record's curve is renamed
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (340, 1600, 3) and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50

    before = out.read_bytes()
    assert main(["plot", str(single), "-o", str(out)]) == 2
    assert "exists; not overwriting it" in capsys.readouterr().err
    assert out.read_bytes() == before
    not_a_record = tmp_path / "notes.json"
    not_a_record.write_text('{"hello": 1}')
    assert main(["plot", str(not_a_record), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is not a jaxstyle record with a loss history (OUT.json or sweep.json)")
    assert len(err.splitlines()) == 1 and not (tmp_path / "x.png").exists()


def test_unreadable_records_are_named_plainly(tmp_path):
    (tmp_path / "adir").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "out.png")  # a run's image, not its record
    Image.new("RGB", (4, 4)).save(tmp_path / "clip.gif")  # an animation: no clip.json
    (tmp_path / "clip.frames").mkdir()
    for name, why in (
        ("nope.json", "no such file"),
        ("adir", "it is a directory, not a record"),
        ("out.png", r"it is an image; give the \.json record written beside it"),
        ("clip.gif", r"it is an animation; give its frames' records, .*clip\.frames/\*\.json"),
    ):
        match = f"^cannot read the record .*{name}: {why}$"
        with pytest.raises(jaxstyle.JaxstyleError, match=match):
            jaxstyle.read_histories(tmp_path / name)


def test_a_sweeps_image_names_the_sweeps_record(records):
    """A sweep's cell has no .json beside it: the hint to give "the .json record written
    beside it" sent the user looking for a file that does not exist."""
    sweep = records[1]
    cell = sweep.parent / json.loads(sweep.read_text())["cells"][1]["file"]
    why = f"it is a sweep's image; give the sweep's record {sweep} (a curve per cell)"
    match = re.escape(f"cannot read the record {cell}: {why}")
    with pytest.raises(jaxstyle.JaxstyleError, match=f"^{match}$"):
        jaxstyle.read_histories(cell)


def test_plot_into_a_directory_says_so(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "out.json"), "-o", str(tmp_path)]) == 2
    assert f"output {tmp_path} is a directory" in capsys.readouterr().err


def test_plot_losses_keeps_an_existing_file_unless_overwrite(tmp_path):
    curves = {"run": {term: [3.0, 2.0, 1.0] for term in jaxstyle.plot.TERMS}}
    out = tmp_path / "losses.png"
    out.write_bytes(b"the user's file")
    with pytest.raises(jaxstyle.JaxstyleError, match="exists; not overwriting it"):
        jaxstyle.plot_losses(curves, out)
    assert out.read_bytes() == b"the user's file"
    assert jaxstyle.plot_losses(curves, out, overwrite=True) == out
    assert np.asarray(Image.open(out)).shape == (340, 1600, 3)


def test_a_frames_temporal_loss_gets_a_panel_of_its_own(tmp_path):
    """A frame of a clip (animate, batch(temporal_weight=)) records its pull too."""
    history = {term: [3.0, 2.0, 1.0] for term in (*jaxstyle.plot.TERMS, "temporal")}
    record = tmp_path / "frame_00002.json"
    record.write_text(json.dumps({"output": "frame_00002.png", "history": history}))
    frame = jaxstyle.read_histories(record)["frame_00002.png"]
    np.testing.assert_array_equal(frame["temporal"], history["temporal"])
    still = {term: [3.0, 2.0] for term in jaxstyle.plot.TERMS}  # a stylize run: none
    out = jaxstyle.plot_losses({"frame": frame, "still": still}, tmp_path / "losses.png")
    assert np.asarray(Image.open(out)).shape == (340, 2000, 3)


def test_a_curve_keeps_its_colour_in_the_panels_only_some_curves_have(tmp_path):
    """The temporal panel draws the frame in the frame's colour of the legend, not
    in the first colour of the cycle (which is the still run's)."""
    from matplotlib import colors

    still = {term: [3.0, 2.0, 1.0] for term in jaxstyle.plot.TERMS}
    frame = {term: [3.0, 2.0, 1.0] for term in (*jaxstyle.plot.TERMS, "temporal")}
    out = jaxstyle.plot_losses({"still": still, "frame": frame}, tmp_path / "losses.png")
    temporal = np.asarray(Image.open(out), np.int64)[:, 1600:]  # the fifth panel

    def drawn(color: str) -> bool:
        rgb = np.round(np.asarray(colors.to_rgb(color)) * 255)
        return bool((np.abs(temporal - rgb).max(axis=-1) <= 8).any())

    assert drawn("C1") and not drawn("C0")


def test_a_record_given_three_times_draws_three_curves(tmp_path, capsys):
    """The third copy took the second's renamed name, replacing its curve."""
    record = tmp_path / "out.json"
    history = {term: [3.0, 2.0, 1.0] for term in jaxstyle.plot.TERMS}
    record.write_text(json.dumps({"output": "out.png", "history": history}))
    assert main(["plot", *[str(record)] * 3, "-o", str(tmp_path / "losses.png")]) == 0
    assert "3 curve(s)" in capsys.readouterr().out


@pytest.mark.parametrize("losses", [1.0, [[1.0, 2.0]]], ids=["a number", "a table"])
def test_a_history_not_of_lists_of_losses_is_not_a_record(tmp_path, losses):
    """A number per term was a traceback from matplotlib; a table, a plot of nonsense."""
    record = tmp_path / "odd.json"
    record.write_text(json.dumps({"history": {term: losses for term in jaxstyle.plot.TERMS}}))
    with pytest.raises(jaxstyle.JaxstyleError, match="is not a jaxstyle record"):
        jaxstyle.read_histories(record)
