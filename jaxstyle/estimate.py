"""``estimate``: memory and FLOPs of one optimisation step, from the compiled program only.

The step that a run would compile (``stylize``'s for one image, a sweep's vmapped
one for a batch) is lowered and compiled from abstract inputs
(``jax.ShapeDtypeStruct``): no images are read and nothing is optimised. The
targets' shapes come from ``jax.eval_shape`` of :func:`compute_targets`.

The estimate is the step's own memory: its buffers, the VGG19 weights (arguments
of the step, with their transposed kernels) among them; on a GPU/TPU that is the
device memory a run needs. A CPU process holds more: the Python/jax runtime, the
loaded weights, the compiler's working memory and the other compiled programs
(targets, init, final losses). Measured on XLA:CPU at 96x128 px, Adam, preset
jcjohnson: estimate 148 MiB (99 MiB of it weights); scripts/bench.py's peak
resident memory while stepping, above that after loading, 339 MiB.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.tree_util import GetAttrKey, SequenceKey

from jaxstyle.architecture import deepest, forward_macs
from jaxstyle.batching import MESH_AXIS, batched, cells_per_device, shared_loss_fn
from jaxstyle.cells import cell_groups, cell_mesh
from jaxstyle.compiler import jit
from jaxstyle.errors import JaxstyleError
from jaxstyle.objective import LossArgs, LossWeights, Objective, compute_targets, make_loss_fn
from jaxstyle.optimize import OptimizerConfig, make_init, make_step
from jaxstyle.presets import DEFAULT_PRESET, get_preset
from jaxstyle.settings import MIN_SIZE, integer, resolve_settings
from jaxstyle.split_image import image_layout, keep_split, row_sharding, rows_per_image
from jaxstyle.vgg import add_kernel_transforms
from jaxstyle.weights import VGG19Weights, load_vgg19

MIN_SIDE = MIN_SIZE
"""The shortest side an estimate takes: enough for every preset's deepest layer."""
MODES = ("sweep", "batch")

