"""Animations: reading and writing animated images, clips, ``animate`` end to end.

A clip's frames are a batch's jobs (tests/test_batch.py shows a job equals its solo
``stylize``); here: the frames come and go in order with their timing, a rerun
paints nothing again, and bad clips are one-line errors that write nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.animation import frames_directory, read_clip
from jaxstyle.cli import main
from jaxstyle.images import read_frames, save_animation, save_image, to_uint8
from jaxstyle.presets import PRESETS

SETTINGS = dict(size=32, steps=2, optimizer="adam")


def pan(photo: Image.Image, frames: int, step: int = 6) -> list[Image.Image]:
    """A camera pan: ``frames`` crops of ``photo``, ``step`` px apart."""
    photo = photo.convert("RGB").resize((120, 64))
    return [photo.crop((step * i, 0, step * i + 64, 48)) for i in range(frames)]


@pytest.fixture(scope="module")
def photo(shared_image):
    return Image.open(shared_image("tubingen.jpg"))


@pytest.fixture
def gif(photo, tmp_path):
    frames = pan(photo, 3)
    path = tmp_path / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[70, 90, 110], loop=0)
    return path


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_save_and_read_animation_keep_frames_timing_and_loop(photo, tmp_path, suffix):
    frames = [np.asarray(f, np.float32) / 255 for f in pan(photo, 4)]
    path = tmp_path / f"a{suffix}"
    save_animation(path, frames, [40, 50, 60, 70], loop=3)
    read = list(read_frames(path))
    assert [f.duration for f in read] == [40, 50, 60, 70]
    assert {f.loop for f in read} == {3}
    tolerance = {".png": 0, ".webp": 0.03, ".gif": 0.03}[suffix]  # APNG lossless
    for got, want in zip(read, frames, strict=True):
        assert got.image.shape == want.shape
        assert np.abs(got.image - want).mean() <= tolerance + 1e-6
    with pytest.raises(jaxstyle.JaxstyleError, match="exists; not overwriting it"):
        save_animation(path, frames, [40] * 4)


def test_gif_without_a_loop_count_plays_once_and_shares_one_palette(photo, tmp_path):
    """A still region keeps its colours in every frame: one palette for all (per-frame
    palettes, Pillow's default, shift the colours of unchanged pixels)."""
    still = np.asarray(pan(photo, 1)[0], np.float32) / 255
    frames = []
    for i in range(4):  # the left half still, the right half a different picture each frame
        frame = still.copy()
        frame[:, 32:] = np.roll(still[:, 32:], 9 * i, axis=(0, 1))
        frames.append(frame)
    path = tmp_path / "once.gif"
    save_animation(path, frames, [100] * 4, loop=None)
    read = list(read_frames(path))
    assert [f.loop for f in read] == [None] * 4
    left = [to_uint8(f.image[:, :32]) for f in read]
    assert all(np.array_equal(left[0], x) for x in left[1:])


def test_a_loop_count_is_how_often_it_repeats_in_every_format(tmp_path):
    """A GIF's count is how often it repeats (viewers play it count + 1 times), a WebP's
    and an APNG's how often it plays: loop=3 plays 4 times in each, a GIF turned into a
    WebP too (it played 3 times)."""
    frames = [np.full((8, 8, 3), i / 2, np.float32) for i in range(2)]
    for suffix in (".webp", ".png"):
        for loop, plays in [(3, 4), (None, 1), (0, 0)]:
            path = tmp_path / f"{loop}{suffix}"
            save_animation(path, frames, [100, 100], loop=loop)
            assert Image.open(path).info["loop"] == plays
            assert {f.loop for f in read_frames(path)} == {loop}


def test_read_frames_skips_an_apngs_default_image(tmp_path):
    """The default image (a still for viewers without APNG) is not one of the frames."""
    red, green, blue = (Image.new("RGB", (8, 8), c) for c in ("red", "lime", "blue"))
    red.save(tmp_path / "a.png", save_all=True, append_images=[green, blue], default_image=True)
    frames = list(read_frames(tmp_path / "a.png"))
    assert [tuple(to_uint8(f.image)[0, 0]) for f in frames] == [(0, 255, 0), (0, 0, 255)]


def test_gif_durations_round_to_centiseconds(tmp_path):
    """60 fps (17 ms) is 20 ms, not Pillow's truncated 10 ms, which viewers show for 100 ms
    (and a GIF's 10 ms frames are read so: painted into a WebP, they play as they did)."""
    frames = [np.full((8, 8, 3), i / 4, np.float32) for i in range(3)]
    save_animation(tmp_path / "a.gif", frames, [17, 67, 3])
    assert [f.duration for f in read_frames(tmp_path / "a.gif")] == [20, 70, 100]
    save_animation(tmp_path / "a.webp", frames, [17, 67, 10])  # a WebP's own 10 ms: 10 ms
    assert [f.duration for f in read_frames(tmp_path / "a.webp")] == [17, 67, 10]


def test_save_animation_refuses_bad_suffix_and_counts(tmp_path):
    frame = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(jaxstyle.JaxstyleError, match=r"unsupported file type '\.jpg'"):
        save_animation(tmp_path / "a.jpg", [frame], [100])
    with pytest.raises(jaxstyle.JaxstyleError, match="2 frame"):
        save_animation(tmp_path / "a.gif", [frame, frame], [100])
    with pytest.raises(jaxstyle.JaxstyleError, match="RGB of one size, not 8x4 RGB, 8x8 RGB"):
        save_animation(tmp_path / "a.gif", [frame, frame[:4]], [100, 100])
    for suffix, ms, most in [(".gif", 655_360, "655.35"), (".png", 70_000_000, "65535")]:
        with pytest.raises(jaxstyle.JaxstyleError, match=rf"longer than \w+ stores \({most} s\)"):
            save_animation(tmp_path / f"a{suffix}", [frame, frame], [ms, 100])
    assert not list(tmp_path.iterdir())


def test_read_clip_of_a_directory_in_number_order(photo, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, image in zip((10, 2, 1), pan(photo, 3), strict=True):
        image.save(frames / f"f{i}.png")
    (frames / "notes.txt").write_text("not a frame")
    (frames / "f3.json").write_text("{}")
    (frames / "._f1.png").write_bytes(b"\0\5\26\7")  # macOS's resource fork: hidden
    clip = read_clip(frames, tmp_path / "unused", fps=25)
    for bad in (True, "25", float("nan"), 0, 1001, np.float32(-1)):
        with pytest.raises(jaxstyle.JaxstyleError, match=r"fps must be a number in \(0, 1000\]"):
            read_clip(frames, tmp_path / "unused", fps=bad)
    for number in (np.float32(25), np.int64(25)):  # numpy's numbers too, as other settings
        assert read_clip(frames, tmp_path / "unused", fps=number).durations == (40,) * 3
    assert [p.name for p in clip.frames] == ["f1.png", "f2.png", "f10.png"]
    pan(photo, 1)[0].save(frames / "²1.png")  # a digit that is no number
    assert read_clip(frames, tmp_path / "unused").frames[-1].name == "²1.png"
    (frames / "²1.png").unlink()
    assert clip.durations == (40,) * 3 and clip.loop == 0
    assert not (tmp_path / "unused").exists()
    listed = read_clip([frames / "f10.png", frames / "f1.png"], tmp_path / "unused")
    assert [p.name for p in listed.frames] == ["f10.png", "f1.png"]
    assert listed.durations == (100, 100)


def test_read_clip_extracts_a_file_once(gif, tmp_path, photo):
    source = tmp_path / "work" / "source"
    clip = read_clip(gif, source)
    assert [p.name for p in clip.frames] == [f"frame_{i:05d}.png" for i in (1, 2, 3)]
    assert clip.durations == (70, 90, 110) and clip.loop == 0
    stamps = [p.stat().st_mtime_ns for p in clip.frames]
    assert read_clip(gif, source) == clip  # again: the frames there are this clip's
    assert [p.stat().st_mtime_ns for p in clip.frames] == stamps
    other = pan(photo, 3, step=2)
    other[0].save(gif, save_all=True, append_images=other[1:], duration=100)
    with pytest.raises(jaxstyle.JaxstyleError, match="holds a frame of another clip"):
        read_clip(gif, source)


def test_read_clip_extracts_frames_another_process_writes_too(gif, tmp_path, monkeypatch):
    """With jax.distributed every process extracts the clip into the same directory."""

    def racing(path, image, **options):  # another process writes the frame first
        save_image(path, image, overwrite=True)
        save_image(path, image, **options)

    monkeypatch.setattr("jaxstyle.images.save_image", racing)
    assert len(read_clip(gif, tmp_path / "source").frames) == 3


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("clip.mp4", lambda p: p.write_bytes(b"\0" * 64), "not videos; extract its frames"),
        ("still.png", lambda p: Image.new("RGB", (8, 8)).save(p), "is a still image"),
        ("empty", lambda p: p.mkdir(), "holds no frames"),
        ("broken.gif", lambda p: p.write_bytes(b"GIF89a" + b"\0" * 9), "cannot read"),
        ("missing.gif", lambda p: None, "no such file"),
    ],
)
def test_bad_clips_are_one_line_errors(tmp_path, name, make, message):
    make(tmp_path / name)
    with pytest.raises(jaxstyle.JaxstyleError, match=message):
        read_clip(tmp_path / name, tmp_path / "source")
    assert not (tmp_path / "source").exists()


