"""Image file I/O (jaxstyle.images) and the built-in examples (jaxstyle.examples)."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

import jaxstyle
from jaxstyle import examples, images
from jaxstyle.errors import JaxstyleError
from jaxstyle.inputs import as_image


def write(path: Path, image: Image.Image, **options) -> Path:
    image.save(path, **options)
    return path


def gradient(width: int = 40, height: int = 30) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def load_error(path: Path) -> str:
    """The message of the JaxstyleError that loading ``path`` raises (checked one line)."""
    with pytest.raises(JaxstyleError) as info:
        images.load_image(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    return message


# ------------------------------------------------------------ bad inputs


def test_missing_file(tmp_path):
    assert "no such file" in load_error(tmp_path / "nothing.png")


def test_directory(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    assert "directory" in load_error(tmp_path / "folder.jpg")


def test_fifo_and_device_are_refused_unopened(tmp_path):
    """Reading a FIFO blocks until a writer comes; /dev/zero never ends."""
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    for name in ("pipe.png", "zero.png"):
        assert "not a regular file" in load_error(tmp_path / name)


def test_empty_or_mistyped_path():
    for path, needle in (("", "an image path is empty"), (b"a.png", "not bytes")):
        with pytest.raises(JaxstyleError, match=needle):
            images.load_image(path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty" in load_error(tmp_path / "empty.png")


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("these are not pixels\n")
    assert "not an image" in load_error(tmp_path / "notes.jpg")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file(tmp_path, suffix):
    path = write(tmp_path / f"whole{suffix}", gradient(200, 150))
    data = path.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated" in load_error(cut)


def test_truncated_file_even_if_pillow_is_told_to_pad(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = write(tmp_path / "whole.jpg", gradient(200, 150)).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    load_error(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "secret.png", gradient())
    path.chmod(0)
    try:
        assert "permission denied" in load_error(path)
    finally:
        path.chmod(0o644)


def test_over_pixel_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    message = load_error(write(tmp_path / "bomb.png", gradient(40, 30)))
    assert "40x30" in message and "limit" in message


def test_pillow_decompression_bomb_error(tmp_path, monkeypatch):
    path = write(tmp_path / "bomb.png", gradient(40, 30))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert "too large" in load_error(path)


def test_zero_size_image(tmp_path, monkeypatch):
    path = write(tmp_path / "flat.png", gradient())
    open_image = Image.open
    monkeypatch.setattr(Image, "open", lambda f: open_image(f).crop((0, 0, 0, 30)))
    assert "zero size" in load_error(path)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_large_image_is_downscaled_with_a_note(tmp_path, monkeypatch, capsys, suffix):
    monkeypatch.setattr(images, "MAX_SIDE", 50)
    path = write(tmp_path / f"big{suffix}", gradient(200, 100))
    image = images.load_image(path)
    assert image.shape == (25, 50, 3)
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and note.startswith("jaxstyle: note: ")
    assert path.name in note and "200x100" in note and "50x25" in note


def test_small_image_loads_without_a_note(tmp_path, capsys):
    images.load_image(write(tmp_path / "small.png", gradient()))
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------- modes


def test_public_save_and_load_round_trip_8_bit_values(tmp_path):
    import jaxstyle

    image = images.load_image(write(tmp_path / "rgb.png", gradient()))
    jaxstyle.save_image(tmp_path / "again.png", image)
    np.testing.assert_array_equal(jaxstyle.load_image(tmp_path / "again.png"), image)


def test_rgb_png_exact(tmp_path):
    source = gradient()
    image = images.load_image(write(tmp_path / "rgb.png", source))
    assert image.dtype == np.float32 and image.shape == (30, 40, 3)
    np.testing.assert_array_equal(images.to_uint8(image), np.asarray(source))


def test_grayscale(tmp_path):
    image = images.load_image(write(tmp_path / "gray.png", Image.new("L", (3, 2), 128)))
    np.testing.assert_allclose(image, 128 / 255, rtol=1e-6)
    assert image.shape == (2, 3, 3)


def test_one_bit(tmp_path):
    bits = Image.new("1", (4, 2), 0)
    bits.putpixel((1, 0), 1)
    image = images.load_image(write(tmp_path / "bits.png", bits))
    np.testing.assert_array_equal(image[0, 1], [1, 1, 1])
    np.testing.assert_array_equal(image[0, 0], [0, 0, 0])


def test_palette_with_transparency(tmp_path):
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    image = images.load_image(write(tmp_path / "pal.png", palette, transparency=0))
    np.testing.assert_array_equal(image[0, 0], [1, 1, 1])  # transparent -> white
    np.testing.assert_array_equal(image[0, 1], [1, 0, 0])


@pytest.mark.parametrize("mode, key, other", [("RGB", (0, 0, 0), (255, 0, 0)), ("L", 0, 128)])
def test_transparent_colour_key_over_white(tmp_path, mode, key, other):
    keyed = Image.new(mode, (2, 1), key)
    keyed.putpixel((1, 0), other)
    image = images.load_image(write(tmp_path / "keyed.png", keyed, transparency=key))
    np.testing.assert_array_equal(image[0, 0], [1, 1, 1])  # the key colour -> white
    np.testing.assert_allclose(image[0, 1], np.broadcast_to(other, 3) / 255, rtol=1e-6)


def test_rgba_over_white(tmp_path):
    rgba = Image.new("RGBA", (3, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    image = images.load_image(write(tmp_path / "rgba.png", rgba))
    np.testing.assert_array_equal(image[0, 0], [1, 1, 1])
    np.testing.assert_array_equal(image[0, 1], [1, 0, 0])
    np.testing.assert_allclose(image[0, 2], 1 - 128 / 255, atol=1e-6)


def test_la_over_white(tmp_path):
    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (50, 255))
    image = images.load_image(write(tmp_path / "la.png", la))
    np.testing.assert_array_equal(image[0, 0], [1, 1, 1])
    np.testing.assert_allclose(image[0, 1], 50 / 255, rtol=1e-6)


def test_sixteen_bit_grayscale(tmp_path):
    deep = Image.fromarray(np.array([[65535, 32768, 0]], np.uint16))
    assert deep.mode == "I;16"
    image = images.load_image(write(tmp_path / "deep.png", deep))
    np.testing.assert_allclose(image[0, :, 0], [1.0, 32768 / 65535, 0.0], atol=1e-6)
    assert image.max() <= 1.0


def test_float_tiff(tmp_path):
    data = np.array([[0.0, 0.25, 1.0]], np.float32)
    image = images.load_image(write(tmp_path / "float.tif", Image.fromarray(data)))
    np.testing.assert_allclose(image[0, :, 1], data[0])


def test_cmyk_jpeg(tmp_path):
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    image = images.load_image(write(tmp_path / "cyan.jpg", cyan, quality=95))
    np.testing.assert_allclose(image[8, 8], [0, 1, 1], atol=0.05)


def test_ycbcr_jpeg(tmp_path):
    ycbcr = Image.new("RGB", (16, 16), (255, 0, 0)).convert("YCbCr")
    image = images.load_image(write(tmp_path / "red.jpg", ycbcr, quality=95))
    np.testing.assert_allclose(image[8, 8], [1, 0, 0], atol=0.05)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation(tmp_path, orientation):
    stored = Image.new("RGB", (4, 2), (0, 0, 0))
    stored.putpixel((0, 0), (255, 0, 0))  # stored top-left: red
    stored.putpixel((0, 1), (0, 0, 255))  # stored bottom-left: blue
    stored.putpixel((3, 0), (0, 255, 0))  # stored top-right: green
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = images.load_image(write(tmp_path / "turned.png", stored, exif=exif))
    assert image.shape == (4, 2, 3)
    # 6: turn 90 degrees clockwise to display; 8: counter-clockwise.
    expected_top_left = [0, 0, 1] if orientation == 6 else [0, 1, 0]
    np.testing.assert_array_equal(image[0, 0], expected_top_left)


# ------------------------------------------------------------ colour profiles

D50 = (0.9642, 1.0, 0.8249)
SRGB_COLORANTS = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
"""sRGB's red, green and blue in the ICC connection space (XYZ, adapted to D50)."""


