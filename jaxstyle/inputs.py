"""A run's images as its optimisation sees them: the content and style images loaded,
resized and recoloured (``preserve_colors``), its style masks and its starting image."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxstyle import colors
from jaxstyle import images as image_io
from jaxstyle.architecture import min_side
from jaxstyle.errors import JaxstyleError
from jaxstyle.objective import blend_weights
from jaxstyle.presets import get_preset
from jaxstyle.settings import MIN_SIZE, Settings

ImageLike = str | os.PathLike | np.ndarray | jax.Array | Image.Image
"""A path to an image file, an (H, W, 3) RGB array (float in [0, 1], or uint8/uint16),
or a Pillow image."""


def as_image(image: ImageLike, *, background: float = 1.0) -> np.ndarray:
    """An (H, W, 3) float32 array in [0, 1] from a path, a Pillow image (see
    :func:`jaxstyle.images.load_image`; transparency over ``background``, 1: white) or
    an array (see :func:`jaxstyle.images.image_from_array`)."""
    if isinstance(image, (str, os.PathLike)):
        return image_io.load_image(image, background=background)
    if isinstance(image, Image.Image):
        return image_io.image_from_pil(image, background=background)
    return image_io.image_from_array(image)


NAMED_INITS = ("content", "noise")
"""The starts named by a word (:func:`initial_image`); any other ``init`` is an image."""


def named_init(init: Any) -> bool:
    """Whether ``init`` names a start (:data:`NAMED_INITS`) rather than giving an image."""
    return isinstance(init, str) and init in NAMED_INITS


def initial_image(
    init: str | ImageLike, content: np.ndarray | None, shape, seed: int, *, grey: bool = False
) -> jax.Array:
    """The starting iterate (H, W, 3): the content, seeded uniform noise, or an image;
    ``grey``: noise or an image as its luminance (``preserve_colors="luminance"``, where
    the optimisation sees grey images: the content is grey already)."""
    if isinstance(init, str) and init == "content":
        if content is None:
            raise JaxstyleError("init 'content' needs a content image")
        return jax.device_put(content)
    if isinstance(init, str) and init == "noise":
        start = jax.random.uniform(jax.random.key(seed), (*shape, 3), jnp.float32)
    else:
        start = jax.device_put(image_io.resize_to(as_image(init), shape))
    return colors.luminance_image(start) if grey else start


def texture_overrides(
    content: ImageLike | None, init: Any, content_weight: Any = None
) -> tuple[Any, dict[str, float]]:
    """(init, setting overrides) of a run: without a content image (texture synthesis)
    it starts from noise unless another init is given, and its content weight is 0
    (one given, ``content_weight`` not None, is an error)."""
    if content is not None:
        return init, {}
    if content_weight is not None:
        raise JaxstyleError("content weight cannot be set without a content image")
    if isinstance(init, str) and init == "content":
        raise JaxstyleError("init 'content' needs a content image (a texture starts from noise)")
    return ("noise" if init is None else init), {"content_weight": 0.0}


def output_shape(content: np.ndarray | None, styles: Sequence[np.ndarray]) -> tuple[int, int]:
    """(H, W) of the result: the content image's, else (texture) the first style image's."""
    return (content if content is not None else styles[0]).shape[:2]


class Images(NamedTuple):
    """A run's images, resized, as its optimisation sees them: ``content`` (H, W, 3)
    or None (texture synthesis) and ``styles`` [(h, w, 3)], RGB in [0, 1],
    recoloured by ``preserve_colors`` (see :mod:`jaxstyle.colors`); ``original``:
    the content in its own colours where the result takes them back
    (``"luminance"``), else None."""

    content: np.ndarray | None
    styles: list[np.ndarray]
    original: np.ndarray | None = None


def style_list(style: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """The style images of a ``style`` argument: a list or tuple is several, any other
    value one."""
    return list(style) if isinstance(style, (list, tuple)) else [cast(ImageLike, style)]


def prepare_images(
    content: ImageLike | None,
    style: ImageLike | Sequence[ImageLike],
    settings: Settings,
    *,
    rows: int = 1,
) -> Images:
    """Load and resize the content (longest side ``size``) and style images (times
    ``style_scale``; a texture, no content, takes none), and recolour them as
    ``settings.preserve_colors`` asks. ``rows``: the devices each image's rows are
    split over (``split_image``), whose multiple the result's height is rounded to
    (:func:`split_evenly`)."""
    styles = style_list(style)
    if not styles:
        raise JaxstyleError("at least one style image is needed")
    blend_weights(settings.style_blend, len(styles))  # before any image is read
    if content is None and settings.preserve_colors:
        raise JaxstyleError("preserving colours needs a content image (texture synthesis has none)")
    if content is None and settings.style_scale != 1:  # the output would be scaled with it
        raise JaxstyleError(
            "a texture is its style image's size (or the size given), so a style scale would "
            "only resize it: give a size instead"
        )
    content_img = None if content is None else as_image(content)
    if content_img is not None and settings.size:
        content_img = image_io.resize_longest(content_img, settings.size)
    if content_img is not None:
        content_img = split_evenly(content_img, rows)
    reference = settings.size or (max(content_img.shape[:2]) if content_img is not None else None)
    style_imgs = []
    for s in styles:
        img = as_image(s)
        side = reference or max(img.shape[:2])
        scaled = side * settings.style_scale  # inf for a scale too large: refused below
        scaled = max(MIN_SIZE, round(scaled)) if math.isfinite(scaled) else scaled
        style_imgs.append(image_io.resize_longest(img, scaled))
    if content_img is None:  # a texture: the first style image's shape is the result's
        style_imgs[0] = split_evenly(style_imgs[0], rows)
    patch = get_preset(settings.preset).mrf_patch_size if settings.style_loss == "mrf" else 1
    sides = (settings.content_layers, settings.style_layers, patch, settings.size)
    _check_sides("content", content_img, *sides)
    for img in style_imgs:
        _check_sides("style", img, (), *sides[1:], scale=settings.style_scale)
    return _recolor(settings.preserve_colors, content_img, style_imgs)


def split_evenly(image: np.ndarray, rows: int) -> np.ndarray:
    """``image`` (H, W, 3) resized to the nearest height that is a multiple of ``rows``
    (at least ``rows``), so that its rows split evenly over that many devices (jax
    shards an axis only into equal parts): at most ``rows`` / 2 rows more or fewer."""
    height, width = image.shape[:2]
    if rows <= 1 or height % rows == 0:
        return image
    return image_io.resize_to(image, (max(rows, round(height / rows) * rows), width))


def _recolor(mode: str | None, content: np.ndarray | None, styles: list[np.ndarray]) -> Images:
    """The :class:`Images` of a ``preserve_colors`` mode from the resized images."""
    if mode is None:
        return Images(content, styles)
    assert content is not None, "prepare_images refuses to preserve colours without a content"
    if mode == "histogram":
        return Images(
            content, [np.asarray(colors.match_color_histogram(s, content)) for s in styles]
        )
    grey_styles = [np.asarray(colors.match_luminance(s, content)) for s in styles]
    return Images(np.asarray(colors.luminance_image(content)), grey_styles, original=content)


def restore_colors(images: np.ndarray, original: np.ndarray | None) -> np.ndarray:
    """Optimised ``images`` (..., H, W, 3) with the chroma of ``original`` (the
    :attr:`Images.original` content, H x W) where it is not None."""
    if original is None:
        return images
    return np.asarray(colors.with_content_colors(images, original))


def prepare_mask(
    mask: ImageLike | Sequence[ImageLike] | None,
    shape: tuple[int, int],
    styles: int,
    settings: Settings | None = None,
) -> np.ndarray | None:
    """The weights in [0, 1] of a style mask resized to the output ``shape``: (H, W)
    for one mask (a path, or an (h, w) or (h, w, 3) array: its luminance), which
    every style shares; (S, H, W) for a list of one mask per style image (``styles``
    of them), each style matched in its own region (so not with the ``settings``'
    style blend, nor an MRF style loss); None for None."""
    if mask is None:
        return None
    if not isinstance(mask, (list, tuple)):  # one mask, whatever its type
        return _mask_weights(cast(ImageLike, mask), shape)
    if len(mask) != styles:
        raise JaxstyleError(
            f"{len(mask)} masks given for {styles} style image(s): give one mask, or one per style"
        )
    if settings is not None and settings.style_blend is not None:
        raise JaxstyleError("styles with a mask each are not blended: leave out the style blend")
    if settings is not None and settings.style_loss == "mrf":
        raise JaxstyleError(
            "an MRF style loss matches the style images' patches together: give one mask"
        )
    return np.stack([_mask_weights(m, shape) for m in mask])


def mask_record(mask: ImageLike | Sequence[ImageLike] | None) -> str | list[str] | None:
    """A mask argument as a run's record holds it: one path, a list of one per
    style, or None."""
    if mask is None:
        return None
    return [str(m) for m in mask] if isinstance(mask, (list, tuple)) else str(mask)


def _mask_weights(mask: ImageLike, shape: tuple[int, int]) -> np.ndarray:
    if not isinstance(mask, (str, os.PathLike, Image.Image)) and np.ndim(mask) == 2:
        mask = np.repeat(np.asarray(mask)[..., None], 3, axis=-1)
    image = image_io.resize_to(as_image(mask, background=0.0), shape)  # transparent: 0
    weights = np.asarray(colors.rgb_to_yiq(image)[..., 0]).clip(0.0, 1.0)
    if not weights.any():
        raise JaxstyleError("a mask is black everywhere: no pixel would take its style")
    return weights


def _check_sides(
    kind: str,
    image: np.ndarray | None,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    patch: int = 1,
    size: int | None = None,
    scale: float = 1.0,
) -> None:
    """An image (H, W, 3), as resized (to a longest side of ``size``, the run's or
    its coarse-to-fine pass's, times a style image's ``scale``), must reach the
    deepest of its layers with feature maps that are not empty (at least 16 px a
    side for relu5_1), at the style layers at least ``patch`` positions a side (an
    MRF loss's patches)."""
    if image is None:
        return
    needs = [(min_side(name), name) for name in content_layers]
    needs += [(patch * min_side(name), name) for name in style_layers]
    need, last = max(needs)
    h, w = image.shape[:2]
    if min(h, w) < need:
        raise JaxstyleError(
            f"the {kind} image is {w}x{h} px after resizing"
            f"{f' to {size} px' if size else ''}{f' x style scale {scale:g}' * (scale != 1)}; "
            f"{last} needs sides of at least {need} px: "
            f"use a larger size (or coarse-to-fine size){' or style scale' * (kind == 'style')}"
        )
