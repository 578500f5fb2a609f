"""Winograd F(2x2, 3x3): a 3x3 convolution in 4x4 tiles with 4 multiplies per output.

A SAME 3x3 convolution, stride 1, costs 9 * Cin * Cout multiply-adds per output
pixel done directly; Lavin & Gray's F(2x2, 3x3) ("Fast Algorithms for
Convolutional Neural Networks", 2016) transforms each 4x4 input tile and each
kernel into a 4x4 "Winograd domain", multiplies there (16 matrix products of
(tiles, Cin) x (Cin, Cout), one per tile position) and transforms back 2x2
outputs: 4 * Cin * Cout per output pixel, 2.25 times fewer. The transforms are
sums and differences; the kernel's is done once per weight set
(:func:`winograd_kernel`). The transposed convolution (the image gradient's)
reads the same transformed kernel: flipping a 3x3 kernel in space permutes its
4x4 Winograd tile (G J = P G, P swapping rows 0 and 3), so it contracts the
kernel's other channel axis with the tile positions permuted.

Exact in real arithmetic; in float32 the result differs from the direct
convolution by about 1e-6 of its largest value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Y = A^T [(G g G^T) * (B^T d B)] A for a 4x4 input tile d and a 3x3 kernel g.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
TILE, OUT = 4, 2  # input tile side, output tile side
FLIP = (3, 1, 2, 0)  # G[::, ::-1] == G[FLIP]: tile rows (and columns) of a flipped kernel


def winograd_kernel(kernel: jax.Array) -> jax.Array:
    """(3, 3, Cin, Cout) HWIO kernel -> (16, Cin, Cout), G g G^T per channel pair,
    its first axis the 4x4 tile positions in row-major order."""
    u = jnp.einsum("ik,klcd,jl->ijcd", G, kernel, G, precision="highest")
    return u.reshape(TILE * TILE, *kernel.shape[2:]).astype(kernel.dtype)


def _combine(coefficients: np.ndarray, term) -> jax.Array:
    """sum_k coefficients[k] * term(k) for coefficients in {-1, 0, 1} (those of B^T and
    A^T), in lax: traced 26 times per VGG19 pass, jnp's indexing and promotion made
    tracing a step take seconds."""
    total = None
    for k, c in enumerate(coefficients):
        if c == 0:
            continue
        t = term(k)
        if total is None:
            total = t if c > 0 else lax.neg(t)
        else:
            total = lax.add(total, t) if c > 0 else lax.sub(total, t)
    return total


def _strided(x: jax.Array, axis: int, start: int, count: int) -> jax.Array:
    """x[..., start : start + OUT * count : OUT, ...] along ``axis``."""
    starts = [0] * x.ndim
    limits = list(x.shape)
    strides = [1] * x.ndim
    starts[axis], limits[axis], strides[axis] = start, start + OUT * (count - 1) + 1, OUT
    return lax.slice(x, starts, limits, strides)


def _take(x: jax.Array, i: int) -> jax.Array:
    """x[i]."""
    return lax.index_in_dim(x, i, keepdims=False)


def _stack(arrays: list[jax.Array], axis: int) -> jax.Array:
    return lax.concatenate([lax.expand_dims(a, (axis,)) for a in arrays], axis)


def winograd_conv3x3(x: jax.Array, u: jax.Array, *, transpose: bool = False) -> jax.Array:
    """SAME 3x3 convolution, stride 1, by F(2x2, 3x3):
    (N, H, W, Cin), (16, Cin, Cout) from :func:`winograd_kernel` -> (N, H, W, Cout).

    With ``transpose``, the convolution with the transposed kernel (flipped in
    space, channels swapped; the image gradient's): (N, H, W, Cout), the same
    (16, Cin, Cout) -> (N, H, W, Cin).
    """
    n, h, w, _ = x.shape
    ty, tx = -(-h // OUT), -(-w // OUT)  # tiles down and across
    # pad for SAME, and up to whole tiles at the bottom and right
    p = lax.pad(
        x,
        lax.full((), 0, x.dtype),
        [(0, 0, 0), (1, ty * OUT - h + 1, 0), (1, tx * OUT - w + 1, 0), (0, 0, 0)],
    )
    # tile position (i, j) of the flipped kernel is (order[i], order[j]) of u
    order = FLIP if transpose else tuple(range(TILE))
    rows = [_combine(B_T[i], lambda k: _strided(p, 1, k, ty)) for i in order]
    v = _stack(
        [_combine(B_T[j], lambda k, r=r: _strided(r, 2, k, tx)) for r in rows for j in order],
        0,
    )  # (16, N, ty, tx, C), in u's tile order
    contract = 2 if transpose else 1
    m = lax.dot_general(v, u.astype(v.dtype), (((4,), (contract,)), ((0,), (0,))))
    m = lax.reshape(m, (TILE, TILE, *m.shape[1:]))  # tile (i, j) is m[order[i], order[j]]
    cols = [_combine(A_T[a], lambda i: _take(m, order[i])) for a in range(OUT)]
    out_rows = [
        _stack([_combine(A_T[b], lambda j, c=c: _take(c, order[j])) for b in range(OUT)], 3)
        for c in cols
    ]  # each (N, ty, tx, 2, C), C the output channels
    y = _stack(out_rows, 2)  # (N, ty, 2, tx, 2, C): output pixel (2y + a, 2x + b)
    y = lax.reshape(y, (n, ty * OUT, tx * OUT, y.shape[-1]))
    return lax.slice(y, (0, 0, 0, 0), (n, h, w, y.shape[-1]))