@pytest.mark.parametrize("what", ["clip", "style"])
def test_animate_refuses_a_pillow_image_for_a_path(gif, tmp_path, shared_image, what):
    paths = {"clip": gif, "style": shared_image("starry_night.jpg")}
    args = {**paths, what: Image.open(paths[what])}
    with pytest.raises(jaxstyle.JaxstyleError, match="must be a str or path, or a list of them"):
        jaxstyle.animate(args["clip"], args["style"], tmp_path / "out.gif", **SETTINGS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif"]


def test_animate_refuses_a_bad_motion(photo, tmp_path, shared_image):
    frames = [tmp_path / f"{i}.png" for i in range(2)]
    for frame, image in zip(frames, pan(photo, 2), strict=True):
        image.save(frame)
    with pytest.raises(jaxstyle.JaxstyleError, match="motion must be one of flow, none, not 'x'"):
        jaxstyle.animate(frames, shared_image("starry_night.jpg"), tmp_path / "o.gif", motion="x")
    assert not (tmp_path / "o.frames").exists()


def test_animate_has_no_dry_run(gif, tmp_path, shared_image):
    """batch's dry_run planned the frames, then animate read the frames it did not paint."""
    with pytest.raises(jaxstyle.JaxstyleError, match="animate has no dry_run"):
        jaxstyle.animate(gif, shared_image("starry_night.jpg"), tmp_path / "o.gif", dry_run=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(steps=-3), "steps must be >= 0, not -3"),
        (dict(size=5), "size must be from"),
        (dict(batch_size=0), "batch size must be >= 1, not 0"),
        (dict(checkpoint_every=-1), "checkpoint every must be >= 0 steps"),
        (dict(driver="gpu"), "driver must be one of"),
        (dict(split_image=3), "cannot split an image over 3"),
        (dict(callback=3), "callback must be a function or None"),
        (dict(on_plan=3), "on_plan must be a function or None"),
        (dict(weights="nowhere"), "nowhere is not a weight set"),
        # every frame has the shared settings (no row of its own): refused as settings
        (dict(coarse_to_fine=(32,)), "^coarse-to-fine sizes must rise"),
        (dict(size=None, coarse_to_fine=(16,)), "^coarse-to-fine needs a size"),
    ],
)
def test_animate_refuses_bad_settings_before_extracting_the_clip(
    gif, tmp_path, shared_image, bad, message
):
    style = shared_image("starry_night.jpg")
    with pytest.raises(jaxstyle.JaxstyleError, match=message):
        jaxstyle.animate(gif, style, tmp_path / "o.gif", **{**SETTINGS, **bad})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif"]


