"""Loss primitives against NumPy references written from the papers' formulas."""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import losses
from jaxstyle.errors import JaxstyleError

RNG = np.random.default_rng(0)
F = RNG.normal(size=(2, 5, 7, 6)).astype(np.float32)  # (N, h, w, C)
P = RNG.normal(size=(5, 7, 6)).astype(np.float32)


def np_gram(f, normalize):
    h, w, c = f.shape
    m = f.reshape(h * w, c)
    g = m.T @ m  # Gatys: G_ij = Σ_k F_ik F_jk
    return {"none": g, "hw": g / (h * w), "chw": g / (c * h * w)}[normalize]


@pytest.mark.parametrize("normalize", losses.GRAM_NORMALIZATIONS)
def test_gram_matrix(normalize):
    got = jax.jit(lambda f: losses.gram_matrix(f, normalize=normalize))(F)
    want = np.stack([np_gram(f, normalize) for f in F])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert got.shape == (2, 6, 6) and got.dtype == jnp.float32


def _einsum_gram(f):
    """The Gram as a plain einsum, differentiated by jax's own rules (two products)."""
    m = f.reshape(*f.shape[:-3], -1, f.shape[-1])
    return jnp.einsum("...kc,...kd->...cd", m, m, preferred_element_type=jnp.float32)


def _dot_generals(fn, *args) -> list:
    """The dot_general equations of ``fn``'s jaxpr (nested jaxprs included)."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn)
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize("normalize", ["hw", "chw"])
def test_gram_of_maps_past_2_to_the_31_positions_times_channels_traces(normalize):
    """A 6000 x 6000 relu1_1 (64 channels: c·h·w = 2.3e9) divides by a float, not an
    int that jax would refuse as int32 (``estimate`` and stylize crashed there)."""
    shape = jax.ShapeDtypeStruct((1, 6000, 6000, 64), jnp.float32)
    out = jax.eval_shape(lambda f: losses.gram_matrix(f, normalize=normalize), shape)
    assert out.shape == (1, 64, 64) and out.dtype == jnp.float32


def test_gram_derivatives_match_autodiff_of_the_einsum():
    """Reverse and forward mode of the custom derivative equal jax's own of the einsum."""
    w = jnp.asarray(RNG.normal(size=(2, 6, 6)), jnp.float32)  # not symmetric

    def loss(gram):
        return lambda f: jnp.sum(w * gram(f))

    got = jax.jit(jax.grad(loss(lambda f: losses.gram_matrix(f, normalize="none"))))(F)
    want = jax.grad(loss(_einsum_gram))(F)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    tangent = jnp.asarray(RNG.normal(size=F.shape), jnp.float32)
    _, got = jax.jvp(lambda f: losses.gram_matrix(f, normalize="none"), (F,), (tangent,))
    _, want = jax.jvp(_einsum_gram, (F,), (tangent,))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_gram_gradient_is_one_product_in_the_features_dtype(dtype):
    """Forward and gradient: one matrix product each (jax's own rule makes two for
    the gradient), their operands in the features' dtype, the Gram in float32."""
    f = jnp.asarray(F, dtype)

    def loss(f):
        return jnp.sum(losses.gram_matrix(f) ** 2)

    dots = _dot_generals(jax.grad(loss), f)
    assert len(dots) == 2, dots
    assert all(v.aval.dtype == dtype for eqn in dots for v in eqn.invars)
    assert len(_dot_generals(jax.grad(lambda f: jnp.sum(_einsum_gram(f) ** 2)), f)) == 3
    assert losses.gram_matrix(f).dtype == jnp.float32
    grad = jax.jit(jax.grad(loss))(f)
    assert grad.dtype == dtype
    want = jax.grad(lambda f: jnp.sum(_einsum_gram(f) ** 2 / (6 * 35) ** 2))(F)
    tolerance = 1e-5 if dtype == jnp.float32 else 2e-2  # bf16: 8-bit mantissa operands
    np.testing.assert_allclose(
        np.asarray(grad, np.float32), want, rtol=tolerance, atol=tolerance * np.abs(want).max()
    )


@pytest.mark.parametrize(
    "reduction,ref",
    [
        ("sum", lambda d: (d**2).sum()),
        ("half_sum", lambda d: 0.5 * (d**2).sum()),
        ("mean", lambda d: (d**2).mean()),
    ],
)
def test_content_loss(reduction, ref):
    got = jax.jit(lambda f, p: losses.content_loss(f, p, reduction=reduction))(F, P)
    np.testing.assert_allclose(got, [ref(f - P) for f in F], rtol=1e-5)


