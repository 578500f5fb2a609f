"""Winograd F(2x2, 3x3): a 3x3 convolution in 4x4 tiles with 4 multiplies per output.

A SAME 3x3 convolution, stride 1, costs 9 * Cin * Cout multiply-adds per output
pixel done directly; Lavin & Gray's F(2x2, 3x3) ("Fast Algorithms for
Convolutional Neural Networks", 2016) transforms each 4x4 input tile and each
kernel into a 4x4 "Winograd domain", multiplies there (16 matrix products of
(tiles, Cin) x (Cin, Cout), one per tile position) and transforms back 2x2
outputs: 4 * Cin * Cout per output pixel, 2.25 times fewer. The transforms are
sums and differences; the kernel's is done once per weight set
(:func:`winograd_kernel`).

Exact in real arithmetic; in float32 the result differs from the direct
convolution by about 1e-6 of its largest value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Y = A^T [(G g G^T) * (B^T d B)] A for a 4x4 input tile d and a 3x3 kernel g.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
TILE, OUT = 4, 2  # input tile side, output tile side


def winograd_kernel(kernel: jax.Array) -> jax.Array:
    """(3, 3, Cin, Cout) HWIO kernel -> (16, Cin, Cout), G g G^T per channel pair,
    its first axis the 4x4 tile positions in row-major order."""
    u = jnp.einsum("ik,klcd,jl->ijcd", G, kernel, G, precision="highest")
    return u.reshape(TILE * TILE, *kernel.shape[2:]).astype(kernel.dtype)


def _combine(coefficients: np.ndarray, terms) -> jax.Array:
    """sum_k coefficients[k] * terms[k], skipping zeros (terms: a list or a callable)."""
    get = terms if callable(terms) else terms.__getitem__
    parts = [
        get(k) if c == 1 else -get(k) if c == -1 else float(c) * get(k)
        for k, c in enumerate(coefficients)
        if c != 0
    ]
    return sum(parts[1:], parts[0])


def winograd_conv3x3(x: jax.Array, u: jax.Array) -> jax.Array:
    """SAME 3x3 convolution, stride 1, by F(2x2, 3x3):
    (N, H, W, Cin), (16, Cin, Cout) from :func:`winograd_kernel` -> (N, H, W, Cout)."""
    n, h, w, _ = x.shape
    ty, tx = -(-h // OUT), -(-w // OUT)  # tiles down and across
    # pad for SAME, and up to whole tiles at the bottom and right
    p = jnp.pad(x, ((0, 0), (1, ty * OUT - h + 1), (1, tx * OUT - w + 1), (0, 0)))

    def row(k):  # the k-th row of every tile: (N, ty, W + 2 + pad, Cin)
        return p[:, k : k + OUT * ty : OUT]

    rows = [_combine(B_T[i], row) for i in range(TILE)]
    v = jnp.stack(
        [
            _combine(B_T[j], lambda k, r=r: r[:, :, k : k + OUT * tx : OUT])
            for r in rows
            for j in range(TILE)
        ]
    )  # (16, N, ty, tx, Cin)
    m = jnp.einsum("tnyxc,tcd->tnyxd", v, u)  # (16, N, ty, tx, Cout)
    m = m.reshape(TILE, TILE, *m.shape[1:])
    cols = [_combine(A_T[a], m) for a in range(OUT)]  # each (4, N, ty, tx, Cout)
    y = jnp.stack(
        [jnp.stack([_combine(A_T[b], c) for b in range(OUT)], axis=3) for c in cols], axis=2
    )  # (N, ty, 2, tx, 2, Cout): output pixel (2y + a, 2x + b)
    return y.reshape(n, ty * OUT, tx * OUT, -1)[:, :h, :w]
