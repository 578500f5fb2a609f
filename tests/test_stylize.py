"""End-to-end optimisation on tiny real images: convergence, determinism, contracts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.settings import resolve_settings

SIZE = 64  # tubingen at 64 px: 48 x 64


@pytest.fixture(scope="module")
def pair(shared_image):
    return shared_image("tubingen.jpg"), shared_image("starry_night.jpg")


def test_texture_synthesis_lowers_style_loss_1000_fold(vgg_weights, pair):
    """Gatys et al. 2015 texture synthesis: Gram matching alone (no TV), from noise.
    Measured at 25 x 40: 772-fold after 200 L-BFGS steps, 1876-fold after 400.

    Not 32 px (20 x 32): there relu4's convolutions run on 2 x 4 maps, where
    XLA:CPU's convolution is 7x slower than on 3 x 4 (an Adam step: 290 vs 39 ms)."""
    result = jaxstyle.stylize(
        None,
        pair[1],
        weights=vgg_weights,
        size=40,
        steps=400,
        optimizer="lbfgs",
        tv_weight=0.0,
        seed=0,
    )
    assert result.settings.content_weight == 0.0 and result.settings.init == "noise"
    start, end = result.history["style"][0], result.final["style"]
    assert start / end >= 1000, (
        f"style loss fell only {start / end:.0f}-fold ({start:.3g} -> {end:.3g})"
    )
    assert result.image.shape == (25, 40, 3)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_stylize_decreases_loss_and_keeps_pixels_in_range(vgg_weights, pair, optimizer):
    result = jaxstyle.stylize(
        *pair, weights=vgg_weights, size=SIZE, steps=12, optimizer=optimizer, learning_rate=0.05
    )
    h = result.history
    assert set(h) == {"total", "content", "style", "tv"} and all(len(v) == 12 for v in h.values())
    np.testing.assert_allclose(h["total"], h["content"] + h["style"] + h["tv"], rtol=1e-4)
    assert result.final["total"] < 0.5 * h["total"][0]
    assert result.image.shape == (48, 64, 3) and result.image.dtype == np.float32
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert result.timings["ms_per_step"] > 0


def test_same_seed_same_image_other_seed_other_image(vgg_weights, pair):
    run = lambda seed: jaxstyle.stylize(  # noqa: E731
        *pair, weights=vgg_weights, size=SIZE, steps=3, optimizer="adam", init="noise", seed=seed
    )
    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.history["total"], b.history["total"])
    assert np.abs(a.image - c.image).mean() > 1e-3


def test_zero_steps_returns_the_resized_content(vgg_weights, pair):
    from jaxstyle.images import load_image, resize_longest

    result = jaxstyle.stylize(*pair, weights=vgg_weights, size=SIZE, steps=0, init="content")
    np.testing.assert_array_equal(result.image, resize_longest(load_image(pair[0]), SIZE))
    assert result.final["content"] == pytest.approx(0.0, abs=1e-6)
    assert result.final["style"] > 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=-1), "steps"),
        (dict(content_weight=-1.0), "content weight"),
        (dict(style_layers=("relu6_1",)), "unknown VGG19 layer"),
        (dict(style_layers=("relu1_1", "relu2_1", "relu1_1")), "style layers name relu1_1 twice"),
        (dict(content_layers=("relu4_2", "relu4_2")), "content layers name relu4_2 twice"),
        (dict(pooling="min"), "pooling"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(style_layer_weights=(1.0,)), "style layer weights"),
        (dict(compute_dtype="float16"), "compute dtype"),
        (dict(conv_algorithm="fft"), "conv algorithm"),
        (dict(steps=2.5), "steps must be an integer, not 2.5"),
        (dict(steps=True), "steps must be an integer, not True"),
        (dict(size="32"), "size must be an integer, not '32'"),
        (dict(size=100_000), "size must be from 16 to 8192 pixels"),
        (dict(style_scale=500.0), "resized to at most 8192 px \\(longest side\\), not 32000:"),
        (dict(style_scale=1e300), "not 6.4e\\+301: use a smaller size or style scale$"),
        (dict(style_scale=1e308), "not inf: use a smaller size or style scale$"),
        (dict(style_scale=float("inf")), "style scale must be finite and > 0"),
        (dict(style_scale=float("nan")), "style scale must be finite and > 0"),
        (dict(seed=1.0), "seed must be an integer"),
        (dict(coarse_to_fine=(64,)), "rise from at least 16 px to below the size \\(64\\), not 64"),
        (dict(coarse_to_fine=(48, 32)), "rise from at least 16 px"),
        (dict(coarse_to_fine=(8,)), "rise from at least 16 px"),
        (dict(coarse_to_fine=(32.0,)), "coarse-to-fine size must be an integer, not 32.0"),
        (dict(coarse_to_fine=32, size=None), "coarse-to-fine needs a size"),
        (dict(coarse_to_fine=32, coarse_to_fine_steps=(2, 2)), "2 coarse-to-fine step counts"),
        (dict(coarse_to_fine_steps=2), "1 coarse-to-fine step counts given for 0"),
        (dict(coarse_to_fine=32, coarse_to_fine_steps=-1), "coarse-to-fine steps must be >= 0"),
        (dict(coarse_to_fine=32, coarse_to_fine_steps=1.5), "coarse-to-fine steps must be an int"),
    ],
)
def test_bad_settings_raise_clear_errors(vgg_weights, pair, kwargs, match):
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        jaxstyle.stylize(*pair, weights=vgg_weights, **{"size": SIZE, **kwargs})


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_a_texture_refuses_a_style_scale(vgg_weights, pair, scale):
    """A texture is its style image's size: a style scale resized the output with the
    style (size 64, scale 2: a 128 px texture, its strokes as at scale 1)."""
    with pytest.raises(jaxstyle.JaxstyleError, match="a texture is its style image's size"):
        jaxstyle.stylize(None, pair[1], weights=vgg_weights, size=SIZE, style_scale=scale)


