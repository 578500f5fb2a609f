"""``sweep``: a grid of loss weights and seeds as one compiled, vmapped, sharded optimisation.

Cells are the Cartesian product of the axes in :data:`AXES` order, the last
axis varying fastest (``itertools.product``). Each cell keeps its own iterate
and optimiser state: the solver is vmapped, so with L-BFGS each cell runs its
own line search (optax's zoom ``while_loop`` becomes a batched loop that stops
when every cell's search has). Content and style targets are computed once and
shared by all cells (not batched); J and ∇J come from
:func:`jaxstyle.batching.shared_loss_fn`, which keeps the VGG weights and targets
unbatched even inside optax's per-cell ``lax.cond`` (which vmap turns into a
select that evaluates both branches).

The cell axis is padded to a multiple of the device count (repeating the last
cell) and sharded over a one-axis mesh of the local devices with
``NamedSharding``; the targets are replicated. One device is the same path.

The loop state is a plain pytree, :class:`~jaxstyle.optimize.Carry` with a
leading cell axis on every leaf, so a checkpointing layer can save it after
:meth:`SweepPlan.advance` and continue from step k with
``plan.advance(plan.place(saved), plan.steps - k)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxstyle.batching import MESH_AXIS, batched, shared_loss_fn
from jaxstyle.errors import JaxstyleError
from jaxstyle.objective import LossWeights, Objective, compute_targets
from jaxstyle.optimize import (
    Carry,
    OptimizerConfig,
    RunResult,
    compile_once,
    final_image,
    make_init,
    make_step,
    run,
)
from jaxstyle.presets import DEFAULT_PRESET, get_preset
from jaxstyle.stylize import (
    ImageLike,
    Settings,
    initial_image,
    prepare_images,
    resolve_settings,
)
from jaxstyle.weights import VGG19Weights, load_vgg19

AXES = ("content_weight", "style_weight", "tv_weight", "style_layer_weights", "seed")
"""The sweepable settings, in cell order (the last varies fastest)."""


@dataclasses.dataclass
class SweepResult:
    """What :func:`sweep` returns (N cells, images H x W).

    Attributes:
      cells: N dicts {axis: value} with every :data:`AXES` value of the cell
        (``style_layer_weights`` a tuple), in cell order.
      axes: {axis: values} of the swept axes only (more than one value), in
        :data:`AXES` order.
      settings: the shared settings; its :data:`AXES` fields are cell 0's
        (see :meth:`cell_settings`).
      images: (N, H, W, 3) float32 RGB in [0, 1].
      history: {"total", "content", "style", "tv": (N, steps) float32}, the
        weighted losses of the image entering each step.
      final: the same four losses of the returned images, (N,) float32.
      timings: seconds: "load", "targets", "compile", "optimize", and
        "ms_per_step" (for the whole batch of cells).
      devices: the devices the cell axis was sharded over.
    """

    cells: list[dict[str, Any]]
    axes: dict[str, list]
    settings: Settings
    images: np.ndarray
    history: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    timings: dict[str, float]
    devices: list[str]

    def cell_settings(self, i: int) -> Settings:
        """Every setting of cell ``i``: what a single ``stylize`` run of it would use."""
        return dataclasses.replace(self.settings, **self.cells[i])


def _axis(name: str, value: Any) -> list:
    """The values of one axis: a scalar (for style layer weights, one tuple) or a list."""
    if value is None:
        return [None]
    try:
        if name == "style_layer_weights":
            items = list(value)
            rows = [items] if not items or np.ndim(items[0]) == 0 else items
            values = [tuple(float(w) for w in row) for row in rows]
        else:
            values = [float(v) for v in (value if np.ndim(value) else [value])]
    except (TypeError, ValueError):
        raise JaxstyleError(f"{name.replace('_', ' ')} values must be numbers") from None
    if name == "seed":
        if any(v != int(v) for v in values):
            raise JaxstyleError("seeds must be integers")
        values = [int(v) for v in values]
    if not values:
        raise JaxstyleError(f"no {name.replace('_', ' ')} values to sweep")
    if len(set(values)) < len(values):
        raise JaxstyleError(f"{name.replace('_', ' ')} values repeat: {values}")
    return values


@dataclasses.dataclass
class SweepPlan:
    """A prepared sweep: resolved cells, shared targets, sharded inputs.

    ``x0`` and ``args[1]`` (the stacked :class:`LossWeights`) have a leading
    cell axis of ``padded`` >= N entries, sharded over ``mesh``; ``args[0]``
    (the targets) is replicated.
    """

    cells: list[dict[str, Any]]
    axes: dict[str, list]
    settings: Settings
    params: VGG19Weights
    objective: Objective
    config: OptimizerConfig
    mesh: Mesh
    x0: jax.Array
    args: tuple
    timings: dict[str, float]

    @property
    def steps(self) -> int:
        return self.settings.steps

    @property
    def padded(self) -> int:
        return self.x0.shape[0]

    @property
    def loss_fn(self) -> Callable:
        return shared_loss_fn(self.params, self.objective)

    def place(self, tree: Any) -> Any:
        """Put a pytree with a leading (padded) cell axis on the mesh, e.g. a restored carry."""
        return jax.device_put(tree, NamedSharding(self.mesh, P(MESH_AXIS)))

    def init(self) -> Carry:
        """The batched starting carry (for L-BFGS with each cell's J and ∇J)."""
        return self._compiled_init()(self.x0, self.args)

    def _compiled_init(self) -> Callable:
        init = batched(make_init(self.loss_fn, self.config), self.mesh)
        return compile_once(init, self.x0, self.args)

    def advance(
        self,
        carry: Carry,
        steps: int,
        *,
        driver: str = "auto",
        on_progress: Callable[[int, dict, Callable[[], Carry]], None] | None = None,
    ) -> RunResult:
        """``steps`` steps of every cell from ``carry``; history leaves are (steps, padded)."""
        step = batched(make_step(self.loss_fn, self.config), self.mesh)
        return run(step, carry, self.args, steps, driver=driver, on_progress=on_progress)

    def finish(
        self, carry: Carry, history: dict[str, np.ndarray], timings: dict | None = None
    ) -> SweepResult:
        """The result of the cells (padding dropped) from the last carry and the history
        (leaves (steps, padded)); ``timings`` are added to the plan's (load, targets)."""
        n = len(self.cells)
        images = final_image(carry)
        final_fn = compile_once(batched(self.loss_fn, self.mesh), images, self.args)
        total, terms = final_fn(images, self.args)
        final = {k: np.asarray(v)[:n] for k, v in {"total": total, **terms}.items()}
        if history:
            history = {k: np.asarray(v).T[:n] for k, v in history.items()}
        else:
            history = {k: np.zeros((n, 0), np.float32) for k in final}
        devices = [str(d) for d in self.mesh.devices.flat]
        images = np.asarray(images)[:n]
        timings = {**self.timings, **(timings or {})}
        return SweepResult(
            self.cells, self.axes, self.settings, images, history, final, timings, devices
        )

    def run(self, *, driver: str = "auto", progress: bool = False) -> SweepResult:
        """Initialise, run every step (a progress bar counts steps) and finish."""
        from tqdm.auto import tqdm

        n = len(self.cells)
        t = time.perf_counter()
        init = self._compiled_init()
        compile_seconds = time.perf_counter() - t
        carry = init(self.x0, self.args)
        bar = tqdm(total=self.steps, desc="sweep", unit="step", disable=not progress, leave=False)

        def on_progress(done, record, get_carry):
            total = np.asarray(record["total"])[:n]
            bar.set_postfix(best=f"{total.min():.3g}", worst=f"{total.max():.3g}", refresh=False)
            bar.update(done - bar.n)

        with bar:
            result = self.advance(carry, self.steps, driver=driver, on_progress=on_progress)
        timings = dict(
            compile=compile_seconds + result.compile_seconds,
            optimize=result.run_seconds,
            ms_per_step=1e3 * result.run_seconds / max(1, self.steps),
        )
        return self.finish(result.carry, result.history, timings)


def plan_sweep(
    content: ImageLike | None,
    style: ImageLike | Sequence[ImageLike],
    *,
    content_weight: float | Sequence[float] | None = None,
    style_weight: float | Sequence[float] | None = None,
    tv_weight: float | Sequence[float] | None = None,
    style_layer_weights: Sequence[float] | Sequence[Sequence[float]] | None = None,
    seed: int | Sequence[int] | None = None,
    preset: str = DEFAULT_PRESET,
    weights: VGG19Weights | str | os.PathLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    **settings: Any,
) -> SweepPlan:
    """Resolve and check every cell, compute the targets once, place the inputs.

    Arguments as :func:`sweep`. Every cell's settings are checked (e.g. a
    negative weight raises :class:`JaxstyleError`) before anything is loaded.
    """
    init = settings.pop("init", None)
    if content is None:
        if content_weight is not None:
            raise JaxstyleError("content weight cannot be set without a content image")
        content_weight = 0.0
        init = "noise" if init in (None, "content") else init
    init_label = init if isinstance(init, str) or init is None else "image"
    grid = dict(
        content_weight=_axis("content_weight", content_weight),
        style_weight=_axis("style_weight", style_weight),
        tv_weight=_axis("tv_weight", tv_weight),
        style_layer_weights=_axis("style_layer_weights", style_layer_weights),
        seed=_axis("seed", seed),
    )
    resolved = [
        resolve_settings(
            preset, init=init_label, **settings, **dict(zip(AXES, values, strict=True))
        )
        for values in itertools.product(*grid.values())
    ]
    cells = [{name: getattr(s, name) for name in AXES} for s in resolved]
    axes = {name: values for name, values in grid.items() if len(values) > 1}
    s = resolved[0]
    p = get_preset(s.preset)

    timings: dict[str, float] = {}
    t = time.perf_counter()
    params = weights if isinstance(weights, VGG19Weights) else load_vgg19(weights)
    content_img, style_imgs = prepare_images(content, style, s)
    shape = content_img.shape[:2] if content_img is not None else style_imgs[0].shape[:2]
    start = s.init if init_label != "image" else init
    mesh = Mesh(np.array(list(devices or jax.local_devices())), (MESH_AXIS,))
    padded = resolved + resolved[-1:] * (-len(resolved) % mesh.size)
    x0 = jnp.stack([initial_image(start, content_img, shape, c.seed) for c in padded])
    loss_weights = stack_weights([c.loss_weights() for c in padded])
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    objective = s.objective(p)
    targets = compute_targets(
        params,
        objective,
        None if content_img is None else jnp.asarray(content_img),
        [jnp.asarray(img) for img in style_imgs],
        blend=s.style_blend,
        content_shape=shape,
    )
    targets = jax.block_until_ready(jax.device_put(targets, NamedSharding(mesh, P())))
    timings["targets"] = time.perf_counter() - t
    cell_sharding = NamedSharding(mesh, P(MESH_AXIS))
    x0, loss_weights = jax.device_put((x0, loss_weights), cell_sharding)
    return SweepPlan(
        cells,
        axes,
        s,
        params,
        objective,
        dataclasses.replace(s.optimizer_config(p), batch_axis=MESH_AXIS),
        mesh,
        x0,
        (targets, loss_weights),
        timings,
    )


def sweep(
    content: ImageLike | None,
    style: ImageLike | Sequence[ImageLike],
    *,
    content_weight: float | Sequence[float] | None = None,
    style_weight: float | Sequence[float] | None = None,
    tv_weight: float | Sequence[float] | None = None,
    style_layer_weights: Sequence[float] | Sequence[Sequence[float]] | None = None,
    seed: int | Sequence[int] | None = None,
    preset: str = DEFAULT_PRESET,
    weights: VGG19Weights | str | os.PathLike | None = None,
    driver: str = "auto",
    progress: bool = False,
    devices: Sequence[jax.Device] | None = None,
    **settings: Any,
) -> SweepResult:
    """Stylize a grid of loss weights and seeds in one compilation and one optimisation.

    Each axis is a scalar (fixed) or a list of values (swept);
    ``style_layer_weights`` is one tuple (one per style layer) or a list of
    them. Cells are the Cartesian product in :data:`AXES` order
    (content_weight, style_weight, tv_weight, style_layer_weights, seed), the
    last varying fastest; cell i equals ``stylize`` with
    ``result.cell_settings(i)``.

    Args:
      content, style: as :func:`jaxstyle.stylize` (content None: texture
        synthesis, content weight 0).
      preset, weights, driver, progress: as :func:`jaxstyle.stylize`.
      devices: the devices to shard the cell axis over (default: all local ones).
      **settings: the shared settings (``size``, ``steps``, ``optimizer``,
        ``learning_rate``, layers, ``pooling``, ``init``, ...) as for ``stylize``.

    Returns:
      A :class:`SweepResult` with (N, H, W, 3) images and (N,) final losses.

    Example:
      >>> r = sweep(photo, painting, content_weight=[1, 5], style_weight=[1e2, 1e3])
      >>> r.cells[1]["style_weight"], r.images.shape  # (1000.0, (4, H, W, 3))
    """
    plan = plan_sweep(
        content,
        style,
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        style_layer_weights=style_layer_weights,
        seed=seed,
        preset=preset,
        weights=weights,
        devices=devices,
        **settings,
    )
    return plan.run(driver=driver, progress=progress)


def stack_weights(weights: Sequence[LossWeights]) -> LossWeights:
    """Stack per-cell :class:`LossWeights` into one with a leading cell axis."""
    return jax.tree.map(lambda *w: jnp.stack(w), *weights)
