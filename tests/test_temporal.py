"""Temporal coherence: the pull between neighbouring frames (jaxstyle.temporal).

The per-frame gradients of the pull, each frame's neighbours taken from the stacked
iterates, equal autodiff's gradient of the clip's joint objective (atol 1e-4 on
values ~1e3). End to end, still regions of a clip change far less between painted
frames with the pull than without; a chunked run (across chunk boundaries), a
resumed one and one sharded over 2 CPU devices agree with the plain run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import cells
from jaxstyle.batch import _check, _chunk_key
from jaxstyle.cli import main
from jaxstyle.flow import warp
from jaxstyle.manifest import Job
from jaxstyle.objective import LossArgs
from jaxstyle.optimize import OptimizerConfig
from jaxstyle.resume import CHECKPOINTS, Checkpointing
from jaxstyle.temporal import (
    SIGMA,
    FrameTargets,
    TemporalPlan,
    pull_weights,
    pulled_init,
    pulled_step,
    temporal_terms,
    with_neighbours,
)

SETTINGS = dict(size=32, steps=30, optimizer="adam")


def test_pull_weights_fade_with_the_content_change():
    content = np.full((2, 3, 3), 0.5, np.float32)
    before = content.copy()
    before[0, 0] += 0.1  # one pixel changed by 0.1 in each channel
    weights = pull_weights(content, before, None, 7.0)
    expected = np.full((2, 3), 7.0, np.float32)
    expected[0, 0] = 7.0 * np.exp(-3 * 0.1**2 / (2 * SIGMA**2))
    np.testing.assert_allclose(weights[0], expected, rtol=1e-5)
    np.testing.assert_array_equal(weights[1], 0.0)  # nothing after


def test_each_frames_gradient_is_the_joint_objectives():
    """P=5 cells of which n=4 are frames (one padding cell): vmapped per-frame gradients
    with neighbours filled from the iterates == grad of Σ_pairs w·‖255 Δ‖² / (H·W)
    over the 4 frames plus the pull of frame 0 towards a fixed frame before."""
    rng = np.random.default_rng(0)
    p, n, h, w = 5, 4, 3, 4
    x = jnp.asarray(rng.random((p, h, w, 3), np.float32))
    before = jnp.asarray(rng.random((h, w, 3), np.float32))
    pair = jnp.asarray(rng.random((p, h, w), np.float32))  # weight of pair (t-1, t)
    weights = jnp.stack([pair, jnp.concatenate([pair[1:], jnp.zeros((1, h, w))])], axis=1)
    weights = weights.at[n - 1, 1].set(0.0)  # the last frame has none after
    weights = weights.at[n:].set(0.0)  # padding: TemporalPlan.padding_targets
    stored = jnp.zeros((p, 2, h, w, 3)).at[:, 0].set(before)
    flows = jnp.zeros((p, 2, h, w, 2))
    args = LossArgs(None, FrameTargets(None, stored, weights, flows), None)

    def cells(images, a):
        grad = jax.grad(lambda im, f: temporal_terms(im, f))
        return jax.vmap(grad, in_axes=(0, FrameTargets(None, 0, 0, 0)))(images, a.targets)

    got = jax.jit(with_neighbours(cells))(x, args)

    def joint(frames):
        total = jnp.sum(pair[0] * jnp.sum((255 * (frames[0] - before)) ** 2, -1))
        for t in range(1, n):
            total += jnp.sum(pair[t] * jnp.sum((255 * (frames[t] - frames[t - 1])) ** 2, -1))
        return total / (h * w)

    expected = jax.grad(joint)(x)
    np.testing.assert_allclose(got[:n], expected[:n], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(got[n:], 0.0)  # padding pulls nothing


def test_neighbours_are_warped_by_the_flows_as_in_a_loop():
    """P=5 cells of which n=4 are frames, jitted and vmapped: each frame's neighbours are
    the frames before (frame 0: the stored one) and after it, warped by its flows."""
    rng = np.random.default_rng(1)
    p, n, h, w = 5, 4, 6, 7
    x = jnp.asarray(rng.random((p, h, w, 3), np.float32))
    before = jnp.asarray(rng.random((h, w, 3), np.float32))
    flows = jnp.asarray(rng.normal(0, 1.5, (p, 2, h, w, 2)).astype(np.float32))
    stored = jnp.zeros((p, 2, h, w, 3)).at[:, 0].set(before)
    weights = jnp.ones((p, 2, h, w)).at[n:].set(0.0)
    args = LossArgs(None, FrameTargets(None, stored, weights, flows), None)

    def cells(images, a):
        return jax.vmap(lambda f: (f.neighbours, f.weights))(a.targets)

    neighbours, weights = jax.jit(with_neighbours(cells))(x, args)
    for t in range(n):
        previous = before if t == 0 else x[t - 1]
        np.testing.assert_allclose(neighbours[t, 0], warp(previous, flows[t, 0]), atol=1e-6)
        np.testing.assert_allclose(neighbours[t, 1], warp(x[t + 1], flows[t, 1]), atol=1e-6)
    np.testing.assert_array_equal(weights[:n], 1.0)
    np.testing.assert_array_equal(weights[n:], 0.0)  # padding pulls nothing


def test_padding_cells_repeat_the_last_frame_pulled_towards_nothing():
    """A padding cell repeats the last frame's targets and flows with its pull weights 0
    (so the frames' program needs no count of real frames)."""
    rng = np.random.default_rng(2)
    last = FrameTargets(
        rng.random((4, 5, 3)), rng.random((2, 4, 5, 3)), rng.random((2, 4, 5)) + 0.5,
        rng.random((2, 4, 5, 2)),
    )  # fmt: skip
    pad = TemporalPlan.padding_targets(last)
    np.testing.assert_array_equal(pad.weights, 0.0)
    assert pad.weights.shape == last.weights.shape and pad.weights.dtype == last.weights.dtype
    for field in ("targets", "neighbours", "flows"):
        assert getattr(pad, field) is getattr(last, field)


def test_lbfgs_steps_shift_the_carried_loss_to_the_moved_neighbours():
    """L-BFGS steps of 3 frames (a cheap loss of their own plus the pull) take J and ∇J
    from the last line search shifted by the pull's change alone: each step's total
    is J of its iterate with the neighbours as they are then (evaluated anew), and
    the curvature pair of the second step is ∇J(x1) - ∇J(x0) with the neighbours
    of the first (one objective's)."""
    rng = np.random.default_rng(1)
    p, h, w = 3, 4, 5
    x0 = jnp.asarray(rng.random((p, h, w, 3), np.float32))
    own = jnp.asarray(rng.random((p, h, w, 3), np.float32))
    weights = jnp.asarray(rng.random((p, 2, h, w), np.float32) * 1e-3).at[-1, 1].set(0.0)
    still = jnp.zeros((p, 2, h, w, 2))  # no flow
    args = LossArgs(None, FrameTargets(own, jnp.zeros((p, 2, h, w, 3)), weights, still), None)

    def loss_fn(image, a):
        mine = 10.0 * jnp.sum((image - a.targets.targets) ** 2)
        temporal = temporal_terms(image, a.targets)
        return mine + temporal, {"own": mine, "temporal": temporal}

    def frames(fn):
        in_axes = (0, LossArgs(None, 0, None))
        return jax.jit(with_neighbours(jax.vmap(fn, in_axes=in_axes, axis_name="cells")))

    config = OptimizerConfig(name="lbfgs", batch_axis="cells")
    init, step = frames(pulled_init(loss_fn, config)), frames(pulled_step(loss_fn, config))
    clipped = jax.value_and_grad(lambda x, a: loss_fn(jnp.clip(x, 0.0, 1.0), a)[0])
    fresh = frames(clipped)
    neighbours_of = frames(lambda x, a: a.targets.neighbours)
    carry, images = init(x0, args), [x0]
    for _ in range(4):
        expected = fresh(carry.image, args)[0]
        carry, record = step(carry, args)
        images.append(carry.image)
        np.testing.assert_allclose(record["total"], expected, rtol=1e-5)
    first = args._replace(targets=FrameTargets(own, neighbours_of(x0, args), weights, still))
    grad = jax.vmap(clipped, in_axes=(0, LossArgs(None, 0, None)))
    pair = grad(images[1], first)[1] - grad(images[0], first)[1]
    np.testing.assert_allclose(carry.opt_state[0].diff_updates_memory[:, 0], pair, atol=1e-3)


def walk(photo: Image.Image, frames: int) -> list[Image.Image]:
    """A still scene and a small square moving along its bottom: (32x24 frames)."""
    scene = photo.convert("RGB").resize((32, 24))
    walker = scene.crop((0, 0, 6, 6)).transpose(Image.Transpose.ROTATE_180)
    out = []
    for i in range(frames):
        frame = scene.copy()
        frame.paste(walker, (2 + 5 * i, 16))
        out.append(frame)
    return out


@pytest.fixture(scope="module")
def clip(shared_image, tmp_path_factory):
    directory = tmp_path_factory.mktemp("walk") / "frames"
    directory.mkdir()
    for i, frame in enumerate(walk(Image.open(shared_image("tubingen.jpg")), 4)):
        frame.save(directory / f"{i}.png")
    return directory


def top_change(frames) -> list[float]:
    """Mean change between consecutive painted frames in their still top half."""
    x = [np.asarray(Image.open(p), np.float32)[:12] / 255 for p in frames]
    return [float(np.abs(b - a).mean()) for a, b in zip(x, x[1:], strict=False)]


@pytest.fixture(scope="module")
def pulled(clip, shared_image, tmp_path_factory, vgg_weights):
    out = tmp_path_factory.mktemp("pulled") / "out.png"
    style = shared_image("starry_night.jpg")
    return jaxstyle.animate(clip, style, out, weights=vgg_weights, temporal_weight=3e4, **SETTINGS)


def test_the_pull_holds_still_regions_together(clip, pulled, shared_image, tmp_path, vgg_weights):
    free = jaxstyle.animate(
        clip,
        shared_image("starry_night.jpg"),
        tmp_path / "free.png",
        weights=vgg_weights,
        temporal_weight=0.0,
        **SETTINGS,
    )
    with_pull, without = top_change(pulled.frames), top_change(free.frames)
    assert max(with_pull) < 0.5 * min(without), (with_pull, without)
    record = json.loads(pulled.frames[1].with_suffix(".json").read_text())
    assert record["final_losses"]["temporal"] > 0
    assert record["fingerprint"]["temporal_weight"] == 3e4
    assert record["fingerprint"]["motion"] == "flow"


def test_chunks_chain_across_their_boundaries(clip, pulled, shared_image, tmp_path):
    """Chunks of 2 frames: the second chunk's first frame is pulled towards the first
    chunk's last, as painted; a frame painted again (its file lost) is pulled towards
    the frame before it, as its PNG holds it."""
    style = shared_image("starry_night.jpg")
    out = tmp_path / "chunked.png"
    options = dict(temporal_weight=3e4, batch_size=2, **SETTINGS)
    chunked = jaxstyle.animate(clip, style, out, **options)
    bound = 2 * max(top_change(pulled.frames))
    assert top_change(chunked.frames)[1] < bound  # frames 2 -> 3, across the boundary
    chunked.frames[3].unlink()
    out.unlink()
    again = jaxstyle.animate(clip, style, out, **options)
    assert [p.name for p in again.report.written] == ["frame_00004.png"]
    assert top_change(again.frames)[2] < bound


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_an_interrupted_chunk_resumes_to_the_same_frames(
    optimizer, clip, pulled, shared_image, tmp_path, monkeypatch, sigterm_after, vgg_weights
):
    """With L-BFGS the carry holds the neighbours its J and ∇J were evaluated with."""
    style = shared_image("starry_night.jpg")
    out = tmp_path / "out.png"
    settings = {**SETTINGS, "optimizer": optimizer}
    options = dict(weights=vgg_weights, temporal_weight=3e4, checkpoint_every=10, **settings)
    if optimizer != "adam":
        pulled = jaxstyle.animate(clip, style, tmp_path / "whole.png", **options)
    with monkeypatch.context() as patch:
        patch.setattr(cells, "stop_requests", lambda: sigterm_after(15))
        with pytest.raises(jaxstyle.Interrupted, match="at step 14 of 30; saved a checkpoint"):
            jaxstyle.animate(clip, style, out, **options)
    assert not out.exists()
    resumed = jaxstyle.animate(clip, style, out, **options)
    for path, expected in zip(resumed.frames, pulled.frames, strict=True):
        assert path.read_bytes() == expected.read_bytes()


def test_a_chunk_of_jpegs_resumes_pulled_towards_the_jpeg_before_it(
    clip, shared_image, tmp_path, monkeypatch, sigterm_after, vgg_weights
):
    """Lossy outputs: the frame before a chunk is taken as its JPEG holds it, whether
    from the run that just painted it or from the file (here, after an interruption in
    the second chunk), so the checkpoint resumes and the frames are those of one run."""
    style = shared_image("starry_night.jpg")
    frames = sorted(clip.iterdir())
    jobs = [Job(i, f, (style,), f"f{i}.jpg") for i, f in enumerate(frames, 1)]
    options = dict(
        weights=vgg_weights, temporal_weight=3e4, batch_size=2, checkpoint_every=10, **SETTINGS
    )
    plain = jaxstyle.batch(jobs, tmp_path / "plain", **options)
    with monkeypatch.context() as patch:  # the first chunk finishes, the second stops
        polls = iter([lambda: sigterm_after(10**6), lambda: sigterm_after(15)])
        patch.setattr(cells, "stop_requests", lambda: next(polls)())
        with pytest.raises(jaxstyle.Interrupted, match="at step 14 of 30"):
            jaxstyle.batch(jobs, tmp_path / "resumed", **options)
    resumed = jaxstyle.batch(jobs, tmp_path / "resumed", **options)
    assert [p.name for p in resumed.written] == ["f3.jpg", "f4.jpg"]
    for a, b in zip(plain.written, [*resumed.skipped, *resumed.written], strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_a_saved_chunk_after_a_frame_painted_again_is_refused_before_any_run(
    clip, shared_image, tmp_path, vgg_weights
):
    """The outputs deleted while the second chunk's state was saved: the run painted the
    first chunk again, then refused the second's checkpoint (pulled towards the old
    frame), at every rerun; now the plan (a dry run too) refuses it, painting nothing."""
    style = shared_image("starry_night.jpg")
    jobs = [Job(i, f, (style,), f"f{i}.png") for i, f in enumerate(sorted(clip.iterdir()), 1)]
    pulled = (3e4, "flow")
    ready = [
        _check(j, tmp_path, "jaxstyle", SETTINGS, vgg_weights, pulled, i)
        for i, j in enumerate(jobs)
    ]
    saved = tmp_path / CHECKPOINTS / _chunk_key(ready[2:])
    (saved / "step_00000014").mkdir(parents=True)
    (saved / "run.json").write_text(json.dumps({"jobs": [r.fingerprint for r in ready[2:]]}))
    options = dict(weights=vgg_weights, temporal_weight=3e4, batch_size=2, **SETTINGS)
    message = f"checkpoint {saved} holds frames pulled towards {tmp_path / 'f2.png'} as it was"
    with pytest.raises(jaxstyle.JaxstyleError, match=message):
        jaxstyle.batch(jobs, tmp_path, dry_run=True, **options)


def test_a_texture_among_the_frames_is_a_bad_row_before_any_run(clip, shared_image, tmp_path):
    style = shared_image("starry_night.jpg")
    jobs = [Job(1, sorted(clip.iterdir())[0], (style,), "a.png"), Job(2, None, (style,), "b.png")]
    plan = jaxstyle.batch(jobs, tmp_path, temporal_weight=3e4, dry_run=True, **SETTINGS)
    assert plan.failed == [(2, "a frame of a clip needs a content image (not a texture)")]


def test_a_row_refused_while_reading_the_manifest_breaks_the_chain(clip, shared_image, tmp_path):
    """A missing frame file or a bad line between two frames: they are not consecutive
    (a chunk each side, none pulled towards the other), as with a frame refused later."""
    style = str(shared_image("starry_night.jpg"))
    rows = [
        json.dumps({"content": str(f), "style": style, "output": f"f{i}.png"})
        for i, f in enumerate(sorted(clip.iterdir()))
    ]
    rows[1] = rows[1].replace("1.png", "missing.png", 1)
    manifest = tmp_path / "clip.jsonl"
    manifest.write_text("\n".join([*rows[:3], "not json", rows[3]]) + "\n")
    plan = jaxstyle.batch(manifest, tmp_path, temporal_weight=3e4, dry_run=True, **SETTINGS)
    assert [line for line, _ in plan.failed] == [2, 4]
    assert plan.buckets[0]["jobs"] == 3 and plan.buckets[0]["chunks"] == 3


def test_a_chunk_is_not_pulled_towards_a_stale_file_before_it(
    clip, shared_image, tmp_path, vgg_weights
):
    """The frame before a chunk refused (its output is another run's, with other
    settings): the chunk has no frame before it, not that run's image."""
    style = shared_image("starry_night.jpg")
    frames = sorted(clip.iterdir())
    jobs = [Job(1, frames[0], (style,), "a.png"), Job(2, frames[1], (style,), "b.png")]
    Image.open(frames[0]).save(tmp_path / "a.png")
    (tmp_path / "a.json").write_text(json.dumps({"fingerprint": {"settings": "other"}}))
    report = jaxstyle.batch(jobs, tmp_path, weights=vgg_weights, temporal_weight=3e4, **SETTINGS)
    assert [line for line, _ in report.failed] == [1] and report.written == [tmp_path / "b.png"]
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["final_losses"]["temporal"] == 0  # nothing before it, nor after


def test_frames_with_a_mask_on_some_only_are_refused_for_what_differs(clip, shared_image, tmp_path):
    """Frames of one shape that run as two programs: the message says why, not their shape."""
    style = shared_image("starry_night.jpg")
    a, b = sorted(clip.iterdir())[:2]
    jobs = [Job(1, a, (style,), "a.png", mask=a), Job(2, b, (style,), "b.png")]
    alike = r"^the frames of a clip must have masks laid out alike \(on every frame, or on none\)"
    with pytest.raises(jaxstyle.JaxstyleError, match=alike + ", not shared and none$"):
        jaxstyle.batch(jobs, tmp_path, temporal_weight=3e4, dry_run=True, **SETTINGS)


def test_a_checkpoint_of_another_frame_before_the_chunk_is_refused_in_words(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"jobs": [1], "painted_before": "a"}))
    with pytest.raises(
        jaxstyle.JaxstyleError, match=r"\(differing: the frame painted before the chunk\);"
    ):
        Checkpointing(tmp_path, {"jobs": [1], "painted_before": "b"}).load()