def test_winograd_run_equals_direct_run(vgg_weights, pair):
    """Winograd in blocks 3-5 (the CPU default from 112 px) and direct convolutions
    (the default below, as at this size): the same run to float rounding (5 Adam
    steps; losses 1e-4 relative, pixels 1e-5 on average and each within 1e-3: Adam
    scales each pixel's step by its own gradient's size, so where that is near zero
    a rounding-sized change moves the pixel by part of a step; 3e-4 on a host with
    AVX-512, at most 1e-4 on others)."""
    runs = {
        algorithm: jaxstyle.stylize(
            *pair, weights=vgg_weights, size=SIZE, steps=5, optimizer="adam", **settings
        )
        for algorithm, settings in (("winograd", {"conv_algorithm": "winograd"}), ("direct", {}))
    }
    assert runs["winograd"].settings.conv_algorithm == "winograd"
    assert runs["direct"].settings.conv_algorithm == "direct"  # auto, at 64 px on this CPU
    difference = np.abs(runs["winograd"].image - runs["direct"].image)
    assert difference.mean() < 1e-5 and difference.max() < 1e-3, difference.max()
    for name, value in runs["direct"].final.items():
        assert runs["winograd"].final[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


def test_bfloat16_run_lowers_the_loss(vgg_weights, pair):
    result = jaxstyle.stylize(
        *pair, weights=vgg_weights, size=SIZE, steps=5, optimizer="adam", compute_dtype="bfloat16"
    )
    assert result.settings.compute_dtype == "bfloat16"
    assert result.image.dtype == np.float32 and result.history["total"].dtype == np.float32
    assert result.final["total"] < result.history["total"][0]


def test_coarse_to_fine_passes_start_from_the_last_result_upsampled(vgg_weights, pair):
    """Gatys et al. 2017, sec. 6, spelled out: a 32 px run, then a 64 px run from
    its result upsampled, equal the two passes of one coarse-to-fine run."""
    run = dict(weights=vgg_weights, steps=3, optimizer="adam")
    steps = []
    result = jaxstyle.stylize(
        *pair,
        size=SIZE,
        coarse_to_fine=32,
        callback=lambda step, losses, image: steps.append((step, image.shape)),
        callback_every=2,
        **run,
    )
    coarse = jaxstyle.stylize(*pair, size=32, **run)
    fine = jaxstyle.stylize(*pair, size=SIZE, init=coarse.image, **run)
    np.testing.assert_array_equal(result.image, fine.image)
    for k, v in result.history.items():
        np.testing.assert_array_equal(v, np.concatenate([coarse.history[k], fine.history[k]]))
    assert result.final == fine.final and result.settings.coarse_to_fine == (32,)
    assert steps == [(2, (24, 32, 3)), (5, (48, 64, 3))]  # numbered over both passes
    assert fine.final["style"] < jaxstyle.stylize(*pair, size=SIZE, **run).final["style"]


def test_coarse_to_fine_passes_run_their_own_steps(vgg_weights, pair):
    """coarse_to_fine_steps: 4 steps at 32 px, then ``steps`` (3) at 64 px."""
    run = dict(weights=vgg_weights, steps=3, optimizer="adam")
    result = jaxstyle.stylize(*pair, size=SIZE, coarse_to_fine=32, coarse_to_fine_steps=4, **run)
    coarse = jaxstyle.stylize(*pair, size=32, **{**run, "steps": 4})
    fine = jaxstyle.stylize(*pair, size=SIZE, init=coarse.image, **run)
    np.testing.assert_array_equal(result.image, fine.image)
    assert len(result.history["total"]) == 7 and result.settings.coarse_to_fine_steps == (4,)


@pytest.mark.parametrize(
    "size, sizes", [(256, ()), (300, ()), (512, (256,)), (2048, (256, 512, 1024))]
)
def test_coarse_to_fine_auto_halves_the_size_down_to_256(size, sizes):
    s = resolve_settings(size=size, coarse_to_fine="auto", coarse_to_fine_steps=50, steps=30)
    assert s.coarse_to_fine == sizes
    assert s.passes == (*((q, 50) for q in sizes), (size, 30))
    assert s.pass_starts == tuple(50 * i for i in range(len(sizes) + 1))
    assert s.total_steps == 50 * len(sizes) + 30


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(coarse_to_fine="auto"), "'auto' needs a size"),
        (dict(size=512, coarse_to_fine="fine"), "sizes or 'auto', not 'fine'"),
        (dict(size=1024, coarse_to_fine="auto", coarse_to_fine_steps=(1, 2)), "one step count"),
    ],
)
def test_coarse_to_fine_auto_refuses(settings, message):
    with pytest.raises(jaxstyle.JaxstyleError, match=message):
        resolve_settings(**settings)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"style_weight": [1, 2]}, "style weight must be one number, not [1, 2] (jaxstyle.sweep"),
        ({"tv_weight": [1.0]}, "tv weight must be one number"),
        ({"style_weight": "big"}, "style weight must be a number, not 'big'"),
        ({"content_weight": 1e39}, "content weight must be at most 3.4e+38 (float32)"),
        ({"style_layer_weights": "1,1"}, "style layer weights must be numbers, not '1,1'"),
        ({"style_blend": [1, float("nan")]}, "style blend weights must be finite and >= 0"),
        ({"style_blend": [1, float("inf")]}, "style blend weights must be finite and >= 0"),
        ({"learning_rate": float("inf")}, "learning rate must be finite and > 0"),
        # these were TypeErrors from deep inside the checks
        ({"sizee": 32}, "unknown settings: sizee; known: preset, size, steps, "),
        ({"learning_rate": "0.1"}, "learning rate must be a number, not '0.1'"),
        ({"style_scale": "2"}, "style scale must be a number, not '2'"),
        ({"style_layers": 5}, "style layers must be a sequence of layer names, not 5"),
    ],
)
def test_settings_of_the_wrong_kind_are_named(overrides, message):
    """The Python API names the argument, rather than failing deep inside JAX."""
    with pytest.raises(jaxstyle.JaxstyleError) as err:
        resolve_settings("jaxstyle", **overrides)
    assert message in str(err.value)


