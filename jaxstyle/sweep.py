"""``sweep``: a grid of loss weights, style scales, style blends and seeds as one compiled,
vmapped, sharded optimisation.

Cells are the Cartesian product of the axes in :data:`AXES` order, the last
axis varying fastest (``itertools.product``). The cells run as one
:class:`~jaxstyle.cells.CellPlan`: vmapped (each cell with its own iterate,
optimiser state and L-BFGS line search), sharded over the devices, resumable
from checkpoints. Content and style targets are computed once and shared by
all cells (not batched); J and ∇J come from
:func:`jaxstyle.batching.shared_loss_fn`, which keeps the VGG weights and targets
unbatched even inside optax's per-cell ``lax.cond``. A style scale or blend axis
is the exception: the targets are computed once per scale (each style image's
Grams, blended per cell by :func:`jaxstyle.objective.blend_grams` on a blend
axis), so each cell holds its own targets (the content features and its Grams: a
few MB per cell).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxstyle.batching import cells_at_once
from jaxstyle.cells import (
    CellPlan,
    CellsResult,
    cell_groups,
    cell_mesh,
    join_cells,
    join_passes,
)
from jaxstyle.errors import Interrupted, JaxstyleError, signal_of, stopped_by
from jaxstyle.inputs import (
    ImageLike,
    initial_image,
    output_shape,
    prepare_images,
    prepare_mask,
    restore_colors,
    style_list,
    texture_overrides,
)
from jaxstyle.objective import Targets, blend_grams, blend_weights
from jaxstyle.optimize import choose_driver, to_host
from jaxstyle.paths import user_path
from jaxstyle.presets import DEFAULT_PRESET, get_preset
from jaxstyle.resume import (
    STEP,
    Checkpointing,
    array_digest,
    as_json,
    check_callback,
    recorded_fingerprint,
)
from jaxstyle.settings import Settings, check_batch_size, check_every, resolve_settings
from jaxstyle.split_image import ROWS
from jaxstyle.stylize import prepare_targets, recorded_inputs
from jaxstyle.weights import VGG19Weights, load_vgg19

AXES = (
    "content_weight",
    "style_weight",
    "tv_weight",
    "style_layer_weights",
    "style_scale",
    "style_blend",
    "seed",
)
"""The sweepable settings, in cell order (the last varies fastest)."""


@dataclasses.dataclass(kw_only=True)
class SweepResult(CellsResult):
    """What :func:`sweep` returns: a :class:`~jaxstyle.cells.CellsResult` of N cells
    (images (N, H, W, 3), history and final losses per cell, timings, devices) and

    Attributes:
      cells: N dicts {axis: value} with every :data:`AXES` value of the cell
        (``style_layer_weights`` a tuple, ``style_scale`` a float, ``style_blend``
        a tuple or None), in cell order.
      axes: {axis: values} of the swept axes only (more than one value), in
        :data:`AXES` order.
      settings: the shared settings; its :data:`AXES` fields are cell 0's
        (see :meth:`cell_settings`).
      inputs, weights: the images' paths and the weight set's name, as
        :class:`jaxstyle.StylizeResult`'s, which :func:`jaxstyle.write_sweep` records so
        that :func:`jaxstyle.recorded_run` of a cell runs it again.
      batch_size: the cells run together, one run after another (None: all at once).
    """

    cells: list[dict[str, Any]]
    axes: dict[str, list]
    settings: Settings
    inputs: dict[str, Any] | None = None
    weights: str | None = None
    batch_size: int | None = None

    def cell_settings(self, i: int) -> Settings:
        """Every setting of cell ``i``: what a single ``stylize`` run of it would use."""
        return dataclasses.replace(self.settings, **self.cells[i])


def _axis(name: str, value: Any) -> list:
    """The values of one axis: a scalar (for style layer weights and style blend, one
    tuple) or a list."""
    if value is None:
        return [None]
    try:
        if name in ("style_layer_weights", "style_blend"):
            items = list(value)
            rows = [items] if not items or np.ndim(items[0]) == 0 else items
            values: list[Any] = [tuple(float(w) for w in row) for row in rows]
        elif name == "seed":  # exactly, not through a float (53 bits; a seed has 64)
            given = value if np.ndim(value) else [value]
            items = [v if isinstance(v, Integral) else float(v) for v in given]
            if not all(isinstance(v, Integral) or v.is_integer() for v in items):
                raise JaxstyleError("seeds must be integers")
            values = [int(v) for v in items]
        else:
            values = [float(v) for v in (value if np.ndim(value) else [value])]
    except (TypeError, ValueError):
        raise JaxstyleError(f"{name.replace('_', ' ')} values must be numbers") from None
    if not values:
        raise JaxstyleError(f"no {name.replace('_', ' ')} values to sweep")
    if len(set(values)) < len(values):
        raise JaxstyleError(f"{name.replace('_', ' ')} values repeat: {values}")
    return values


@dataclasses.dataclass(kw_only=True)
class SweepPlan(CellPlan):
    """A prepared sweep: the cells' :class:`~jaxstyle.cells.CellPlan` (shared targets;
    each cell's own with a style scale or blend axis) and what they are: resolved cells,
    swept axes, shared settings, a ``fingerprint`` of the whole sweep (settings,
    weights, images) for checkpoints, and the content whose chroma the results
    take back (see :attr:`jaxstyle.inputs.Images.original`). A coarse-to-fine
    sweep's plan is its first pass's: ``later`` are the (size, steps) of the
    passes after it, and ``replan(size, steps, images)`` plans one of them from
    the (N, h, w, 3) images the pass before left (see :func:`plan_sweep`);
    ``settings`` are the sweep's as asked (cell 0's, every pass's sizes);
    ``inputs`` as :attr:`SweepResult.inputs`; ``batch_size``: the cells run
    together (None: all; see :meth:`cell_runs`)."""

    cells: list[dict[str, Any]]
    axes: dict[str, list]
    settings: Settings
    fingerprint: dict
    inputs: dict[str, Any] | None = None
    original: np.ndarray | None = None
    later: tuple[tuple[int, int], ...] = ()
    replan: Callable[[int, int, np.ndarray], SweepPlan] | None = None
    batch_size: int | None = None

    def cell_runs(self) -> list[tuple[int, int]]:
        """The (start, stop) of each run of cells optimised together, one after
        another: one run of all cells, or runs of ``batch_size`` (rounded up to a
        multiple of the device groups; the last padded to it), each the same
        compiled program, for grids larger than the devices' memory."""
        size = cells_at_once(self.n, self.batch_size, cell_groups(self.mesh))
        return [(start, min(start + size, self.n)) for start in range(0, self.n, size)]

    def checkpointing(self, directory: os.PathLike | str, every: int = 0) -> Checkpointing:
        """Checkpoints of this sweep in ``directory``, every ``every`` steps (0: on
        SIGTERM/SIGINT only)."""
        return Checkpointing(Path(directory), self.fingerprint, every)

    def run(
        self,
        *,
        checkpoint: Checkpointing | None = None,
        callback: Callable[[int, dict, np.ndarray], None] | None = None,
        callback_every: int = 0,
        **options: Any,
    ) -> SweepResult:
        """Run the sweep (every pass of a coarse-to-fine one) and finish; see
        :meth:`CellPlan.run` for ``driver``, ``progress``, ``desc``, ``checkpoint``
        and ``callback``, which is called after every ``callback_every``-th step of
        each pass, with the images in the result's colours and the steps numbered
        on over the passes.

        A coarse-to-fine sweep keeps pass i's checkpoints in ``pass<i>`` under
        the checkpoint's directory, a finished pass's last state too, so a rerun
        takes up the passes it finished and resumes the one it was in. Its
        history covers every pass; its timings are the passes' sums. A bad
        ``callback`` or ``callback_every`` is refused before anything compiles.
        """
        check_callback("callback", callback)
        check_every("callback_every", callback_every)
        runs = len(self.cell_runs())  # every pass runs its cells in as many runs

        def run_pass(
            plan: SweepPlan, checkpoint: Checkpointing | None, done: int, stage: str = ""
        ) -> CellsResult:
            """Every run of a pass's cells, its steps numbered on from ``done`` (a
            signal's message names its ``stage``), the images as optimised (the next
            pass starts from them; colours not restored)."""
            shown, left = _shown_parts(plan, callback, callback_every)
            results = []
            raw = dataclasses.replace(plan, original=None)
            try:
                for j, (a, part, part_checkpoint) in enumerate(raw._parts(checkpoint)):
                    result = CellPlan.run(
                        part,
                        checkpoint=part_checkpoint,
                        **shown(a, a + part.n, done + j * plan.steps),
                        stage=stage,
                        **options,
                    )
                    left(a, result)  # shown as it ended, also where taken up from its checkpoint
                    results.append(result)
            except KeyboardInterrupt as err:  # between runs (in a run: Interrupted, saved)
                if checkpoint is None or not results:
                    raise
                signum = signal_of(err)
                raise Interrupted(
                    f"{stopped_by(signum)} between runs of cells{stage}; the {len(results)} "
                    f"finished run(s) are kept in {checkpoint.directory}: rerun the same "
                    "command to resume",
                    signum,
                ) from None
            return join_cells(results)

        def finished(result: CellsResult, plan: SweepPlan) -> SweepResult:
            """The sweep's result: in ``plan``'s (the last pass's) colours."""
            assert isinstance(result, SweepResult)  # made by SweepPlan.finish
            images = restore_colors(result.images, plan.original)
            return dataclasses.replace(result, images=images, settings=self.settings)

        passes = len(self.later) + 1
        if passes == 1:
            return finished(run_pass(self, checkpoint, 0), self)
        assert self.replan is not None  # plan_sweep gives one with the later passes
        plan, results = self, []
        for i in range(passes):
            pass_checkpoint = (
                None if checkpoint is None else checkpoint.for_pass(i, passes, plan.fingerprint)
            )
            stage = f" of pass {i + 1} of {passes}"  # its checkpoint's pass<i>
            result = run_pass(plan, pass_checkpoint, runs * self.settings.pass_starts[i], stage)
            results.append(result)
            if i < passes - 1:  # the next pass starts from the images as optimised
                plan = self.replan(*self.later[i], result.images)
        return finished(join_passes(results, runs), plan)

    def _parts(
        self, checkpoint: Checkpointing | None
    ) -> Iterator[tuple[int, SweepPlan, Checkpointing | None]]:
        """(first cell, plan, checkpoint) of each of :meth:`cell_runs`, the plan made
        as it is reached; a checkpoint of the cells run otherwise is refused first."""
        runs = self.cell_runs()
        if checkpoint is not None:
            _refuse_other_runs(checkpoint, runs)
        if len(runs) == 1:
            yield 0, self, checkpoint
            return
        for (start, stop), part in zip(runs, self.parts(runs), strict=True):
            part_checkpoint = (
                None if checkpoint is None else _run_checkpoint(checkpoint, start, stop)
            )
            yield start, part, part_checkpoint

    def finish(self, carry, history, timings=None) -> SweepResult:
        """The :class:`SweepResult` (padding dropped); see :meth:`CellPlan.finish`."""
        result = super().finish(carry, history, timings)
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(CellsResult)}
        fields["images"] = restore_colors(result.images, self.original)
        return SweepResult(
            **fields,
            cells=self.cells,
            axes=self.axes,
            settings=self.settings,
            inputs=self.inputs,
            weights=self.params.name,
            batch_size=self.batch_size,
        )


