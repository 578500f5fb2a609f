"""Tileable images (``tileable=True``, ``--tileable``): the circular convolution and its
gradient, the wrapped TV and MRF losses, style losses that a shift around the torus leaves
as they are, and the command line.

Tolerances: convolutions to 1e-5 (float32 sums of 3x3xC products); losses of a shifted
image to 1e-4 relative (the same sums in another order).
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import losses
from jaxstyle.cli import main
from jaxstyle.objective import compute_targets, loss_terms
from jaxstyle.presets import get_preset
from jaxstyle.settings import resolve_settings
from jaxstyle.vgg import circular_conv3x3, circular_winograd_conv3x3, features, transpose_kernel
from jaxstyle.winograd import winograd_kernel

RNG = np.random.default_rng(5)


def numpy_circular_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(N, H, W, Cin) * (3, 3, Cin, Cout) on a torus, in float64: output (i, j) sums
    x[(i + dy - 1) % H, (j + dx - 1) % W] @ kernel[dy, dx]."""
    out = 0.0
    for dy in range(3):
        for dx in range(3):
            shifted = np.roll(x, (1 - dy, 1 - dx), axis=(1, 2))
            out = out + shifted.astype(np.float64) @ kernel[dy, dx].astype(np.float64)
    return out


def _direct(kernel):
    return circular_conv3x3, (kernel, transpose_kernel(kernel))


def _winograd(kernel, out=2):
    return circular_winograd_conv3x3, (winograd_kernel(kernel, out=out),)


@pytest.mark.parametrize(
    "convolution",
    [_direct, _winograd, functools.partial(_winograd, out=4)],
    ids=["direct", "winograd", "winograd4"],
)
@pytest.mark.parametrize("shape", [(2, 9, 7, 5), (1, 2, 3, 5)], ids=["odd", "tiny"])
def test_circular_conv_and_its_gradients(convolution, shape):
    """The value against NumPy's shifted sums; the image gradient (the circular
    convolution with the transposed kernel) and the kernel gradient against XLA's
    autodiff of the wrapped padding and a VALID convolution; by Winograd too (odd
    sides: partial tiles; F(4x4) rounds more, 1e-4)."""
    tol = 1e-4 if convolution not in (_direct, _winograd) else 1e-5
    x = RNG.standard_normal(shape).astype(np.float32)
    kernel = RNG.standard_normal((3, 3, shape[-1], 4)).astype(np.float32)
    probe = jnp.asarray(RNG.standard_normal((*shape[:3], 4)), jnp.float32)
    conv, kernels = convolution(kernel)
    got = conv(x, *kernels)
    np.testing.assert_allclose(got, numpy_circular_conv(x, kernel), rtol=tol, atol=tol)

    def ours(x, k):
        conv, kernels = convolution(k)
        return jnp.sum(jnp.tanh(conv(x, *kernels)) * probe)

    def reference(x, k):
        wrapped = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
        dims = ("NHWC", "HWIO", "NHWC")
        y = jax.lax.conv_general_dilated(wrapped, k, (1, 1), "VALID", dimension_numbers=dims)
        return jnp.sum(jnp.tanh(y) * probe)

    dx, dk = jax.jit(jax.grad(ours, argnums=(0, 1)))(x, kernel)
    ref_dx, ref_dk = jax.jit(jax.grad(reference, argnums=(0, 1)))(x, kernel)
    np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dk, ref_dk, rtol=tol, atol=tol)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_wrapped_total_variation_counts_the_differences_across_the_sides(reduction):
    x = RNG.uniform(size=(2, 5, 6, 3)).astype(np.float32)
    got = losses.total_variation_loss(x, reduction=reduction, wrap=True)
    dy = (np.roll(x, -1, axis=1) - x) ** 2
    dx = (np.roll(x, -1, axis=2) - x) ** 2
    reduce = {"sum": lambda a: a.sum((1, 2, 3)), "mean": lambda a: a.mean((1, 2, 3))}[reduction]
    np.testing.assert_allclose(got, reduce(dy) + reduce(dx), rtol=1e-5)
    stripes = np.zeros((4, 4, 3), np.float32)
    stripes[0] = 1.0  # the first row white: 2 rows of differences wrapped, 1 without
    assert float(losses.total_variation_loss(stripes, wrap=True)) == pytest.approx(24.0)
    assert float(losses.total_variation_loss(stripes)) == pytest.approx(12.0)


