"""The MRF style loss (Li & Wand 2016): patches and nearest neighbours against a
float64 NumPy reference, and MRF runs (the ``cnnmrf`` preset) end to end.

Tolerances: losses to 1e-5 relative (float32 sums of squares); a batch job
equals the same job alone within one uint8 level, as in the other batch tests;
a sweep cell equals its solo run up to the rare nearest-neighbour near-tie that
float rounding decides otherwise (see the test).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import losses
from jaxstyle.cli import main
from jaxstyle.images import to_uint8
from jaxstyle.inputs import prepare_images, prepare_mask
from jaxstyle.objective import Objective, compute_targets
from jaxstyle.presets import get_preset
from jaxstyle.settings import resolve_settings
from jaxstyle.stylize import prepare_targets

RNG = np.random.default_rng(7)
SIZE = 64  # tubingen at 64 px: 48 x 64, the shape of the other end-to-end tests
RUN = dict(preset="cnnmrf", size=SIZE, steps=6)


def numpy_patches(f: np.ndarray, size: int, stride: int) -> np.ndarray:
    """(P, size·size·C) patches of (h, w, C) maps, by loops."""
    h, w, _ = f.shape
    return np.stack(
        [
            f[i : i + size, j : j + size].reshape(-1)
            for i in range(0, h - size + 1, stride)
            for j in range(0, w - size + 1, stride)
        ]
    )


def numpy_mrf(f, targets, size, stride, reduction, mask=None):
    """Li & Wand's E_s in float64: nearest target patch by normalised cross-correlation."""
    x = numpy_patches(np.float64(f), size, stride)
    t = np.float64(targets)
    nearest = t[np.argmax(x @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T, axis=1)]
    squared = (x - nearest) ** 2
    h, w = f.shape[:2]
    weights = (
        np.ones(len(x))
        if mask is None
        else numpy_patches(np.float64(mask)[..., None], 1, 1)
        .reshape(h, w)[
            size // 2 : size // 2 + h - size + 1 : stride,
            size // 2 : size // 2 + w - size + 1 : stride,
        ]
        .reshape(-1)
    )
    total = (weights[:, None] * squared).sum()
    return {
        "sum": total,
        "half_sum": total / 2,
        "mean": total / (weights.sum() * x.shape[1]),
    }[reduction]


@pytest.mark.parametrize(("size", "stride"), [(3, 1), (3, 2), (2, 3), (1, 1)])
def test_patches_are_the_windows_in_row_major_order(size, stride):
    f = RNG.normal(size=(2, 7, 9, 4)).astype(np.float32)
    patches = jax.jit(jaxstyle.extract_patches, static_argnames=("size", "stride"))(
        f, size=size, stride=stride
    )
    for n in range(2):
        np.testing.assert_array_equal(patches[n], numpy_patches(f[n], size, stride))


@pytest.mark.parametrize("shape", [(2, 5, 4), (3, 5, 2, 4)])
def test_patches_need_a_window(shape):
    # a ValueError before, not a JaxstyleError: the CLI showed a traceback
    h, w = shape[-3:-1]
    patches = jax.jit(jaxstyle.extract_patches, static_argnames=("size", "stride"))
    match = rf"features of h={h}, w={w} have no 3x3 patch: .* at least the patch size 3"
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        patches(jnp.zeros(shape), size=3)
    with pytest.raises(jaxstyle.JaxstyleError, match="no 3x3 patch"):
        jaxstyle.mrf_loss(jnp.zeros(shape), jnp.zeros((4, 36)))


@pytest.mark.parametrize("reduction", ["sum", "half_sum", "mean"])
@pytest.mark.parametrize("stride", [1, 2])
def test_mrf_loss_matches_the_nearest_neighbour_reference(reduction, stride):
    f = RNG.normal(size=(9, 11, 5)).astype(np.float32)
    style = RNG.normal(size=(8, 10, 5)).astype(np.float32)
    targets = numpy_patches(style, 3, stride).astype(np.float32)
    loss = jax.jit(jaxstyle.mrf_loss, static_argnames=("patch_size", "stride", "reduction"))(
        f, targets, stride=stride, reduction=reduction
    )
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, numpy_mrf(f, targets, 3, stride, reduction), rtol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_masked_mrf_loss_weights_each_patch_by_its_centre(reduction):
    f = RNG.normal(size=(9, 11, 5)).astype(np.float32)
    targets = numpy_patches(RNG.normal(size=(8, 10, 5)), 3, 1).astype(np.float32)
    mask = RNG.uniform(size=(9, 11)).astype(np.float32)
    loss = jaxstyle.mrf_loss(f, targets, stride=2, reduction=reduction, mask=mask)
    want = numpy_mrf(f, targets, 3, 2, reduction, mask)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    ones = jaxstyle.mrf_loss(f, targets, stride=2, reduction=reduction, mask=np.ones((9, 11)))
    np.testing.assert_allclose(ones, jaxstyle.mrf_loss(f, targets, stride=2, reduction=reduction))