def test_animate_paints_every_frame_in_order_and_resumes(gif, tmp_path, shared_image):
    style = shared_image("starry_night.jpg")
    output = tmp_path / "out.png"
    result = jaxstyle.animate(gif, style, output, **SETTINGS)
    work = frames_directory(output)
    assert result.output == output and work == tmp_path / "out.frames"
    assert [p.name for p in result.frames] == [f"frame_{i:05d}.png" for i in (1, 2, 3)]
    assert [p.name for p in result.report.written] == [p.name for p in result.frames]
    written = list(read_frames(output))  # APNG: the painted frames exactly, with the timing
    assert [f.duration for f in written] == [70, 90, 110]
    for frame, path in zip(written, result.frames, strict=True):
        assert np.array_equal(to_uint8(frame.image), np.asarray(Image.open(path)))
        assert frame.image.shape == (24, 32, 3)
    for i, path in enumerate(result.frames, 1):  # frame i painted from the clip's frame i
        record = json.loads(path.with_suffix(".json").read_text())
        assert record["inputs"]["content"] == str(work / "source" / f"frame_{i:05d}.png")
        assert record["fingerprint"]["temporal_weight"] == PRESETS["jaxstyle"].temporal_weight
    painted = [np.asarray(Image.open(p)) for p in result.frames]
    assert not np.array_equal(painted[0], painted[1])

    before = output.read_bytes()
    same = jaxstyle.animate(gif, style, output, **SETTINGS)  # the same call: nothing to do
    assert same.unchanged and same.report.written == [] and len(same.report.skipped) == 3
    assert output.read_bytes() == before
    refused = {  # another animation of these frames, other frames: refused
        "fps": (5, f"^{output} exists; not overwriting it$"),
        "steps": (SETTINGS["steps"] + 1, "frame_00001.png exists and was not written by this"),
    }
    for name, (value, message) in refused.items():
        with pytest.raises(jaxstyle.JaxstyleError, match=message):
            jaxstyle.animate(gif, style, output, **{**SETTINGS, name: value})
    assert output.read_bytes() == before
    output.write_bytes(before[:-1])  # no longer the animation of these frames: refused
    with pytest.raises(jaxstyle.JaxstyleError, match="exists; not overwriting it"):
        jaxstyle.animate(gif, style, output, **SETTINGS)
    output.unlink()  # the animation lost: written again from the frames, none repainted
    again = jaxstyle.animate(gif, style, output, fps=5, **SETTINGS)
    assert again.report.written == [] and len(again.report.skipped) == 3
    assert [f.duration for f in read_frames(output)] == [200] * 3
    for path, before in zip(again.frames, painted, strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), before)