def test_style_loss_gatys_formula():
    # Gatys et al. eq. 4-5: E_l = 1/(4 N_l² M_l²) Σ (G - A)², L = Σ_l w_l E_l
    feats = {"a": F, "b": F[:, :3, :4, :]}
    targets = {"a": np_gram(P, "none"), "b": np_gram(P[:3, :4], "none")}
    weights = {"a": 0.25, "b": 2.0}
    got = jax.jit(
        lambda f: losses.style_loss(
            f, targets, layer_weights=weights, normalize="none", reduction="gatys"
        )
    )(feats)
    want = []
    for n in range(2):
        total = 0.0
        for name, f in feats.items():
            h, w, c = f[n].shape
            e = ((np_gram(f[n], "none") - targets[name]) ** 2).sum() / (4 * c**2 * (h * w) ** 2)
            total += weights[name] * e
        want.append(total)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_style_loss_mean_chw_is_neural_style():
    # neural-style: Gram / (C·H·W), MSECriterion (mean over C² entries)
    got = losses.style_loss({"a": F}, {"a": np_gram(P, "chw")}, normalize="chw", reduction="mean")
    want = [((np_gram(f, "chw") - np_gram(P, "chw")) ** 2).mean() for f in F]
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("reduction", ["sum", "half_sum", "mean"])
def test_total_variation(power, reduction):
    x = RNG.uniform(size=(3, 8, 9, 3)).astype(np.float32)
    got = jax.jit(lambda x: losses.total_variation_loss(x, power=power, reduction=reduction))(x)
    dy = np.abs(x[:, 1:] - x[:, :-1]) ** power
    dx = np.abs(x[:, :, 1:] - x[:, :, :-1]) ** power
    red = {
        "sum": lambda a: a.sum((1, 2, 3)),
        "half_sum": lambda a: 0.5 * a.sum((1, 2, 3)),
        "mean": lambda a: a.mean((1, 2, 3)),
    }[reduction]
    np.testing.assert_allclose(got, red(dy) + red(dx), rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 9, 3), (8, 1, 3), (1, 1, 3)], ids=["row", "column", "pixel"])
def test_total_variation_mean_of_a_1px_side_counts_only_the_other_direction(shape):
    # the mean of no differences was NaN, and the loss with it
    x = RNG.uniform(size=(2, *shape)).astype(np.float32)
    got = jax.jit(lambda x: losses.total_variation_loss(x, reduction="mean"))(x)
    d = [np.square(np.diff(x, axis=a)) for a in (1, 2)]
    np.testing.assert_allclose(got, sum(v.mean((1, 2, 3)) for v in d if v.size), rtol=1e-6)


def test_tv_of_constant_image_is_zero_and_tf_matches_abs_sum():
    assert float(losses.total_variation_loss(jnp.ones((4, 4, 3)))) == 0.0
    x = np.zeros((4, 4, 3), np.float32)
    x[2, 2, 0] = 1.0  # one bright pixel: 4 unit differences
    assert float(losses.total_variation_loss(x, power=1)) == pytest.approx(4.0)


def test_losses_vmap_equals_batch():
    f = jax.vmap(lambda a: losses.content_loss(a, P))(F)
    np.testing.assert_allclose(f, losses.content_loss(F, P), rtol=1e-6)
    g = jax.vmap(lambda a: losses.gram_matrix(a))(F)
    np.testing.assert_allclose(g, losses.gram_matrix(F), rtol=1e-6)


def test_bad_options_raise():
    with pytest.raises(JaxstyleError, match="normalize must be one of .*, not 'nope'"):
        losses.gram_matrix(F, normalize="nope")
    with pytest.raises(JaxstyleError, match="reduction must be one of .*, not 'nope'"):
        losses.content_loss(F, P, reduction="nope")
    with pytest.raises(JaxstyleError, match="power must be 1 or 2, not 3"):
        losses.total_variation_loss(F, power=3)
    with pytest.raises(TypeError):
        losses.content_loss(F, P, "mean")  # keyword-only


@pytest.mark.parametrize("positions", [np.int64(256 * 256), jnp.int32(256 * 256), 256 * 256])
def test_gatys_style_layer_loss_counts_integer_array_positions_in_float(positions):
    # 65536² overflows int32: h·w as a NumPy or jax integer gave inf
    g = RNG.normal(size=(4, 4)).astype(np.float32)
    got = losses.style_layer_loss(g, np.zeros_like(g), positions=positions, reduction="gatys")
    want = np.square(g.astype(np.float64)).sum() / (4 * 4**2 * 65536.0**2)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("positions", [0, -4, np.int64(0), float("nan")])
def test_gatys_style_layer_loss_refuses_no_positions(positions):
    # inf or NaN, silently, before: Σ(G−A)² / (4·C²·0²)
    with pytest.raises(JaxstyleError, match=r"positions \(h·w of the layer\) must be > 0"):
        losses.style_layer_loss(G, np.zeros_like(G), positions=positions, reduction="gatys")