def test_mrf_matches_in_chunks_equal_all_at_once(monkeypatch):
    f = jnp.asarray(RNG.normal(size=(2, 9, 11, 5)), jnp.float32)
    targets = jaxstyle.extract_patches(jnp.asarray(RNG.normal(size=(8, 10, 5)), jnp.float32))
    whole = jax.value_and_grad(lambda g: jaxstyle.mrf_loss(g, targets).sum())(f)
    monkeypatch.setattr(losses, "SIMILARITY_CHUNK", 5 * len(targets))  # 5 rows at a time
    chunked = jax.value_and_grad(lambda g: jaxstyle.mrf_loss(g, targets).sum())(f)
    jax.tree.map(np.testing.assert_array_equal, chunked, whole)


def test_mrf_loss_of_the_styles_own_features_is_zero():
    f = jnp.asarray(RNG.normal(size=(6, 7, 3)), jnp.float32)
    assert float(jaxstyle.mrf_loss(f, jaxstyle.extract_patches(f))) == pytest.approx(0, abs=1e-6)


def test_mrf_gradient_pulls_each_patch_to_its_fixed_match():
    """The match is not differentiated: the gradient is that of Σ(Ψ_i − T_NN(i))²
    with NN held fixed, scattered back over the overlapping patches."""
    f = RNG.normal(size=(8, 9, 4)).astype(np.float32)
    targets = numpy_patches(RNG.normal(size=(7, 7, 4)), 3, 1).astype(np.float32)
    x = numpy_patches(np.float64(f), 3, 1)
    t = np.float64(targets)
    nn = np.argmax(x @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T, axis=1)

    def fixed(g):
        return jnp.sum(jnp.square(jaxstyle.extract_patches(g) - targets[nn]))

    got = jax.grad(lambda g: jaxstyle.mrf_loss(g, targets))(f)
    np.testing.assert_allclose(got, jax.grad(fixed)(f), rtol=1e-5, atol=1e-5)


def test_mrf_loss_vmap_equals_batch():
    f = jnp.asarray(RNG.normal(size=(3, 6, 6, 4)), jnp.float32)
    targets = jaxstyle.extract_patches(f[0], stride=2)
    batched = jaxstyle.mrf_loss(f, targets)
    np.testing.assert_allclose(jax.vmap(lambda g: jaxstyle.mrf_loss(g, targets))(f), batched)
    assert batched.shape == (3,)


def test_mrf_targets_are_every_style_images_patches(vgg_weights):
    objective = Objective.from_preset(get_preset("cnnmrf"))
    a, b = (jnp.asarray(RNG.uniform(size=s), jnp.float32) for s in ((48, 64, 3), (40, 40, 3)))
    both = compute_targets(vgg_weights, objective, a, [a, b]).style
    algorithm = objective.conv_algorithm
    feats = [
        jaxstyle.vgg_features(
            vgg_weights, x[None], objective.style_layers, conv_algorithm=algorithm
        )
        for x in (a, b)
    ]
    for layer in objective.style_layers:
        want = np.concatenate([numpy_patches(np.asarray(f[layer][0]), 3, 2) for f in feats])
        np.testing.assert_allclose(both[layer], want, rtol=1e-5, atol=1e-4)
    with pytest.raises(jaxstyle.JaxstyleError, match="no style blend"):
        compute_targets(vgg_weights, objective, a, [a, b], blend=[1, 2])