@pytest.mark.parametrize("preset", ["jaxstyle", "cnnmrf"])
def test_a_shift_around_the_torus_leaves_a_tileable_images_loss(vgg_weights, shared_image, preset):
    """With wrapped sides, shifting the image by 16 px (VGG19's pooling stride up to
    relu5_1) circularly shifts every feature map: the Grams (or the MRF patches, those
    across the sides included), so the style and TV losses, stay the same. With zero
    padding the seam moves and they change."""
    style = jaxstyle.images.resize_longest(
        jaxstyle.load_image(shared_image("starry_night.jpg")), 64
    )
    # noise on a ramp, whose seam is a step that the shift moves inside the image
    ramp = np.linspace(0, 0.5, 64, dtype=np.float32)[None, :, None]
    noise = np.random.default_rng(0).uniform(size=(48, 64, 3)).astype(np.float32)
    image = jnp.asarray(ramp + 0.5 * noise)
    shifted = jnp.roll(image, (16, 32), axis=(0, 1))
    for tileable in (False, True):
        s = resolve_settings(preset, size=64, tileable=tileable)
        objective = s.objective(get_preset(s.preset))
        targets = compute_targets(vgg_weights, objective, None, [style], content_shape=(48, 64))
        terms = jax.jit(loss_terms, static_argnums=4)
        weights = s.loss_weights()
        here, there = (terms(x, vgg_weights, targets, weights, objective) for x in (image, shifted))
        for term in ("style", "tv"):
            assert np.isclose(here[term], there[term], rtol=1e-4) == tileable, (term, tileable)


def test_wrapped_mrf_loss_matches_the_patches_across_the_sides():
    """With ``wrap``, a circular shift of the features and mask permutes the patches:
    the same loss; without, the patches across the sides are missing and it changes."""
    features = jnp.asarray(RNG.standard_normal((5, 6, 4)), jnp.float32)
    targets = jnp.asarray(RNG.standard_normal((7, 36)), jnp.float32)
    mask = jnp.asarray(RNG.uniform(size=(5, 6)), jnp.float32)
    roll = functools.partial(jnp.roll, shift=(2, 3), axis=(0, 1))
    for reduction in ("sum", "mean"):
        loss = functools.partial(losses.mrf_loss, reduction=reduction, mask=None)
        for m in (None, mask):
            here = loss(features, targets, mask=m, wrap=True)
            there = loss(roll(features), targets, mask=None if m is None else roll(m), wrap=True)
            np.testing.assert_allclose(here, there, rtol=1e-5)
            unwrapped = loss(roll(features), targets, mask=None if m is None else roll(m))
            assert not np.isclose(here, unwrapped, rtol=1e-3)


def test_vgg_features_of_a_tile_shift_with_it(vgg_weights):
    """``vgg_features(..., tileable=True)``: an 8 px circular shift of the image shifts
    relu2_1's features (after one pool) circularly by 4; zero-padded ones do not."""
    image = jnp.asarray(RNG.uniform(size=(1, 32, 24, 3)), jnp.float32)
    shifted = jnp.roll(image, (8, 16), axis=(1, 2))
    for tileable in (False, True):
        here, there = (
            jaxstyle.vgg_features(vgg_weights, x, ["relu2_1"], tileable=tileable)["relu2_1"]
            for x in (image, shifted)
        )
        rolled = jnp.roll(here, (4, 8), axis=(1, 2))
        assert np.allclose(rolled, there, rtol=1e-4, atol=1e-3) == tileable
    # blocks 3-5 by Winograd, wrapped too: the same features as direct ones
    direct, winograd = (
        jaxstyle.vgg_features(
            vgg_weights, image, ["relu4_1"], conv_algorithm=algorithm, tileable=True
        )["relu4_1"]
        for algorithm in ("direct", "winograd")
    )
    np.testing.assert_allclose(winograd, direct, rtol=1e-4, atol=1e-3)


def test_padding_is_checked_and_a_tile_keeps_its_conv_algorithm(vgg_weights):
    with pytest.raises(jaxstyle.JaxstyleError, match="padding must be one of zero, wrap"):
        features(vgg_weights, jnp.zeros((1, 32, 32, 3)), ("relu1_1",), "max", padding="mirror")
    for size in (64, 512):
        plain = resolve_settings(size=size).conv_algorithm
        assert resolve_settings(size=size, tileable=True).conv_algorithm == plain


def test_cli_tileable_texture_is_recorded_and_run_again(shared_image, tmp_path):
    style = str(shared_image("starry_night.jpg"))
    args = ["--size", "32", "--steps", "2", "--optimizer", "adam", "-q"]
    tile = tmp_path / "tile.png"
    assert main(["stylize", "--texture", style, "-o", str(tile), "--tileable", *args]) == 0
    settings = json.loads(tile.with_suffix(".json").read_text())["settings"]
    assert settings["tileable"] is True and settings["conv_algorithm"] == "direct"
    again = tmp_path / "again.png"
    assert main(["stylize", "--from", str(tile), "-o", str(again), "-q"]) == 0
    assert json.loads(again.with_suffix(".json").read_text())["settings"]["tileable"] is True
    plain = tmp_path / "plain.png"
    assert main(["stylize", "--from", str(tile), "-o", str(plain), "--no-tileable", "-q"]) == 0
    assert json.loads(plain.with_suffix(".json").read_text())["settings"]["tileable"] is False


def test_tileable_help_names_everything_that_wraps(capsys):
    """The MRF patches wrap too (test_wrapped_mrf_loss_matches_the_patches_across_the_sides)."""
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(in VGG19's convolutions, the TV loss and the MRF patches)" in text
