"""Temporal coherence: an animation's frames pulled towards their neighbours, warped along
the clip's motion (optical flow), wherever that explains the clip, so that neither still
regions nor those that only move (a camera pan) flicker.

A chunk of consecutive frames runs as one :class:`TemporalPlan`. Before each step (and
L-BFGS's first evaluation, and the final losses) every frame takes the chunk's current
images of the frames before and after it as constants; the chunk's first frame takes
the frame painted before the chunk instead (none for the clip's first), and its last
has none after. Frame t's loss gains

    temporal_t = Σ_{s = t-1, t+1} mean over pixels of  w_ts · ‖255 (x_t - W_ts x_s)‖²,
    w_ts = λ · exp(-‖C_t - W_ts C_s‖² / (2 σ²))  (σ = :data:`SIGMA`),

where C are the content frames (RGB in [0, 1]) and W_ts warps frame s onto frame t by
the optical flow between their content frames (:mod:`jaxstyle.flow`; with ``motion=
"none"``, the identity), as Ruder et al. (2016) do: where the clip is still or the flow
explains its motion, the painted frames are held together; where it does not (occlusions,
disocclusions, other changes) and where the flow leaves the frame (w_ts = 0), they are
free. Its gradient is that of the
clip's joint objective Σ_t J(x_t) + Σ_t temporal pair terms at the current iterates,
a Jacobi step: each frame keeps its own optimiser (with L-BFGS its own line search,
on an objective fixed for the step: its carried J and ∇J, and its last gradient, are
shifted by the change of temporal_t alone, so that the step costs no more VGG19
evaluations than without the pull, and its curvature pairs stay one objective's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxstyle.batching import batched, shared_loss_fn
from jaxstyle.cells import CellPlan, cell_groups
from jaxstyle.errors import JaxstyleError
from jaxstyle.executables import keyed
from jaxstyle.flow import in_frame, optical_flow, warp
from jaxstyle.objective import Objective, Targets, finite_float32
from jaxstyle.optimize import Carry, OptimizerConfig, make_init, make_step, moved
from jaxstyle.presets import MOTION, MOTIONS

SIGMA = 0.05
"""The scale of a content pixel's change (RGB distance, in [0, 1]) over which the pull
between two frames fades: a Gaussian of it (a change of 0.05: 61% of λ; of 0.15: 1%)."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FrameTargets:
    """A frame's targets and its pull towards its neighbours.

    Attributes:
      targets: its own content and style targets.
      neighbours: (2, H, W, 3) the frames before and after it, in [0, 1]: as stored,
        only the frame before the chunk (for the chunk's first frame); filled with the
        chunk's current images before each evaluation.
      weights: (2, H, W) w_ts towards each (0 where there is none).
      flows: (2, H, W, 2) the flows (:func:`jaxstyle.flow.optical_flow`, (dy, dx)) from
        its content frame to those before and after it, which warp the neighbours onto
        it (0: none, or ``motion="none"``).
    """

    targets: Targets
    neighbours: jax.Array | np.ndarray
    weights: jax.Array | np.ndarray
    flows: jax.Array | np.ndarray


def pull_weights(
    content: np.ndarray,
    before: np.ndarray | None,
    after: np.ndarray | None,
    weight: float,
) -> np.ndarray:
    """(2, H, W) w_ts of a content frame (H, W, 3) towards the content frames before and
    after it, warped onto it (None: none there, weight 0), ``weight`` λ."""
    out = np.zeros((2, *content.shape[:2]), np.float32)
    for i, other in enumerate((before, after)):
        if other is not None:
            change = np.sum((np.asarray(content) - np.asarray(other)) ** 2, axis=-1)
            out[i] = weight * np.exp(-change / (2 * SIGMA**2))
    return out


def check_temporal_weight(weight) -> float:
    """λ as a float, or a one-line error for a negative, non-finite or non-number one."""
    return float(finite_float32("temporal weight", weight))


def check_motion(motion) -> str:
    """``motion`` if one of :data:`MOTIONS`, else a one-line error."""
    if not isinstance(motion, str) or motion not in MOTIONS:
        raise JaxstyleError(f"motion must be one of {', '.join(MOTIONS)}, not {motion!r}")
    return motion


def temporal_terms(image: jax.Array, frame: FrameTargets) -> jax.Array:
    """temporal_t of one frame (H, W, 3), float32 scalar."""
    diff = 255.0 * (image[None] - frame.neighbours)
    return jnp.sum(frame.weights * jnp.sum(diff**2, axis=-1)) / (image.shape[0] * image.shape[1])


@lru_cache(maxsize=8)
def temporal_loss_fn(objective: Objective, devices: int) -> Callable:
    """``loss_fn(image, args)`` of one frame whose ``args.targets`` is a
    :class:`FrameTargets`: its J (:func:`~jaxstyle.batching.shared_loss_fn`, per-frame
    targets) plus ``temporal``, a term of its own."""
    base = shared_loss_fn(objective, True, devices)

    def loss_fn(image, args):
        frame = args.targets
        value, terms = base(image, args._replace(targets=frame.targets))
        temporal = temporal_terms(image, frame)
        return value + temporal, {**terms, "temporal": temporal}

    return keyed(loss_fn, objective, devices)


