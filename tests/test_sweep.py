"""Sweeps: cell i == a single stylize run, per-cell L-BFGS, outputs, CLI, sharding.

Tolerances. A cell runs the same program as a single run but through a
batched convolution, so results may differ by float32 rounding: images atol
1e-5 (in [0, 1]) and losses rtol 1e-4 (they are ~1e5..1e10). Observed on
XLA:CPU: Adam images within 2e-6, L-BFGS bit-identical. Sharded vs unsharded
(4 vs 1 CPU devices): the same tolerances, observed within 2e-6.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.cli import main
from jaxstyle.resume import Checkpointing
from jaxstyle.sweep import AXES, plan_sweep
from jaxstyle.sweep_output import cell_files

SIZE = 64  # tubingen at 64 px: 48 x 64, the shape of the other tests
IMAGE_ATOL = 1e-5
LOSS_RTOL = 1e-4
# L-BFGS minimises J(clip(x, 0, 1)), whose gradient jumps at the box edges: tubingen has
# saturated pixels, and where the batched and the single program's iterates differ by
# rounding (1e-7) on either side of an edge, the stored gradients differ by 0.5% after
# the first zoom line search (measured, both exact at their own iterates). L-BFGS then
# takes slightly different directions: after 4 steps the images agree to 1.5e-3 and the
# loss terms to 2e-4 (measured). A line search shared by cells whose losses are 1000x
# apart would be off by far more.
LBFGS_IMAGE_ATOL = 3e-3
LBFGS_LOSS_RTOL = 1e-3


@pytest.fixture(scope="module")
def pair(shared_image):
    return str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))


@pytest.fixture(scope="module")
def adam_grid(vgg_weights, pair):
    """A 2 x 2 Adam sweep, 3 steps (4 cells: the batch shape the Adam tests share)."""
    return jaxstyle.sweep(
        *pair,
        weights=vgg_weights,
        size=SIZE,
        steps=3,
        optimizer="adam",
        content_weight=[1.0, 5.0],
        style_weight=[1e2, 1e3],
    )


def assert_cell_equals_single_run(result, i, single, image_atol=IMAGE_ATOL, loss_rtol=LOSS_RTOL):
    np.testing.assert_allclose(result.images[i], single.image, rtol=0, atol=image_atol)
    for name in ("total", "content", "style", "tv"):
        np.testing.assert_allclose(result.final[name][i], single.final[name], rtol=loss_rtol)
        # the content loss at the content image is 0 up to the features' rounding
        # (about 1e-7 with Winograd), relatively far apart: compared to 1e-6 of its run's largest
        atol = 1e-6 * np.abs(single.history[name]).max()
        np.testing.assert_allclose(
            result.history[name][i], single.history[name], rtol=loss_rtol, atol=atol
        )


def single_run(vgg_weights, pair, settings):
    """``stylize`` with every sweepable setting of a cell (the rest: the sweep's)."""
    return jaxstyle.stylize(
        *pair,
        weights=vgg_weights,
        size=settings.size,
        steps=settings.steps,
        optimizer=settings.optimizer,
        init=settings.init,
        **{name: getattr(settings, name) for name in AXES},
    )


def test_adam_cells_in_product_order_equal_single_runs(vgg_weights, pair, adam_grid):
    r = adam_grid
    assert [(c["content_weight"], c["style_weight"]) for c in r.cells] == [
        (1.0, 1e2),
        (1.0, 1e3),
        (5.0, 1e2),
        (5.0, 1e3),
    ]
    assert r.axes == {"content_weight": [1.0, 5.0], "style_weight": [1e2, 1e3]}
    assert r.images.shape == (4, 48, 64, 3) and r.images.dtype == np.float32
    assert all(v.shape == (4, 3) for v in r.history.values())
    assert all(v.shape == (4,) for v in r.final.values())
    assert r.settings.tv_weight == r.cells[0]["tv_weight"] and r.settings.optimizer == "adam"
    for i in range(4):
        assert_cell_equals_single_run(r, i, single_run(vgg_weights, pair, r.cell_settings(i)))


def test_tv_and_layer_weight_axes_cells_equal_single_runs(vgg_weights, pair):
    """The other loss weight axes, stacked as content and style weights are (the 4-cell
    Adam shape): a cell's TV weight or per-layer weights taken from another cell would
    show in its losses."""
    layers = [(1.0, 1.0, 1.0, 1.0, 1.0), (4.0, 0.5, 1.0, 1.0, 0.25)]
    r = jaxstyle.sweep(
        *pair,
        weights=vgg_weights,
        size=SIZE,
        steps=3,
        optimizer="adam",
        tv_weight=[1e-3, 1.0],
        style_layer_weights=layers,
    )
    assert r.axes == {"tv_weight": [1e-3, 1.0], "style_layer_weights": layers}
    assert [(c["tv_weight"], c["style_layer_weights"]) for c in r.cells][1:3] == [
        (1e-3, layers[1]),
        (1.0, layers[0]),
    ]
    for i in (1, 2):
        assert_cell_equals_single_run(r, i, single_run(vgg_weights, pair, r.cell_settings(i)))


LBFGS = dict(size=32, steps=4, optimizer="lbfgs", style_weight=[1e1, 1e2, 1e4])


@pytest.fixture(scope="module")
def lbfgs_grid(vgg_weights, pair):
    """3 L-BFGS cells on one device, run as 2 + 2 steps through a host copy of the carry
    (what a checkpoint would hold); returns the result and each cell's J in its state."""
    plan = plan_sweep(*pair, weights=vgg_weights, devices=jax.devices()[:1], **LBFGS)
    first = plan.advance(plan.init(), 2)
    second = plan.advance(plan.place(jax.device_get(first.carry)), plan.steps - 2)
    history = {k: np.concatenate([first.history[k], second.history[k]]) for k in first.history}
    state_values = np.asarray(optax.tree.get(second.carry.opt_state, "value"))
    return plan.finish(second.carry, history), state_values


def test_lbfgs_cells_keep_their_own_line_search_and_resume(vgg_weights, pair, lbfgs_grid):
    """Style weights 1e1..1e4 (losses 1000x apart): each cell must match its own single
    run, which a line search shared by the batch would not."""
    result, state_values = lbfgs_grid
    np.testing.assert_allclose(state_values, result.final["total"], rtol=LOSS_RTOL)
    for i in range(3):
        single = single_run(vgg_weights, pair, result.cell_settings(i))
        assert_cell_equals_single_run(
            result, i, single, image_atol=LBFGS_IMAGE_ATOL, loss_rtol=LBFGS_LOSS_RTOL
        )


ADAM_GRID = dict(size=SIZE, steps=3, optimizer="adam", content_weight=[1.0, 5.0])
RUN_GRID = dict(**ADAM_GRID, style_weight=[1e2, 1e3])  # adam_grid's


def test_cells_run_two_at_a_time_equal_one_run_of_all_and_show_every_cell(
    vgg_weights, pair, adam_grid
):
    """batch_size=3 of 4 cells: runs of cells 0-2 and 3 (padded to 3: one program),
    each cell as in one run of all; the callback sees all 4 cells, those of the
    run not started yet with their start image and NaN losses, steps numbered on."""
    grid = dict(**RUN_GRID, weights=vgg_weights)
    plan = plan_sweep(*pair, batch_size=3, **grid)
    assert plan.cell_runs() == [(0, 3), (3, 4)]
    seen = []
    result = plan.run(callback=lambda *a: seen.append(a), callback_every=3)
    np.testing.assert_allclose(result.images, adam_grid.images, rtol=0, atol=IMAGE_ATOL)
    for name in ("total", "content", "style", "tv"):
        np.testing.assert_allclose(result.final[name], adam_grid.final[name], rtol=LOSS_RTOL)
        np.testing.assert_allclose(result.history[name], adam_grid.history[name], rtol=LOSS_RTOL)
    assert result.local == [0, 1, 2, 3]
    assert [step for step, _, _ in seen] == [3, 6]
    (_, first, images), (_, second, _) = seen
    assert np.isnan(first["total"][3]) and not np.isnan(first["total"][:3]).any()
    np.testing.assert_array_equal(images[3], np.asarray(plan.x0[3]))  # not started
    np.testing.assert_allclose(second["total"], adam_grid.history["total"][:, 2], rtol=LOSS_RTOL)
    assert plan_sweep(*pair, batch_size=4, **grid).cell_runs() == [(0, 4)]
    with pytest.raises(jaxstyle.JaxstyleError, match="batch size must be >= 1, not 0"):
        plan_sweep(*pair, batch_size=0, **grid)


def stopped_in_the_second_run(
    vgg_weights, pair, directory, monkeypatch, sigterm_after, batch_size=2
):
    """(plan, checkpoint) of :data:`RUN_GRID`'s 4 cells run ``batch_size`` at a time,
    stopped at step 2 of the second run (the first run finished, its state kept)."""
    from jaxstyle import cells

    plan = plan_sweep(*pair, batch_size=batch_size, **RUN_GRID, weights=vgg_weights)
    checkpoint = plan.checkpointing(directory)
    stops = iter([sigterm_after(10**6), sigterm_after(2)])  # the second run stopped
    with monkeypatch.context() as patch:
        patch.setattr(cells, "stop_requests", lambda: next(stops))
        with pytest.raises(jaxstyle.Interrupted, match="at step 2 of 3"):
            plan.run(checkpoint=checkpoint)
    return plan, checkpoint


def test_runs_of_cells_resume_take_up_a_finished_run_and_refuse_another_batch_size(
    vgg_weights, pair, adam_grid, tmp_path, monkeypatch, sigterm_after
):
    """Stopped in the second run of cells: the rerun takes up the first run's kept
    state (not run again) and resumes the second, to the uninterrupted images; a
    rerun with another batch size (or all at once) is refused, the state kept."""
    plan, checkpoint = stopped_in_the_second_run(
        vgg_weights, pair, tmp_path / "ck", monkeypatch, sigterm_after
    )
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["cells0-1", "cells2-3"]
    saved = sorted((tmp_path / "ck").rglob("*"))
    for other in (3, None):
        again = plan_sweep(*pair, batch_size=other, **RUN_GRID, weights=vgg_weights)
        with pytest.raises(jaxstyle.JaxstyleError, match="another batch size"):
            again.run(checkpoint=again.checkpointing(tmp_path / "ck"))
    assert sorted((tmp_path / "ck").rglob("*")) == saved
    resumed = plan.run(checkpoint=checkpoint)
    assert resumed.resumed_from == 3 + 2  # the first run finished, the second at step 2
    np.testing.assert_allclose(resumed.images, adam_grid.images, rtol=0, atol=IMAGE_ATOL)


def test_a_resumed_run_of_cells_shows_the_run_taken_up_and_times_the_steps_run(
    vgg_weights, pair, adam_grid, tmp_path, monkeypatch, sigterm_after
):
    """The rerun takes the first run of cells up from its checkpoint (no callback of
    its own): the callback still shows those cells as they ended, not as not started
    (NaN, their start images); ms/step is of a step of all cells (two of the one
    program) over the steps run (one of each run's three), not the first run's 0
    ms/step added to the second's."""
    plan, checkpoint = stopped_in_the_second_run(
        vgg_weights, pair, tmp_path / "ck", monkeypatch, sigterm_after
    )
    seen = []
    resumed = plan.run(checkpoint=checkpoint, callback=lambda *a: seen.append(a), callback_every=1)
    assert [step for step, _, _ in seen] == [6]  # the second run's last step
    ((_, losses, images),) = seen
    assert not np.isnan(losses["total"]).any()
    np.testing.assert_allclose(losses["total"], adam_grid.history["total"][:, 2], rtol=LOSS_RTOL)
    np.testing.assert_array_equal(images, resumed.images)
    optimize = resumed.timings["optimize"]
    assert resumed.timings["ms_per_step"] == pytest.approx(1e3 * optimize * 2 / (2 * 3 - 5))


def test_a_stop_between_runs_of_cells_says_the_finished_runs_are_kept(
    vgg_weights, pair, tmp_path, monkeypatch
):
    """Ctrl-C after the first run of cells, before the second starts: no run's loop
    holds it, so it said only "interrupted"; it now says the finished run is kept
    (and the rerun takes it up)."""
    from jaxstyle import cells

    plain = cells.CellPlan.parts

    def stopped_after_one(plan, runs):
        parts = plain(plan, runs)
        yield next(parts)
        raise KeyboardInterrupt

    plan = plan_sweep(*pair, batch_size=2, **RUN_GRID, weights=vgg_weights)
    checkpoint = plan.checkpointing(tmp_path / "ck")
    with monkeypatch.context() as patch:
        patch.setattr(cells.CellPlan, "parts", stopped_after_one)
        with pytest.raises(jaxstyle.Interrupted, match="interrupted between runs of cells; ") as e:
            plan.run(checkpoint=checkpoint)
    assert e.value.exit_code == 130 and f"1 finished run(s) are kept in {tmp_path}" in str(e.value)
    assert plan.run(checkpoint=checkpoint).resumed_from == 3


def test_runs_of_cells_refuse_the_checkpoint_of_another_grid(
    vgg_weights, pair, tmp_path, monkeypatch, sigterm_after
):
    """A run of cells' checkpoint names its cells' weights as the sweep's does: a
    rerun with other style weights (the same runs of cells) is refused, not given the
    other grid's finished and stopped runs as its own; one with more (other runs of
    cells) as another grid, not as another batch size; the state is kept."""
    stopped_in_the_second_run(vgg_weights, pair, tmp_path / "ck", monkeypatch, sigterm_after, 3)
    grid = dict(**ADAM_GRID, batch_size=3, weights=vgg_weights)
    saved = sorted((tmp_path / "ck").rglob("*"))
    for weights in ([1e4, 1e5], [1e2, 1e3, 1e4]):  # runs of cells 0-2, 3 | 0-2, 3-5
        other = plan_sweep(*pair, style_weight=weights, **grid)
        with pytest.raises(jaxstyle.JaxstyleError, match=r"other settings \(differing: cells'"):
            other.run(checkpoint=other.checkpointing(tmp_path / "ck"))
    assert sorted((tmp_path / "ck").rglob("*")) == saved


def test_a_numpy_batch_size_runs_with_a_checkpoint(vgg_weights, pair, adam_grid, tmp_path):
    """A NumPy integer batch size (e.g. from np.arange) is taken as the int it is: the
    runs' bounds, recorded in each run's checkpoint, were NumPy integers, which JSON
    refused (a TypeError on the first save)."""
    grid = dict(**RUN_GRID, weights=vgg_weights)
    plan = plan_sweep(*pair, batch_size=np.int64(2), **grid)
    result = plan.run(checkpoint=plan.checkpointing(tmp_path / "ck"))
    np.testing.assert_allclose(result.images, adam_grid.images, rtol=0, atol=IMAGE_ATOL)
    assert json.loads((tmp_path / "ck" / "cells2-3" / "run.json").read_text())["run"] == [2, 4]


def test_runs_of_cells_timings_count_the_steps_run_over_runs_and_passes():
    """ms/step of all cells from runs of cells (a coarse-to-fine pass each): the
    optimising time over the steps run, those taken up from checkpoints not
    counted (in run steps: a step of all cells is one of each run)."""
    from jaxstyle.cells import CellsResult, join_cells, join_passes

    def result(steps, optimize, resumed):
        zeros = {k: np.zeros((1, steps), np.float32) for k in ("total", "content")}
        final = {k: np.zeros(1, np.float32) for k in ("total", "content")}
        timings = dict(compile=0.0, optimize=optimize, ms_per_step=0.0, load=1.0)
        return CellsResult(np.zeros((1, 2, 2, 3)), zeros, final, timings, ["cpu"], [0], resumed)

    first = join_cells([result(2, 0.0, 2), result(2, 0.0, 2)])  # both taken up
    second = join_cells([result(3, 0.0, 3), result(3, 1.5, 0)])  # the first taken up
    assert second.timings["ms_per_step"] == pytest.approx(1e3 * 1.5 * 2 / 3)
    assert second.timings["load"] == 1.0 and second.local == [0, 1]
    both = join_passes([first, second], runs=2)
    assert both.resumed_from == 2 + 2 + 3
    assert both.timings["ms_per_step"] == pytest.approx(1e3 * 1.5 * 2 / (2 * 5 - 7))


def test_vmapped_lbfgs_mixes_first_trials_and_zoom_searches_per_cell():
    """(x - t)² from x = 0.9: L-BFGS's first trial moves x by -1, which is accepted for a
    far target (t = 0.2) and overshoots a near one (t = 0.85), so in one batched step
    some cells take the trial and the rest run the zoom search; each must equal its own
    unbatched run."""
    from jax.sharding import Mesh

    from jaxstyle.batching import MESH_AXIS, batched
    from jaxstyle.objective import LossArgs
    from jaxstyle.optimize import OptimizerConfig, make_init, make_step

    def loss_fn(x, args):  # a per-cell target, carried in the per-cell loss weights
        j = jnp.sum((x - args.weights) ** 2)
        return j, {"j": j}

    targets = jnp.asarray([0.2, 0.85, 0.3, 0.8])
    x0 = jnp.full((4, 1), 0.9)
    mesh = Mesh(np.array(jax.devices()[:1]), (MESH_AXIS,))
    config = OptimizerConfig(name="lbfgs", batch_axis=MESH_AXIS)
    args = LossArgs(vgg=None, targets=None, weights=targets)
    carry = jax.jit(batched(make_init(loss_fn, config), mesh))(x0, args)
    step = jax.jit(batched(make_step(loss_fn, config), mesh))
    one = OptimizerConfig(name="lbfgs")
    single_step = jax.jit(make_step(loss_fn, one))
    single_init = jax.jit(make_init(loss_fn, one))
    singles = [single_init(x0[i], LossArgs(None, None, t)) for i, t in enumerate(targets)]
    searches = []
    for _ in range(3):
        carry, _ = step(carry, args)
        singles = [
            single_step(c, LossArgs(None, None, t))[0]
            for c, t in zip(singles, targets, strict=True)
        ]
        searches.append(np.asarray(optax.tree.get(carry.opt_state, "num_linesearch_steps")))
        for i, single in enumerate(singles):
            np.testing.assert_allclose(carry.image[i], single.image, rtol=1e-6, atol=1e-7)
            assert int(optax.tree.get(single.opt_state, "num_linesearch_steps")) == searches[-1][i]
    assert any(min(n) == 1 and max(n) > 1 for n in searches), searches  # a mixed step


def test_seed_axis_starts_each_cell_from_its_own_noise(vgg_weights, pair):
    r = jaxstyle.sweep(
        *pair,
        weights=vgg_weights,
        size=SIZE,
        steps=3,
        optimizer="adam",
        init="noise",
        style_weight=[1e2, 1e3],
        seed=[0, 1],
    )
    assert [c["seed"] for c in r.cells] == [0, 1, 0, 1]
    assert np.abs(r.images[0] - r.images[1]).mean() > 1e-2
    assert_cell_equals_single_run(r, 3, single_run(vgg_weights, pair, r.cell_settings(3)))


def test_winograd_sweep_prepares_the_kernels_its_cells_and_targets_read(vgg_weights, pair):
    """8 cells of 48x64 run at once read F(4x4) in block 3 (96 tiles of 4x4), the
    targets' single images F(2x2): the plan stores just those kernels (not both
    tilings of every layer), and its steps and targets run on them (a kernel they
    need but missing would be refused)."""
    plan = plan_sweep(
        *pair,
        weights=vgg_weights,
        devices=jax.devices()[:1],
        size=SIZE,
        steps=2,
        optimizer="adam",
        conv_algorithm="winograd",
        style_weight=[10.0**k for k in range(8)],
    )
    block3 = [f"conv3_{i}" for i in range(1, 5)]
    rest = [f"conv4_{i}" for i in range(1, 5)] + ["conv5_1"]
    stored = {name: sorted(ks) for name, ks in plan.args.vgg.winograd.items()}
    assert stored == {**{n: ["f2", "f4"] for n in block3}, **{n: ["f2"] for n in rest}}
    run = plan.advance(plan.init(), plan.steps)
    total = plan.finish(run.carry, run.history).history["total"]  # (cells, steps)
    assert np.isfinite(total).all() and (total[:, -1] < total[:, 0]).all(), total


def test_write_sweep_files_grid_json_csv(adam_grid, tmp_path):
    r = adam_grid
    out = tmp_path / "sweep"
    paths = jaxstyle.write_sweep(r, out)  # the CLI's files, from the API
    files = cell_files(r.cells, r.axes)
    assert files[1] == "content1_style1000_tv0.001_seed0.png"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*files, "grid.png", "sweep.json", "sweep.csv"]
    )
    assert {p.name for p in paths} == {p.name for p in out.iterdir()}
    saved = np.asarray(Image.open(out / files[2]), np.float32) / 255
    np.testing.assert_allclose(saved, r.images[2], atol=0.5 / 255 + 1e-6)

    grid = np.asarray(Image.open(out / "grid.png").convert("L"))
    assert grid.shape[0] > 2 * 48 and grid.shape[1] > 2 * 64  # 2 x 2 tiles and labels
    top, left = grid[: grid.shape[0] - 2 * 48 - 8], grid[:, : grid.shape[1] - 2 * 64 - 8]
    assert top.min() < 128 and left.min() < 128, "no column or row labels drawn"

    record = json.loads((out / "sweep.json").read_text())
    assert record["axes"] == {"content_weight": [1.0, 5.0], "style_weight": [100.0, 1000.0]}
    assert "content_weight" not in record["settings"] and record["settings"]["steps"] == 3
    assert [c["file"] for c in record["cells"]] == files
    assert record["cells"][3]["final"]["style"] == pytest.approx(float(r.final["style"][3]))
    assert len(record["cells"][0]["history"]["total"]) == 3 and "jax" in record["versions"]

    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [row["file"] for row in rows] == files
    assert float(rows[2]["content_weight"]) == 5.0 and rows[2]["style_layer_weights"] == "1,1,1,1,1"
    assert float(rows[1]["total"]) == pytest.approx(float(r.final["total"][1]))

    # a second write refuses to replace what is there (here: its own files) ...
    (out / "sweep.csv").write_text("the user's notes")
    with pytest.raises(jaxstyle.JaxstyleError, match=r"sweep/\S+ exists; not overwriting it"):
        jaxstyle.write_sweep(r, out)
    assert (out / "sweep.csv").read_text() == "the user's notes"
    # ... unless told to
    jaxstyle.write_sweep(r, out, overwrite=True)
    assert [row["file"] for row in csv.DictReader((out / "sweep.csv").open())] == files