def test_the_flow_holds_a_camera_pan_together(shared_image, tmp_path, vgg_weights):
    """A pan of 4 frames (32 x 24 crops 2 px apart): the painted frames, each shifted back
    by the pan, differ from the frame before them less with the pull warped by the flow
    than compared in place (where the flow cannot help, every pixel having moved)."""
    photo = Image.open(shared_image("tubingen.jpg")).convert("RGB").resize((48, 36))
    frames = tmp_path / "pan"
    frames.mkdir()
    for i in range(4):
        photo.crop((2 * i, 6, 2 * i + 32, 30)).save(frames / f"{i}.png")
    changes = {}
    for motion in ("none", "flow"):
        painted = jaxstyle.animate(
            frames,
            shared_image("starry_night.jpg"),
            tmp_path / f"{motion}.png",
            weights=vgg_weights,
            temporal_weight=3e4,
            motion=motion,
            **SETTINGS,
        ).frames
        x = [np.asarray(Image.open(p), np.float32) / 255 for p in painted]
        pairs = zip(x, x[1:], strict=False)
        changes[motion] = np.mean([np.abs(b[2:-2, 2:-4] - a[2:-2, 4:-2]).mean() for a, b in pairs])
    assert changes["flow"] < 0.6 * changes["none"], changes  # measured: 0.044 against 0.104