MAX_BATCH = 2**20
"""The largest ``batch`` estimated: XLA aborts the process (no exception) where an
array's size overflows 64 bits, which 2**38 images of 32 px reach."""


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Memory (bytes per device) and cost of one optimisation step.

    Attributes:
      height, width: of each image. batch: images per step, sharded over
        ``devices`` devices of ``backend``; ``mode`` ``"sweep"`` (cells sharing one
        set of targets) or ``"batch"`` (jobs, each with its own targets).
        ``split_image``: over how many of the ``devices`` each image's rows are
        split (1: none; the batch is sharded over the groups of them).
      argument_bytes, output_bytes, temp_bytes, generated_code_bytes: XLA's
        memory analysis of the compiled step; ``alias_bytes`` of the outputs
        reuse the donated input carry's buffers.
      weight_bytes: the VGG19 weights the compiled step holds (kernels, biases, the
        transposed kernels of the image gradient and, with ``conv_algorithm``
        "winograd", the Winograd-domain kernels), part of ``argument_bytes``: those
        of the layers it runs, and with L-BFGS every layer's (its line search
        loop takes them all).
      peak_bytes: the estimate: arguments + outputs - aliased + temporaries +
        generated code.
      xla_flops: XLA's cost analysis of the step (loop bodies counted once, so
        an L-BFGS line search counts one trial), or None where unavailable.
      vgg_flops: analytic VGG19 convolution FLOPs of the step for the whole
        batch (see :func:`flops_per_step`), one loss evaluation per step (for
        L-BFGS: the first line-search trial accepted).
    """

    height: int
    width: int
    batch: int
    mode: str
    preset: str
    optimizer: str
    compute_dtype: str
    conv_algorithm: str
    backend: str
    devices: int
    argument_bytes: int
    output_bytes: int
    alias_bytes: int
    temp_bytes: int
    generated_code_bytes: int
    weight_bytes: int
    peak_bytes: int
    xla_flops: float | None
    vgg_flops: float
    split_image: int = 1


def flops_per_step(macs: int, evals_per_step: float, forwards_per_step: float) -> float:
    """FLOPs of one step for one image from the forward MACs (see
    :func:`jaxstyle.architecture.forward_macs`): 2·MACs per forward pass, and a
    loss evaluation with its image gradient costs two forwards (the backward to
    the image has the forward's MACs; the weights need no gradient)."""
    return 2.0 * macs * (2.0 * evals_per_step + forwards_per_step)


def estimate(
    size: int | None = None,
    *,
    shape: tuple[int, int] | None = None,
    batch: int = 1,
    mode: str = "sweep",
    preset: str = DEFAULT_PRESET,
    weights: VGG19Weights | str | os.PathLike | None = None,
    split_image: bool | int = False,
    **settings: Any,
) -> Estimate:
    """Compile the optimisation step for abstract inputs and report its memory and FLOPs.

    Args:
      size: longest side in pixels; the image is taken square (the most memory
        for that side). Give either ``size`` or ``shape``.
      shape: (H, W) of the image instead.
      batch: images optimised together (vmapped); 1 is ``stylize``'s
        single-image step.
      mode: for batch > 1, ``"sweep"`` (the cells share the targets, as in
        :func:`jaxstyle.sweep`) or ``"batch"`` (each job holds its own targets,
        as in :func:`jaxstyle.batch`, and a sweep's cells with a style scale or
        blend axis).
      preset, weights: as for :func:`jaxstyle.stylize`.
      split_image: split each image's rows over this many local devices (True:
        all), as ``stylize(devices=...)`` or ``sweep``/``batch``'s ``split_image``
        do (the batch sharded over the groups of them): the memory is each device's.
      **settings: the settings that shape the program: ``optimizer``,
        ``compute_dtype``, ``conv_algorithm``, ``content_layers``, ``style_layers``,
        ``pooling``, ``tileable``.

    Returns:
      An :class:`Estimate`. Nothing is optimised and no image is read.
    """
    if size is not None and shape is None:
        shape = (size, size)
    elif size is not None or shape is None:
        raise JaxstyleError("give either a size or a shape (H, W)")
    elif np.ndim(shape) != 1 or len(shape) != 2:
        raise JaxstyleError(f"shape must be (H, W), not {shape!r}")
    height, width = tuple(shape)
    for name, value in (("size", height), ("size", width), ("batch", batch)):
        integer(name, value)
    if min(height, width) < MIN_SIDE:
        given = size if size is not None else f"{height}x{width}"
        raise JaxstyleError(f"image sides must be at least {MIN_SIDE} pixels, not {given}")
    if not 1 <= batch <= MAX_BATCH:
        raise JaxstyleError(f"batch must be from 1 to {MAX_BATCH}, not {batch}")
    if mode not in MODES:
        raise JaxstyleError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    s = resolve_settings(preset, size=max(height, width), **settings)
    p = get_preset(s.preset)
    objective, config = s.objective(p), s.optimizer_config(p)
    params = weights if isinstance(weights, VGG19Weights) else load_vgg19(weights)

    compiled, devices = compile_step(
        params,
        objective,
        config,
        (height, width),
        batch=batch,
        per_cell_targets=mode == "batch",
        split_image=split_image,
    )
    sizes = memory_sizes(compiled)
    if sizes is None:
        raise JaxstyleError(f"jax's {jax.default_backend()} backend reports no memory analysis")
    last = deepest(objective.layers)
    rows = rows_per_image(split_image, jax.local_device_count())
    peak = sum(sizes.values()) - 2 * sizes["alias"]  # aliased outputs: once
    vgg_flops = batch * flops_per_step(forward_macs(height, width, last), 1.0, 0.0)
    return Estimate(
        height=height,
        width=width,
        batch=batch,
        mode=mode,
        preset=s.preset,
        optimizer=s.optimizer,
        compute_dtype=s.compute_dtype,
        conv_algorithm=objective.conv_algorithm,
        backend=jax.default_backend(),
        devices=devices,
        argument_bytes=sizes["argument"],
        output_bytes=sizes["output"],
        alias_bytes=sizes["alias"],
        temp_bytes=sizes["temp"],
        generated_code_bytes=sizes["generated_code"],
        weight_bytes=held_bytes(compiled, "vgg"),
        peak_bytes=peak,
        xla_flops=_xla_flops(compiled),
        vgg_flops=vgg_flops,
        split_image=rows,
    )


def _prepared_shapes(
    params: VGG19Weights, objective: Objective, shape: tuple[int, int], cells: int
) -> VGG19Weights:
    """The shapes of the weights a run of (H, W) = ``shape`` images, ``cells`` on each
    device, prepares (:func:`jaxstyle.vgg.prepare_weights`; its style image of that shape)."""
    kernels = objective.winograd_kernels(shape, [shape], cells)
    prepare = functools.partial(
        add_kernel_transforms, conv_algorithm=objective.conv_algorithm, kernels=kernels
    )
    return jax.eval_shape(prepare, params)


def compile_step(
    params: VGG19Weights,
    objective: Objective,
    config: OptimizerConfig,
    shape: tuple[int, int],
    *,
    batch: int = 1,
    per_cell_targets: bool = False,
    split_image: bool | int = False,
) -> tuple[Any, int]:
    """(the compiled step, devices) for (H, W) images, as a run would compile it.

    Batch 1: ``stylize``'s step. Batch > 1: a sweep's (or with ``per_cell_targets``
    a batch's), the cells vmapped and sharded over the local devices (padded to a
    multiple of their number). ``split_image``: each image's rows split over that
    many local devices (True: all; :mod:`jaxstyle.split_image`), the cells over
    the groups of them.
    The carry is donated, as in :func:`jaxstyle.optimize.run`.
    """
    image = jax.ShapeDtypeStruct((*shape, 3), jnp.float32)
    targets = jax.eval_shape(lambda x: compute_targets(params, objective, x, [x]), image)
    loss_weights = _abstract(  # only their shapes matter
        LossWeights.create(
            content=1.0, style=1.0, tv=1.0, style_layers=(1.0,) * len(objective.style_layers)
        )
    )
    local = jax.local_devices()
    rows = rows_per_image(split_image, len(local))
    if batch == 1:
        vgg = _prepared_shapes(params, objective, shape, 1)
        loss_fn = make_loss_fn(objective)
        init, step = make_init(loss_fn, config), make_step(loss_fn, config)
        args = LossArgs(vgg, targets, loss_weights)
        if rows > 1:
            sharding = row_sharding(image.shape, local[:rows])
            init, step = keep_split(init, step, sharding)
            args = jax.tree.map(lambda x: _abstract(x, sharding=sharding(x)), args)
        carry = jax.eval_shape(init, image, args)
        if rows > 1:
            carry = jax.tree.map(lambda x: _abstract(x, sharding=sharding(x)), carry)
        devices = rows
    else:
        mesh = cell_mesh(local, split_image)
        groups, devices = cell_groups(mesh), mesh.size
        loss_fn = shared_loss_fn(objective, per_cell_targets, groups)
        config = dataclasses.replace(config, batch_axis=MESH_AXIS)
        cells, layout = (
            NamedSharding(mesh, P(MESH_AXIS)),
            image_layout(mesh, image.shape, MESH_AXIS),
        )
        replicated = NamedSharding(mesh, P())
        padded = batch + (-batch % groups)
        vgg = _prepared_shapes(params, objective, shape, cells_per_device(batch, groups))
        args = LossArgs(
            _abstract(vgg, sharding=replicated),
            _abstract(targets, lead=(padded,), sharding=cells)
            if per_cell_targets
            else _abstract(targets, sharding=replicated),
            _abstract(loss_weights, lead=(padded,), sharding=cells),
        )
        init = batched(make_init(loss_fn, config), mesh, per_cell_targets)
        step = batched(make_step(loss_fn, config), mesh, per_cell_targets)
        x0 = _abstract(image, lead=(padded,))
        x0 = _abstract(x0, sharding=layout(x0))
        carry = jax.tree.map(
            lambda x: _abstract(x, sharding=layout(x)), jax.eval_shape(init, x0, args)
        )
    return jit(step, donate_argnums=0).lower(carry, args).compile(), devices


def memory_sizes(compiled: Any) -> dict[str, int] | None:
    """XLA's memory analysis of a compiled executable, in bytes: ``argument``, ``output``,
    ``alias`` (outputs in donated inputs' buffers), ``temp``, ``generated_code``; None
    where the backend has none."""
    try:
        memory = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if memory is None:
        return None
    names = ("argument", "output", "alias", "temp", "generated_code")
    return {name: int(getattr(memory, f"{name}_size_in_bytes", 0) or 0) for name in names}


def held_bytes(compiled: Any, field: str) -> int:
    """Bytes per device of the step's :class:`LossArgs` ``field`` (e.g. ``"vgg"``) that
    ``compiled`` (:func:`compile_step`'s, called as ``step(carry, args)``) holds: XLA
    drops the arguments the program never reads (jax's ``_kept_var_idx``; where a jax
    lacks it, all are counted)."""
    leaves = jax.tree_util.tree_leaves_with_path(compiled.args_info)
    kept = getattr(getattr(compiled, "_executable", None), "_kept_var_idx", None)
    shardings = jax.tree.leaves(compiled.input_shardings)  # the kept arguments', in order
    if kept is None or len(kept) != len(shardings):  # another jax: all of them, whole
        held = [(path, info, info.shape) for path, info in leaves]
    else:
        held = [
            (*leaves[i], sharding.shard_shape(leaves[i][1].shape))
            for i, sharding in zip(sorted(kept), shardings, strict=True)
        ]
    prefix = (SequenceKey(0), SequenceKey(1), GetAttrKey(field))
    return sum(
        math.prod(shape) * info.dtype.itemsize for path, info, shape in held if path[:3] == prefix
    )


def _abstract(tree: Any, *, lead: tuple[int, ...] = (), sharding: Any = None) -> Any:
    """``tree`` as ShapeDtypeStructs, with leading axes ``lead``, placed on ``sharding``."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((*lead, *x.shape), x.dtype, sharding=sharding), tree
    )


def _xla_flops(compiled: Any) -> float | None:
    """The ``flops`` of XLA's cost analysis, where the backend provides one."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if isinstance(cost, (list, tuple)):  # older jax: one dict per device program
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops is not None and flops >= 0 else None