def _shown_parts(
    plan: SweepPlan, callback: Callable | None, every: int
) -> tuple[Callable[[int, int, int], dict], Callable[[int, CellsResult], None]]:
    """(``part``, ``left``): ``part(start, stop, done)`` gives the ``callback`` keywords
    of the run of cells ``start`` to ``stop - 1`` of a pass, its steps numbered on from
    ``done``; ``left(start, result)`` records how a run of cells ended (also one taken
    up from its checkpoint, which calls no callback). The callback is shown every cell:
    those of the other runs as they were left (not started yet: their start images
    and NaN losses), all in ``plan``'s (the result's) colours."""
    shown: dict[str, Any] = {}

    def fill(start: int, losses: dict, images: np.ndarray) -> None:
        if not shown:
            shown["images"] = np.array(to_host(plan.x0)[: plan.n])
            shown["losses"] = {k: np.full(plan.n, np.nan, np.float32) for k in losses}
        shown["images"][start : start + len(images)] = images
        for k, v in losses.items():
            shown["losses"][k][start : start + len(images)] = v

    def part(start: int, stop: int, done: int) -> dict:
        if callback is None:
            return {}

        def report(step, losses, images):
            if (start, stop) != (0, plan.n):  # one of several runs
                fill(start, losses, images)
                losses = {k: v.copy() for k, v in shown["losses"].items()}  # not kept: filled on
                images = shown["images"].copy()
            callback(done + step, losses, restore_colors(images, plan.original))

        return {"callback": report, "callback_every": every}

    def left(start: int, result: CellsResult) -> None:
        if callback is not None and len(result.images) < plan.n and result.history["total"].size:
            fill(start, {k: v[:, -1] for k, v in result.history.items()}, result.images)

    return part, left


