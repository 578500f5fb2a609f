"""The objective against the primitives, presets' definitions, and vmap over weights."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle.objective import (
    LossWeights,
    Objective,
    blend_weights,
    compute_targets,
    total_loss,
)
from jaxstyle.presets import PRESETS, get_preset

RNG = np.random.default_rng(1)
CONTENT = jnp.asarray(RNG.uniform(size=(32, 48, 3)), jnp.float32)
STYLE = jnp.asarray(RNG.uniform(size=(40, 40, 3)), jnp.float32)
IMAGE = jnp.asarray(RNG.uniform(size=(32, 48, 3)), jnp.float32)


def weights_of(preset):
    return LossWeights.create(
        content=preset.content_weight,
        style=preset.style_weight,
        tv=preset.tv_weight,
        style_layers=preset.style_layer_weights,
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_total_loss_is_weighted_sum_of_primitives(vgg_weights, name):
    preset = get_preset(name)
    objective = Objective.from_preset(preset)
    targets = compute_targets(vgg_weights, objective, CONTENT, [STYLE])
    total, terms = jax.jit(total_loss, static_argnums=4)(
        IMAGE, vgg_weights, targets, weights_of(preset), objective
    )

    feats = jaxstyle.vgg_features(
        vgg_weights, IMAGE[None], objective.layers, pooling=preset.pooling
    )
    cfeats = jaxstyle.vgg_features(
        vgg_weights, CONTENT[None], preset.content_layers, pooling=preset.pooling
    )
    sfeats = jaxstyle.vgg_features(
        vgg_weights, STYLE[None], preset.style_layers, pooling=preset.pooling
    )
    content = sum(
        jaxstyle.content_loss(feats[k][0], cfeats[k][0], reduction=preset.content_reduction)
        for k in preset.content_layers
    )
    if preset.style_loss == "mrf":
        size, stride = preset.mrf_patch_size, preset.mrf_stride
        style = sum(
            w
            * jaxstyle.mrf_loss(
                feats[k][0],
                jaxstyle.extract_patches(sfeats[k][0], size=size, stride=stride),
                patch_size=size,
                reduction=preset.style_reduction,
            )
            for k, w in zip(preset.style_layers, preset.style_layer_weights, strict=True)
        )
    else:
        grams = {
            k: jaxstyle.gram_matrix(v[0], normalize=preset.gram_normalize)
            for k, v in sfeats.items()
        }
        style = jaxstyle.style_loss(
            {k: feats[k][0] for k in preset.style_layers},
            grams,
            layer_weights=dict(zip(preset.style_layers, preset.style_layer_weights, strict=True)),
            normalize=preset.gram_normalize,
            reduction=preset.style_reduction,
        )
    tv = jaxstyle.total_variation_loss(
        IMAGE * preset.tv_pixel_scale, power=preset.tv_power, reduction=preset.tv_reduction
    )
    np.testing.assert_allclose(terms["content"], preset.content_weight * content, rtol=1e-4)
    np.testing.assert_allclose(terms["style"], preset.style_weight * style, rtol=1e-4)
    np.testing.assert_allclose(terms["tv"], preset.tv_weight * tv, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(total, terms["content"] + terms["style"] + terms["tv"], rtol=1e-6)
    assert float(terms["content"]) > 0 and float(terms["style"]) > 0


def test_content_target_gives_zero_content_loss(vgg_weights):
    objective = Objective.from_preset(get_preset("jcjohnson"))
    targets = compute_targets(vgg_weights, objective, CONTENT, [STYLE])
    _, terms = total_loss(
        CONTENT, vgg_weights, targets, weights_of(get_preset("jcjohnson")), objective
    )
    assert float(terms["content"]) == pytest.approx(0.0, abs=1e-6)


def test_style_blend_is_weighted_gram_average(vgg_weights):
    objective = Objective.from_preset(get_preset("jcjohnson"))
    a = compute_targets(vgg_weights, objective, CONTENT, [STYLE])
    b = compute_targets(vgg_weights, objective, CONTENT, [CONTENT])
    mixed = compute_targets(vgg_weights, objective, CONTENT, [STYLE, CONTENT], blend=[3, 1])
    for k in objective.style_layers:
        np.testing.assert_allclose(mixed.style[k], 0.75 * a.style[k] + 0.25 * b.style[k], rtol=1e-5)


def test_vmap_over_loss_weights_equals_loop(vgg_weights):
    preset = get_preset("jcjohnson")
    objective = Objective.from_preset(preset)
    targets = compute_targets(vgg_weights, objective, CONTENT, [STYLE])
    grid = [
        LossWeights.create(content=c, style=s, tv=1e-3, style_layers=(1.0,) * 5)
        for c, s in [(1.0, 10.0), (5.0, 100.0), (0.0, 1e3)]
    ]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *grid)
    # the VGG weights as arguments: closed over, XLA would constant-fold them (4x the compile)
    f = lambda w, params: total_loss(IMAGE, params, targets, w, objective)[0]  # noqa: E731
    batched = jax.jit(jax.vmap(f, in_axes=(0, None)))(stacked, vgg_weights)
    looped = [jax.jit(f)(w, vgg_weights) for w in grid]
    np.testing.assert_allclose(batched, looped, rtol=1e-5)


def test_a_runs_winograd_kernels_cover_its_cells_and_its_target_images():
    """The steps' images run ``cells`` at once, the content and style images for the
    targets one at a time: 64x64 x 8 cells read F(4x4) in block 3, a 160x160 style
    image there too, the 64x64 content image F(2x2) everywhere (see
    :func:`jaxstyle.vgg.winograd_kernels`); direct convolutions read none."""
    objective = Objective(("relu4_2",), ("relu1_1", "relu5_1"), conv_algorithm="winograd")
    block3 = [f"conv3_{i}" for i in range(1, 5)]
    rest = [f"conv4_{i}" for i in range(1, 5)] + ["conv5_1"]
    f2 = {(name, 2) for name in block3 + rest}
    f4 = {(name, 4) for name in block3}
    assert objective.winograd_kernels((64, 64)) == f2
    assert objective.winograd_kernels((64, 64), cells=8) == f2 | f4
    assert objective.winograd_kernels((64, 64), [(160, 160)]) == f2 | f4
    assert objective.winograd_kernels((64, 64), [(60, 60)], cells=3) == f2
    direct = Objective(("relu4_2",), ("relu5_1",), conv_algorithm="direct")
    assert direct.winograd_kernels((256, 256), cells=8) is None


def test_bad_settings_are_refused():
    with pytest.raises(jaxstyle.JaxstyleError, match="unknown VGG19 layer relu9_9"):
        Objective(content_layers=("relu9_9",), style_layers=("relu1_1",))
    with pytest.raises(jaxstyle.JaxstyleError, match="style weight"):
        LossWeights.create(content=1.0, style=-1.0, tv=0.0, style_layers=(1.0,))
    with pytest.raises(jaxstyle.JaxstyleError, match="unknown preset"):
        get_preset("picasso")


@pytest.mark.parametrize(
    "setting, message",
    [
        (dict(gram_normalize="cwh"), "gram normalize must be one of none, hw, chw, not 'cwh'"),
        (dict(content_reduction="l1"), "content reduction must be one of sum, half_sum, mean"),
        (dict(style_reduction="gatsby"), "style reduction must be one of .*gatys, not 'gatsby'"),
        (dict(tv_power=3), "tv power must be one of 1, 2, not 3"),
        (dict(tv_reduction="max"), "tv reduction must be one of"),
        (dict(style_layers="relu1_1"), r"style layers must be .* \('relu1_1',\), not the string"),
        # accepted before: "no" as true, a float patch size failing inside the traced loss
        (dict(tileable="no"), "tileable must be True or False, not 'no'"),
        (dict(mrf_patch_size=2.5), "MRF patch size must be an integer, not 2.5"),
        (dict(batch=0), "batch must be >= 1, not 0"),
        (dict(tv_pixel_scale=float("nan")), "TV pixel scale must be finite and >= 0"),
    ],
)
def test_objective_refuses_bad_settings_when_made(setting, message):
    # these were accepted, to fail as a ValueError from inside the first traced loss
    with pytest.raises(jaxstyle.JaxstyleError, match=message):
        Objective(**{"content_layers": ("relu4_2",), "style_layers": ("relu1_1",), **setting})


def test_objective_takes_layer_lists_as_tuples():
    objective = Objective(content_layers=["relu4_2"], style_layers=["relu1_1", "relu2_1"])
    assert objective.style_layers == ("relu1_1", "relu2_1")
    hash(objective)  # a jit static argument: lists were unhashable
    with pytest.raises(jaxstyle.JaxstyleError, match="not the string 'relu1_1'"):
        jaxstyle.vgg_features(None, np.zeros((1, 8, 8, 3), np.float32), "relu1_1")


BF16_LOSS_RTOL = 2e-2  # measured 0.4-0.6 % on tubingen/starry_night at 48x64 (jaxstyle preset)


def test_bfloat16_loss_and_gradient_agree_with_float32(vgg_weights, shared_image):
    """bf16 convolutions: J within BF16_LOSS_RTOL, ∇J pointing the same way (cosine > 0.99)."""
    from jaxstyle.inputs import prepare_images
    from jaxstyle.settings import resolve_settings

    settings = resolve_settings("jaxstyle", size=64)
    paths = shared_image("tubingen.jpg"), [shared_image("starry_night.jpg")]
    content, styles, _ = prepare_images(*paths, settings)
    noise = np.random.default_rng(0).standard_normal(content.shape)
    image = jnp.asarray(np.clip(content + 0.2 * noise, 0.0, 1.0), jnp.float32)
    assert image.shape == (48, 64, 3)
    weights = settings.loss_weights()
    results = {}
    for dtype in ("float32", "bfloat16"):
        objective = Objective.from_preset(
            get_preset("jaxstyle"), compute_dtype=dtype, conv_algorithm=settings.conv_algorithm
        )
        targets = compute_targets(vgg_weights, objective, jnp.asarray(content), styles)
        assert all(g.dtype == jnp.float32 for g in targets.style.values())
        value_and_grad = jax.value_and_grad(  # the VGG weights an argument, not constants
            lambda x, p, t=targets, o=objective: total_loss(x, p, t, weights, o)[0]
        )
        lowered = jax.jit(value_and_grad).lower(image, vgg_weights)
        results[dtype] = lowered.compile()(image, vgg_weights)
        if dtype == "bfloat16":
            jaxpr = str(jax.make_jaxpr(value_and_grad)(image, vgg_weights))
            assert "conv_general_dilated" in jaxpr and "bf16" in jaxpr
            # the Grams' products (forward and gradient) take bf16 operands too
            hlo = lowered.as_text().splitlines()
            products = [line for line in hlo if "stablehlo.dot_general" in line]
            assert len(products) == 2 * len(objective.style_layers), products
            operands = [line.split(" : ")[-1].split("->")[0] for line in products]
            assert all(types.count("xbf16>") == 2 for types in operands), products
    (j32, g32), (j16, g16) = results["float32"], results["bfloat16"]
    assert j16.dtype == g16.dtype == jnp.float32 and g16.shape == image.shape
    rel = abs(float(j16) - float(j32)) / float(j32)
    assert 0 < rel < BF16_LOSS_RTOL, rel  # > 0: the bf16 path really runs in bf16
    g32, g16 = np.ravel(g32), np.ravel(g16)
    cosine = g32 @ g16 / (np.linalg.norm(g32) * np.linalg.norm(g16))
    assert cosine > 0.99, cosine


def test_bad_compute_dtype_is_refused():
    with pytest.raises(jaxstyle.JaxstyleError, match="compute dtype must be one of"):
        Objective.from_preset(get_preset("jaxstyle"), compute_dtype="float16")


def test_loss_inputs_of_the_wrong_shape_are_named(vgg_weights):
    # each came out of the convolution or a broadcast deep inside JAX, or a zip() ValueError
    objective = Objective.from_preset(get_preset("jcjohnson"))
    targets = compute_targets(vgg_weights, objective, CONTENT, [STYLE])
    weights = weights_of(get_preset("jcjohnson"))
    loss_fn = jaxstyle.make_loss_fn(objective)
    args = jaxstyle.LossArgs(vgg_weights, targets, weights)
    with pytest.raises(jaxstyle.JaxstyleError, match=r"one \(H, W, 3\) image, not \(1, "):
        loss_fn(CONTENT[None], args)
    with pytest.raises(jaxstyle.JaxstyleError, match="content targets .* not of a 32x20 px"):
        jax.jit(loss_fn)(CONTENT[:20, :32], args)
    few = LossWeights.create(content=1.0, style=1.0, tv=0.0, style_layers=[1.0, 1.0])
    with pytest.raises(jaxstyle.JaxstyleError, match=r"must be \(5,\), one per style layer"):
        total_loss(CONTENT, vgg_weights, targets, few, objective)
    # a grid of weights not vmapped: terms of 3 values each, the loss too (grad refused it)
    grid = dataclasses.replace(weights, content=jnp.ones(3, jnp.float32))
    with pytest.raises(jaxstyle.JaxstyleError, match=r"content weight must be one number, \(\)"):
        total_loss(CONTENT, vgg_weights, targets, grid, objective)


def test_targets_of_other_layers_are_named(vgg_weights):
    # a KeyError of the layer's name from inside the loss before (content, MRF style, masks)
    preset = get_preset("jcjohnson")
    targets = compute_targets(vgg_weights, Objective.from_preset(preset), CONTENT, [STYLE])
    args = jaxstyle.LossArgs(vgg_weights, targets, weights_of(preset))
    other = Objective.from_preset(preset, content_layers=("relu3_1",))
    with pytest.raises(jaxstyle.JaxstyleError, match=r"targets.content lack .* relu3_1"):
        jaxstyle.make_loss_fn(other)(CONTENT, args)
    mrf = Objective.from_preset(preset, style_loss="mrf", style_layers=("relu3_2",))
    one = LossWeights.create(content=1.0, style=1.0, tv=0.0, style_layers=[1.0])
    with pytest.raises(jaxstyle.JaxstyleError, match=r"targets.style lack .* relu3_2"):
        jaxstyle.make_loss_fn(mrf)(CONTENT, args._replace(weights=one))
    masked = targets.with_style_mask(np.ones(CONTENT.shape[:2]), ["relu1_1"])
    with pytest.raises(jaxstyle.JaxstyleError, match=r"targets.style_masks lack .* relu2_1"):
        jaxstyle.make_loss_fn(Objective.from_preset(preset))(CONTENT, args._replace(targets=masked))


@pytest.mark.parametrize(
    ("content", "styles", "match"),
    [
        (CONTENT, STYLE, r"styles must be a list .*not \(40, 40, 3\) \(one style: \[style\]\)"),
        (CONTENT, [], r"styles must be a list of one or more"),
        (CONTENT, [STYLE, STYLE[0]], r"style 1 must be one \(H, W, 3\) image, not \(40, 3\)"),
        (CONTENT[None], [STYLE], r"content must be one \(H, W, 3\) image, not \(1, 32, 48, 3\) "),
    ],
    ids=["one-style-array", "no-styles", "2d-style", "batched-content"],
)
def test_compute_targets_names_images_of_the_wrong_shape(vgg_weights, content, styles, match):
    # a convolution's "lhs and rhs ndim" TypeError, or "add a batch axis" to a style's rows
    objective = Objective.from_preset(get_preset("jcjohnson"))
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        compute_targets(vgg_weights, objective, content, styles)


@pytest.mark.parametrize(
    ("transform", "style"),
    [(jax.jit, jnp.float32(2.0)), (jax.vmap, jnp.ones(2))],
    ids=["jit", "vmap"],
)
def test_loss_weights_create_in_traced_code_points_to_the_constructor(transform, style):
    # it said "style weight must be a number, not VmapTracer(...)"
    def create(s):
        return LossWeights.create(content=1.0, style=s, tv=0.0, style_layers=[1.0])

    with pytest.raises(jaxstyle.JaxstyleError, match=r"build LossWeights\(content=.*directly"):
        transform(create)(style)
    one, zero = jnp.float32(1.0), jnp.float32(0.0)
    built = transform(lambda s: LossWeights(one, s, zero, jnp.ones(1, jnp.float32)))(style)
    assert jnp.shape(built.style) == jnp.shape(style)


def test_an_empty_style_blend_is_named_in_its_error():
    """sweep(style_blend=[]) or stylize(style_blend=()) ended the message on "not "."""
    with pytest.raises(jaxstyle.JaxstyleError, match=r"sum > 0; not \[\] \(no weights\)$"):
        blend_weights((), 2)


def test_separate_targets_refuse_a_blend_they_would_ignore(vgg_weights):
    # the blend was checked, then silently not applied
    objective = Objective.from_preset(get_preset("jcjohnson"))
    with pytest.raises(jaxstyle.JaxstyleError, match="separate=True .* takes no blend"):
        compute_targets(
            vgg_weights, objective, CONTENT, [STYLE, CONTENT], blend=[3, 1], separate=True
        )


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((32,), r"content_shape must be \(H, W\), not \(32,\)"),
        ((32.0, 48.0), "a content_shape side must be an integer, not 32.0"),
    ],
    ids=["one-side", "floats"],
)
def test_texture_targets_name_a_bad_content_shape(vgg_weights, shape, match):
    # "images must be (N, H, W, 3), not (1, 32, 3) (add a batch axis)", or a TypeError
    # from jax.eval_shape, before
    objective = Objective.from_preset(get_preset("jcjohnson"))
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        compute_targets(vgg_weights, objective, None, [STYLE], content_shape=shape)


def test_a_preset_or_loose_arguments_in_place_of_the_objectives_types_are_named(vgg_weights):
    # AttributeErrors ('Preset' object has no attribute 'tileable', 'NoneType' object has no
    # attribute 'style_masks') from inside them before; make_loss_fn(preset) was taken
    preset = get_preset("jcjohnson")
    objective = Objective.from_preset(preset)
    targets = compute_targets(vgg_weights, objective, CONTENT, [STYLE])
    weights = weights_of(preset)
    calls = {
        r"objective must be an Objective \(Objective.from_preset\(preset\)\), not Preset": [
            lambda: jaxstyle.make_loss_fn(preset),
            lambda: compute_targets(vgg_weights, preset, CONTENT, [STYLE]),
            lambda: total_loss(IMAGE, vgg_weights, targets, weights, preset),
        ],
        "targets must be Targets, not dict": [
            lambda: total_loss(IMAGE, vgg_weights, dict(targets.content), weights, objective)
        ],
        "weights must be LossWeights, not tuple": [
            lambda: total_loss(IMAGE, vgg_weights, targets, (1.0, 1.0, 0.0), objective)
        ],
    }
    for match, each in calls.items():
        for call in each:
            with pytest.raises(jaxstyle.JaxstyleError, match=match):
                call()
