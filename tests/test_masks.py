"""Style masks (guided Grams, Gatys et al. 2017 sec. 4): the masked Gram against a
NumPy reference, masks at each layer's resolution, and masked runs.

Tolerances: Grams to 1e-5 relative (float32 sums); runs equal to 1e-5 (the same
program on XLA:CPU).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.cli import main
from jaxstyle.images import to_uint8
from jaxstyle.inputs import prepare_images, prepare_mask
from jaxstyle.objective import layer_masks, loss_terms
from jaxstyle.presets import get_preset
from jaxstyle.settings import resolve_settings
from jaxstyle.stylize import prepare_targets

SIZE = 64  # tubingen at 64 px: 48 x 64, the shape of the other end-to-end tests
RUN = dict(size=SIZE, steps=8, optimizer="adam", learning_rate=0.05)


@pytest.mark.parametrize("normalize", ["none", "hw", "chw"])
def test_masked_gram_weights_each_position_by_its_mask(normalize):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
    mask = rng.uniform(size=(2, 5, 6)).astype(np.float32)
    got = jax.jit(lambda f, m: jaxstyle.gram_matrix(f, normalize=normalize, mask=m))(features, mask)
    f = features.reshape(2, 30, 4).astype(np.float64)
    m = mask.reshape(2, 30).astype(np.float64)
    want = np.einsum("nk,nkc,nkd->ncd", m, f, f)
    divisor = {"none": 1.0, "hw": m.sum(1), "chw": 4 * m.sum(1)}[normalize]
    np.testing.assert_allclose(got, want / np.reshape(divisor, (-1, 1, 1)), rtol=1e-5)
    # a 0/1 mask: the Gram of the positions it keeps, as if the others were not there
    keep = mask > 0.5
    binary = jaxstyle.gram_matrix(features, normalize=normalize, mask=keep.astype(np.float32))
    for n in range(2):
        kept = features[n][keep[n]][None]  # (1, k, C) taken as a 1 x k map
        alone = jaxstyle.gram_matrix(kept[:, None], normalize=normalize)[0]
        np.testing.assert_allclose(binary[n], alone, rtol=1e-5, atol=1e-6)
    ones = jaxstyle.gram_matrix(features, normalize=normalize, mask=np.ones_like(mask))
    np.testing.assert_allclose(ones, jaxstyle.gram_matrix(features, normalize=normalize), rtol=1e-6)


def test_masked_gram_gradient_is_that_of_the_weighted_sum():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(5, 6, 4)).astype(np.float32)
    mask = rng.uniform(size=(5, 6)).astype(np.float32)
    probe = rng.normal(size=(4, 4)).astype(np.float32)

    def ours(f):
        return (jaxstyle.gram_matrix(f, normalize="chw", mask=mask) * probe).sum()

    def plain(f):
        g = jnp.einsum("hw,hwc,hwd->cd", mask, f, f) / (4 * mask.sum())
        return (g * probe).sum()

    np.testing.assert_allclose(
        jax.grad(ours)(features), jax.grad(plain)(features), rtol=1e-5, atol=1e-8
    )


def test_masked_gram_derivatives_in_the_mask_are_finite_where_it_is_0():
    # the Gram is linear in the mask; its derivative through √m was NaN where m = 0
    rng = np.random.default_rng(2)
    features = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
    mask = rng.uniform(size=(5, 6)).astype(np.float32)
    mask[:2] = 0.0  # an edge of the region
    probe = rng.normal(size=(1, 4, 4)).astype(np.float32)

    def ours(m):
        return (jaxstyle.gram_matrix(features, normalize="none", mask=m) * probe).sum()

    def plain(m):
        return (jnp.einsum("hw,nhwc,nhwd->ncd", m, features, features) * probe).sum()

    np.testing.assert_allclose(jax.grad(ours)(mask), jax.grad(plain)(mask), rtol=1e-5, atol=1e-6)
    tangent = rng.normal(size=mask.shape).astype(np.float32)
    np.testing.assert_allclose(
        jax.jvp(ours, (mask,), (tangent,))[1], jax.jvp(plain, (mask,), (tangent,))[1], rtol=1e-5
    )
    assert np.isfinite(jax.hessian(ours)(mask)).all()


def test_gatys_style_loss_counts_the_masks_positions():
    rng = np.random.default_rng(2)
    features = {"relu1_1": rng.normal(size=(4, 4, 3)).astype(np.float32)}
    target = {"relu1_1": rng.normal(size=(3, 3)).astype(np.float32)}
    mask = {"relu1_1": np.pad(np.ones((2, 4), np.float32), ((0, 2), (0, 0)))}  # top half
    got = jaxstyle.style_loss(features, target, normalize="none", reduction="gatys", masks=mask)
    top = features["relu1_1"][:2].reshape(8, 3).astype(np.float64)
    want = np.square(top.T @ top - target["relu1_1"]).sum() / (4 * 3**2 * 8**2)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_layer_masks_have_each_style_layers_feature_shape_and_pool_by_averages(vgg_weights):
    mask = np.random.default_rng(3).uniform(size=(45, 61)).astype(np.float32)
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    masks = layer_masks(mask, layers)
    image = jax.ShapeDtypeStruct((1, 45, 61, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: jaxstyle.vgg_features(vgg_weights, x, layers), image)
    assert {k: v.shape for k, v in masks.items()} == {k: v.shape[1:3] for k, v in shapes.items()}
    np.testing.assert_array_equal(masks["relu1_1"], mask)
    quarter = mask[:44, :60].reshape(22, 2, 30, 2).mean((1, 3))  # odd row/column dropped
    np.testing.assert_allclose(masks["relu2_1"], quarter, rtol=1e-6)


@pytest.mark.parametrize("shape", [(), (45,)])
def test_a_style_mask_of_fewer_than_two_axes_is_named(shape):
    # an IndexError from inside layer_masks before
    targets = jaxstyle.Targets(content={}, style={})
    with pytest.raises(jaxstyle.JaxstyleError, match=r"style mask must be \(\.\.\., H, W\)"):
        targets.with_style_mask(np.ones(shape, np.float32), ("relu1_1", "relu2_1"))


@pytest.mark.parametrize(
    ("layers", "match"),
    [(("relu9_1",), "unknown VGG19 layer relu9_1"), ("relu1_1", "not the string 'relu1_1'")],
    ids=["unknown", "bare-string"],
)
def test_style_mask_layers_are_checked(layers, match):
    # a KeyError ('relu9_1'; 'r' for a bare string) from inside layer_masks before
    targets = jaxstyle.Targets(content={}, style={})
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        targets.with_style_mask(np.ones((8, 8), np.float32), layers)


@pytest.fixture(scope="module")
def pair(shared_image):
    return shared_image("tubingen.jpg"), shared_image("starry_night.jpg")


def test_a_white_mask_is_no_mask(vgg_weights, pair):
    plain = jaxstyle.stylize(*pair, weights=vgg_weights, **RUN)
    white = jaxstyle.stylize(*pair, weights=vgg_weights, mask=np.ones((7, 9)), **RUN)
    np.testing.assert_allclose(white.image, plain.image, atol=1e-5)


def test_the_style_pulls_no_pixel_beyond_the_masks_reach(vgg_weights, pair):
    """Shallow layers (receptive fields under 14 px) and the right half masked: the
    style term's gradient is zero left of column 20 and not zero in the right half."""
    settings = resolve_settings(
        size=SIZE, content_layers=("relu2_2",), style_layers=("relu1_1", "relu2_1")
    )
    objective = settings.objective(get_preset(settings.preset))
    content, styles, _ = prepare_images(*pair, settings)
    right = np.zeros((48, 64), np.float32)
    right[:, 32:] = 1
    targets = prepare_targets(vgg_weights, objective, content, styles, settings, mask=right)
    assert {k: v.shape for k, v in targets.style_masks.items()} == {
        "relu1_1": (48, 64),
        "relu2_1": (24, 32),
    }
    weights = settings.loss_weights()

    def style(x):
        return loss_terms(x, vgg_weights, targets, weights, objective)["style"]

    grad = np.abs(np.asarray(jax.jit(jax.grad(style))(content))).max(axis=(0, 2))  # per column
    assert not grad[:20].any() and grad[32:].min() > 0


