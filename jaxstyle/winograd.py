"""Winograd F(2x2, 3x3) and F(4x4, 3x3): 3x3 convolutions with fewer multiplies.

A SAME 3x3 convolution, stride 1, costs 9 * Cin * Cout multiply-adds per output
pixel done directly. Lavin & Gray's F(m x m, 3x3) ("Fast Algorithms for
Convolutional Neural Networks", 2016) transforms each (m+2)x(m+2) input tile
and each kernel into an (m+2)x(m+2) "Winograd domain", multiplies there (one
matrix product of (tiles, Cin) x (Cin, Cout) per tile position) and
transforms back m x m outputs: (m+2)^2 / m^2 * Cin * Cout per output pixel,
2.25 times fewer than direct for m = 2, 4 times fewer for m = 4 (whose larger
tiles pay off only with enough tiles per product: many or large images). The
transforms are sums and scaled sums; the kernel's is done once per weight set
(:func:`winograd_kernel`). The tiles' transforms are separable and done so, over
whole arrays: t combinations of rows then t of columns in, m then m out. Per
tile position (t + t^2 and m + m^2 of them) F(4x4)'s program was five times the
size: a 256 px step compiled in 15 s instead of 7, and a warm start took 1.2 s
longer to load it.

The transposed convolution (the image gradient's) reads the same transformed
kernel. Both tilings evaluate at points closed under x -> 1/x (F(2x2): 0, 1,
-1, inf; F(4x4): 0, 1, -1, 2, 1/2, inf), and flipping a 3x3 kernel g in space
maps g(x) to x^2 g(1/x), so it permutes the rows of G g and scales them:
G J = S P G (J the flip, P a permutation, S diagonal). The transposed pass
contracts the kernel's other channel axis with the tile positions permuted by
P and the input transform's rows scaled by S.

Exact in real arithmetic; in float32 the result differs from the direct
convolution by about 2e-7 (m = 2) and 3e-6 (m = 4) of its largest value, the
image gradient of F(4x4) by up to about 1e-5.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


class Tiling(NamedTuple):
    """Y = A^T [(G g G^T) * (B^T d B)] A for an input tile d and a 3x3 kernel g."""

    b_t: np.ndarray  # (t, t)
    g: np.ndarray  # (t, 3)
    a_t: np.ndarray  # (m, t)

    @property
    def tile(self) -> int:
        """Input tile side t = m + 2."""
        return self.b_t.shape[0]

    @property
    def out(self) -> int:
        """Output tile side m."""
        return self.a_t.shape[0]

    def flip(self) -> tuple[tuple[int, ...], np.ndarray]:
        """(P, S) with G J = S P G: row i of the flipped kernel's G g is
        S[i] times row P[i] of the kernel's."""
        flipped = self.g[:, ::-1]
        order, scale = [], []
        for row in flipped:
            for j, candidate in enumerate(self.g):
                first = np.flatnonzero(candidate)[0]
                ratio = row[first] / candidate[first]
                if np.allclose(row, ratio * candidate, rtol=0, atol=1e-12):
                    order.append(j)
                    scale.append(ratio)
                    break
            else:
                raise ValueError("the tiling's points are not closed under x -> 1/x")
        return tuple(order), np.array(scale)


F2 = Tiling(  # points 0, 1, -1, inf
    b_t=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
    g=np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
    a_t=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
)
F4 = Tiling(  # points 0, 1, -1, 2, 1/2, inf; Toom-Cook with the fractions in G
    b_t=np.array(
        [
            [-1, 2.5, 0, -2.5, 1, 0],
            [0, 1, -1.5, -1.5, 1, 0],
            [0, -1, 3.5, -3.5, 1, 0],
            [0, 0.5, -1, -0.5, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, -1, 2.5, 0, -2.5, 1],
        ],
        np.float64,
    ),
    g=np.array(
        [
            [-1, 0, 0],
            [-1, -1, -1],
            [1 / 9, -1 / 9, 1 / 9],
            [1 / 9, 2 / 9, 4 / 9],
            [16 / 9, 8 / 9, 4 / 9],
            [0, 0, 1],
        ],
        np.float64,
    ),  # fmt: skip
    a_t=np.array(
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, 0.5, 0], [0, 1, 1, 4, 0.25, 0], [0, 1, -1, 8, 0.125, 1]],
        np.float64,
    ),
)
TILINGS = {2: F2, 4: F4}
"""The tilings by output tile side m."""


def tiling_of(u: jax.Array) -> Tiling:
    """The tiling of a Winograd-domain kernel (t*t, Cin, Cout)."""
    for tiling in TILINGS.values():
        if u.shape[0] == tiling.tile**2:
            return tiling
    raise ValueError(f"not a Winograd-domain kernel: shape {u.shape}")