def test_animate_refuses_frames_of_two_sizes_before_painting(photo, tmp_path, shared_image):
    frames = tmp_path / "frames"
    frames.mkdir()
    pan(photo, 1)[0].save(frames / "1.png")
    pan(photo, 1)[0].resize((48, 48)).save(frames / "2.png")
    output = tmp_path / "out.gif"
    for weight in (0.0, 1e4):  # each frame on its own, or pulled towards its neighbours
        with pytest.raises(jaxstyle.JaxstyleError, match="one shape, not 32x24 and 32x32"):
            style = shared_image("starry_night.jpg")
            jaxstyle.animate(frames, style, output, temporal_weight=weight, **SETTINGS)
    assert not output.exists() and not frames_directory(output).exists()
    listed = sorted(frames.iterdir())
    with pytest.raises(jaxstyle.JaxstyleError, match="^the frames of a clip must have one shape"):
        jaxstyle.animate(listed, shared_image("starry_night.jpg"), output, **SETTINGS)


def test_animate_refuses_an_output_in_the_frame_directory(photo, tmp_path, shared_image):
    """A rerun would read the animation, or the frames painted there, as frames."""
    frames = tmp_path / "out.frames"
    frames.mkdir()
    for i, image in enumerate(pan(photo, 2)):
        image.save(frames / f"{i}.png")
    for output in (frames / "a.gif", tmp_path / "out.gif"):
        with pytest.raises(jaxstyle.JaxstyleError, match="into the clip directory"):
            jaxstyle.animate(frames, shared_image("starry_night.jpg"), output, **SETTINGS)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["0.png", "1.png", "out.frames"]