def test_sweep_cells_with_a_mask_equal_stylize(vgg_weights, pair):
    mask = np.zeros((48, 64), np.float32)
    mask[:24] = 1
    result = jaxstyle.sweep(*pair, weights=vgg_weights, style_weight=[1e3, 1e4], mask=mask, **RUN)
    for i in range(2):
        settings = {**RUN, **result.cells[i]}
        alone = jaxstyle.stylize(*pair, weights=vgg_weights, mask=mask, **settings)
        np.testing.assert_allclose(result.images[i], alone.image, atol=1e-5)


def test_cli_mask_is_recorded_checked_and_never_overwritten(pair, tmp_path, capsys):
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.uint8([0, 255]).repeat(32), (48, 1))).save(mask)
    args = ["stylize", *map(str, pair), "--size", "64", "--steps", "3", "--optimizer", "adam", "-q"]
    assert main([*args, "-o", str(tmp_path / "out.png"), "--mask", str(mask)]) == 0
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["inputs"]["mask"] == str(mask)
    columns = prepare_mask(mask, (24, 32), 1)[:, [0, 12, 20, 31]]  # away from the blurred edge
    np.testing.assert_allclose(columns, [[0, 0, 1, 1]] * 24, atol=1e-6)

    black = tmp_path / "black.png"
    Image.new("L", (8, 8)).save(black)
    assert main([*args, "-o", str(tmp_path / "b.png"), "--mask", str(black)]) == 2
    assert "a mask is black everywhere" in capsys.readouterr().err
    before = mask.read_bytes()
    assert main([*args, "-o", str(mask), "--mask", str(mask)]) == 2
    assert mask.read_bytes() == before