@lru_cache(maxsize=32)
def with_neighbours(cells_fn: Callable) -> Callable:
    """``cells_fn(x, args)`` of the stacked frames (x: (P, H, W, 3) images, or a carry
    holding them) with each frame's neighbours filled from x and warped onto it by its
    flows (constants: no gradient flows between frames). Padding cells pull nothing
    (their weights are 0: :meth:`TemporalPlan.padding_targets`), so the program is the
    same whatever the number of real frames among the P."""

    def run(x, args: Any):  # LossArgs whose targets are FrameTargets
        images = jnp.clip(x.image if isinstance(x, Carry) else x, 0.0, 1.0)  # as painted
        frames = args.targets
        before = jnp.concatenate([frames.neighbours[:1, 0], images[:-1]])
        after = jnp.concatenate([images[1:], images[-1:]])
        neighbours = jnp.stack([before, after], axis=1)
        neighbours = jax.lax.stop_gradient(jax.vmap(jax.vmap(warp))(neighbours, frames.flows))
        filled = dataclasses.replace(frames, neighbours=neighbours)
        return cells_fn(x, args._replace(targets=filled))

    return keyed(run, cells_fn)


@dataclasses.dataclass
class TemporalPlan(CellPlan):
    """A :class:`~jaxstyle.cells.CellPlan` of consecutive frames, each with its own
    :class:`FrameTargets`, pulled towards its neighbours (see the module)."""

    @property
    def loss_fn(self) -> Callable:
        return temporal_loss_fn(self.objective, cell_groups(self.mesh))

    @staticmethod
    def padding_targets(targets: FrameTargets) -> FrameTargets:
        """A padding cell's: the last frame's, pulled towards nothing (weights 0)."""
        return dataclasses.replace(targets, weights=np.zeros_like(targets.weights))

    def _batched(self, fn: Callable) -> Callable:
        return with_neighbours(batched(fn, self.mesh, True))

    def _init(self) -> Callable:
        return pulled_init(self.loss_fn, self.config)

    def _step(self) -> Callable:
        return pulled_step(self.loss_fn, self.config)


@lru_cache(maxsize=8)
def pulled_init(loss_fn: Callable, config: OptimizerConfig) -> Callable:
    """``init(image, args) -> Carry`` of one frame (:func:`~jaxstyle.optimize.make_init`);
    with L-BFGS its :attr:`~jaxstyle.optimize.Carry.pull` holds the neighbours
    (2, H, W, 3) its J and ∇J were evaluated with."""
    init = make_init(loss_fn, config)
    if config.name != "lbfgs":
        return init

    def run(image, args):
        return init(image, args)._replace(pull=args.targets.neighbours)

    return keyed(run, init)


@lru_cache(maxsize=8)
def pulled_step(loss_fn: Callable, config: OptimizerConfig) -> Callable:
    """``step(carry, args) -> (carry, record)`` of one frame
    (:func:`~jaxstyle.optimize.make_step`; Adam evaluates J and ∇J at each step).
    With L-BFGS, its carried J and ∇J, evaluated with the neighbours in the carry, are
    first shifted by the change of temporal_t to those in ``args``, the current ones:
    exact, and without VGG19 (:func:`~jaxstyle.optimize.moved`)."""
    step = make_step(loss_fn, config)
    if config.name != "lbfgs":
        return step

    def run(carry, args):
        frame = args.targets
        was = dataclasses.replace(frame, neighbours=carry.pull)

        def change(image):
            image = jnp.clip(image, 0.0, 1.0)  # as L-BFGS's loss sees it
            return temporal_terms(image, frame) - temporal_terms(image, was)

        value, grad = jax.value_and_grad(change)(carry.image)
        terms = optax.tree.get(carry.opt_state, "terms")
        terms = {**terms, "temporal": terms["temporal"] + value}
        carry = carry._replace(opt_state=moved(carry.opt_state, value, grad, terms))
        carry, record = step(carry, args)
        return carry._replace(pull=frame.neighbours), record

    return keyed(run, step)


def frame_targets(
    targets: Sequence[Targets],
    contents: Sequence[np.ndarray],
    *,
    weight: float,
    previous: tuple[np.ndarray, np.ndarray] | None,
    motion: str = MOTION,
) -> list[FrameTargets]:
    """The :class:`FrameTargets` of a chunk of consecutive frames from their targets and
    content frames (H, W, 3), ``weight`` λ; ``previous``: (the frame painted before the
    chunk, its content frame), each (H, W, 3), or None (the clip's first chunk);
    ``motion``: one of :data:`MOTIONS` (with "flow", the flows between the content frames
    are estimated here, once per chunk and pass)."""
    if len(targets) != len(contents):
        raise JaxstyleError(f"{len(targets)} frames' targets for {len(contents)} content frames")
    before_image = np.zeros_like(contents[0]) if previous is None else previous[0]
    out = []
    for t, (own, content) in enumerate(zip(targets, contents, strict=True)):
        if t:
            before = contents[t - 1]
        else:
            before = None if previous is None else previous[1]
        after = contents[t + 1] if t + 1 < len(contents) else None
        neighbours = np.stack([before_image, np.zeros_like(content)]).astype(np.float32)
        before, flow_before, in_before = _aligned(content, before, motion)
        after, flow_after, in_after = _aligned(content, after, motion)
        weights = pull_weights(content, before, after, weight) * np.stack([in_before, in_after])
        flows = np.stack([flow_before, flow_after])
        out.append(FrameTargets(own, neighbours, weights, flows))
    return out


def _aligned(
    content: np.ndarray, other: np.ndarray | None, motion: str
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(``other`` warped onto ``content`` (None if None), the flow (H, W, 2) that warps it,
    (H, W) 1 where the warp samples inside the frame, else 0)."""
    flow = np.zeros((*content.shape[:2], 2), np.float32)
    inside = np.ones(content.shape[:2], np.float32)
    if other is None or motion == "none":
        return other, flow, inside
    flow = optical_flow(content, other)
    return np.asarray(warp(other, flow)), np.asarray(flow), np.asarray(in_frame(flow), np.float32)
