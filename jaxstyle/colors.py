"""Keeping the content photograph's colours (Gatys et al. 2017, "Controlling
Perceptual Factors in Neural Style Transfer", section 5).

Two ways, the ``preserve_colors`` setting:

- ``"luminance"``: luminance-only transfer. The optimisation sees grey images:
  the content's luminance, and each style image's luminance shifted and scaled
  to the content luminance's mean and standard deviation. The result's
  luminance then takes the content's chroma (YIQ's I and Q channels). The
  style's strokes and textures come through, none of its hues.
- ``"histogram"``: colour histogram matching. Each style image is recoloured,
  by an affine map of its RGB values, to the content's colour mean and
  covariance before the style targets are computed; the run is otherwise
  unchanged.

All functions are pure and work under ``jit`` and ``vmap``; they take RGB in
[0, 1] and return RGB clipped there (the YIQ conversions excepted) and act on
the last axis (channels). The two matching functions take one image each (their
statistics are the image's): ``jax.vmap`` them for a batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import JaxstyleError
from jaxstyle.images import check_image

PRESERVE_COLORS = ("luminance", "histogram")
"""The values of the ``preserve_colors`` setting (None: the style's colours)."""

RGB_TO_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.5959, -0.2746, -0.3213],
        [0.2115, -0.5227, 0.3112],
    ],
    np.float32,
)
"""YIQ (FCC NTSC) from RGB: rows give Y (luminance), I and Q (chroma)."""

YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ.astype(np.float64)).astype(np.float32)

EPS = 1e-5
"""The smallest variance (and covariance eigenvalue) taken: flat images stay finite."""


def _channels(image: ArrayLike, what: str) -> jax.Array:
    """``image`` as float32; a :class:`JaxstyleError` naming ``what`` unless it is
    floats (integer pixels would be clipped to white) whose last axis is 3 channels
    (static: also inside traced code)."""
    shape = np.shape(image)
    dtype = image.dtype if hasattr(image, "dtype") else np.asarray(image).dtype
    if not shape or shape[-1] != 3:
        raise JaxstyleError(f"{what} must be (..., 3) channels, not {shape}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise JaxstyleError(
            f"{what} must be floats in [0, 1], not {dtype} (divide uint8 pixels by 255)"
        )
    return jnp.asarray(image, jnp.float32)


def rgb_to_yiq(image: ArrayLike) -> jax.Array:
    """(..., 3) RGB -> (..., 3) YIQ."""
    return _channels(image, "an RGB image") @ RGB_TO_YIQ.T


def yiq_to_rgb(image: ArrayLike) -> jax.Array:
    """(..., 3) YIQ -> (..., 3) RGB, not clipped."""
    return _channels(image, "a YIQ image") @ YIQ_TO_RGB.T


def grey(luminance: jax.Array) -> jax.Array:
    """(..., H, W) luminance -> (..., H, W, 3) grey RGB, clipped to [0, 1]."""
    return jnp.repeat(jnp.clip(luminance, 0.0, 1.0)[..., None], 3, axis=-1)


def luminance_image(image: ArrayLike) -> jax.Array:
    """(..., H, W, 3) RGB -> its luminance as a grey (..., H, W, 3) RGB image."""
    return grey(rgb_to_yiq(image)[..., 0])


def match_luminance(style: ArrayLike, content: ArrayLike) -> jax.Array:
    """The grey (h, w, 3) image of ``style`` (h, w, 3)'s luminance shifted and scaled
    to the mean and standard deviation of ``content`` (H, W, 3)'s luminance."""
    check_image(style, "match_luminance's style")  # a batch would pool its statistics
    check_image(content, "match_luminance's content")
    s = rgb_to_yiq(style)[..., 0]
    c = rgb_to_yiq(content)[..., 0]
    scale = jnp.sqrt(c.var() / jnp.maximum(s.var(), EPS))
    return grey((s - s.mean()) * scale + c.mean())


def match_color_histogram(style: ArrayLike, content: ArrayLike) -> jax.Array:
    """``style`` (h, w, 3) recoloured to ``content`` (H, W, 3)'s colour mean and
    covariance: x -> A (x - mu_s) + mu_c with A = S_c^(1/2) S_s^(-1/2), the
    symmetric square roots of the covariances (the image-analogies colour
    transfer of Gatys et al. 2017, section 5), clipped to [0, 1]."""
    check_image(style, "match_color_histogram's style")  # a batch would pool its statistics
    check_image(content, "match_color_histogram's content")
    s = _channels(style, "match_color_histogram's style").reshape(-1, 3)
    c = _channels(content, "match_color_histogram's content").reshape(-1, 3)
    mu_s, mu_c = s.mean(0, keepdims=True), c.mean(0, keepdims=True)
    a = _sqrtm(_covariance(c), 0.5) @ _sqrtm(_covariance(s), -0.5)
    matched = (s - mu_s) @ a.T + mu_c
    return jnp.clip(matched, 0.0, 1.0).reshape(np.shape(style))


def _covariance(pixels: jax.Array) -> jax.Array:
    """(n, 3) pixels -> their (3, 3) covariance."""
    centred = pixels - pixels.mean(0, keepdims=True)
    return centred.T @ centred / pixels.shape[0]


def _sqrtm(matrix: jax.Array, power: float) -> jax.Array:
    """``matrix`` (3, 3) symmetric positive semi-definite to the ``power`` (e.g. +-1/2),
    its eigenvalues taken at least ``EPS``."""
    values, vectors = jnp.linalg.eigh(matrix)
    values = jnp.maximum(values, EPS)
    return vectors @ jnp.diag(values**power) @ vectors.T


def with_content_colors(image: ArrayLike, content: ArrayLike) -> jax.Array:
    """``image`` (..., H, W, 3)'s luminance with ``content`` (H, W, 3)'s chroma
    (YIQ's I and Q), as RGB clipped to [0, 1]."""
    check_image(content, "with_content_colors's content")
    if np.shape(image)[-3:] != np.shape(content):
        raise JaxstyleError(
            f"with_content_colors's image must be (..., {', '.join(map(str, np.shape(content)))})"
            f" as its content, not {np.shape(image)}"
        )
    y = rgb_to_yiq(image)[..., :1]
    iq = jnp.broadcast_to(rgb_to_yiq(content)[..., 1:], (*y.shape[:-1], 2))
    return jnp.clip(yiq_to_rgb(jnp.concatenate([y, iq], axis=-1)), 0.0, 1.0)