def test_cnnmrf_settings_refuse_what_patches_cannot_do(tmp_path):
    with pytest.raises(jaxstyle.JaxstyleError, match="no style blend"):
        resolve_settings("cnnmrf", style_blend=(1, 2))
    masks = [np.ones((4, 4)), np.ones((4, 4))]
    with pytest.raises(jaxstyle.JaxstyleError, match="give one mask"):
        prepare_mask(masks, (48, 64), 2, resolve_settings("cnnmrf"))
    with pytest.raises(jaxstyle.JaxstyleError, match="relu4_1 needs sides of at least 24 px"):
        jaxstyle.stylize(np.ones((20, 30, 3)), np.ones((64, 64, 3)), preset="cnnmrf")


@pytest.fixture(scope="module")
def images(shared_image):
    return [str(shared_image(f"{n}.jpg")) for n in ("tubingen", "starry_night", "the_scream")]


def test_cnnmrf_run_lowers_the_loss_and_a_sweep_cell_equals_it(vgg_weights, images):
    content, style, _ = images
    run = {**RUN, "init": "noise"}
    alone = jaxstyle.stylize(content, style, weights=vgg_weights, **run)
    assert alone.settings.preset == "cnnmrf"
    history = alone.history
    assert history["total"][-1] < 0.5 * history["total"][0]
    assert history["style"][-1] < 0.95 * history["style"][0]
    weight = alone.settings.style_weight
    grid = jaxstyle.sweep(content, style, weights=vgg_weights, style_weight=[weight, 1e-6], **run)
    # The vmapped program rounds differently from the solo one, and a near-tie
    # between two style patches may then go the other way: a few pixels move by
    # up to about 1e-3 (measured 3.6e-4 on 85 of 9216 values); the losses agree.
    diff = np.abs(grid.images[0] - alone.image)
    assert diff.max() < 2e-3 and (diff > 1e-5).mean() < 0.02
    assert grid.final["style"][0] == pytest.approx(alone.final["style"], rel=1e-4)
    assert grid.final["style"][1] < 0.1 * grid.final["style"][0]


def test_masked_cnnmrf_leaves_the_black_side_to_the_content(vgg_weights, images):
    """relu3_1 alone, the right half masked: the style term's gradient is zero
    where no unmasked patch (nor the relu3_1 receptive fields of one) reaches."""
    content, style, _ = images
    right = np.zeros((48, 64), np.float32)
    right[:, 32:] = 1
    masked = jaxstyle.stylize(content, style, weights=vgg_weights, mask=right, **RUN)
    assert 0 < masked.final["style"]
    settings = resolve_settings("cnnmrf", size=SIZE, style_layers=("relu3_1",))
    objective = settings.objective(get_preset("cnnmrf"))
    c, s, _ = prepare_images(content, style, settings)
    targets = prepare_targets(vgg_weights, objective, c, s, settings, mask=right)
    weights = settings.loss_weights()

    def style_term(x):
        return jaxstyle.loss_terms(x, vgg_weights, targets, weights, objective)["style"]

    grad = np.asarray(jax.grad(style_term)(jnp.asarray(c)))
    assert np.abs(grad[:, :8]).max() == 0 and np.abs(grad[:, 40:]).max() > 0


def test_batch_buckets_mrf_jobs_by_style_shape(vgg_weights, images, tmp_path):
    content, starry, scream = images
    rows = [
        {"content": content, "style": starry, "output": "a.png"},
        {"content": content, "style": scream, "output": "b.png"},
        {"content": content, "style": starry, "output": "c.png", "style_weight": 1e-5},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = jaxstyle.batch(manifest, tmp_path / "out", weights=vgg_weights, **RUN)
    assert not report.failed
    shapes = [(b["style_shapes"], b["jobs"]) for b in report.buckets]
    assert shapes == [(((40, 64),), 2), (((64, 50),), 1)]
    for name, style, weight in (("a", starry, None), ("b", scream, None), ("c", starry, 1e-5)):
        alone = jaxstyle.stylize(content, style, weights=vgg_weights, style_weight=weight, **RUN)
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert np.abs(written.astype(int) - to_uint8(alone.image)).max() <= 1


def test_cli_runs_the_cnnmrf_preset(images, tmp_path, capsys):
    out = tmp_path / "mrf.png"
    args = ["stylize", *images[:2], "-o", str(out), "--preset", "cnnmrf", "--size", "64"]
    assert main([*args, "--steps", "2", "-q"]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["settings"]["preset"] == "cnnmrf"
    capsys.readouterr()
    assert main([*args, "--steps", "2", "-q", "--style-blend", "1"]) == 2
    assert "no style blend" in capsys.readouterr().err
