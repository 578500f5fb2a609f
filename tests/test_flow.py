"""Optical flow (jaxstyle.flow) on known motions of a photograph (64 x 48 px).

Frames shifted by quarter pixels are crops of the photograph at 4 times the size, shrunk
(box filter), like a camera's. Tolerances, in the interior (:data:`M` px in from every
side, where no pixel comes from outside the frame): shifts, 85% of the pixels within
0.35 px (median error 0.01 px for whole pixels, 0.1 px for (1.5, -2.5)); a zoom of 4%
(up to 1.3 px), 85% within 0.35 px; identical frames: flow exactly 0.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxstyle import disk_cache
from jaxstyle.flow import in_frame, optical_flow, warp

M = 8


@pytest.fixture(scope="module")
def big(shared_image) -> Image.Image:
    return Image.open(shared_image("tubingen.jpg")).convert("RGB").resize((288, 216))


def shifted(big: Image.Image, dy: float, dx: float) -> np.ndarray:
    """The 64 x 48 frame whose pixel p shows what the unshifted one's p - (dy, dx) shows
    (d in quarter pixels)."""
    y, x = 12 - round(4 * dy), 16 - round(4 * dx)
    frame = big.crop((x, y, x + 256, y + 192)).resize((64, 48), Image.Resampling.BOX)
    return np.asarray(frame, np.float32) / 255


@pytest.fixture(scope="module")
def photo(big) -> np.ndarray:
    return shifted(big, 0, 0)


def constant(shape, dy: float, dx: float) -> np.ndarray:
    flow = np.zeros((*shape[:2], 2), np.float32)
    flow[..., 0], flow[..., 1] = dy, dx
    return flow


def within(flow, expected, tolerance: float) -> float:
    """The share of interior pixels whose flow is within ``tolerance`` px of ``expected``."""
    error = np.linalg.norm(np.asarray(flow) - expected, axis=-1)[M:-M, M:-M]
    return float(np.mean(error <= tolerance))


def test_identical_frames_have_no_flow(photo):
    np.testing.assert_array_equal(optical_flow(photo, photo), 0.0)


def test_warp_by_whole_pixels_moves_the_image_and_knows_the_frame(photo):
    moved = warp(photo, constant(photo.shape, 2, -3))  # moved[p] = photo[p + (2, -3)]
    np.testing.assert_allclose(moved[:-2, 3:], photo[2:, :-3], atol=1e-6)
    inside = np.asarray(in_frame(constant(photo.shape, 2, -3)))
    assert inside[:-2, 3:].all() and not inside[-2:].any() and not inside[:, :3].any()


@pytest.mark.parametrize("dy, dx", [(0, 3), (-2, 1), (1.5, -2.5), (0.5, 0.25)])
def test_a_shift_is_recovered(big, photo, dy, dx):
    """second[p] = photo[p - d], so photo[p] = second[p + d]: the flow is d."""
    second = shifted(big, dy, dx)
    flow = optical_flow(photo, second)
    assert within(flow, (dy, dx), 0.35) >= 0.85
    if dy == round(dy) and dx == round(dx):  # (bilinear sampling blurs between pixels)
        back = np.abs(np.asarray(warp(second, flow)) - photo)[M:-M, M:-M]
        assert back.mean() < 0.005  # the second frame warped back is the first


@pytest.mark.parametrize("axis", [0, 1])
def test_a_strip_one_pixel_wide_has_a_flow_along_it(photo, axis):
    """A column (axis 0) or a row (axis 1) of the photograph, shifted by 2 px along it."""
    line = photo[:, 30] if axis == 0 else photo[20]
    first, second = (np.expand_dims(x, 1 - axis) for x in (line[2:-2], line[:-4]))
    flow = np.asarray(optical_flow(first, second))  # first[p] = second[p + 2]
    along = flow[..., axis].ravel()[M:-M]
    assert np.mean(np.abs(along - 2) <= 0.35) >= 0.85
    np.testing.assert_array_equal(flow[..., 1 - axis], 0.0)  # none across it


def test_a_zoom_is_recovered(photo):
    h, w = photo.shape[:2]
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    offset = np.stack([ys - (h - 1) / 2, xs - (w - 1) / 2], axis=-1).astype(np.float32)
    second = warp(photo, offset / 1.04 - offset)  # zoomed in by 4% about the centre
    flow = optical_flow(photo, jnp.asarray(second))
    assert within(flow, offset * 0.04, 0.35) >= 0.85


def test_the_flow_program_is_kept_in_jaxstyles_disk_cache(tmp_path, photo):
    """optical_flow compiles through jaxstyle's compiler (its XLA options: 15x faster
    per call on XLA:CPU) and is stored, so a warm process loads it instead of compiling."""
    previous = disk_cache.enable(tmp_path)
    try:
        frame = photo[:11, :13]  # a shape of this test's own: compiled here, not in memory
        assert np.all(np.asarray(optical_flow(frame, frame)) == 0.0)
    finally:
        disk_cache.enable(previous)
    assert len(list(tmp_path.glob("*.jaxstyle-exe"))) == 1