def test_pillow_images_and_masks_are_read_as_their_files(pair, tmp_path):
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.uint8([0, 255]).repeat(32), (48, 1))).save(mask)
    with Image.open(mask) as picture:
        np.testing.assert_array_equal(
            prepare_mask(picture, (24, 32), 1), prepare_mask(mask, (24, 32), 1)
        )
    settings = resolve_settings(size=SIZE, style_scale=0.75)
    from_paths = prepare_images(*pair, settings)
    with Image.open(pair[0]) as content, Image.open(pair[1]) as style:
        from_pillow = prepare_images(content, [style], settings)
    np.testing.assert_array_equal(from_pillow.content, from_paths.content)
    np.testing.assert_array_equal(from_pillow.styles[0], from_paths.styles[0])


def test_batch_jobs_take_their_own_masks(vgg_weights, pair, shared_image, tmp_path):
    top, left = tmp_path / "top.png", tmp_path / "left.png"
    Image.fromarray(np.repeat(np.uint8([255, 0]), 24)[:, None].repeat(64, 1)).save(top)
    Image.fromarray(np.repeat(np.uint8([255, 0]), 32)[None].repeat(48, 0)).save(left)
    content, style = map(str, pair)
    scream = str(shared_image("the_scream.jpg"))
    rows = [
        {"content": content, "style": style, "output": "top.png", "mask": "top.png"},
        {"content": content, "style": style, "output": "left.png", "mask": "left.png"},
        {"content": content, "style": style, "output": "plain.png"},
        {"content": content, "style": style, "output": "lost.png", "mask": "nope.png"},
        {
            "content": content,
            "style": [style, scream],
            "output": "two.png",
            "mask": "top.png;left.png",
        },
        {
            "content": content,
            "style": [scream, style],
            "output": "owt.png",
            "mask": ["left.png", "top.png"],
        },
        {"content": content, "style": style, "output": "odd.png", "mask": ["top.png", "left.png"]},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = jaxstyle.batch(manifest, tmp_path / "out", weights=vgg_weights, **RUN)
    assert [e.line for e in report.failed] == [4, 7]
    assert "nope.png" in report.failed[0].message
    assert "2 masks given for 1 style image" in report.failed[1].message
    layouts = [(b["mask"], b["jobs"]) for b in report.buckets]
    assert layouts == [("shared", 2), (None, 1), ("per style (2)", 2)]
    jobs = (
        ("top", [style], top),
        ("left", [style], left),
        ("plain", [style], None),
        ("two", [style, scream], [top, left]),
        ("owt", [scream, style], [left, top]),
    )
    for name, styles, mask in jobs:
        alone = jaxstyle.stylize(content, styles, weights=vgg_weights, mask=mask, **RUN)
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert np.abs(written.astype(int) - to_uint8(alone.image)).max() <= 1
        record = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert record["inputs"]["mask"] == (
            [str(m) for m in mask] if isinstance(mask, list) else mask and str(mask)
        )


def test_one_mask_per_style_pulls_each_region_to_its_own_style(vgg_weights, shared_image):
    """Two styles, complementary masks: the style term is each style's masked loss
    alone, weighted by its region's share of the area."""
    paths = [shared_image(f"{n}.jpg") for n in ("tubingen", "starry_night", "the_scream")]
    settings = resolve_settings(size=SIZE)
    objective = settings.objective(get_preset(settings.preset))
    content, styles, _ = prepare_images(paths[0], paths[1:], settings)
    top = np.zeros((48, 64), np.float32)
    top[:12] = 1  # a quarter of the picture
    masks = np.stack([top, 1 - top])
    assert prepare_mask([top, 1 - top], (48, 64), 2).shape == (2, 48, 64)
    both = prepare_targets(vgg_weights, objective, content, styles, settings, mask=masks)
    np.testing.assert_allclose(
        both.style_masks["relu3_1"],
        np.stack([layer_masks(m, ["relu3_1"])["relu3_1"] for m in masks]),
    )
    x = jax.random.uniform(jax.random.key(0), content.shape)
    weights = settings.loss_weights()

    def style_term(targets):
        return float(loss_terms(x, vgg_weights, targets, weights, objective)["style"])

    alone = [
        prepare_targets(vgg_weights, objective, content, [s], settings, mask=m)
        for s, m in zip(styles, masks, strict=True)
    ]
    want = 0.25 * style_term(alone[0]) + 0.75 * style_term(alone[1])
    assert style_term(both) == pytest.approx(want, rel=1e-5)

    with pytest.raises(jaxstyle.JaxstyleError, match="1 masks given for 2 style image"):
        prepare_mask([top], (48, 64), 2)
    with pytest.raises(jaxstyle.JaxstyleError, match="not blended"):
        prepare_mask([top, 1 - top], (48, 64), 2, resolve_settings(style_blend=(1, 2)))


def test_cli_takes_a_mask_per_style(shared_image, tmp_path):
    t, s, m = (str(shared_image(f"{n}.jpg")) for n in ("tubingen", "starry_night", "the_scream"))
    left, right = tmp_path / "left.png", tmp_path / "right.png"
    Image.fromarray(np.repeat(np.uint8([255, 0]), 32)[None].repeat(48, 0)).save(left)
    Image.fromarray(np.repeat(np.uint8([0, 255]), 32)[None].repeat(48, 0)).save(right)
    args = ["stylize", t, s, m, "--size", "64", "--steps", "3", "--optimizer", "adam", "-q"]
    out = tmp_path / "out.png"
    assert main([*args, "-o", str(out), "--mask", str(left), "--mask", str(right)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["inputs"]["mask"] == [str(left), str(right)]
    assert (
        main(
            [*args, "-o", str(out), "--mask", str(left), "--mask", str(right), "--mask", str(left)]
        )
        == 2
    )


def test_batch_row_with_a_mask_per_style_and_a_blend_is_a_row_error(vgg_weights, pair, tmp_path):
    from jaxstyle.batch import _check
    from jaxstyle.manifest import Job

    content, style = pair
    top = tmp_path / "top.png"
    Image.fromarray(np.repeat(np.uint8([255, 0]), 24)[:, None].repeat(64, 1)).save(top)
    shared = dict(size=SIZE, style_blend=(1, 3))
    per_style = Job(1, content, (style, style), "a.png", {}, (top, top))
    with pytest.raises(jaxstyle.JaxstyleError, match="not blended"):
        _check(per_style, tmp_path, "jaxstyle", shared, vgg_weights)
    one = _check(
        Job(2, content, (style, style), "b.png", {}, top), tmp_path, "jaxstyle", shared, vgg_weights
    )
    assert one.mask == "shared" and one.settings.style_blend == (1.0, 3.0)


def test_transparent_parts_of_a_mask_take_no_style(tmp_path):
    """A mask painted white on a transparent layer (an image editor's): its transparent
    part weighs 0, not 1 (laid over white, as a content or style image's is, it took
    the style everywhere); a half-transparent white weighs a half."""
    pixels = np.zeros((24, 32, 4), np.uint8)
    pixels[..., :3] = 255  # white everywhere
    pixels[:8, :, 3], pixels[8:16, :, 3] = 255, 128  # opaque top, half, transparent bottom
    path = tmp_path / "painted.png"
    Image.fromarray(pixels, "RGBA").save(path)
    for mask in (path, Image.open(path)):
        weights = prepare_mask(mask, (24, 32), 1)
        np.testing.assert_allclose(weights[:8], 1.0, atol=1e-6)
        np.testing.assert_allclose(weights[8:16], 128 / 255, atol=1e-3)
        np.testing.assert_array_equal(weights[16:], 0.0)
    assert jaxstyle.load_image(path)[16:].min() == 1.0  # an image's transparency: over white