SHARDED = """
import os, sys, json
import jax
jax.config.update("jax_compilation_cache_dir", os.environ["JAXSTYLE_CACHE"])
import jaxstyle
clip, style, out, split = sys.argv[1:5]
r = jaxstyle.animate(
    clip, style, out, temporal_weight=3e4, batch_size=3, size=32, steps=30, optimizer="adam",
    split_image=int(split),
)
print(json.dumps({"devices": jax.device_count(), "written": len(r.report.written)}))
"""


@pytest.mark.parametrize("split", [1, 2])
def test_sharded_over_2_cpu_devices_equals_one_device(
    split, clip, shared_image, tmp_path, vgg_weights
):
    """4 frames in chunks of 3 on 2 host devices (split 1: the frames sharded, each chunk
    padded to a multiple of 2, neighbours across the devices; split 2: each frame's rows
    split over both, the flow's warp reading rows of the other device): the frames of one
    device (up to one 8-bit level).
    (Not more devices than the 2 cores: XLA:CPU's collectives wait for every device's
    thread, and were seen to time out with 3 under load, and once with 2: conftest gives
    them 900 s, not 40.)"""
    style = str(shared_image("starry_night.jpg"))
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=2",
    }
    out = tmp_path / "two.png"
    command = [sys.executable, "-c", SHARDED, str(clip), style, str(out), str(split)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {"devices": 2, "written": 4}
    one = jaxstyle.animate(
        clip, style, tmp_path / "one.png", weights=vgg_weights, temporal_weight=3e4,
        batch_size=3, **SETTINGS,
    )  # fmt: skip
    for i, path in enumerate(one.frames, 1):
        two = np.asarray(Image.open(tmp_path / "two.frames" / f"frame_{i:05d}.png"))
        assert np.abs(two.astype(int) - np.asarray(Image.open(path))).max() <= 1


def test_cli_batch_paints_a_manifests_rows_as_frames_of_one_clip(clip, shared_image, tmp_path):
    """``jaxstyle batch --temporal-weight W --motion M``: the rows in order are pulled
    together, as ``batch(temporal_weight=W, motion=M)`` does; a bad weight is one line."""
    style = shared_image("starry_night.jpg")
    manifest = tmp_path / "frames.csv"
    rows = [f"{frame},{style},f{i}.png" for i, frame in enumerate(sorted(clip.iterdir())[:2])]
    manifest.write_text("content,style,output\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    common = ["--size", "32", "--steps", "30", "--optimizer", "adam", "-q"]
    argv = ["batch", str(manifest), "-o", str(out), *common, "--batch-size", "2"]
    assert main([*argv, "--temporal-weight", "-1"]) == 2 and not out.exists()
    assert main([*argv, "--temporal-weight", "3e4", "--motion", "none"]) == 0
    record = json.loads((out / "f1.json").read_text())
    assert record["fingerprint"]["temporal_weight"] == 3e4
    assert record["fingerprint"]["motion"] == "none"
    assert record["final_losses"]["temporal"] > 0  # pulled towards f0