def rgb_profile(gamma: float, colorants=SRGB_COLORANTS) -> bytes:
    """An ICC v2 RGB display profile (matrix/TRC) with these primaries and a pure power
    curve (ICC.1:2001-04: header, tag table, desc/wtpt/XYZ/curv tags)."""
    tags = [(sig, _xyz(c)) for sig, c in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants, strict=True)]
    return _profile(b"RGB ", tags + [(sig, _curve(gamma)) for sig in (b"rTRC", b"gTRC", b"bTRC")])


def grey_profile(gamma: float) -> bytes:
    """An ICC v2 grey display profile with a pure power curve (kTRC)."""
    return _profile(b"GRAY", [(b"kTRC", _curve(gamma))])


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz(v) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(map(_s15, v))


def _curve(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def _profile(space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A display profile of colour ``space`` with desc and wtpt tags and ``tags``."""
    name = b"test profile\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(name)) + name + bytes(8 + 3 + 67)
    tags = [(b"desc", desc), (b"wtpt", _xyz(D50)), *tags]
    offset = 128 + 4 + 12 * len(tags)
    table = data = b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = struct.pack(">I", offset + len(data)) + bytes(4) + struct.pack(">I", 0x02100000)
    header += b"mntr" + space + b"XYZ " + bytes(12) + b"acsp" + bytes(28)
    header += b"".join(map(_s15, D50))
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def srgb_encoded(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) of linear light in [0, 1]."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def test_icc_profile_values_are_converted_to_srgb(tmp_path):
    # a linear-light profile with sRGB's primaries: each value v reads as sRGB's
    # encoding of v (the profile's gamma, not sRGB's, said what v means)
    codes = np.array([[[0, 16, 64], [128, 200, 255]]], np.uint8)
    path = write(tmp_path / "linear.png", Image.fromarray(codes), icc_profile=rgb_profile(1.0))
    image = images.load_image(path)
    np.testing.assert_allclose(image, srgb_encoded(codes / 255.0), atol=1.5 / 255)
    assert np.abs(image - codes / 255.0).max() > 0.2  # not read as sRGB codes


def test_icc_profile_primaries_are_converted_to_srgb(tmp_path):
    # a profile whose red is sRGB's blue and blue sRGB's red, gamma 2.2
    swapped = SRGB_COLORANTS[::-1]
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    path = write(tmp_path / "swapped.png", red, icc_profile=rgb_profile(2.2, swapped))
    np.testing.assert_allclose(images.load_image(path)[0, 0], [0, 0, 1], atol=1.5 / 255)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_an_srgb_profile_changes_nothing(tmp_path, suffix):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    plain = images.load_image(write(tmp_path / f"plain{suffix}", gradient()))
    tagged = images.load_image(write(tmp_path / f"tagged{suffix}", gradient(), icc_profile=srgb))
    np.testing.assert_array_equal(tagged, plain)


def test_icc_profile_of_an_image_with_alpha(tmp_path):
    codes = np.array([[[64, 64, 64, 255], [64, 64, 64, 0]]], np.uint8)
    path = write(tmp_path / "alpha.png", Image.fromarray(codes), icc_profile=rgb_profile(1.0))
    image = images.load_image(path)
    np.testing.assert_allclose(image[0, 0], srgb_encoded(np.full(3, 64 / 255)), atol=1.5 / 255)
    np.testing.assert_array_equal(image[0, 1], [1, 1, 1])  # transparent: white


def test_icc_profile_of_palette_grey_alpha_and_16_bit_images(tmp_path):
    # converted in the mode Little CMS takes, not read as sRGB codes
    codes = np.array([[0, 16, 64, 128, 200, 255]], np.uint8)
    expected = np.repeat(srgb_encoded(codes / 255.0)[..., None], 3, axis=-1)
    rgb = Image.fromarray(np.repeat(codes[..., None], 3, axis=-1))
    palette = rgb.quantize(8, method=Image.Quantize.MEDIANCUT)
    grey_alpha = Image.merge("LA", [Image.fromarray(codes), Image.new("L", (6, 1), 255)])
    deep = Image.fromarray(codes.astype(np.uint16) * 257)
    for name, image, profile in [
        ("palette.png", palette, rgb_profile(1.0)),
        ("grey_alpha.png", grey_alpha, grey_profile(1.0)),
        ("deep.png", deep, grey_profile(1.0)),
        ("grey.png", Image.fromarray(codes), grey_profile(1.0)),
    ]:
        read = images.load_image(write(tmp_path / name, image, icc_profile=profile))
        np.testing.assert_allclose(read, expected, atol=1.5 / 255, err_msg=name)


def test_an_unusable_icc_profile_is_noted_and_ignored(tmp_path, capsys):
    path = write(tmp_path / "broken.png", gradient(), icc_profile=b"not a profile")
    image = images.load_image(path)
    np.testing.assert_array_equal(image, np.asarray(gradient()) / np.float32(255))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}'s colour profile cannot be used" in err
    assert err.rstrip().endswith("its colours are taken as sRGB")


def test_pillow_images_are_read_as_their_files(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    rgba = Image.fromarray(np.dstack([np.asarray(gradient()), np.full((30, 40), 128, np.uint8)]))
    path = write(tmp_path / "turned.png", rgba, exif=exif, icc_profile=rgb_profile(1.8))
    with Image.open(path) as opened:
        from_pillow = as_image(opened)
        assert (opened.size, opened.mode) == ((40, 30), "RGBA")  # not changed
    assert from_pillow.shape == (40, 30, 3)
    np.testing.assert_array_equal(from_pillow, images.load_image(path))
    in_memory = gradient()
    np.testing.assert_array_equal(as_image(in_memory), np.asarray(gradient()) / np.float32(255))
    grey = Image.fromarray(np.full((5, 6), 51, np.uint8))  # mode L
    np.testing.assert_allclose(as_image(grey), np.full((5, 6, 3), 0.2), atol=1e-7)


def test_a_large_pillow_image_is_downscaled_not_changed(monkeypatch, capsys):
    monkeypatch.setattr(images, "MAX_SIDE", 20)
    picture = gradient()
    assert as_image(picture).shape == (15, 20, 3)
    assert picture.size == (40, 30)
    assert "the Pillow image is 40x30; resized to 20x15" in capsys.readouterr().err


def test_a_bad_pillow_image_is_one_line():
    message = "^cannot read the Pillow image: the image has zero size"
    with pytest.raises(JaxstyleError, match=message):
        as_image(Image.new("RGB", (0, 4)))


def test_a_closed_pillow_image_is_named_closed(tmp_path):
    path = write(tmp_path / "picture.png", gradient())
    with Image.open(path) as opened:
        pass
    with path.open("rb") as file:
        lazy = Image.open(file)
    for image in (opened, lazy):
        with pytest.raises(JaxstyleError, match="^cannot read the Pillow image: it is closed"):
            as_image(image)


def test_loading_leaves_the_file_untouched(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = write(tmp_path / "keep.jpg", gradient(), exif=exif)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    images.load_image(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


# -------------------------------------------------------------- resizing


def test_resize_longest():
    image = np.random.default_rng(0).random((30, 60, 3), dtype=np.float32)
    small = images.resize_longest(image, 20)
    assert small.shape == (10, 20, 3) and small.dtype == np.float32
    assert 0.0 <= small.min() and small.max() <= 1.0
    big = images.resize_longest(image, 120)
    assert big.shape == (60, 120, 3) and 0.0 <= big.min() and big.max() <= 1.0
    assert images.resize_longest(image, 60) is image
    assert images.resize_longest(np.zeros((1, 100, 3), np.float32), 10).shape == (1, 10, 3)
    assert images.resize_longest(np.zeros((100, 3, 3), np.float32), 10).shape == (10, 1, 3)


def test_resize_keeps_flat_colour():
    image = np.full((17, 23, 3), [0.2, 0.5, 0.9], np.float32)
    np.testing.assert_allclose(
        images.resize_to(image, (40, 9)), np.broadcast_to(image[0, 0], (40, 9, 3)), atol=1e-5
    )
    assert images.resize_to(image, (5, 31)).shape == (5, 31, 3)


# --------------------------------------------------------------- writing


def test_to_uint8():
    out = images.to_uint8(np.array([[[-0.5, 0.0, 0.5], [1.0, 2.0, np.nan]]], np.float32))
    np.testing.assert_array_equal(out, [[[0, 0, 128], [255, 255, 0]]])
    assert out.dtype == np.uint8


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp", ".tif", ".TIFF"])
def test_save_round_trip(tmp_path, suffix):
    image = np.asarray(gradient(), np.float32) / 255
    path = tmp_path / "results" / "deeper" / f"out{suffix}"  # parents are created
    images.save_image(path, image)
    loaded = images.load_image(path)
    if suffix == ".png":
        np.testing.assert_array_equal(images.to_uint8(loaded), images.to_uint8(image))
    else:
        assert np.abs(loaded - image).mean() < 0.03
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_replaces_only_after_success(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    images.save_image(path, np.zeros((4, 4, 3), np.float32))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(JaxstyleError) as info:
        images.save_image(path, np.ones((4, 4, 3), np.float32), overwrite=True)
    assert "\n" not in str(info.value) and "out.png" in str(info.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_cleans_up_after_unexpected_errors(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(RuntimeError):
        images.save_image(tmp_path / "out.png", np.ones((4, 4, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_arrays_are_scaled_by_their_type_and_checked():
    """The API's image arrays: uint8/uint16 are pixel codes, floats are [0, 1]."""
    codes = np.asarray(gradient())
    expected = codes.astype(np.float32) / 255
    np.testing.assert_array_equal(images.image_from_array(codes), expected)
    wide = codes.astype(np.uint16) * 257  # the same values in 16 bits
    np.testing.assert_allclose(images.image_from_array(wide), expected, atol=1e-7)
    np.testing.assert_array_equal(images.image_from_array(expected.astype(np.float64)), expected)
    overshoot = images.image_from_array(np.full((2, 2, 3), 1.2))  # resampling: clipped
    assert overshoot.dtype == np.float32 and overshoot.max() == 1.0
    assert images.image_from_array(np.ones((2, 2, 3), bool)).min() == 1.0
    refused = {
        "spans [0, 248]": codes.astype(np.float32),
        "NaN or infinite": np.where(codes > 128, np.nan, expected),
        "not int64": codes.astype(np.int64),
        "not <U1": np.full((2, 2, 3), "a"),
        "an image array must be one (H, W, 3) image, not (30, 40)": expected[..., 0],
        "an image array must be one (H, W, 3) image, not (1, 30, 40, 3)": expected[None],
        "an image array has an empty side: (0, 40, 3)": expected[:0],
    }
    for needle, array in refused.items():
        with pytest.raises(JaxstyleError, match=re.escape(needle)):
            images.image_from_array(array)


def test_bfloat16_arrays_are_floats(tmp_path):
    """jax's bfloat16 (NumPy kind "V", not "f") was refused as "must be floats in [0, 1]
    or uint8/uint16, not bfloat16" by the API's inputs and by save_image."""
    import jax.numpy as jnp

    expected = np.asarray(gradient()).astype(np.float32) / 255
    half = jnp.asarray(expected, jnp.bfloat16)
    np.testing.assert_allclose(images.image_from_array(half), expected, atol=4e-3)
    np.testing.assert_allclose(as_image(half), expected, atol=4e-3)
    images.save_image(tmp_path / "half.png", half)
    images.save_animation(tmp_path / "half.gif", [half, half], [100, 100])
    saved = images.load_image(tmp_path / "half.png")
    np.testing.assert_allclose(saved, expected, atol=4e-3 + 1 / 255)
    with pytest.raises(JaxstyleError, match=re.escape("spans [0, 248]")):
        images.image_from_array(jnp.asarray(expected * 255, jnp.bfloat16))


def test_save_image_writes_uint8_codes_as_they_are(tmp_path):
    codes = np.asarray(gradient())
    images.save_image(tmp_path / "u8.png", codes)
    images.save_image(tmp_path / "u16.png", codes.astype(np.uint16) * 257)
    for name in ("u8.png", "u16.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / name)), codes)
    refused = {
        "i32.png": ("must be floats in [0, 1] or uint8/uint16, not int32", codes.astype(np.int32)),
        "gray.png": ("must be one (H, W, 3) image, not (30, 40)", codes[..., 0]),
        "empty.png": ("has an empty side: (30, 0, 3)", codes[:, :0]),
    }
    for name, (fault, array) in refused.items():
        message = f"cannot write {tmp_path / name}: the image {fault}"
        with pytest.raises(JaxstyleError, match=f"^{re.escape(message)}$"):
            images.save_image(tmp_path / name, array)
    # 0-255 values as floats were written all white: refused, as image_from_array does
    with pytest.raises(JaxstyleError, match=re.escape("float pixels must be in [0, 1], this")):
        images.save_image(tmp_path / "f.png", codes.astype(np.float32))
    assert not (tmp_path / "f.png").exists()
    nan = np.where(codes > 128, np.nan, codes / 255).astype(np.float32)  # NaN -> 0, as before
    images.save_image(tmp_path / "nan.png", nan)
    assert np.asarray(Image.open(tmp_path / "nan.png"))[codes > 128].max() == 0


@pytest.mark.parametrize("options", [{}, {"overwrite": False}], ids=["default", "false"])
def test_save_image_keeps_an_existing_file_unless_overwrite(tmp_path, options):
    # the default replaced it, unlike StylizeResult.save's
    import jaxstyle

    path = tmp_path / "mine.png"
    path.write_bytes(b"the user's file")
    refused = rf"^{re.escape(str(path))} exists; not overwriting it$"
    with pytest.raises(JaxstyleError, match=refused):
        jaxstyle.save_image(path, np.zeros((2, 2, 3), np.float32), **options)
    assert path.read_bytes() == b"the user's file" and os.listdir(tmp_path) == ["mine.png"]
    images.save_image(tmp_path / "new.png", np.zeros((2, 2, 3), np.float32), **options)
    assert images.load_image(tmp_path / "new.png").shape == (2, 2, 3)
    images.save_image(path, np.ones((2, 2, 3), np.float32), overwrite=True)
    assert images.load_image(path).min() == 1.0
    assert sorted(os.listdir(tmp_path)) == ["mine.png", "new.png"]  # no temporary files


def test_save_image_without_hard_links_still_refuses_an_existing_file(tmp_path, monkeypatch):
    """A filesystem without hard links (FAT, some network shares): the name is claimed
    exclusively instead, so a new file is still written and an existing one still kept."""

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "mine.png"
    path.write_bytes(b"the user's file")
    with pytest.raises(JaxstyleError, match="exists; not overwriting it"):
        images.save_image(path, np.zeros((2, 2, 3), np.float32))
    assert path.read_bytes() == b"the user's file"
    images.save_image(tmp_path / "new.png", np.ones((2, 2, 3), np.float32))
    assert images.load_image(tmp_path / "new.png").min() == 1.0
    assert sorted(os.listdir(tmp_path)) == ["mine.png", "new.png"]  # no temporary files


def test_save_unsupported_suffix(tmp_path):
    with pytest.raises(JaxstyleError) as info:
        images.save_image(tmp_path / "out.bmpx", np.zeros((2, 2, 3), np.float32))
    message = str(info.value)
    assert "\n" not in message and "out.bmpx" in message and ".png" in message
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_file_as_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(JaxstyleError) as info:
        images.save_image(tmp_path / "file" / "out.png", np.zeros((2, 2, 3), np.float32))
    assert "\n" not in str(info.value) and "out.png" in str(info.value)


def test_write_text_atomic(tmp_path):
    path = tmp_path / "runs" / "out.json"
    images.write_text_atomic(path, "{}\n")
    images.write_text_atomic(path, '{"a": "\u00e9"}\n')
    assert path.read_text(encoding="utf-8") == '{"a": "\u00e9"}\n'
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


# --------------------------------------------------------- output checks


def output_error(output: Path, inputs: list[Path]) -> str:
    with pytest.raises(JaxstyleError) as info:
        images.check_output_path(output, inputs)
    message = str(info.value)
    assert "\n" not in message and output.name in message
    return message


def test_check_output_path_accepts_new_and_previous_outputs(tmp_path):
    content = write(tmp_path / "content.jpg", gradient())
    images.check_output_path(tmp_path / "new" / "out.png", [content])
    (tmp_path / "out.png").write_bytes(b"an earlier result")
    images.check_output_path(tmp_path / "out.png", [content])


def test_check_output_path_of_a_generated_name_suggests_no_name(tmp_path):
    (tmp_path / "a.png").mkdir()
    with pytest.raises(JaxstyleError, match=r"^a directory .*a\.png is in the way of an output"):
        images.check_output_path(tmp_path / "a.png", [], named=False)


def test_check_output_path_refuses(tmp_path, monkeypatch):
    content = write(tmp_path / "content.png", gradient())
    (tmp_path / "dir.png").mkdir()
    assert "directory" in output_error(tmp_path / "dir.png", [content])
    assert ".png" in output_error(tmp_path / "out.gif", [content])
    (tmp_path / "file").write_text("x")
    assert "not a directory" in output_error(tmp_path / "file" / "out.png", [content])


def test_check_output_path_refuses_an_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    content = write(tmp_path / "content.png", gradient())
    assert "input" in output_error(Path("sub/../content.png"), [Path("content.png")])
    assert "input" in output_error(tmp_path / "content.png", [Path("./content.png")])
    link = tmp_path / "sub" / "link.png"
    link.symlink_to(content)
    assert "input" in output_error(link, [content])
    assert "input" in output_error(tmp_path / "content.png", [link])
    # Not existing yet: compared by resolved path.
    assert "input" in output_error(Path("late.png"), [tmp_path / "late.png"])


def test_check_output_path_refuses_a_record_over_an_input(tmp_path):
    style = tmp_path / "style.json"
    style.write_text("{}")
    message = output_error(tmp_path / "style.png", [style])
    assert "style.json" in message


# --------------------------------------------------------------- examples


def test_example_content():
    from matplotlib import cbook

    path = jaxstyle.example_content()  # public: Python's form of a command with no images
    assert isinstance(path, Path) and path.is_file()
    assert path == Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    image = images.load_image(path)
    assert image.ndim == 3 and image.shape[-1] == 3 and min(image.shape[:2]) >= 256


@pytest.fixture(scope="module")
def painting():
    return jaxstyle.example_style()


def test_example_style(painting):
    assert painting.shape == (512, 512, 3) and painting.dtype == np.float32
    assert 0.0 <= painting.min() and painting.max() <= 1.0
    assert painting.std() > 0.1
    r, g, b = np.moveaxis(painting, -1, 0)
    blue = (b > r + 0.15) & (b > g)
    yellow = (r > 0.7) & (g > 0.6) & (b < 0.5)
    assert blue.mean() > 0.4 and 0.01 < yellow.mean() < 0.3


def test_example_style_is_deterministic(painting):
    np.testing.assert_array_equal(examples.example_style(), painting)
    small = examples.example_style(64)
    assert small.shape == (64, 64, 3) and small.std() > 0.1


CURVES = {"run": {term: [2.0, 1.0] for term in ("total", "content", "style", "tv")}}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: jaxstyle.save_image(5, np.zeros((2, 2, 3))), "an output path must be"),
        (lambda: jaxstyle.load_image(None), "an image path must be a str or path, not NoneType"),
        (lambda: jaxstyle.read_manifest(["a.jsonl"]), "a manifest path must be"),
        (lambda: jaxstyle.batch([], None), "an output directory must be"),
        (lambda: jaxstyle.read_histories(3), "a record path must be"),
        (lambda: jaxstyle.plot_losses(CURVES, None), "an output path must be"),
        (lambda: jaxstyle.load_vgg19(b"weights"), "a weights directory must be"),
        (lambda: jaxstyle.fetch_weights(""), "a weights directory is empty"),
        (lambda: jaxstyle.convert_weights(None, "out"), "a weights file must be"),
        (lambda: jaxstyle.sweep(None, None, checkpoint_dir=""), "a checkpoint directory is empty"),
    ],
)
def test_path_arguments_that_are_not_paths_are_named(call, message):
    """Not a TypeError from pathlib (nor, for "", the current directory): one line naming
    the argument."""
    with pytest.raises(JaxstyleError, match=re.escape(message)):
        call()


def test_a_photo_format_pillow_cannot_decode_is_told_to_convert(tmp_path):
    """An iPhone's HEIC (here: bytes Pillow cannot identify) is told what to do; another
    undecodable file is named as not an image."""
    heic, other = tmp_path / "IMG_0001.HEIC", tmp_path / "notes.png"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    other.write_bytes(b"plain text, not pixels")
    with pytest.raises(JaxstyleError, match=r"cannot decode: convert it to PNG or JPEG first"):
        images.load_image(heic)
    with pytest.raises(JaxstyleError, match=r"a format Pillow cannot decode$"):
        images.load_image(other)
