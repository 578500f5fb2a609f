"""Image files: reading, resizing and (atomically) writing RGB images.

Images in memory are (H, W, 3) float32 RGB arrays in [0, 1]. Every problem
with a user's file is raised as a one-line :class:`JaxstyleError` naming it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import stat
import sys
import tempfile
import warnings
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from jaxstyle.errors import JaxstyleError
from jaxstyle.paths import check_creatable, umask, user_path

MAX_PIXELS = 12_000 * 12_000
"""Hard limit: larger images (decompression bombs, giant scans) are refused.

Below Pillow's own error threshold (2 * ``Image.MAX_IMAGE_PIXELS``), so this is the
limit users meet."""

MAX_SIDE = 4096
"""Soft limit: images whose longest side is larger are downscaled to it on load."""

MAX_RESIZE = 2 * MAX_SIDE
"""Hard limit: the longest side an image may be resized to (``size``, ``style_scale``)."""

FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
"""Output suffix -> Pillow format."""

ANIMATION_FORMATS = {".gif": "GIF", ".webp": "WEBP", ".png": "PNG", ".apng": "PNG"}
"""Animated output suffix -> Pillow format (.png: an APNG)."""

FRAME_MS = 100
"""A frame's duration where a file gives none (or 0), or a GIF 10 ms (one centisecond):
10 frames a second, as browsers show."""

MAX_FRAME_MS = {"GIF": 655_350, "PNG": 65_535_000, "WEBP": 2**24 - 1}
"""The longest frame each animation format stores, in ms: a GIF's 16-bit centiseconds,
an APNG's 16-bit numerator of seconds, a WebP's 24-bit milliseconds."""

_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95}}
_ORIENTATION = 0x0112  # EXIF tag


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


UNDECODED = (".heic", ".heif", ".avif", ".jxl", ".psd", ".raw", ".cr2", ".nef", ".arw", ".dng")
"""Suffixes of photo formats Pillow reads without plugins poorly or not at all: a file
that it cannot decode is told to convert them."""


def _fail(path: Path | str, reason: object) -> JaxstyleError:
    return JaxstyleError(_one_line(f"cannot read {path}: {reason}"))


# ---------------------------------------------------------------- reading


def open_input(path: Path, label: str = "", noun: str = "an image") -> IO[bytes]:
    """Open the user's file ``path`` for binary reading, or raise a one-line
    ``cannot read {label}{path}: why`` (no such file, a directory, not ``noun``, ...).
    A FIFO, device or socket is refused unopened: reading it could block or never end."""
    path = Path(path)

    def fail(reason: object) -> JaxstyleError:
        return JaxstyleError(_one_line(f"cannot read {label}{path}: {reason}"))

    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise fail(f"it is a directory, not {noun}")
        if not stat.S_ISREG(mode):
            raise fail("it is not a regular file (a FIFO, device or socket)")
        return open(path, "rb")
    except FileNotFoundError:
        raise fail("no such file") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as e:
        raise fail(e.strerror or e) from None


def load_image(path: str | os.PathLike, *, background: float = 1.0) -> np.ndarray:
    """Read an image file as (H, W, 3) float32 RGB in [0, 1].

    EXIF orientation is applied; colours are converted to sRGB from the ICC profile
    the file embeds (Display P3, Adobe RGB, CMYK, ...); transparency is composited
    onto white (``background``: the grey level it is composited onto); 16-bit
    grayscale keeps its precision (32-bit integer images are read on the same
    0..65535 scale; float images already in [0, 1] as they are, larger
    float ranges as 0..255 or 0..65535). Images whose longest side exceeds
    :data:`MAX_SIDE` are downscaled (with a note on stderr); images over
    :data:`MAX_PIXELS` are refused. The file is opened read-only.
    """
    path = user_path(path, "an image path")
    with open_input(path) as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise _fail(path, "the file is empty")
        image, original = _decode(path, file)
    return _to_array(_noted(image, original, path), background)


def image_from_pil(image: Image.Image, *, background: float = 1.0) -> np.ndarray:
    """A Pillow image (of any mode) as (H, W, 3) float32 RGB in [0, 1], read as
    :func:`load_image` reads a file: its EXIF orientation and ICC profile applied,
    alpha over white (or ``background``), within :data:`MAX_SIDE`. ``image`` itself is
    not changed."""
    source = "the Pillow image"
    with _pillow_errors(source):
        try:
            image.load()  # a lazily opened image reads its file here
        except Exception as e:
            if "closed" in str(e) or getattr(image, "fp", None) is None:  # closed, or its file
                closed = "it is closed, or its file is: pass it before closing it"
                raise _fail(source, closed) from None
            raise
    return _to_array(_noted(*_prepare(image, source), source), background)


class Frame(NamedTuple):
    """One frame of an animated image (:func:`read_frames`).

    Attributes:
      image: (H, W, 3) float32 RGB in [0, 1].
      duration: how long it shows, in milliseconds (:data:`FRAME_MS` where the file
        gives none, or a GIF 10 ms, as viewers show it).
      loop: how often the file says the animation repeats (0: forever; None: it plays
        once: a GIF without a count; a WebP's or APNG's count, of plays, less one).
    """

    image: np.ndarray
    duration: int
    loop: int | None


def read_frames(path: str | os.PathLike) -> Generator[Frame, None, None]:
    """The frames of an animated GIF, WebP, PNG (APNG) or multi-page TIFF, one at a
    time, each read as :func:`load_image` reads a still image (a still image is one
    frame). A frame Pillow cannot decode raises a one-line error naming the file."""
    path = user_path(path, "an animation path")
    with open_input(path) as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise _fail(path, "the file is empty")
        with _pillow_errors(path), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS rules
            animation = Image.open(file)
        count = getattr(animation, "n_frames", 1)
        first = 1 if animation.info.get("default_image") and count > 1 else 0
        for index in range(first, count):  # an APNG's default image is not a frame
            with _pillow_errors(path):
                animation.seek(index)
            frame, original = _prepare(animation, path)
            if index == first:
                _noted(frame, original, path)
            duration = int(animation.info.get("duration") or 0)
            if duration <= (10 if animation.format == "GIF" else 0):  # as viewers show it
                duration = FRAME_MS
            yield Frame(_to_array(frame), duration, _repeats(animation))


PLAYS = ("PNG", "WEBP")
"""The animation formats whose loop count is how often they play (APNG's num_plays, WebP's
loop count), not, as a GIF's, how often they repeat (viewers play a GIF count + 1 times)."""