CELL_RUN = re.compile(r"^cells\d+-\d+$")
"""The name of a run of cells' checkpoint directory (:func:`_run_checkpoint`)."""


def _run_checkpoint(checkpoint: Checkpointing, start: int, stop: int) -> Checkpointing:
    """The checkpoints of the run of cells ``start`` to ``stop - 1`` (one of several):
    in ``cells<start>-<stop - 1>`` under ``checkpoint``'s directory, its last state
    kept, so that a rerun takes up a finished run instead of running it again; its
    fingerprint is the sweep's (its ``cells`` too: their weights) and the run's bounds."""
    return Checkpointing(
        checkpoint.directory / f"cells{start}-{stop - 1}",
        {**checkpoint.fingerprint, "run": [start, stop]},
        checkpoint.every,
        final=True,
    )


def _refuse_other_runs(checkpoint: Checkpointing, runs: list[tuple[int, int]]) -> None:
    """Refuse to run while ``checkpoint``'s directory holds the state of cells run
    otherwise (with another batch size, or all at once): it would be left unused, or
    mixed in; that of another sweep (other cells, settings) as such, first."""
    directory = checkpoint.directory
    if not directory.is_dir():
        return
    one = len(runs) == 1  # its state in the directory itself
    mine = {_run_checkpoint(checkpoint, a, b).directory.name for a, b in runs}
    for path in directory.iterdir():
        theirs = CELL_RUN.match(path.name) and (one or path.name not in mine)
        if (STEP.match(path.name) and not one) or (theirs and any(path.glob("step_*"))):
            if theirs:  # its fingerprint is the sweep's and its bounds
                run = recorded_fingerprint(path / "run.json", "run")
                Checkpointing(path, {**checkpoint.fingerprint, "run": run}).check_fingerprint()
            else:  # all cells at once: the sweep's fingerprint
                checkpoint.check_fingerprint()
            raise JaxstyleError(
                f"checkpoint {directory} was written by a run with another batch size; "
                "rerun with that, or delete the checkpoint directory to start over"
            )