def winograd_kernel(kernel: jax.Array, *, out: int = 2) -> jax.Array:
    """(3, 3, Cin, Cout) HWIO kernel -> (t*t, Cin, Cout), G g G^T per channel pair for
    F(out x out, 3x3) (t = out + 2), its first axis the tile positions in row-major
    order. One (t*t, 9) x (9, Cin * Cout) product."""
    g = TILINGS[out].g
    transform = np.kron(g, g).astype(np.float32)  # [(i, j), (k, l)] = G[i, k] G[j, l]
    u = jnp.dot(transform, kernel.reshape(9, -1), precision="highest")
    return u.reshape(transform.shape[0], *kernel.shape[2:]).astype(kernel.dtype)


def _combine(coefficients: np.ndarray, term) -> jax.Array:
    """sum_k coefficients[k] * term(k), in lax: traced 2t + 2m times per convolution
    (12 for F(2x2), 20 for F(4x4)), where jnp's indexing and promotion made tracing
    a step take seconds. Coefficients of +-1 add or subtract, others scale."""
    total = None
    for k, c in enumerate(coefficients):
        if c == 0:
            continue
        t = term(k)
        if abs(c) != 1:
            t, c = lax.mul(t, lax.full((), abs(c), t.dtype)), np.sign(c)
        if total is None:
            total = t if c > 0 else lax.neg(t)
        else:
            total = lax.add(total, t) if c > 0 else lax.sub(total, t)
    assert total is not None, "a transform's row has no nonzero coefficient"
    return total


def _strided(x: jax.Array, axis: int, start: int, count: int, step: int) -> jax.Array:
    """x[..., start : start + step * count : step, ...] along ``axis``."""
    starts = [0] * x.ndim
    limits = list(x.shape)
    strides = [1] * x.ndim
    starts[axis], limits[axis], strides[axis] = start, start + step * (count - 1) + 1, step
    return lax.slice(x, starts, limits, strides)


def _take(x: jax.Array, i: int) -> jax.Array:
    """x[i]."""
    return lax.index_in_dim(x, i, keepdims=False)


def _stack(arrays: list[jax.Array], axis: int) -> jax.Array:
    return lax.concatenate([lax.expand_dims(a, (axis,)) for a in arrays], axis)


def winograd_conv3x3(
    x: jax.Array, u: jax.Array, *, transpose: bool = False, wrap: bool = False
) -> jax.Array:
    """SAME 3x3 convolution, stride 1, by F(m x m, 3x3), m from ``u``'s shape:
    (N, H, W, Cin), (t*t, Cin, Cout) from :func:`winograd_kernel` -> (N, H, W, Cout).

    With ``transpose``, the convolution with the transposed kernel (flipped in
    space, channels swapped; the image gradient's): (N, H, W, Cout), the same
    (t*t, Cin, Cout) -> (N, H, W, Cin). With ``wrap``, the input's sides continue on
    the opposite ones instead of zeros (circular padding, a tileable image).
    """
    tiling = tiling_of(u)
    tile, out = tiling.tile, tiling.out
    n, h, w, _ = x.shape
    ty, tx = -(-h // out), -(-w // out)  # tiles down and across
    # pad for SAME (zeros, or the opposite side's row and column), and up to whole
    # tiles at the bottom and right (outputs sliced off below)
    edge = 0 if wrap else 1
    if wrap:
        x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    p = lax.pad(
        x,
        lax.full((), 0, x.dtype),
        [(0, 0, 0), (edge, ty * out - h + edge, 0), (edge, tx * out - w + edge, 0), (0, 0, 0)],
    )
    # tile position (i, j) of the flipped kernel is scale[i] * scale[j] times
    # (order[i], order[j]) of u: the input transform's rows take the scale
    order, scale = tiling.flip() if transpose else (tuple(range(tile)), np.ones(tile))
    b_t = (scale[:, None] * tiling.b_t).astype(np.float32)
    # B^T d B: the rows' transform for all columns at once, then the columns'
    rows = _stack([_combine(b_t[i], lambda k: _strided(p, 1, k, ty, out)) for i in order], 0)
    v = _stack([_combine(b_t[j], lambda k: _strided(rows, 3, k, tx, out)) for j in order], 1)
    v = lax.reshape(v, (tile * tile, *v.shape[2:]))  # (t*t, N, ty, tx, C), in u's tile order
    contract = 2 if transpose else 1
    m = lax.dot_general(v, u.astype(v.dtype), (((4,), (contract,)), ((0,), (0,))))
    m = lax.reshape(m, (tile, tile, *m.shape[1:]))  # tile (i, j) is m[order[i], order[j]]
    # A^T m A: the output rows a for all tile columns, then the output columns b
    a_t = tiling.a_t.astype(np.float32)
    cols = _stack([_combine(a_t[a], lambda i: _take(m, order[i])) for a in range(out)], 3)
    # cols: (t, N, ty, m, tx, C), its first axis the tile columns j
    y = _stack([_combine(a_t[b], lambda j: _take(cols, order[j])) for b in range(out)], 4)
    # y: (N, ty, m, tx, m, C): output pixel (m*y + a, m*x + b)
    y = lax.reshape(y, (n, ty * out, tx * out, y.shape[-1]))
    return lax.slice(y, (0, 0, 0, 0), (n, h, w, y.shape[-1]))