def _repeats(animation: Image.Image) -> int | None:
    """How often an opened animation repeats (:attr:`Frame.loop`: 0 forever, None once)."""
    count = animation.info.get("loop")
    if animation.format not in PLAYS or not count:
        return count
    return None if count == 1 else count - 1


def _loop_count(fmt: str, loop: int | None) -> int | None:
    """The loop count that a file of ``fmt`` stores for ``loop`` (:attr:`Frame.loop`);
    None: none (a GIF that plays once)."""
    if fmt not in PLAYS:
        return loop
    return 1 if loop is None else loop + 1 if loop else 0


def _noted(image: Image.Image, original: tuple[int, int], source: Path | str) -> Image.Image:
    """``image``, with a note on stderr where it was downscaled from ``original`` (W, H)."""
    if image.size != original:
        print(
            f"jaxstyle: note: {source} is {original[0]}x{original[1]}; resized to "
            f"{image.width}x{image.height} (longest side limit {MAX_SIDE})",
            file=sys.stderr,
        )
    return image


def _decode(path: Path, file: IO[bytes]) -> tuple[Image.Image, tuple[int, int]]:
    """Fully decode ``file``: (normalized-mode image, original oriented (W, H))."""
    truncated_ok = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never padded
    try:
        with _pillow_errors(path), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS rules
            image = Image.open(file)
        return _prepare(image, path, draft=True)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok


@contextlib.contextmanager
def _pillow_errors(source: Path | str) -> Generator[None, None, None]:
    """Pillow's errors reading ``source`` as one-line :class:`JaxstyleError` naming it."""
    try:
        yield
    except JaxstyleError:
        raise
    except Image.DecompressionBombError as e:
        raise _fail(source, f"the image is too large to load safely ({e})") from None
    except UnidentifiedImageError:
        hint = ""
        if Path(str(source)).suffix.lower() in UNDECODED:
            hint = ": convert it to PNG or JPEG first (e.g. with an image viewer or ImageMagick)"
        raise _fail(source, f"not an image file, or a format Pillow cannot decode{hint}") from None
    except Exception as e:  # Pillow raises many types for truncated/corrupt data
        raise _fail(source, f"the image data is truncated or corrupt ({e})") from None


def _prepare(
    image: Image.Image, source: Path | str, *, draft: bool = False
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an opened ``image``, oriented by its EXIF tag, in sRGB (:func:`_to_srgb`),
    in a normalized mode and within :data:`MAX_SIDE`: (image, original oriented (W, H)).
    ``draft``: a large JPEG may be decoded at a reduced scale (Pillow's ``draft``, which
    changes ``image``: only for an image opened here)."""
    with _pillow_errors(source):
        width, height = image.size
        if width < 1 or height < 1:
            raise _fail(source, f"the image has zero size ({width}x{height})")
        if width * height > MAX_PIXELS:
            raise _too_big(source, width, height)
        orientation = image.getexif().get(_ORIENTATION, 1)
        original = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        if draft and max(width, height) > MAX_SIDE and image.format == "JPEG":
            scale = MAX_SIDE / max(width, height)
            image.draft(image.mode, (round(width * scale), round(height * scale)))
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _normalize_mode(_to_srgb(image, source))
        if max(image.size) > MAX_SIDE:
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        return image, original


def _to_srgb(image: Image.Image, source: Path | str) -> Image.Image:
    """``image`` converted from the ICC colour profile it embeds (Display P3, Adobe RGB,
    a CMYK press profile, a grey gamma, ...) to sRGB, the colours jaxstyle's arrays and
    outputs are in (Little CMS, perceptual intent; alpha kept; palettes, 1-bit and 16-bit
    grey through the mode Little CMS takes, 16-bit grey then in 8 bits). As it is without
    a profile, in float mode, or with a profile it cannot use (then a note on stderr: its
    values are taken as sRGB)."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode == "F":
        return image
    if image.mode != "CMYK":
        image = _normalize_mode(image)  # L, LA, RGB, RGBA or I (16-bit range), info kept
    colour = {"I": "I;16", "LA": "L"}.get(image.mode, image.mode)
    try:
        converted = ImageCms.profileToProfile(
            image.convert(colour) if colour != image.mode else image,
            ImageCms.ImageCmsProfile(io.BytesIO(profile)),
            _srgb_profile(),
            outputMode="RGBA" if image.mode == "RGBA" else "RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
        print(
            f"jaxstyle: note: {source}'s colour profile cannot be used ({_one_line(e)}); "
            "its colours are taken as sRGB",
            file=sys.stderr,
        )
        return image
    assert converted is not None  # not in place
    if image.mode == "LA":
        converted.putalpha(image.getchannel("A"))
    return converted


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _too_big(path: Path | str, width: int, height: int) -> JaxstyleError:
    return _fail(
        path,
        f"the image is {width}x{height} = {width * height / 1e6:.4g} megapixels, over "
        f"jaxstyle's limit of {MAX_PIXELS / 1e6:.4g}; downscale it first",
    )


def _normalize_mode(image: Image.Image) -> Image.Image:
    """Convert to one of L, LA, RGB, RGBA, I (16-bit range) or F; a grey or RGB
    image with a transparent colour (a PNG's colour key) to LA or RGBA."""
    mode = image.mode
    if mode in ("L", "RGB") and "transparency" in image.info:
        return image.convert(f"{mode}A")
    if mode in ("L", "LA", "RGB", "RGBA", "I", "F"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16"):
        return image.convert("I")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode in ("La", "RGBa"):
        return image.convert(mode.upper())
    return image.convert("RGB")  # CMYK, YCbCr, RGBX, HSV, ...


def _to_array(image: Image.Image, background: float = 1.0) -> np.ndarray:
    """A normalized-mode image -> (H, W, 3) float32 in [0, 1], alpha over the grey
    level ``background`` (1: white)."""
    mode = image.mode
    data = np.asarray(image)
    if mode == "I":
        pixels = data.astype(np.float32) / 65535.0
    elif mode == "F":
        pixels = np.nan_to_num(data.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        peak = float(pixels.max(initial=0.0))
        pixels = pixels / (1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0)
    else:
        pixels = data.astype(np.float32) / 255.0
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if mode in ("LA", "RGBA"):
        color, alpha = pixels[..., :-1], pixels[..., -1:]
        pixels = color * alpha + background * (1.0 - alpha)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32)


# --------------------------------------------------------------- resizing


def resize_longest(image: np.ndarray, side: float) -> np.ndarray:
    """Resize (H, W, 3) so its longest side is ``side``, keeping the aspect ratio."""
    if side < 1:
        raise JaxstyleError(f"image size must be at least 1 pixel, not {side}")
    if side > MAX_RESIZE:
        raise JaxstyleError(
            f"images are resized to at most {MAX_RESIZE} px (longest side), not {side:g}: "
            "use a smaller size or style scale"
        )
    height, width = image.shape[:2]
    scale = side / max(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    return image if shape == (height, width) else resize_to(image, shape)


def resize_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize (H, W, 3) float32 to exactly ``shape`` = (H', W'): Lanczos, clipped to [0, 1]."""
    height, width = int(shape[0]), int(shape[1])
    image = np.asarray(image, np.float32)
    if image.shape[:2] == (height, width):
        return image
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
                (width, height), Image.Resampling.LANCZOS
            )
        )
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------- writing


INTEGER_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
"""The integer pixel types an image array may have, and their white."""

OVERSHOOT = 0.5
"""How far outside [0, 1] a float image may stray (resampling overshoot) before it is
taken for another scale (such as 0-255) and refused; within it, values are clipped."""


def _white(dtype: np.dtype) -> float | None:
    """White in pixels of ``dtype``: 1 for floats and bools, 255 or 65535 for uint8
    or uint16 (:data:`INTEGER_SCALES`); None for any other type."""
    return 1.0 if dtype.kind in "bf" else INTEGER_SCALES.get(dtype)


def check_image(image, what: str, *, array: bool = False) -> None:
    """A :class:`JaxstyleError` naming ``what`` unless ``image`` is one (H, W, 3)
    image; from its static shape, so also inside jit and per example under vmap.
    ``array``: an array the API was given (not a traced value): no side may be empty,
    and a batch gets no jax.vmap hint."""
    shape = np.shape(image)
    if len(shape) != 3 or shape[-1] != 3:
        batch = len(shape) == 4 and shape[-1] == 3 and not array
        hint = " (jax.vmap over a batch)" if batch else ""
        raise JaxstyleError(f"{what} must be one (H, W, 3) image, not {shape}{hint}")
    if array and min(shape[:2]) < 1:
        raise JaxstyleError(f"{what} has an empty side: {shape}")


def _image_white(image: np.ndarray, what: str) -> float:
    """White in ``image``'s pixels (:func:`_white`), refused unless it is one (H, W, 3)
    image (:func:`check_image`) of floats, bools, uint8 or uint16."""
    white = _white(image.dtype)
    if white is None:
        raise JaxstyleError(f"{what} must be floats in [0, 1] or uint8/uint16, not {image.dtype}")
    check_image(image, what, array=True)
    return white


def _pixel_array(image) -> np.ndarray:
    """``np.asarray(image)``, its floats of types NumPy has no kind "f" for (jax's
    bfloat16 and ml_dtypes' other floats, NumPy kind "V") as float32."""
    array = np.asarray(image)
    if array.dtype.kind == "V" and array.dtype.name.startswith(("bfloat", "float")):
        return array.astype(np.float32)
    return array


def image_from_array(array) -> np.ndarray:
    """An (H, W, 3) RGB array -> float32 in [0, 1]: uint8 and uint16 scaled by their
    white, bool as 0/1, floats (bfloat16 too) checked (finite, within
    :data:`OVERSHOOT` of [0, 1]) and clipped; anything else is a :class:`JaxstyleError`."""
    array = _pixel_array(array)
    white = _image_white(array, "an image array")
    pixels = array.astype(np.float32) / np.float32(white)
    if not np.isfinite(pixels).all():
        raise JaxstyleError("the image array holds NaN or infinite values")
    _check_range(pixels, "float images")
    return np.clip(pixels, 0.0, 1.0)


def _check_range(pixels: np.ndarray, what: str) -> None:
    """Refuse float ``pixels`` beyond :data:`OVERSHOOT` of [0, 1] (NaN ignored): such an
    image is on another scale, such as 0-255."""
    if pixels.size and not np.isnan(pixels).all():
        low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
        if low < -OVERSHOOT or high > 1.0 + OVERSHOOT:
            raise JaxstyleError(
                f"{what} must be in [0, 1], this one spans [{low:.4g}, {high:.4g}] "
                "(for 0-255 values divide by 255, or pass uint8)"
            )


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 of the same shape (rounded, clipped; NaN -> 0)."""
    pixels = np.nan_to_num(np.asarray(image, np.float32), nan=0.0)
    return np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)


def _format(path: Path, formats: dict[str, str] = FORMATS) -> str:
    fmt = formats.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(formats)
        raise JaxstyleError(
            f"cannot write {path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"use one of {supported}"
        )
    return fmt


def save_image(path: Path, image: np.ndarray, *, overwrite: bool = False) -> None:
    """Write (H, W, 3) float [0, 1] (bfloat16 too) or uint8/uint16 pixels as
    PNG/JPEG/WebP/TIFF (by suffix), atomically.

    Parent directories are created. An existing file is an error (left as it
    was) unless ``overwrite``, when it is replaced only once the new one is
    completely written. Float values are clipped to [0, 1] (beyond
    :data:`OVERSHOOT` of it, such as 0-255, they are an error), NaN -> 0.
    """
    path = user_path(path, "an output path")
    fmt = _format(path)
    pixels = _pixels(image, path)
    try:
        with _atomic_write(path, "wb", overwrite) as file:
            _encode(pixels, fmt, file)
    except (ValueError, KeyError) as e:
        raise JaxstyleError(_one_line(f"cannot write {path}: {e}")) from None


def as_saved(image: np.ndarray, path: Path) -> np.ndarray:
    """(H, W, 3) ``image`` as :func:`load_image` reads it back from the file
    :func:`save_image` would write at ``path`` (8 bits, and JPEG's or WebP's loss),
    writing nothing."""
    file = io.BytesIO()
    _encode(_pixels(image, path), _format(path), file)
    file.seek(0)
    return _to_array(_decode(path, file)[0])


def _encode(pixels: np.ndarray, fmt: str, file: IO[bytes]) -> None:
    """Write uint8 (H, W, 3) ``pixels`` to ``file`` in Pillow's format ``fmt``."""
    Image.fromarray(pixels).save(file, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))


def save_animation(
    path: Path,
    frames: Sequence[np.ndarray],
    durations: Sequence[int],
    *,
    loop: int | None = 0,
    overwrite: bool = False,
) -> None:
    """Write (H, W, 3) float [0, 1] (or uint8/uint16) frames as an animated GIF, WebP or PNG
    (APNG) by suffix (:data:`ANIMATION_FORMATS`), atomically, as :func:`save_image`.

    ``durations``: each frame's, in milliseconds; ``loop``: how often it repeats
    (0: forever; None: it plays once). A GIF's frames share one 256-colour palette
    made from all of them, undithered, so that still regions keep their colours
    (dithering's error diffusion, and a palette per frame, make them shimmer).
    """
    path = user_path(path, "an output path")
    data = encode_animation(path, frames, durations, loop=loop)
    with _atomic_write(path, "wb", overwrite) as file:
        file.write(data)


def encode_animation(
    path: Path, frames: Sequence[np.ndarray], durations: Sequence[int], *, loop: int | None = 0
) -> bytes:
    """The bytes :func:`save_animation` writes at ``path`` (its format by suffix), writing
    nothing."""
    fmt = _format(path, ANIMATION_FORMATS)
    if not frames or len(frames) != len(durations):
        raise JaxstyleError(
            f"cannot write {path}: {len(frames)} frame(s) and {len(durations)} duration(s)"
        )
    check_durations(path, durations)
    pictures = [Image.fromarray(_pixels(frame, path)) for frame in frames]
    if len({p.size for p in pictures}) > 1:
        shapes = sorted({f"{p.width}x{p.height} {p.mode}" for p in pictures})
        raise JaxstyleError(
            f"cannot write {path}: the frames must be RGB of one size, not {', '.join(shapes)}"
        )
    if fmt == "GIF":
        palette = _shared_palette(pictures)
        pictures = [p.quantize(palette=palette, dither=Image.Dither.NONE) for p in pictures]
    options: dict[str, object] = {"quality": 95} if fmt == "WEBP" else {}
    if (count := _loop_count(fmt, loop)) is not None:  # a GIF without a count plays once
        options["loop"] = count
    buffer = io.BytesIO()
    try:
        pictures[0].save(
            buffer,
            format=fmt,
            save_all=True,
            append_images=pictures[1:],
            duration=stored_durations(path, durations),
            **options,
        )
    except (ValueError, KeyError) as e:
        raise JaxstyleError(_one_line(f"cannot write {path}: {e}")) from None
    return buffer.getvalue()


def check_durations(path: Path, durations: Sequence[float]) -> None:
    """Refuse frame ``durations`` (ms) longer than the animation format of ``path``
    stores (:data:`MAX_FRAME_MS`): Pillow would fail while writing."""
    fmt = _format(path, ANIMATION_FORMATS)
    longest = max(durations, default=0)
    if longest > MAX_FRAME_MS[fmt]:
        raise JaxstyleError(
            f"cannot write {path}: a frame shows for {longest / 1000:g} s, longer than "
            f"{fmt} stores ({MAX_FRAME_MS[fmt] / 1000:g} s); give a higher fps"
        )


def check_frame_rate(path: Path, frame_ms: int) -> None:
    """Refuse frames of ``frame_ms`` asked for (a frame rate) that a GIF ``path`` would
    store as 10 ms (one centisecond, :func:`_centiseconds`), which viewers show for
    100 ms: 10 times slower."""
    if _format(path, ANIMATION_FORMATS) == "GIF" and _centiseconds([frame_ms])[0] <= 10:
        raise JaxstyleError(
            f"cannot write {path} with frames of {frame_ms} ms: a GIF stores them as 10 ms, "
            "which viewers show for 100 ms; give at most 50 fps, or write .webp or .png"
        )


def stored_durations(path: Path, durations: Sequence[int]) -> list[int]:
    """Frame ``durations`` (ms) as the animation format of ``path`` stores them: a GIF's
    rounded to whole centiseconds (:func:`_centiseconds`), the others' as given."""
    if _format(path, ANIMATION_FORMATS) == "GIF":
        return _centiseconds(durations)
    return [int(d) for d in durations]


def _centiseconds(durations: Sequence[int]) -> list[int]:
    """Durations in ms rounded to the whole centiseconds (at least 1) a GIF stores: Pillow
    truncates, and 60 fps's 17 ms would become 10 ms, which viewers show for 100 ms."""
    return [10 * max(1, round(d / 10)) for d in durations]


def _shared_palette(pictures: list[Image.Image], side: int = 96) -> Image.Image:
    """A 256-colour palette image for all ``pictures`` (of one size): median cut over a
    row of up to 64 of them (evenly spaced), each shrunk to at most ``side`` px."""
    thumbs = [p.copy() for p in pictures[:: -(-len(pictures) // 64)]]
    for thumb in thumbs:
        thumb.thumbnail((side, side))
    width, height = thumbs[0].size
    row = Image.new("RGB", (width * len(thumbs), height))
    for i, thumb in enumerate(thumbs):
        row.paste(thumb, (width * i, 0))
    return row.quantize(256, method=Image.Quantize.MEDIANCUT)


def _pixels(image, path: Path) -> np.ndarray:
    """An (H, W, 3) image of floats in [0, 1] (clipped, NaN -> 0), uint8 or uint16 as the
    uint8 pixels written to ``path``; refused in one line naming ``path`` otherwise."""
    image = _pixel_array(image)
    white = _image_white(image, f"cannot write {path}: the image")
    if image.dtype.kind == "f":
        _check_range(image, f"cannot write {path}: float pixels")
    return image if image.dtype == np.uint8 else to_uint8(image / np.float32(white))


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (parent directories are created)."""
    with _atomic_write(Path(path), "w") as file:
        file.write(text)


def _move_to_new_name(tmp: str, path: Path) -> None:
    """Move file ``tmp`` to ``path``, which must not exist (else FileExistsError): by a
    hard link, or where the filesystem has none (FAT, some network shares) by claiming
    the name with ``O_EXCL`` and replacing that empty file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        try:
            os.replace(tmp, path)
        except OSError:
            os.unlink(path)  # the empty file claimed above
            raise
        return
    os.unlink(tmp)


@contextlib.contextmanager
def _atomic_write(path: Path, mode: str, overwrite: bool = True) -> Generator[IO, None, None]:
    """Yield a file that replaces ``path`` when the block succeeds (temp file + fsync + rename;
    without ``overwrite``, a move that fails if ``path`` exists: :func:`_move_to_new_name`).

    On any failure the temporary file is removed and ``path`` is left as it was;
    OSErrors become a one-line JaxstyleError.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it 0600; give the usual mode
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        if overwrite:
            os.replace(tmp, path)
            tmp = None
        else:
            try:
                _move_to_new_name(tmp, path)
            except FileExistsError:
                raise JaxstyleError(f"{path} exists; not overwriting it") from None
            tmp = None
    except OSError as e:
        reason = "it is a directory" if path.is_dir() else (e.strerror or e)
        raise JaxstyleError(_one_line(f"cannot write {path}: {reason}")) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# ---------------------------------------------------------- output checks


def check_output_path(
    output: Path, inputs: list[Path], named: bool = True, formats: dict[str, str] = FORMATS
) -> None:
    """Refuse an output that cannot be written or would overwrite an input.

    Checks: ``output`` is not a directory, has a supported suffix, lies under a
    directory (existing or to be created) that is writable, and neither it nor
    its JSON record (``output.with_suffix(".json")``) is one of ``inputs``.
    ``named``: the user chose the name (else jaxstyle did: a sweep's or batch's file).
    ``formats``: the suffixes allowed (:data:`FORMATS`, or :data:`ANIMATION_FORMATS`).
    """
    output = Path(output)
    if output.is_dir():
        raise JaxstyleError(
            f"output {output} is a directory; give a file name such as {output / 'out.png'}"
            if named
            else f"a directory {output} is in the way of an output file; move it elsewhere"
        )
    _format(output, formats)
    check_creatable(output)
    record = output.with_suffix(".json")
    for source in inputs:
        if _same_file(output, Path(source)):
            raise JaxstyleError(
                f"output {output} is the input {source}; choose another output file"
            )
        if _same_file(record, Path(source)):
            raise JaxstyleError(
                f"the run record {record} written beside output {output} would overwrite "
                f"the input {source}; choose another output name"
            )


def check_output_dir(directory: Path) -> Path:
    """Refuse an output directory that is an existing file, or a new one named as an
    image (``-o grid.png``: a sweep's picture was meant); returns ``directory``."""
    if directory.exists() and not directory.is_dir():
        raise JaxstyleError(f"output {directory} is a file; give a directory")
    if not directory.exists() and directory.suffix.lower() in {*FORMATS, *ANIMATION_FORMATS}:
        raise JaxstyleError(
            f"output {directory} would be a directory (of images and their records), not an "
            f"image: give it a name without {directory.suffix}, such as {directory.with_suffix('')}"
        )
    return directory


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