def plan_sweep(
    content: ImageLike | None,
    style: ImageLike | Sequence[ImageLike],
    *,
    content_weight: float | Sequence[float] | None = None,
    style_weight: float | Sequence[float] | None = None,
    tv_weight: float | Sequence[float] | None = None,
    style_layer_weights: Sequence[float] | Sequence[Sequence[float]] | None = None,
    style_scale: float | Sequence[float] | None = None,
    style_blend: Sequence[float] | Sequence[Sequence[float]] | None = None,
    seed: int | Sequence[int] | None = None,
    preset: str = DEFAULT_PRESET,
    weights: VGG19Weights | str | os.PathLike | None = None,
    mask: ImageLike | Sequence[ImageLike] | None = None,
    devices: Sequence[jax.Device] | None = None,
    split_image: bool | int = False,
    starts: Sequence[ImageLike] | None = None,
    batch_size: int | None = None,
    **settings: Any,
) -> SweepPlan:
    """Resolve and check every cell, compute the targets once, place the inputs:
    :func:`sweep` is ``plan_sweep(...).run(...)``. The plan knows its ``cells`` and
    ``axes`` before it runs, e.g. for a live view of the labelled contact sheet,
    as ``jaxstyle sweep --live`` shows it: ``plan.run(callback=view.sweep_callback(
    plan.cells, plan.axes), callback_every=N)`` (:class:`jaxstyle.LiveView`), and
    ``plan.run(checkpoint=plan.checkpointing(directory, every))`` resumes.

    Every cell's settings are checked (e.g. a negative weight, or a style blend
    without one weight per style image, raises :class:`JaxstyleError`) before
    anything is loaded, and every scale's style images (e.g. too small for VGG19)
    before the weights load. With ``coarse_to_fine`` sizes the plan is the first
    pass's, at the first size, and :meth:`SweepPlan.run` runs every pass, each
    cell starting from its own result of the pass before, upsampled (as
    :func:`jaxstyle.stylize` does).

    Args:
      content, style: as :func:`jaxstyle.stylize`.
      content_weight, style_weight, tv_weight, seed: a number (fixed) or a list
        of numbers (a swept axis).
      style_layer_weights: one tuple (one weight per style layer) or a list of
        them (an axis).
      style_scale: a number (the style images' size relative to the output:
        fixed, the targets shared) or a list of them (an axis: each scale's
        targets computed once, each cell with its scale's; not with a texture,
        whose size is its style image's, nor the MRF style loss).
      style_blend: one tuple (one weight per style image: a fixed blend, the
        targets shared) or a list of them (an axis: each style image's Grams
        computed once, blended per cell, each cell with its own targets).
      preset, weights, mask: as :func:`jaxstyle.stylize`.
      devices: the devices to shard the cells over (default: all, of every process).
      split_image: also split each cell's image by rows over this many devices
        (True: all of a process's), the cells sharded over the groups of them:
        for sweeps of fewer cells than devices, or too large for one device
        (:mod:`jaxstyle.split_image`).
      starts: one (h, w, 3) image per cell to start from, resized to the output
        (instead of ``init``; a coarse-to-fine pass starts from the last one's).
      batch_size: optimise this many cells together, one run of them after
        another (None: all at once), for grids larger than the devices' memory
        (:meth:`SweepPlan.cell_runs`; ``jaxstyle estimate --batch N`` tells what
        N cells need). Every run is the same compiled program; each cell's result
        is the same as in one run of all.
      **settings: the shared settings, as for :func:`jaxstyle.stylize`.
    """
    given: dict[str, Any] = dict(  # the arguments, for the later passes' plans
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        style_layer_weights=style_layer_weights,
        style_scale=style_scale,
        style_blend=style_blend,
        seed=seed,
        preset=preset,
        mask=mask,
        devices=devices,
        split_image=split_image,
        batch_size=batch_size,
        **settings,
    )
    if batch_size is not None:  # a Python int: the runs' bounds are in checkpoints' JSON
        batch_size = check_batch_size(batch_size)
    mesh = cell_mesh(devices, split_image)  # checked before anything is loaded
    init, texture = texture_overrides(content, settings.pop("init", None), content_weight)
    content_weight = texture.get("content_weight", content_weight)
    init_label = init if isinstance(init, str) or init is None else "image"
    grid = dict(
        content_weight=_axis("content_weight", content_weight),
        style_weight=_axis("style_weight", style_weight),
        tv_weight=_axis("tv_weight", tv_weight),
        style_layer_weights=_axis("style_layer_weights", style_layer_weights),
        style_scale=_axis("style_scale", style_scale),
        style_blend=_axis("style_blend", style_blend),
        seed=_axis("seed", seed),
    )

    def resolve_cells(**fixed) -> list[Settings]:
        values = itertools.product(*grid.values())
        shared = {**settings, **fixed}
        return [
            resolve_settings(preset, init=init_label, **shared, **dict(zip(AXES, v, strict=True)))
            for v in values
        ]

    whole = resolve_cells()  # the sweep as asked (every pass's size, if coarse-to-fine)
    cells = [{name: getattr(s, name) for name in AXES} for s in whole]
    axes = {name: values for name, values in grid.items() if len(values) > 1}
    passes = whole[0].passes
    # the first pass's settings (each resolved at its size: the convolution algorithm)
    resolved = resolve_cells(**whole[0].pass_overrides(*passes[0])) if len(passes) > 1 else whole
    s = resolved[0]
    if len(grid["seed"]) > 1 and s.init != "noise":
        raise JaxstyleError(
            f"a seed axis needs init noise: a seed only draws the noise start, so from"
            f" init {s.init} every seed gives the same image"
        )
    _check_starts(starts, len(resolved))
    styles = len(style_list(style))
    _check_blends(grid["style_blend"], styles)
    blended = len(grid["style_blend"]) > 1  # each cell its own targets
    scaled = len(grid["style_scale"]) > 1  # each cell its scale's targets
    _check_scale_axis(scaled, content is None, s.style_loss)
    p = get_preset(s.preset)

    timings: dict[str, float] = {}
    t = time.perf_counter()
    by_scale = {c.style_scale: c for c in resolved}  # a cell of each scale
    rows = mesh.shape[ROWS]  # each cell's rows split over as many devices
    images = {  # checked
        x: prepare_images(content, style, c, rows=rows) for x, c in by_scale.items()
    }
    params = weights if isinstance(weights, VGG19Weights) else load_vgg19(weights)
    content_img, style_imgs, original = images[s.style_scale]  # the content: every scale's
    shape = output_shape(content_img, style_imgs)
    start = s.init if init_label != "image" else init
    x0 = [
        initial_image(
            start if starts is None else starts[i],
            content_img,
            shape,
            c.seed,
            grey=c.preserve_colors == "luminance",
        )
        for i, c in enumerate(resolved)
    ]
    mask_weights = prepare_mask(mask, shape, len(style_imgs), s)
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    objective = s.objective(p)
    groups = cell_groups(mesh)
    kernels = objective.winograd_kernels(
        shape,
        [img.shape[:2] for scale in images.values() for img in scale.styles],
        cells_at_once(len(x0), batch_size, groups) // groups,
    )
    per_scale = {
        x: prepare_targets(
            params,
            objective,
            content_img,
            images[x].styles,
            c,
            kernels=kernels,
            mask=mask_weights,
            separate=blended,
        )
        for x, c in by_scale.items()
    }
    per_cell = blended or scaled
    targets = cell_targets(per_scale, resolved, blended) if per_cell else per_scale[s.style_scale]
    timings["targets"] = time.perf_counter() - t
    shared = {k: v for k, v in dataclasses.asdict(whole[0]).items() if k not in AXES}
    fingerprint = as_json(
        {
            "settings": shared,
            "cells": cells,
            "weights": params.name,
            "content": None if content_img is None else array_digest(content_img),
            "start": [array_digest(x) for x in x0],
            "styles": [array_digest(x) for scale in images.values() for x in scale.styles],
            **({} if original is None else {"original": array_digest(original)}),
            **({} if mask_weights is None else {"mask": array_digest(mask_weights)}),
        }
    )
    return SweepPlan.create(
        params=params,
        objective=objective,
        config=s.optimizer_config(p),
        steps=s.steps,
        starts=x0,
        weights=[c.loss_weights() for c in resolved],
        targets=targets,
        per_cell_targets=per_cell,
        mesh=mesh,
        kernels=kernels,
        timings=timings,
        cells=cells,
        axes=axes,
        settings=whole[0],
        fingerprint=fingerprint,
        inputs=recorded_inputs(content, style, mask, start),
        original=original,
        later=passes[1:],
        batch_size=batch_size,
        replan=lambda size, steps, images: plan_sweep(
            content,
            style,
            **{**given, **whole[0].pass_overrides(size, steps)},
            weights=params,
            starts=list(images),
        ),
    )


