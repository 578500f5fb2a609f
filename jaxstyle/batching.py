"""Batching per-image functions over sweep cells: vmap with sharded outputs, and a loss
whose shared constants stay unbatched inside a vmapped ``lax.cond``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxstyle.executables import keyed
from jaxstyle.objective import LossArgs, Objective, total_loss
from jaxstyle.split_image import constrain, image_layout

MESH_AXIS = "cells"


def cells_per_device(n: int, devices: int) -> int:
    """How many of ``n`` cells each of ``devices`` devices runs at once (the cells are
    padded to a multiple of the device count)."""
    return -(-n // devices)


def cells_at_once(n: int, batch_size: int | None, devices: int) -> int:
    """How many of ``n`` cells run together: all, or ``batch_size`` (None: all), padded
    to a multiple of the ``devices`` (groups of devices) they are sharded over."""
    return cells_per_device(min(n, batch_size or n), devices) * devices


@lru_cache(maxsize=32)
def batched(fn: Callable, mesh: Mesh, per_cell_targets: bool = False) -> Callable:
    """``fn(x, args: LossArgs)`` vmapped over ``x`` and the loss weights, and over the
    targets too when ``per_cell_targets`` (a batch of jobs); otherwise the targets are
    shared (a sweep). The VGG19 weights are always shared.

    The vmapped axis is named :data:`MESH_AXIS` (for collectives, such as the
    L-BFGS ``OptimizerConfig.batch_axis``). Every output keeps a leading cell
    axis sharded over ``mesh`` (image-shaped ones split by rows too, where the
    mesh has several devices per cell), so a step's output carry has its input's
    sharding. Cached: one wrapper (and so one compilation) per function and mesh;
    keyed for :mod:`jaxstyle.executables` when ``fn`` is.
    """
    targets_axis = 0 if per_cell_targets else None
    # a LossArgs of vmap axes (not arrays) in its fields' places: vgg, targets, weights
    in_axes = (0, LossArgs._make((None, targets_axis, 0)))
    vmapped = jax.vmap(fn, in_axes=in_axes, axis_name=MESH_AXIS)

    def run_cells(x, args):
        # x: the (N, H, W, 3) images, or a carry holding them
        images = [v.shape[1:] for v in jax.tree.leaves(x) if v.ndim == 4]
        sharding = image_layout(mesh, images[0] if images else (), MESH_AXIS)
        return constrain(vmapped(x, args), sharding)

    # the mesh by its axis sizes: a Mesh is callable, which keyed() would take for a function
    return keyed(run_cells, fn, tuple(mesh.shape.items()), per_cell_targets)


@lru_cache(maxsize=8)
def shared_loss_fn(
    objective: Objective, per_cell_targets: bool = False, devices: int = 1
) -> Callable:
    """``loss_fn(image, args: LossArgs) -> (J, terms)`` for one (H, W, 3) image, built
    to be vmapped over cells (the same values as ``objective.make_loss_fn``); the targets
    are shared by the cells, or with ``per_cell_targets`` each cell's own. The cells
    are split over ``devices`` devices (or groups of devices that split their rows):
    VGG19 runs on each one's share at once (the objective's ``batch``, which picks
    Winograd's tiles).

    Under ``vmap``, a ``lax.cond`` whose predicate differs per cell becomes a
    select, and JAX then broadcasts every operand of the cond to the batch,
    the VGG weights and shared targets included, so each convolution gets a
    kernel per cell. optax's zoom line search picks "zoom" or "search interval"
    with such a cond (both branches evaluate J and ∇J); measured on XLA:CPU at
    32 px that made one vmapped evaluation 3-8x slower per cell for 3-6 cells.
    Here J, its terms and ∇J come from a ``custom_vmap`` function whose batching
    rule takes cell 0's VGG weights and targets (identical in every cell by
    construction: they are never swept) and vmaps over the image and loss
    weights (and the targets, when per cell) only; a ``custom_vjp`` hands the ∇J
    it computed to autodiff. Only J is differentiable: the terms are constants to
    autodiff (as under ``stop_gradient``), which is all the optimisers use.
    """

    def evaluate_in(batch, image, weights, shared):
        vgg, targets = shared
        o = dataclasses.replace(objective, batch=batch)
        value_and_grad = jax.value_and_grad(
            lambda x: total_loss(x, vgg, targets, weights, o), has_aux=True
        )
        return value_and_grad(image)

    def evaluate(image, weights, shared):  # custom_vmap traces every parameter
        return evaluate_in(1, image, weights, shared)

    evaluate_cells = jax.custom_batching.custom_vmap(evaluate)

    @evaluate_cells.def_vmap
    def _(axis_size, in_batched, image, weights, shared):
        image_b, weights_b, (vgg_b, targets_b) = in_batched
        vgg, targets = shared

        def first(v, b):
            return v[0] if b else v

        def every(v, b):
            return v if b else jnp.broadcast_to(v, (axis_size, *jnp.shape(v)))

        vgg = jax.tree.map(first, vgg, vgg_b)
        image, weights = jax.tree.map(every, (image, weights), (image_b, weights_b))
        targets = jax.tree.map(every if per_cell_targets else first, targets, targets_b)
        in_axes = (0, 0, 0 if per_cell_targets else None)
        batch = max(1, image.shape[0] // devices)  # the cells on each device (static)
        out = jax.vmap(lambda x, w, t: evaluate_in(batch, x, w, (vgg, t)), in_axes=in_axes)(
            image, weights, targets
        )
        return out, jax.tree.map(lambda _: True, out)

    @jax.custom_vjp
    def loss(image, weights, shared):
        return evaluate_cells(image, weights, shared)[0]

    def loss_fwd(image, weights, shared):
        return evaluate_cells(image, weights, shared)

    def loss_bwd(grad, cotangent):
        return cotangent[0] * grad, None, None

    loss.defvjp(loss_fwd, loss_bwd)

    def loss_fn(image, args):
        return loss(image, args.weights, (args.vgg, args.targets))

    return keyed(loss_fn, objective, per_cell_targets, devices)
