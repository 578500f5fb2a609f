"""Dense optical flow between two frames, and warping by it: coarse-to-fine Horn–Schunck.

Conventions: frames are RGB (H, W, 3) in [0, 1] (compared as grey); a flow is (H, W, 2)
float32 in pixels, ordered (dy, dx) like the array's axes, and maps ``first`` onto
``second``: ``first[p] ≈ second[p + flow[p]]``. So ``warp(second, flow)`` is ``second``
seen from ``first``'s pixels, aligned with ``first``.

The estimate (Horn & Schunck 1981, with the coarse-to-fine warping of Brox et al. 2004):
on a pyramid of the grey frames (halved down to :data:`COARSEST` px), coarsest first, the
flow of the level above (upsampled) is refined by ``warps`` linearisations, each solved by
``iterations`` Jacobi iterations of Horn–Schunck's equations for the whole flow (the data
term linearised about the current flow, the smoothness weighted by ``alpha``²). Last, a
pixel whose frames agree far better unmoved keeps flow 0 (:data:`UNMOVED`), so that the
still pixels around a moving object are not moved with it.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.colors import RGB_TO_YIQ
from jaxstyle.compiler import jit

COARSEST = 12
"""The pyramid's coarsest level is the last whose shorter side is at least this (px)."""

UNMOVED = 0.25
"""A pixel keeps flow 0 where the frames' difference unmoved is at most this times the
difference moved by the estimate (:func:`optical_flow`'s last step)."""

_GREY = RGB_TO_YIQ[0]  # luminance, Y
_BLUR = np.outer(*[np.array([1, 4, 6, 4, 1], np.float32) / 16] * 2)  # before the derivatives
_AVERAGE = np.array([[1, 2, 1], [2, 0, 2], [1, 2, 1]], np.float32) / 12  # Horn–Schunck's


def warp(image: ArrayLike, flow: ArrayLike) -> jax.Array:
    """``image`` (H, W, C) sampled at p + ``flow[p]`` (bilinear; outside the frame: the
    nearest edge pixel, see :func:`in_frame`), (H, W, C)."""
    ys, xs = _positions(jnp.asarray(flow))
    sample = partial(jax.scipy.ndimage.map_coordinates, order=1, mode="nearest")
    return jax.vmap(lambda c: sample(c, [ys, xs]), in_axes=-1, out_axes=-1)(image)


def in_frame(flow: ArrayLike) -> jax.Array:
    """(H, W) bool: where p + ``flow[p]`` lies inside the frame (:func:`warp` samples it)."""
    flow = jnp.asarray(flow)
    ys, xs = _positions(flow)
    h, w = flow.shape[:2]
    return (ys >= 0) & (ys <= h - 1) & (xs >= 0) & (xs <= w - 1)


@partial(jit, static_argnames=("alpha", "warps", "iterations"))
def optical_flow(
    first: ArrayLike,
    second: ArrayLike,
    *,
    alpha: float = 0.05,
    warps: int = 4,
    iterations: int = 60,
) -> jax.Array:
    """The flow (H, W, 2) (dy, dx) from ``first`` to ``second`` (each (H, W, 3) in [0, 1]):
    ``first[p] ≈ second[p + flow[p]]`` (see the module).

    Args:
      alpha: the smoothness weight, on the grey levels' scale ([0, 1]): larger, smoother.
      warps: linearisations per pyramid level.
      iterations: Jacobi iterations per linearisation.
    """
    first, second = jnp.asarray(first, jnp.float32), jnp.asarray(second, jnp.float32)
    pyramid = [(_grey(first), _grey(second))]
    while min(pyramid[-1][0].shape) // 2 >= COARSEST:
        a, b = pyramid[-1]
        half = ((a.shape[0] + 1) // 2, (a.shape[1] + 1) // 2)
        pyramid.append((_resize(a, half), _resize(b, half)))
    flow = jnp.zeros((*pyramid[-1][0].shape, 2), jnp.float32)
    for a, b in reversed(pyramid):
        if flow.shape[:2] != a.shape:  # the coarser level's flow, in this level's pixels
            scale = np.array([[a.shape]], np.float32) / np.array([[flow.shape[:2]]], np.float32)
            flow = _resize(flow, a.shape) * scale
        a, b = _filter(a, _BLUR), _filter(b, _BLUR)
        flow = _refine(a, b, flow, alpha=alpha, warps=warps, iterations=iterations)
    return _unmoved(first, second, flow)


def _unmoved(first: jax.Array, second: jax.Array, flow: jax.Array) -> jax.Array:
    """``flow`` set to 0 where the frames agree unmoved: where their squared RGB
    difference there is at most :data:`UNMOVED` times that moved by ``flow``. (The
    smoothness term spreads a moving object's flow over the still pixels around it.)"""
    moved = jnp.sum((first - warp(second, flow)) ** 2, axis=-1)
    still = jnp.sum((first - second) ** 2, axis=-1)
    return jnp.where((still <= UNMOVED * moved)[..., None], 0.0, flow)


def _refine(first, second, flow, *, alpha: float, warps: int, iterations: int):
    """One pyramid level's flow refined (grey frames (h, w), flow (h, w, 2))."""

    def linearise(_, flow):
        warped = warp(second[..., None], flow)[..., 0]
        gy, gx = _gradient((first + warped) / 2)  # both frames' (Brox et al.)
        grad = jnp.stack([gy, gx], axis=-1)
        change = warped - first
        norm = alpha**2 + gy**2 + gx**2

        def jacobi(_, f):
            mean = _filter(f, _AVERAGE)
            residual = jnp.sum(grad * (mean - flow), axis=-1) + change
            return mean - grad * (residual / norm)[..., None]

        return jax.lax.fori_loop(0, iterations, jacobi, flow)

    return jax.lax.fori_loop(0, warps, linearise, flow)


def _gradient(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(d/dy, d/dx) of ``x`` (h, w) (:func:`jnp.gradient`; 0 along a side of 1 px)."""
    h, w = x.shape
    gy, gx = jnp.gradient(jnp.pad(x, [(0, int(h == 1)), (0, int(w == 1))], mode="edge"))
    return gy[:h, :w], gx[:h, :w]


def _positions(flow: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(p_y + dy, p_x + dx), each (H, W)."""
    h, w = flow.shape[:2]
    ys, xs = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    return ys + flow[..., 0], xs + flow[..., 1]


def _grey(image: jax.Array) -> jax.Array:
    return image @ _GREY


def _resize(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``x`` (h, w, ...) resized to ``shape`` (antialiased when shrinking)."""
    return jax.image.resize(x, (*shape, *x.shape[2:]), "linear", antialias=True)


def _filter(x: jax.Array, kernel: np.ndarray) -> jax.Array:
    """``x`` (h, w, ...) correlated with ``kernel`` (k, k), k odd (edges replicated)."""
    h, w, r = x.shape[0], x.shape[1], kernel.shape[0] // 2
    padded = jnp.pad(x, [(r, r), (r, r)] + [(0, 0)] * (x.ndim - 2), mode="edge")
    out = jnp.zeros_like(x)
    for (i, j), k in np.ndenumerate(kernel):
        if k:
            out = out + float(k) * padded[i : i + h, j : j + w]
    return out