@pytest.mark.parametrize("dtype", [np.uint8, jnp.bfloat16])
def test_total_variation_is_float32_whatever_the_pixels_dtype(dtype):
    # uint8 differences wrapped around modulo 256; bfloat16 ones were summed in bfloat16
    pixels = RNG.integers(0, 256, size=(2, 40, 50, 3)).astype(np.uint8)
    images = jnp.asarray(pixels, dtype)
    got = losses.total_variation_loss(images)
    d = pixels.astype(np.float64)
    want = sum(np.square(np.diff(d, axis=a)).sum((1, 2, 3)) for a in (1, 2))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda f, p: losses.gram_matrix(f),
        lambda f, p: losses.content_loss(f, p),
        lambda f, p: losses.style_layer_loss(losses.gram_matrix(f), p[0][:6], positions=35),
        lambda f, p: losses.style_loss({"a": f}, {"a": p[0][:6]}),
        lambda f, p: losses.extract_patches(f, size=2),
        lambda f, p: losses.mrf_loss(f, losses.extract_patches(P)),
    ],
    ids=["gram", "content", "style-layer", "style", "patches", "mrf"],
)
def test_primitives_take_nested_lists_as_arrays(call):
    # an AttributeError ('list' object has no attribute 'shape'/'reshape') before
    want = call(F, P)
    np.testing.assert_allclose(call(F.tolist(), P.tolist()), want, rtol=1e-6)


def test_style_layer_loss_of_bfloat16_grams_is_float32():
    # the differences were squared and summed in bfloat16 (2-3 significant digits)
    g, a = (jnp.asarray(RNG.normal(size=(2, 6, 6)), jnp.bfloat16) for _ in range(2))
    got = losses.style_layer_loss(g, a, positions=35)
    want = np.square(np.asarray(g, np.float64) - np.asarray(a, np.float64)).mean((-2, -1))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("weight", [-1.0, float("nan"), jnp.float32(-0.5)])
def test_style_loss_refuses_negative_layer_weights_given_as_numbers(weight):
    # a style loss maximised there, silently, before
    grams = {"a": np_gram(P, "chw"), "b": np_gram(P, "chw")}
    with pytest.raises(JaxstyleError, match="layer weights must be finite and >= 0, not b: "):
        losses.style_loss({"a": F, "b": F}, grams, layer_weights={"a": 1.0, "b": weight})
    # traced, they are not known: the loss is still the weighted sum
    got = jax.jit(lambda w: losses.style_loss({"b": F}, grams, layer_weights={"b": w}))(2.0)
    np.testing.assert_allclose(got, 2 * losses.style_loss({"b": F}, grams), rtol=1e-6)


G = np.ones((6, 6), np.float32)
PATCHES = losses.extract_patches(P, size=3)  # (15, 54)
MASK = np.ones((2, 5, 7), np.float32)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: losses.gram_matrix(F[0, 0]), r"features must be \(\.\.\., h, w, C\), not \(7,"),
        (lambda: losses.total_variation_loss(P[..., 0]), r"images must be \(\.\.\., H, W, C\)"),
        (lambda: losses.gram_matrix(F, mask=MASK[:, :, :4]), r"mask must be \(\.\.\., 5, 7\)"),
        (lambda: losses.mrf_loss(P, PATCHES, mask=MASK[0, :4]), r"mask must be \(\.\.\., 5, 7\)"),
        (lambda: losses.mrf_loss(P[0], PATCHES, mask=MASK[0]), r"features must be \(\.\.\., h, w"),
        (lambda: losses.content_loss(F, P[:4]), r"content target must be \(5, 7, 6\) .*\(4, 7,"),
        (lambda: losses.content_loss(P, F), r"content target must be \(5, 7, 6\)"),
        (lambda: losses.content_loss(F, P[:1, :1]), r"target must be \(5, 7, 6\) .*\(1, 1,"),
        (lambda: losses.style_layer_loss(G, G[:3, :3], positions=35), r"Gram must be \(6, 6\)"),
        (lambda: losses.mrf_loss(P, PATCHES, patch_size=2), r"patches must be \(P', 24\), 2x2"),
        (lambda: losses.style_loss({"a": F}, {}), "target_grams lack the features' layer.* a"),
        (
            lambda: losses.style_loss({"a": F}, {"a": G}, layer_weights={"b": 1.0}),
            "layer_weights lack the features' layer.* a",
        ),
        (lambda: losses.style_loss({"a": F}, {"a": G}, masks={}), "masks lack"),
        (lambda: losses.extract_patches(F, stride=0), "patch size and stride must be >= 1"),
        (lambda: losses.extract_patches(F, size=0), r"patch size and stride .* not 0 and 1"),
        (lambda: losses.extract_patches(F, size=2.0), "patch size must be an integer, not 2.0"),
        (lambda: losses.mrf_loss(P, PATCHES, patch_size=0, wrap=True), "patch size and stride"),
        (lambda: losses.mrf_loss(P, PATCHES[:0]), r"at least one patch, not \(0, 54\)"),
    ],
    ids=[
        "gram-2d",
        "tv-2d",
        "gram-mask",
        "mrf-mask",
        "mrf-2d-masked",
        "content-target",
        "content-target-batched",
        "content-target-broadcast-h-w",
        "style-target",
        "mrf-patch-size",
        "style-targets-layer",
        "style-weights-layer",
        "style-masks-layer",
        "patches-stride-0",
        "patches-size-0",
        "patches-size-float",
        "mrf-wrap-size-0",
        "mrf-no-target-patches",
    ],
)
def test_arguments_of_the_wrong_shape_are_named(call, match):
    # errors from inside JAX before: unpacking, indexing, broadcasting, einsum, KeyError, / 0
    # (a float patch size: range(); a wrapped patch size 0: jnp.pad; no target patches: // 0)
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        call()