def test_a_python_sweeps_written_cells_run_again(vgg_weights, pair, adam_grid, tmp_path):
    """``write_sweep`` records the sweep's image paths and weight set, as ``jaxstyle
    sweep`` does: ``recorded_run`` of a cell of a Python sweep was refused as "not a
    jaxstyle run record (no inputs and settings)" before."""
    r = adam_grid
    want = {"content": pair[0], "styles": [pair[1]], "init": "content", "mask": None}
    assert r.inputs == want and r.weights == vgg_weights.name
    jaxstyle.write_sweep(r, tmp_path)
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert record["inputs"] == want and record["weights"] == vgg_weights.name
    run = jaxstyle.recorded_run(tmp_path / cell_files(r.cells, r.axes)[2])
    assert (run["content"], run["style"]) == (pair[0], [pair[1]])
    cell = r.cell_settings(2)
    assert {k: run[k] for k in ("size", "steps", "optimizer", *AXES)} == {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(cell).items()
        if k in ("size", "steps", "optimizer", *AXES)
    }


def test_a_failed_write_leaves_no_partial_sweep(adam_grid, tmp_path, monkeypatch):
    """A write failing midway (a full disk) removes the files it had created, so that
    the same sweep can be written again instead of being refused by its own files."""
    r, out = adam_grid, tmp_path / "sweep"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    save = jaxstyle.images.save_image
    calls = []

    def failing(path, image, **options):
        calls.append(path)
        if len(calls) == 2:
            raise jaxstyle.JaxstyleError(f"cannot write {path}: No space left on device")
        return save(path, image, **options)

    monkeypatch.setattr(jaxstyle.images, "save_image", failing)
    with pytest.raises(jaxstyle.JaxstyleError, match="No space left.*can run again"):
        jaxstyle.write_sweep(r, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    monkeypatch.undo()
    assert len(jaxstyle.write_sweep(r, out)) == len(r.cells) + 3


def test_cli_sweep_writes_a_directory(pair, tmp_path, capsys):
    out = tmp_path / "new" / "grid"
    args = ["--size", "64", "--steps", "3", "--optimizer", "adam", "-q", "--init", "noise"]
    axes = ["--style-weight", "1e2,1e3", "--seed", "0,1"]  # the 4-cell shape: no new compile
    assert main(["sweep", *pair, "-o", str(out), *args, *axes]) == 0
    record = json.loads((out / "sweep.json").read_text())
    assert record["axes"] == {"style_weight": [100.0, 1000.0], "seed": [0, 1]}
    assert record["inputs"]["content"] == pair[0] and record["settings"]["init"] == "noise"
    files = [c["file"] for c in record["cells"]]
    assert files[1].endswith("_style100_tv0.001_seed1.png") and len(files) == 4
    assert all((out / f).is_file() for f in [*files, "grid.png", "sweep.csv"])
    assert "wrote 4 cells" in capsys.readouterr().out
    png = np.asarray(Image.open(out / files[1]), np.int16)
    (out / files[1]).unlink()  # one cell deleted: not "nothing to do", but redone
    # in runs of 3 cells (the same sweep: each cell's result the same, to rounding)
    assert main(["sweep", *pair, "-o", str(out), *args, *axes, "--batch-size", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"this finished sweep but not {files[1]}: running it again" in printed
    assert "wrote 4 cells" in printed and "in 2 runs of 3 cells)" in printed
    assert json.loads((out / "sweep.json").read_text())["batch_size"] == 3
    assert "batch_size" not in record  # all at once
    again = np.asarray(Image.open(out / files[1]), np.int16)
    assert np.abs(again - png).max() <= 1


def test_cli_sweep_from_noise_refuses_another_content_and_keeps_users_files(pair, tmp_path, capsys):
    """From noise the starting images do not depend on the content image, so the
    record must name it: rerun with another content (tubingen mirrored, the same
    shape) into a finished sweep's directory, it is refused, not taken as done.
    A sweep.csv (or sweep.json) that the user put in a new directory is never
    overwritten."""
    args = ["--size", "64", "--steps", "3", "--optimizer", "adam", "-q", "--init", "noise"]
    axes = ["--style-weight", "1e2,1e3", "--seed", "0,1"]  # the 4-cell shape: no new compile
    mirrored = tmp_path / "mirrored.png"
    Image.open(pair[0]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    out = tmp_path / "grid"
    assert main(["sweep", *pair, "-o", str(out), *args, *axes]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["sweep", str(mirrored), pair[1], "-o", str(out), *args, *axes]) == 2
    assert "other settings" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before

    for name in ("sweep.csv", "sweep.json"):
        mine = tmp_path / name.replace(".", "_") / name
        mine.parent.mkdir()
        mine.write_text("my own notes\n")
        assert main(["sweep", *pair, "-o", str(mine.parent), *args, *axes]) == 2
        assert f"{name} exists; not overwriting it" in capsys.readouterr().err
        assert mine.read_text() == "my own notes\n" and os.listdir(mine.parent) == [name]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--style-weight", "1e2,-1"], "style weight"),
        (["--style-weight", "1e2,1e2"], "repeat"),
        (["--seed", "0,x"], "comma-separated"),
        (["--seed", "0,1.5"], "comma-separated list of integers without empty items, got '0,1.5'"),
        (["--style-weight", "1e2;1e3"], "list of numbers without empty items, got '1e2;1e3'"),
        (["--seed", "0,1"], "a seed axis needs init noise"),
        (["--seed", "0,1", "--init", "FILE"], "every seed gives the same image"),
        (["--style-layer-weights", "1,1,1,1,1;1,1"], "style layer weights"),
        (["-o", "FILE"], "is a file"),
        (["-o", "NEW.png"], "would be a directory (of images and their records), not an image"),
    ],
)
def test_cli_sweep_errors_are_one_line_exit_2(pair, tmp_path, capsys, extra, needle):
    target = tmp_path / "taken.png"
    target.write_bytes(b"x")
    named = {"FILE": str(target), "NEW.png": str(tmp_path / "grid.png")}  # a new image name
    extra = [named.get(a, a) for a in extra]
    args = ["sweep", *pair, "-o", str(tmp_path / "out"), "--size", "64", "-q", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxstyle: error: ") and "\n" not in err, err
    assert needle in err, err
    assert not (tmp_path / "out").exists() and target.read_bytes() == b"x"
    assert not (tmp_path / "grid.png").exists()


def test_a_large_grids_cells_are_stacked_without_compiling(caplog):
    """``jnp.stack`` of N cells compiled an N-operand concatenation per loss weight and
    for the starting images: planning 3000 cells took 25 s, 18 s of it stacking."""
    from jaxstyle.cells import _host_stack, stack_weights
    from jaxstyle.objective import LossWeights

    n = 37  # a count no other test stacks
    weights = [
        LossWeights.create(content=i, style=1e3, tv=1e-3, style_layers=[1.0, 0.5]) for i in range(n)
    ]
    starts = [jnp.full((3, 4, 3), i / n, jnp.float32) for i in range(n)]
    with caplog.at_level("WARNING"), jax.log_compiles():
        stacked, images = stack_weights(weights), _host_stack(starts)
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()]
    assert stacked.content.shape == (n,) and stacked.style_layers.shape == (n, 2)
    assert stacked.content.dtype == np.float32 and stacked.content[5] == 5.0
    assert images.shape == (n, 3, 4, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(images[7], starts[7])


def test_seeds_are_taken_exactly():
    """Not through a float: 2**53 + 1 and 2**53 were one seed ("values repeat"), and
    a 64-bit seed given was not the one run or recorded."""
    from jaxstyle.sweep import _axis

    assert _axis("seed", [2**53 + 1, 2**53]) == [2**53 + 1, 2**53]
    assert _axis("seed", 3.0) == [3] and _axis("seed", [2**63 - 1]) == [2**63 - 1]


def test_api_errors(vgg_weights, pair):
    with pytest.raises(jaxstyle.JaxstyleError, match="no style weight values"):
        jaxstyle.sweep(*pair, weights=vgg_weights, style_weight=[])
    with pytest.raises(jaxstyle.JaxstyleError, match="content weight"):
        jaxstyle.sweep(None, pair[1], weights=vgg_weights, content_weight=[1.0, 2.0])
    with pytest.raises(jaxstyle.JaxstyleError, match="tv weight"):
        jaxstyle.sweep(*pair, weights=vgg_weights, tv_weight=[0.0, -1e-3])
    with pytest.raises(jaxstyle.JaxstyleError, match="integers"):
        jaxstyle.sweep(*pair, weights=vgg_weights, seed=[0, 1.5])
    with pytest.raises(jaxstyle.JaxstyleError, match="integers"):  # was a ValueError
        jaxstyle.sweep(*pair, weights=vgg_weights, seed=[0, float("nan")])
    with pytest.raises(jaxstyle.JaxstyleError, match="from init content every seed gives the same"):
        jaxstyle.sweep(*pair, weights=vgg_weights, seed=[0, 1], init="content")
    with pytest.raises(jaxstyle.JaxstyleError, match="must be >= 0 steps"):
        jaxstyle.sweep(*pair, weights=vgg_weights, style_weight=[1, 2], checkpoint_every=-3)
    with pytest.raises(jaxstyle.JaxstyleError, match="is a file"):
        jaxstyle.sweep(*pair, weights=vgg_weights, checkpoint_dir=pair[0], checkpoint_every=1)
    with pytest.raises(jaxstyle.JaxstyleError, match="callback_every must be >= 0"):
        jaxstyle.stylize(*pair, weights=vgg_weights, callback=print, callback_every=-1)
    # a float interval ran (called at the steps it divided), a str or None was a TypeError
    for run in (jaxstyle.stylize, jaxstyle.sweep):
        for every in (1.5, "2", None, True):
            with pytest.raises(jaxstyle.JaxstyleError, match="callback_every must be an integer"):
                run(*pair, weights=vgg_weights, callback=print, callback_every=every)
            with pytest.raises(jaxstyle.JaxstyleError, match="checkpoint every must be an integer"):
                run(*pair, weights=vgg_weights, checkpoint_every=every)


@pytest.mark.parametrize(
    "starts, given", [([], "0 image"), ([np.zeros((8, 8, 3))] * 3, "3 image"), (5, "int")]
)
def test_starts_must_be_one_image_per_cell(tmp_path, starts, given):
    """Too few was an IndexError, too many were ignored, once the weights had loaded (here
    there are none, nor images)."""
    with pytest.raises(
        jaxstyle.JaxstyleError, match=rf"starts must be one image per cell \(2\), not {given}"
    ):
        plan_sweep(
            "missing.jpg", "missing.jpg", weights=tmp_path, content_weight=[1, 5], starts=starts
        )


def test_a_plans_run_refuses_a_bad_callback_before_it_runs(vgg_weights, pair):
    """The live view's way (README): a callback that is not callable failed at its first
    call, after the compile; a negative interval called it on every step."""
    plan = plan_sweep(*pair, weights=vgg_weights, devices=jax.devices()[:1], **LBFGS)
    with pytest.raises(
        jaxstyle.JaxstyleError, match="callback must be a function or None, not int"
    ):
        plan.run(callback=5, callback_every=1)
    with pytest.raises(jaxstyle.JaxstyleError, match="callback_every must be >= 0"):
        plan.run(callback=print, callback_every=-1)


SHARDED = textwrap.dedent(
    """
    import json, os, sys
    import jax
    jax.config.update("jax_compilation_cache_dir", os.environ["JAXSTYLE_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    import numpy as np
    import jaxstyle
    from jaxstyle.sweep import plan_sweep

    content, style, settings, out = sys.argv[1:]
    plan = plan_sweep(content, style, weights=jaxstyle.load_vgg19(), **json.loads(settings))
    run = plan.advance(plan.init(), plan.steps)
    result = plan.finish(run.carry, run.history)
    np.savez(
        out,
        device_count=jax.device_count(),
        padded=plan.padded,
        x0_devices=len(plan.x0.sharding.device_set),
        carry_devices=len(run.carry.image.sharding.device_set),
        shard_rows=[s.data.shape[0] for s in run.carry.image.addressable_shards],
        result_devices=len(result.devices),
        images=result.images,
        **{"final_" + k: v for k, v in result.final.items()},
    )
    """
)


def test_sharded_over_4_cpu_devices_equals_unsharded(pair, lbfgs_grid, tmp_path):
    """The 3 L-BFGS cells (not divisible by 4) on 4 host devices, in a subprocess,
    against the 1-device run of this process."""
    single, _ = lbfgs_grid
    out = tmp_path / "sharded.npz"
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=4",
    }
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED, *pair, json.dumps(LBFGS), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = np.load(out)
    assert r["device_count"] == 4 and r["padded"] == 4 and r["result_devices"] == 4
    assert r["x0_devices"] == 4 and r["carry_devices"] == 4 and list(r["shard_rows"]) == [1] * 4
    assert r["images"].shape == single.images.shape
    np.testing.assert_allclose(r["images"], single.images, rtol=0, atol=LBFGS_IMAGE_ATOL)
    for name, values in single.final.items():
        np.testing.assert_allclose(r["final_" + name], values, rtol=LBFGS_LOSS_RTOL)


def test_coarse_to_fine_cells_equal_coarse_to_fine_runs_and_take_up_finished_passes(
    vgg_weights, pair, tmp_path
):
    """Each cell runs the 32 px pass (2 steps), then the 64 px one (3) from its
    own result upsampled, as ``stylize`` does. With a checkpoint, a finished pass
    keeps its last state: a rerun over the same checkpoints takes pass 0 up and
    resumes pass 1 from its step-2 checkpoint, and gets the same cells."""
    run = dict(size=SIZE, steps=3, optimizer="adam", coarse_to_fine=32, seed=[0, 1], init="noise")
    run["coarse_to_fine_steps"] = 2  # then steps (3) at 64 px
    checkpoint = Checkpointing(tmp_path / "ckpt", {}, every=2)
    plan = plan_sweep(*pair, weights=vgg_weights, **run)
    assert plan.settings.size == SIZE and plan.later == ((SIZE, 3),) and plan.x0.shape[1] == 24
    grid = plan.run(checkpoint=checkpoint)
    assert grid.images.shape == (2, 48, 64, 3) and grid.history["total"].shape == (2, 5)
    assert grid.settings.coarse_to_fine == (32,) and grid.settings.size == SIZE
    for i in range(2):
        alone = jaxstyle.stylize(*pair, weights=vgg_weights, **{**run, "seed": i})
        np.testing.assert_allclose(grid.images[i], alone.image, atol=IMAGE_ATOL)
        np.testing.assert_allclose(grid.history["total"][i], alone.history["total"], rtol=LOSS_RTOL)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["pass0", "pass1"]
    again = plan_sweep(*pair, weights=vgg_weights, **run).run(checkpoint=checkpoint)
    assert again.resumed_from == 2 + 2
    np.testing.assert_array_equal(again.images, grid.images)
    np.testing.assert_array_equal(again.history["total"], grid.history["total"])
    other = plan_sweep(*pair, weights=vgg_weights, **{**run, "style_weight": 7.0})
    with pytest.raises(jaxstyle.JaxstyleError, match="written by a run with other"):
        other.run(checkpoint=checkpoint)


def test_coarse_to_fine_callback_shows_every_pass_in_the_results_colours(vgg_weights, pair):
    """With preserve_colors luminance the cells are optimised on the luminance and
    take the content's chroma back: the callback shows the first pass's images
    with it too (as the last pass's), not as optimised."""
    from jaxstyle.colors import rgb_to_yiq

    run = dict(size=SIZE, steps=3, optimizer="adam", coarse_to_fine=32, seed=[0, 1], init="noise")
    plan = plan_sweep(*pair, weights=vgg_weights, preserve_colors="luminance", **run)
    seen = []
    result = plan.run(callback=lambda step, _, im: seen.append((step, im)), callback_every=3)
    assert [(step, images.shape[1]) for step, images in seen] == [(3, 24), (6, 48)]
    (_, first), (_, last) = seen
    chroma = np.abs(np.asarray(rgb_to_yiq(first)) - np.asarray(rgb_to_yiq(plan.original)))[..., 1:]
    assert chroma.mean() < 1e-3  # the content's chroma, but where clipped to [0, 1]
    np.testing.assert_array_equal(last, result.images)


def test_a_coarse_to_fine_run_stopped_names_the_pass_it_was_in(
    vgg_weights, pair, tmp_path, monkeypatch, sigterm_after
):
    """A signal in a later pass said "at step 2 of 3" of that pass alone (the run has
    5 steps, and a rerun says "resumed at step 4"): it now names the pass too."""
    from jaxstyle import cells

    run = dict(size=SIZE, steps=3, optimizer="adam", coarse_to_fine=32, seed=[0, 1], init="noise")
    run["coarse_to_fine_steps"] = 2  # the shapes of the test above
    monkeypatch.setattr(cells, "stop_requests", lambda: sigterm_after(3))  # each pass's 3rd poll
    plan = plan_sweep(*pair, weights=vgg_weights, **run)
    with pytest.raises(jaxstyle.Interrupted, match=r"at step \d of 3 of pass 2 of 2; saved"):
        plan.run(checkpoint=Checkpointing(tmp_path / "ckpt", {}, every=1))


def test_cli_coarse_to_fine_sweep_records_its_passes(pair, tmp_path, capsys):
    out = tmp_path / "grid"
    args = ["sweep", *pair, "-o", str(out), "--size", str(SIZE), "--steps", "3", "-q"]
    args += ["--optimizer", "adam", "--style-weight", "1e2,1e3", "--coarse-to-fine", "32"]
    assert main(args) == 0
    record = json.loads((out / "sweep.json").read_text())
    assert record["settings"]["coarse_to_fine"] == [32]
    assert [len(c["history"]["total"]) for c in record["cells"]] == [6, 6]
    assert not (out / ".jaxstyle-checkpoint").exists()
    capsys.readouterr()
    assert main(args) == 0 and "nothing to do" in capsys.readouterr().out
    assert main([*args[:-2], "--coarse-to-fine", "48"]) == 2


BLENDS = [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
BLEND = dict(size=SIZE, steps=3, optimizer="adam", style_blend=BLENDS)  # test_cli's too


@pytest.fixture(scope="module")
def styles(shared_image, pair):
    return [pair[1], str(shared_image("the_scream.jpg"))]


@pytest.fixture(scope="module")
def blend_plan(vgg_weights, pair, styles):
    """The interpolation between two styles, 3 cells."""
    return plan_sweep(pair[0], styles, weights=vgg_weights, **BLEND)


@pytest.fixture(scope="module")
def blend_grid(blend_plan):
    return blend_plan.run()


def test_blend_axis_cells_equal_single_runs_with_their_blend(vgg_weights, pair, styles, blend_grid):
    r = blend_grid
    assert [c["style_blend"] for c in r.cells] == BLENDS and r.axes == {"style_blend": BLENDS}
    assert np.abs(r.images[0] - r.images[2]).mean() > 1e-2  # one style, then the other
    for i in range(3):
        single = single_run(vgg_weights, (pair[0], styles), r.cell_settings(i))
        assert_cell_equals_single_run(r, i, single)


def test_blend_axis_targets_are_compute_targets_with_each_cells_blend(
    vgg_weights, pair, styles, blend_plan
):
    """Each style image's Grams once (kept in the target cache, as for one mask per
    style), then each cell's blend of them: what ``compute_targets`` gives that blend."""
    from jaxstyle import target_cache
    from jaxstyle.inputs import prepare_images
    from jaxstyle.objective import compute_targets

    plan = blend_plan
    content, images, _ = prepare_images(pair[0], styles, plan.settings)
    assert plan.per_cell_targets
    for i, blend in enumerate(BLENDS):
        expected = compute_targets(vgg_weights, plan.objective, content, images, blend=blend)
        for kind in ("content", "style"):
            for layer, target in getattr(expected, kind).items():
                np.testing.assert_array_equal(getattr(plan.args.targets, kind)[layer][i], target)
    key = target_cache.key(vgg_weights, plan.objective, content, images, "separate", (48, 64))
    cached = target_cache.load(key)
    assert cached is not None and cached.style["relu1_1"].shape == (2, 64, 64)


def test_blend_axis_coarse_to_fine_replans_each_pass_with_the_blends(vgg_weights, pair, styles):
    """A coarse-to-fine pass after the first is planned from the given arguments: the
    blend axis with them (each cell its own targets at the pass's size)."""
    plan = plan_sweep(pair[0], styles, weights=vgg_weights, **BLEND, coarse_to_fine=32)
    assert plan.per_cell_targets and plan.x0.shape == (3, 24, 32, 3)
    later = plan.replan(*plan.later[0], np.asarray(plan.x0))
    assert later.per_cell_targets and later.cells == plan.cells and later.x0.shape[1:3] == (48, 64)
    grams = later.args.targets.style["relu1_1"]
    assert grams.shape == (3, 64, 64) and not np.allclose(grams[0], grams[2])


@pytest.mark.parametrize(
    "grid,axis,file,labels,values",
    [
        (
            "blend_grid",
            "style_blend",
            "_tv0.001_blend0.5-0.5_seed0.png",
            ["blend 1,0", "blend 0.5,0.5", "blend 0,1"],
            ["1,0", "0.5,0.5", "0,1"],
        ),
        (
            "scale_grid",
            "style_scale",
            "_tv0.001_scale1_seed0.png",
            ["scale 0.5", "scale 1", "scale 2"],
            ["0.5", "1.0", "2.0"],
        ),
    ],
)
def test_write_sweep_names_the_swept_blend_or_scale(
    request, tmp_path, monkeypatch, grid, axis, file, labels, values
):
    """Files, grid labels, sweep.json and sweep.csv name the swept blend or scale."""
    from jaxstyle import sweep_output

    drawn = []
    labelled_grid = sweep_output.labelled_grid

    def labelled(images, rows, columns, **options):
        drawn.append((rows, columns))
        return labelled_grid(images, rows, columns, **options)

    monkeypatch.setattr(sweep_output, "labelled_grid", labelled)
    r = request.getfixturevalue(grid)
    jaxstyle.write_sweep(r, tmp_path)
    files = cell_files(r.cells, r.axes)
    assert files[1].endswith(file), files
    assert drawn == [([""], labels)]
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert record["axes"] == json.loads(json.dumps(r.axes)) and list(r.axes) == [axis]
    assert axis not in record["settings"]
    assert record["cells"][1][axis] == json.loads(json.dumps(r.cells[1][axis]))
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [row[axis] for row in rows] == values


def test_values_that_print_alike_get_names_and_labels_of_their_own(monkeypatch):
    """%g prints 6 digits: style weights 1e6 and 1000001 were both ``style1e+06``, so
    every file got a ``cellNNN_`` prefix, the contact sheet two columns "style 1e+06"
    and the CSV's layer weights 0.123457 for 0.1234567. Such an axis is written in full,
    the others (here the layer weights) as %g, and the CSV's tuples in full."""
    from jaxstyle import sweep_output

    layers = (1 / 3, 1.0)
    axes = {"style_weight": [1e6, 1000001.0], "style_layer_weights": [layers, (1.0, 1.0)]}
    fixed = {**dict.fromkeys(AXES, 1.0), "style_blend": None, "seed": 0}
    cells = [
        {**fixed, "style_weight": w, "style_layer_weights": layers} for w in axes["style_weight"]
    ]
    assert cell_files(cells, axes) == [
        "content1_style1e+06_tv1_layers0.333333-1_seed0.png",
        "content1_style1000001.0_tv1_layers0.333333-1_seed0.png",
    ]
    drawn = []
    monkeypatch.setattr(sweep_output, "labelled_grid", lambda _, *names, **o: drawn.append(names))
    sweep_output.contact_sheet(
        np.zeros((2, 1, 1, 3)), cells, {"style_weight": axes["style_weight"]}
    )
    assert drawn == [([""], ["style 1e+06", "style 1000001.0"])]
    exact = sweep_output.format_value((0.1234567, 0.5, 1e-3), exact=True)
    assert exact == "0.1234567,0.5,0.001" and sweep_output.format_value((0.1234567,)) == "0.123457"


@pytest.mark.parametrize(
    "blend,needle",
    [
        (
            "1,0,1;0,1",
            r"style blend weights must be one per style image \(2\), each >= 0, sum > 0; not 1,0,1",
        ),
        ("0,0;0,1", "sum > 0; not 0,0"),
        ("1,0;-1,2", "style blend weights must be finite and >= 0"),
        ("1,0;1,0", r"style blend values repeat: \[\(1.0, 0.0\), \(1.0, 0.0\)\]"),
        ("1,0;0.5,0.5;2,0", r"style blends 1,0 and 2,0 are one blend \(the weights are normal"),
        ("1,0;0,1 --preset cnnmrf", "an MRF style loss matches the style images' patches together"),
    ],
)
def test_bad_blend_axes_are_one_line_before_the_weights_load(
    pair, styles, tmp_path, capsys, blend, needle
):
    """From the command line (exit 2) and from Python; the weights directory is empty,
    so an error after loading would be another one."""
    blend, *more = blend.split()
    args = ["sweep", pair[0], *styles, "-o", str(tmp_path / "out"), "--size", "64", "-q"]
    assert main([*args, "--weights", str(tmp_path), "--style-blend", blend, *more]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxstyle: error: ") and "\n" not in err, err
    assert re.search(needle, err), err
    assert not (tmp_path / "out").exists()
    axis = [tuple(map(float, row.split(","))) for row in blend.split(";")]
    preset = {"preset": more[1]} if more else {}
    with pytest.raises(jaxstyle.JaxstyleError, match=needle):
        plan_sweep("missing.jpg", ["a.jpg", "b.jpg"], weights=tmp_path, style_blend=axis, **preset)


def test_blend_axis_refuses_one_mask_per_style(vgg_weights, pair, styles):
    masks = [np.ones((8, 8)), np.ones((8, 8))]
    with pytest.raises(jaxstyle.JaxstyleError, match="styles with a mask each are not blended"):
        plan_sweep(pair[0], styles, weights=vgg_weights, mask=masks, **BLEND)


SCALES = [0.5, 1.0, 2.0]  # starry_night at 64 px: 32x20, 64x40, 128x80
SCALE = dict(size=SIZE, steps=3, optimizer="adam", style_scale=SCALES)  # test_cli's too


@pytest.fixture(scope="module")
def scale_plan(vgg_weights, pair):
    """The style at three scales, 3 cells (BLEND's programs)."""
    return plan_sweep(*pair, weights=vgg_weights, **SCALE)


@pytest.fixture(scope="module")
def scale_checkpoint(tmp_path_factory):
    return tmp_path_factory.mktemp("scale") / "checkpoint"


@pytest.fixture(scope="module")
def scale_grid(scale_plan, scale_checkpoint):
    """The run of ``scale_plan``, its state saved after step 2 in ``scale_checkpoint``."""
    return scale_plan.run(checkpoint=scale_plan.checkpointing(scale_checkpoint, 2))


def test_scale_axis_cells_equal_single_runs_with_their_scale(vgg_weights, pair, scale_grid):
    r = scale_grid
    assert [c["style_scale"] for c in r.cells] == SCALES and r.axes == {"style_scale": SCALES}
    assert np.abs(r.images[0] - r.images[2]).mean() > 1e-2  # small strokes, then large
    for i in range(3):
        assert_cell_equals_single_run(r, i, single_run(vgg_weights, pair, r.cell_settings(i)))


def test_scale_axis_targets_are_compute_targets_at_each_cells_scale(vgg_weights, pair, scale_plan):
    """Each scale's style images, and their Grams; the content's features every cell's."""
    from jaxstyle.inputs import prepare_images
    from jaxstyle.objective import compute_targets

    plan = scale_plan
    assert plan.per_cell_targets
    sides = []
    for i, scale in enumerate(SCALES):
        settings = dataclasses.replace(plan.settings, style_scale=scale)
        content, images, _ = prepare_images(*pair, settings)
        sides.append(images[0].shape[:2])
        expected = compute_targets(vgg_weights, plan.objective, content, images)
        for kind in ("content", "style"):
            for layer, target in getattr(expected, kind).items():
                np.testing.assert_array_equal(getattr(plan.args.targets, kind)[layer][i], target)
    assert sides == [(20, 32), (40, 64), (80, 128)]


def test_scale_axis_resumes_its_own_checkpoint_and_refuses_other_scales(
    vgg_weights, pair, scale_grid, scale_checkpoint
):
    """The cells hold their scale: the same sweep resumes from step 2 (to the same
    images), the same scales in another order are another sweep (its cells and
    style images differ)."""
    again = plan_sweep(*pair, weights=vgg_weights, **SCALE)
    resumed = again.run(checkpoint=again.checkpointing(scale_checkpoint, 2))
    assert resumed.resumed_from == 2
    np.testing.assert_array_equal(resumed.images, scale_grid.images)
    other = plan_sweep(*pair, weights=vgg_weights, **{**SCALE, "style_scale": SCALES[::-1]})
    with pytest.raises(
        jaxstyle.JaxstyleError,
        match="differing: cells' weights, style scales, blends or seeds, styles",
    ):
        other.run(checkpoint=other.checkpointing(scale_checkpoint, 2))


def test_scale_and_blend_axes_cells_equal_single_runs_with_both(vgg_weights, pair, styles):
    """2 scales x 2 blends: each scale's Grams of each style once, blended per cell."""
    blends = [(1.0, 0.0), (0.0, 1.0)]
    r = jaxstyle.sweep(
        pair[0],
        styles,
        weights=vgg_weights,
        **{**BLEND, "style_blend": blends},
        style_scale=[0.5, 2.0],
    )
    assert [(c["style_scale"], c["style_blend"]) for c in r.cells] == [
        (0.5, blends[0]),
        (0.5, blends[1]),
        (2.0, blends[0]),
        (2.0, blends[1]),
    ]
    assert r.axes == {"style_scale": [0.5, 2.0], "style_blend": blends}
    for i in range(4):
        single = single_run(vgg_weights, (pair[0], styles), r.cell_settings(i))
        assert_cell_equals_single_run(r, i, single)


def test_scale_axis_coarse_to_fine_replans_each_pass_with_the_scales(vgg_weights, pair, scale_plan):
    """A coarse-to-fine pass after the first is planned with the scale axis too: each
    cell its scale's targets at the pass's size (scale_plan's cells 1 and 2)."""
    scales = {**SCALE, "style_scale": SCALES[1:]}  # 0.5 at 32 px: 16x10, too small
    plan = plan_sweep(*pair, weights=vgg_weights, **scales, coarse_to_fine=32)
    assert plan.per_cell_targets and plan.x0.shape == (2, 24, 32, 3)
    later = plan.replan(*plan.later[0], np.asarray(plan.x0))
    assert later.per_cell_targets and later.cells == plan.cells and later.x0.shape[1:3] == (48, 64)
    for layer, grams in later.args.targets.style.items():
        np.testing.assert_array_equal(grams, scale_plan.args.targets.style[layer][1:])


@pytest.mark.parametrize(
    "scale,needle",
    [
        (
            "0.25,1",
            r"the style image is 16x10 px after resizing to 64 px x style scale 0.25; relu5_1",
        ),
        ("1,0.5,1", r"style scale values repeat: \[1.0, 0.5, 1.0\]"),
        ("1,-2", "style scale must be finite and > 0"),
        ("1,2 --preset cnnmrf", "an MRF style loss has as many style patches as"),
        ("1,2 --texture", "a style scale axis needs a content image"),
        ("1,x", "expected a comma-separated list"),
    ],
)
def test_bad_scale_axes_are_one_line_before_the_weights_load(pair, tmp_path, capsys, scale, needle):
    """From the command line (exit 2) and from Python; the weights directory is empty,
    so an error after loading would be another one."""
    scale, *more = scale.split()
    images = pair[1:] if more == ["--texture"] else pair
    args = ["sweep", *images, "-o", str(tmp_path / "out"), "--size", "64", "-q"]
    assert main([*args, "--weights", str(tmp_path), "--style-scale", scale, *more]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxstyle: error: ") and "\n" not in err, err
    assert re.search(needle, err), err
    assert not (tmp_path / "out").exists()
    options = {"preset": more[1]} if more[:1] == ["--preset"] else {}
    content = None if more == ["--texture"] else pair[0]
    axis = scale.split(",")
    if "x" not in axis:
        axis = [float(x) for x in axis]
    needle = "style scale values must be numbers" if "x" in axis else needle
    with pytest.raises(jaxstyle.JaxstyleError, match=needle):
        plan_sweep(content, pair[1], weights=tmp_path, size=64, style_scale=axis, **options)


def test_winograd_scale_axis_prepares_the_kernels_of_every_scales_style(vgg_weights, pair):
    """Each scale's style images are other shapes, whose targets read their own
    Winograd tilings: at scale 4 (256x160 px) block 3 reads F(4x4), which neither the
    cells (48x64) nor the style at scale 1 (64x40) read; the plan stores it, and the
    targets computed with the plan's kernels (a missing one would be refused)."""
    plan = plan_sweep(
        *pair,
        weights=vgg_weights,
        devices=jax.devices()[:1],
        **{**SCALE, "style_scale": [1.0, 4.0]},
        conv_algorithm="winograd",
    )
    assert plan.per_cell_targets and plan.x0.shape == (2, 48, 64, 3)
    block3 = [f"conv3_{i}" for i in range(1, 5)]
    stored = {name: sorted(ks) for name, ks in plan.args.vgg.winograd.items()}
    assert all(stored[name] == ["f2", "f4"] for name in block3), stored