def cell_targets(
    per_scale: dict[float, Targets], cells: Sequence[Settings], blend: bool
) -> list[Targets]:
    """One :class:`~jaxstyle.objective.Targets` per cell: those of the cell's style
    scale in ``per_scale``; with ``blend`` their Grams of each style image
    {layer: (S, C, C)} blended by the cell's blend into {layer: (C, C)}
    (:func:`~jaxstyle.objective.blend_grams`). Each distinct (scale, blend) once."""

    def targets(scale: float, weights: tuple[float, ...] | None) -> Targets:
        shared = per_scale[scale]
        if not blend:
            return shared
        styles = len(next(iter(shared.style.values())))
        grams = blend_grams(shared.style, blend_weights(weights, styles))
        return dataclasses.replace(shared, style=grams)

    keys = [(c.style_scale, c.style_blend) for c in cells]
    made = {key: targets(*key) for key in dict.fromkeys(keys)}
    return [made[key] for key in keys]


def _check_blends(blends: list, styles: int) -> None:
    """Refuse blends that are not one weight per style image (sum > 0), or that are
    one blend once normalised (e.g. 1,0 and 2,0: the same cells)."""
    normalised: dict[tuple, tuple] = {}
    for blend in blends:
        key = tuple(blend_weights(blend, styles).tolist())
        if key in normalised:
            first, again = (",".join(f"{w:g}" for w in b) for b in (normalised[key], blend))
            raise JaxstyleError(
                f"style blends {first} and {again} are one blend (the weights are "
                "normalised to sum 1)"
            )
        normalised[key] = blend