def test_cli_animate_and_its_errors(gif, tmp_path, shared_image, capsys):
    style = str(shared_image("the_scream.jpg"))
    out = tmp_path / "scream.webp"
    args = ["--size", "32", "--steps", "2", "--optimizer", "adam", "-q"]
    command = ["animate", str(gif), style, "-o", str(out), "--fps", "20", "--motion", "none"]
    assert main([*command, *args]) == 0
    assert f"wrote {out} (3 frames, 0.15 s; painted 3 frame(s) into" in capsys.readouterr().out
    assert [f.duration for f in read_frames(out)] == [50] * 3
    record = json.loads((frames_directory(out) / "frame_00002.json").read_text())
    assert record["fingerprint"]["motion"] == "none"
    assert main([*command, *args]) == 0  # again, finished (a requeued job): nothing to do
    done = f"{out} already holds this finished animation: nothing to do\n"
    assert capsys.readouterr().out == done
    not_image = tmp_path / "notes.png"  # a bad style: its error, not every frame's
    not_image.write_text("not an image")
    for bad, message in [
        ([str(gif), style, "-o", str(tmp_path / "x.jpg")], "unsupported file type '.jpg'"),
        ([str(gif), style, "-o", str(gif)], f"output {gif} is the input"),
        ([str(gif), style, "-o", str(tmp_path / "y.gif"), "--fps", "0"], "fps must be"),
        (  # a GIF stores 10 ms, which viewers show for 100 ms: 10 times slower than asked
            [str(gif), style, "-o", str(tmp_path / "y.gif"), "--fps", "100"],
            "frames of 10 ms: a GIF stores them as 10 ms, which viewers show for 100 ms",
        ),
        (  # a GIF's frame is at most 655.35 s: refused before painting, not after
            [str(gif), style, "-o", str(tmp_path / "y.gif"), "--fps", "0.001"],
            "a frame shows for 1000 s, longer than GIF stores (655.35 s)",
        ),
        (
            [str(gif), str(not_image), "-o", str(tmp_path / "y.gif")],
            f"error: cannot read {not_image}",
        ),
        (  # an --init image too, before the frames are extracted
            [str(gif), style, "-o", str(tmp_path / "y.gif"), "--init", str(tmp_path / "no.png")],
            f"error: cannot read {tmp_path / 'no.png'}: no such file",
        ),
        ([str(tmp_path / "v.mov"), style, "-o", str(tmp_path / "z.gif")], "not videos"),
        *(
            ([str(gif), style, "-o", str(tmp_path / "w.gif"), "--temporal-weight", w], message)
            for w, message in [
                ("-1", "temporal weight must be finite and >= 0"),
                ("nan", "temporal weight must be finite and >= 0"),
                ("abc", "argument --temporal-weight: invalid float value: 'abc'"),
            ]
        ),
        ([str(gif), style, "-o", str(tmp_path / "w.gif"), "--steps", "-3"], "steps must be"),
        (
            [str(gif), style, "-o", str(tmp_path / "w.gif"), "--motion", "warp"],
            "argument --motion: invalid choice: 'warp'",
        ),
    ]:
        assert main(["animate", *args, *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["clip.gif", "notes.png", "scream.frames", "scream.webp"]
    record = json.loads((frames_directory(out) / "frame_00002.json").read_text())
    assert record["fingerprint"]["temporal_weight"] == PRESETS["jaxstyle"].temporal_weight


def test_cli_animate_reports_the_timing_a_gif_stores(gif, tmp_path, shared_image, capsys):
    """12 fps is 83 ms a frame, which a GIF stores as 80 ms: the summary says 0.24 s."""
    out = tmp_path / "twelve.gif"
    style = str(shared_image("the_scream.jpg"))
    args = ["--fps", "12", "--size", "32", "--steps", "2", "--optimizer", "adam", "-q"]
    assert main(["animate", str(gif), style, "-o", str(out), "--motion", "none", *args]) == 0
    assert [f.duration for f in read_frames(out)] == [80] * 3
    assert f"wrote {out} (3 frames, 0.24 s; painted" in capsys.readouterr().out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_animate_pulls_with_the_presets_weight_unless_given(
    preset, gif, tmp_path, shared_image, monkeypatch, capsys
):
    """animate and the CLI hand batch the preset's measured λ, or the one given."""
    seen = []

    def planned(jobs, out, **options):
        seen.append(options["temporal_weight"])
        raise jaxstyle.JaxstyleError("planned")

    monkeypatch.setattr(jaxstyle.animation, "batch", planned)
    style = shared_image("starry_night.jpg")
    for given in (None, 7.0, 0.0):
        with pytest.raises(jaxstyle.JaxstyleError, match="planned"):
            jaxstyle.animate(gif, style, tmp_path / "o.gif", preset=preset, temporal_weight=given)
    cli = ["animate", str(gif), str(style), "-o", str(tmp_path / "o.gif"), "--preset", preset]
    assert main(cli) == 2 and main([*cli, "--temporal-weight", "7"]) == 2
    assert "planned" in capsys.readouterr().err
    own = PRESETS[preset].temporal_weight
    assert seen == [own, 7.0, 0.0, own, 7.0]