def test_a_preset_that_is_not_a_name_is_named():
    with pytest.raises(jaxstyle.JaxstyleError, match=r"unknown preset \['gatys'\]; choose one"):
        resolve_settings(["gatys"])  # was a TypeError: unhashable type: 'list'


def test_layers_as_a_comma_string():
    s = resolve_settings("jaxstyle", style_layers="relu1_1,relu2_1", content_layers="relu4_2")
    assert s.style_layers == ("relu1_1", "relu2_1") and s.content_layers == ("relu4_2",)
    assert s.style_layer_weights == (1.0, 1.0)


def test_result_save_writes_the_image_and_the_record_plot_reads(tmp_path):
    """StylizeResult.save: the CLI's image and record from Python, refusing to overwrite."""
    from jaxstyle.cli import main
    from jaxstyle.stylize import StylizeResult

    history = {k: np.linspace(3.0, 1.0, 4, dtype=np.float32) for k in ("content", "style", "tv")}
    history["total"] = sum(history.values())
    result = StylizeResult(
        image=np.full((6, 8, 3), 0.5, np.float32),
        history=history,
        final={k: float(v[-1]) for k, v in history.items()},
        settings=resolve_settings("jaxstyle", steps=4),
        timings={"ms_per_step": 1.0},
    )
    out = tmp_path / "out.png"
    record = result.save(out, record={"inputs": {"content": "c.png"}})
    saved = json.loads(record.read_text())
    assert record == tmp_path / "out.json" and saved["output"] == str(out)
    assert saved["inputs"] == {"content": "c.png"} and saved["settings"]["steps"] == 4
    assert saved["history"]["total"] == history["total"].tolist() and "versions" in saved
    assert np.asarray(Image.open(out)).shape == (6, 8, 3) and "resumed_from" not in saved
    with pytest.raises(jaxstyle.JaxstyleError, match="exists; not overwriting it"):
        result.save(out)
    result.resumed_from = 3  # resumed from a checkpoint: its timings are of the steps after it
    result.save(out, overwrite=True)
    assert json.loads(record.read_text())["resumed_from"] == 3
    assert main(["plot", str(record), "-o", str(tmp_path / "losses.png")]) == 0

    history["total"][-1], result.final["style"] = np.nan, np.inf  # diverged: null, not NaN
    result.save(out, overwrite=True)

    def refuse(constant):
        raise ValueError(f"bare {constant} in the record")

    saved = json.loads(record.read_text(), parse_constant=refuse)
    assert saved["history"]["total"][-1] is None and saved["final_losses"]["style"] is None