@pytest.mark.parametrize(
    ("gram", "target", "match"),
    [
        ((6, 5), (6, 5), r"gram must be \(\.\.\., C, C\), square, not \(6, 5\)"),
        ((6, 6), (1, 6), r"target Gram must be \(6, 6\), not \(1, 6\)"),
        ((6, 6), (6, 1), r"target Gram must be \(6, 6\), not \(6, 1\)"),
        ((6, 6), (), r"target Gram must be \(6, 6\), not \(\)"),
        ((6, 6), (5, 5), r"target Gram must be \(6, 6\), not \(5, 5\)"),
        ((2, 6, 6), (3, 6, 6), r"\(6, 6\) \(leading axes broadcasting to \(2, 6, 6\)\)"),
    ],
    ids=["not-square", "row", "column", "scalar", "other-c", "other-leading-axes"],
)
def test_style_layer_loss_takes_square_grams_of_the_targets_c(gram, target, match):
    # all but the last two broadcast before: a loss of the wrong matrices, silently
    loss = jax.jit(lambda g, t: losses.style_layer_loss(g, t, positions=35))
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        loss(jnp.ones(gram), jnp.ones(target))
    # static shapes: vmap checks each example's
    with pytest.raises(jaxstyle.JaxstyleError, match=match.split(" \\(leading")[0]):
        jax.jit(jax.vmap(loss, in_axes=(0, None)))(jnp.ones((4, *gram)), jnp.ones(target))


def test_style_layer_loss_broadcasts_a_targets_leading_axes():
    g = RNG.normal(size=(2, 3, 6, 6)).astype(np.float32)
    a = RNG.normal(size=(3, 6, 6)).astype(np.float32)
    got = jax.jit(lambda g, a: losses.style_layer_loss(g, a, positions=35))(g, a)
    np.testing.assert_allclose(got, np.square(g - a).mean((-2, -1)), rtol=1e-5)


def test_shape_checks_see_each_example_under_vmap_and_jit():
    # static shapes: traced code checks them too, vmap the per-example shape
    with pytest.raises(jaxstyle.JaxstyleError, match=r"not \(7, 6\)"):
        jax.vmap(losses.gram_matrix)(F[:, 0])
    with pytest.raises(jaxstyle.JaxstyleError, match="content target"):
        jax.jit(jax.vmap(losses.content_loss, in_axes=(0, None)))(F, P[:4])


def test_a_mask_of_fewer_leading_axes_broadcasts_without_rank_promotion():
    # conftest sets jax_numpy_rank_promotion="raise", as a caller may: an (h, w) mask of
    # (N, h, w, C) features was a broadcasting error from inside jnp before
    assert jax.config.jax_numpy_rank_promotion == "raise"
    mask = RNG.uniform(size=(5, 7)).astype(np.float32)
    patches = losses.extract_patches(P, size=3)
    each = [
        lambda f, m: losses.gram_matrix(f, mask=m),
        lambda f, m: losses.style_loss({"a": f}, {"a": G}, masks={"a": m}, reduction="gatys"),
        lambda f, m: losses.mrf_loss(f, patches, mask=m, reduction="mean"),
        lambda f, m: losses.mrf_loss(f, patches, mask=m, wrap=True),
    ]
    for loss in each:
        got = jax.jit(loss)(F, mask)
        want = jnp.stack([loss(f, mask) for f in F])
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # one mask per style (S, h, w) over one image's (h, w, C) features: (S, C, C)
    masks = RNG.uniform(size=(3, 5, 7)).astype(np.float32)
    got = losses.gram_matrix(P, mask=masks)
    np.testing.assert_allclose(got, [losses.gram_matrix(P, mask=m) for m in masks], rtol=1e-6)