def _check_scale_axis(scaled: bool, texture: bool, style_loss: str) -> None:
    """Refuse a style scale axis (``scaled``) for a texture (its output is its style
    image's size, so each scale's another) or an MRF ``style_loss`` (its targets,
    the style patches, are as many as the style's size gives: not stacked per cell)."""
    if scaled and texture:
        raise JaxstyleError(
            "a style scale axis needs a content image: a texture is its style image's "
            "size, so each scale would be another size"
        )
    if scaled and style_loss == "mrf":
        raise JaxstyleError(
            "an MRF style loss has as many style patches as the style's size gives: "
            "no style scale axis"
        )


def _check_starts(starts: Any, cells: int) -> None:
    """Refuse ``starts`` (see :func:`plan_sweep`) unless None or one image per cell."""
    if starts is None:
        return
    try:
        count = len(starts)
    except TypeError:
        count = None
    if count != cells:
        given = f"{count} image(s)" if count is not None else type(starts).__name__
        raise JaxstyleError(f"starts must be one image per cell ({cells}), not {given}")


def sweep(
    content: ImageLike | None,
    style: ImageLike | Sequence[ImageLike],
    *,
    driver: str = "auto",
    progress: bool = False,
    checkpoint_dir: os.PathLike | str | None = None,
    checkpoint_every: int = 0,
    callback: Callable[[int, dict, np.ndarray], None] | None = None,
    callback_every: int = 0,
    **grid: Any,
) -> SweepResult:
    """Stylize a grid of loss weights, style scales, style blends and seeds in one
    compilation and one optimisation.

    Each axis is a scalar (fixed) or a list of values (swept);
    ``style_layer_weights`` (one per style layer) and ``style_blend`` (one per
    style image) are one tuple or a list of them. Cells are the Cartesian
    product in :data:`AXES` order (content_weight, style_weight, tv_weight,
    style_layer_weights, style_scale, style_blend, seed), the last varying
    fastest; cell i equals ``stylize`` with ``result.cell_settings(i)``.

    Args:
      content, style: as :func:`jaxstyle.stylize` (content None: texture
        synthesis, content weight 0).
      driver, progress: as :func:`jaxstyle.stylize`.
      checkpoint_dir: save the run's state there every ``checkpoint_every``
        steps (0: only on SIGTERM/SIGINT, which then raise
        :class:`jaxstyle.Interrupted`) and resume from it when it
        holds a checkpoint of the same sweep (one of another sweep is refused).
      callback: called as ``callback(step, losses, images)`` after every
        ``callback_every``-th step of each pass, with the cells' losses
        {term: (N,)} and (N, H, W, 3) images (for a
        :class:`~jaxstyle.live_view.LiveView` of them, labelled by their cells:
        :func:`plan_sweep`).
      **grid: the axes ``content_weight``, ``style_weight``, ``tv_weight``,
        ``style_layer_weights``, ``style_scale``, ``style_blend``, ``seed``; ``preset``,
        ``weights``, ``devices`` (to shard the cells over; default all),
        ``split_image``, ``mask`` and the shared settings
        (``size``, ``steps``, ``optimizer``, ``learning_rate``, layers,
        ``pooling``, ``init``, ``coarse_to_fine``, ...) as for ``stylize``: see
        :func:`plan_sweep`.

    Returns:
      A :class:`SweepResult` with (N, H, W, 3) images and (N,) final losses.

    Example:
      >>> r = sweep(photo, painting, content_weight=[1, 5], style_weight=[1e2, 1e3])
      >>> r.cells[1]["style_weight"], r.images.shape  # (1000.0, (4, H, W, 3))
      >>> r = sweep(photo, [starry, scream], style_blend=[(1, 0), (0.5, 0.5), (0, 1)])
      >>> r = sweep(photo, painting, style_scale=[0.5, 1, 2])  # the strokes' size
    """
    check_every("checkpoint every", checkpoint_every)
    check_every("callback_every", callback_every)
    check_callback("callback", callback)
    choose_driver(driver)  # a bad one before the weights load and the step compiles
    if checkpoint_dir is not None:
        checkpoint_dir = user_path(checkpoint_dir, "a checkpoint directory")
        if checkpoint_dir.exists() and not checkpoint_dir.is_dir():
            raise JaxstyleError(f"checkpoint directory {checkpoint_dir} is a file")
    plan = plan_sweep(content, style, **grid)
    checkpoint = plan.checkpointing(checkpoint_dir, checkpoint_every) if checkpoint_dir else None
    return plan.run(
        driver=driver,
        progress=progress,
        checkpoint=checkpoint,
        callback=callback,
        callback_every=callback_every,
    )
