"""Keeping the content's colours: the colour functions against NumPy references,
and ``preserve_colors`` in stylize, sweeps and batches (Gatys et al. 2017, sec. 5).

Tolerances: colour statistics to 1e-4 (float32 sums over a few thousand pixels);
runs equal to their definitions to 1e-5 (the same programs on XLA:CPU); PNGs
within one uint8 level.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle import colors
from jaxstyle.cli import main
from jaxstyle.images import to_uint8
from jaxstyle.inputs import prepare_images
from jaxstyle.settings import resolve_settings

SIZE = 64  # tubingen at 64 px: 48 x 64, the shape of the other end-to-end tests
RUN = dict(size=SIZE, steps=4, optimizer="adam")


def _yiq_reference(rgb: np.ndarray) -> np.ndarray:
    """YIQ by the FCC NTSC formulas, written out channel by channel."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    i = 0.5959 * r - 0.2746 * g - 0.3213 * b
    q = 0.2115 * r - 0.5227 * g + 0.3112 * b
    return np.stack([y, i, q], axis=-1)


def _stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour mean (3,) and covariance (3, 3) of an (H, W, 3) image, in float64."""
    pixels = np.asarray(image, np.float64).reshape(-1, 3)
    return pixels.mean(0), np.cov(pixels, rowvar=False, bias=True)


def _mid_range(seed: int, shape, mix) -> np.ndarray:
    """Correlated colours well inside [0, 1]: the matches below need no clipping."""
    noise = np.random.default_rng(seed).normal(size=(*shape, 3)) @ np.asarray(mix).T
    return (0.5 + 0.05 * noise).clip(0, 1).astype(np.float32)


def test_yiq_follows_the_ntsc_formulas_and_inverts():
    rgb = np.random.default_rng(0).uniform(size=(5, 7, 3)).astype(np.float32)
    yiq = jax.jit(colors.rgb_to_yiq)(rgb)
    np.testing.assert_allclose(yiq, _yiq_reference(rgb), atol=1e-6)
    np.testing.assert_allclose(jax.jit(colors.yiq_to_rgb)(yiq), rgb, atol=1e-5)
    grey = np.full((2, 2, 3), 0.3, np.float32)  # greys: luminance alone, no chroma
    np.testing.assert_allclose(colors.rgb_to_yiq(grey), [[[0.3, 0, 0]] * 2] * 2, atol=1e-6)


def test_histogram_match_gives_the_style_the_contents_colour_mean_and_covariance():
    style = _mid_range(1, (40, 30), [[1, 0.5, 0], [0, 1, 0.2], [0.3, 0, 1]])
    content = _mid_range(2, (24, 32), [[0.6, 0, 0], [0.4, 1, 0], [0, -0.5, 0.8]]) + 0.1
    matched = np.asarray(jax.jit(colors.match_color_histogram)(style, content))
    assert matched.shape == style.shape and 0 < matched.min() and matched.max() < 1
    (mean, cov), (want_mean, want_cov) = _stats(matched), _stats(content)
    np.testing.assert_allclose(mean, want_mean, atol=1e-5)
    np.testing.assert_allclose(cov, want_cov, atol=1e-6, rtol=1e-3)
    # A = S_c^1/2 S_s^-1/2 is symmetric when the covariances commute; an image
    # matched to itself is unchanged
    np.testing.assert_allclose(colors.match_color_histogram(style, style), style, atol=1e-5)


def test_luminance_match_is_grey_with_the_contents_luminance_mean_and_spread():
    style = _mid_range(3, (40, 30), np.eye(3))
    content = _mid_range(4, (24, 32), np.full((3, 3), 1.0))
    matched = np.asarray(jax.jit(colors.match_luminance)(style, content))
    assert matched.shape == style.shape
    np.testing.assert_array_equal(matched[..., 0], matched[..., 1])
    np.testing.assert_array_equal(matched[..., 0], matched[..., 2])
    y, want = _yiq_reference(matched)[..., 0], _yiq_reference(content)[..., 0]
    assert y.mean() == pytest.approx(want.mean(), abs=1e-5)
    assert y.std() == pytest.approx(want.std(), rel=1e-3)


def test_matching_takes_one_image_each_and_vmaps_over_a_batch():
    """A batch would pool its statistics over the images: refused, and vmapped it
    equals matching each image alone."""
    styles = np.stack([_mid_range(i, (20, 16), np.eye(3)) for i in (5, 6)])
    content = _mid_range(7, (24, 32), np.full((3, 3), 1.0))
    for match in (colors.match_color_histogram, colors.match_luminance):
        name, one = match.__name__, r"must be one \(H, W, 3\) image, not"
        batch = rf"^{name}'s style {one} \(2, 20, 16, 3\) \(jax.vmap over a batch\)"
        with pytest.raises(jaxstyle.JaxstyleError, match=batch):
            jax.jit(match)(styles, content)
        channels = rf"^{name}'s content {one} \(24, 32, 2\)(?! \()"  # no vmap hint: not a batch
        with pytest.raises(jaxstyle.JaxstyleError, match=channels):
            jax.jit(match)(styles[0], content[..., :2])
        batched = jax.vmap(match, in_axes=(0, None))(styles, content)
        for i, style in enumerate(styles):
            np.testing.assert_allclose(batched[i], match(style, content), atol=1e-6)


def test_content_colours_keep_each_images_luminance_and_take_the_contents_chroma():
    images = np.stack([_mid_range(5, (6, 8), np.eye(3)), _mid_range(6, (6, 8), np.eye(3))])
    content = _mid_range(7, (6, 8), [[1, 0.2, 0], [0, 1, 0], [0, 0.4, 1]])
    recoloured = np.asarray(jax.jit(colors.with_content_colors)(images, content))
    got, want = _yiq_reference(recoloured), _yiq_reference(images)
    np.testing.assert_allclose(got[..., 0], want[..., 0], atol=1e-5)
    np.testing.assert_allclose(
        got[..., 1:],
        np.broadcast_to(_yiq_reference(content)[..., 1:], got[..., 1:].shape),
        atol=1e-5,
    )
    one_by_one = [colors.with_content_colors(x, content) for x in images]
    np.testing.assert_allclose(recoloured, np.stack(one_by_one), atol=1e-6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda x: colors.luminance_image(x[..., 0]),
            r"RGB image must be \(\.\.\., 3\) .* \(6, 8\)",
        ),
        (lambda x: colors.rgb_to_yiq(x[..., :2]), r"RGB image must be .* not \(6, 8, 2\)"),
        (lambda x: colors.yiq_to_rgb(x[0, 0, 0]), r"YIQ image must be .* not \(\)"),
        (lambda x: colors.with_content_colors(x[:4], x), r"image must be \(\.\.\., 6, 8, 3\)"),
        (lambda x: colors.with_content_colors(x, x[None]), r"content must be one \(H, W, 3\)"),
    ],
    ids=["grey-luminance", "two-channels", "yiq-scalar", "other-size", "batched-content"],
)
def test_colour_functions_name_arrays_of_the_wrong_shape(call, match):
    # a dot_general TypeError or a broadcasting ValueError from inside jnp before
    image = _mid_range(5, (6, 8), np.eye(3))
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        jax.jit(call)(image)


@pytest.mark.parametrize(
    "call",
    [
        colors.rgb_to_yiq,
        colors.luminance_image,
        lambda x: colors.match_luminance(x / 255, x),
        lambda x: colors.match_color_histogram(x / 255, x),
        lambda x: colors.with_content_colors(x, x / 255),
    ],
    ids=["yiq", "luminance", "match-luminance", "histogram", "content-colours"],
)
def test_colour_functions_refuse_integer_pixels(call):
    # uint8 pixels were taken as values in [0, 1]: all but black clipped to white
    pixels = (_mid_range(5, (6, 8), np.eye(3)) * 255).astype(np.uint8)
    with pytest.raises(jaxstyle.JaxstyleError, match=r"floats in \[0, 1\], not uint8"):
        jax.jit(call)(pixels)


@pytest.fixture(scope="module")
def resized(shared_image):
    """tubingen (48 x 64) and starry_night, as a 64 px run resizes them."""
    paths = shared_image("tubingen.jpg"), shared_image("starry_night.jpg")
    content, styles, original = prepare_images(*paths, resolve_settings(size=SIZE))
    assert original is None
    return paths, content, styles[0]


def test_luminance_transfer_is_a_grey_run_given_the_contents_chroma(vgg_weights, resized):
    """Gatys et al. 2017's recipe spelled out: optimise the grey content against the
    luminance-matched grey style, then put the content's I and Q back."""
    paths, content, style = resized
    got = jaxstyle.stylize(*paths, weights=vgg_weights, preserve_colors="luminance", **RUN)
    grey = jaxstyle.stylize(
        np.asarray(colors.luminance_image(content)),
        np.asarray(colors.match_luminance(style, content)),
        weights=vgg_weights,
        **RUN,
    )
    want = np.asarray(colors.with_content_colors(grey.image, content))
    np.testing.assert_allclose(got.image, want, atol=1e-5)
    assert got.final == pytest.approx(grey.final, rel=1e-5)
    chroma = colors.rgb_to_yiq(got.image)[..., 1:] - colors.rgb_to_yiq(content)[..., 1:]
    assert np.abs(chroma).mean() < 1e-3  # the content's colours (off only where clipped)
    assert np.abs(got.image - content).mean() > 0.01  # and not the content itself


def test_histogram_matching_runs_on_the_recoloured_style(vgg_weights, resized):
    paths, content, style = resized
    got = jaxstyle.stylize(*paths, weights=vgg_weights, preserve_colors="histogram", **RUN)
    recoloured = np.asarray(colors.match_color_histogram(style, content))
    want = jaxstyle.stylize(content, recoloured, weights=vgg_weights, **RUN)
    np.testing.assert_allclose(got.image, want.image, atol=1e-5)
    plain = jaxstyle.stylize(content, style, weights=vgg_weights, **RUN)
    assert np.abs(got.image - plain.image).max() > 0.01


def test_sweep_cells_take_the_contents_colours_like_stylize(vgg_weights, resized):
    paths = resized[0]
    result = jaxstyle.sweep(
        *paths, weights=vgg_weights, style_weight=[1e3, 1e4], preserve_colors="luminance", **RUN
    )
    for i in range(2):
        alone = jaxstyle.stylize(
            *paths,
            weights=vgg_weights,
            **{**RUN, **result.cells[i], "preserve_colors": "luminance"},
        )
        np.testing.assert_allclose(result.images[i], alone.image, atol=1e-5)


def test_cli_batch_jobs_take_their_own_contents_colours(vgg_weights, shared_image, tmp_path):
    t, s, m = (str(shared_image(f"{n}.jpg")) for n in ("tubingen", "starry_night", "the_scream"))
    golden = tmp_path / "golden.png"  # a second content of the same shape, other colours
    Image.open(t).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(golden)
    rows = [
        {"content": t, "style": s, "output": "a.png"},
        {"content": str(golden), "style": m, "output": "b.png"},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    args = ["batch", str(manifest), "-o", str(out), "--size", str(SIZE), "--steps", "4"]
    assert main([*args, "--optimizer", "adam", "-q", "--preserve-colors", "luminance"]) == 0
    for row in rows:
        alone = jaxstyle.stylize(
            row["content"], row["style"], weights=vgg_weights, preserve_colors="luminance", **RUN
        )
        png = np.asarray(Image.open(out / row["output"]))
        assert np.abs(png.astype(int) - to_uint8(alone.image)).max() <= 1
        record = json.loads((out / row["output"]).with_suffix(".json").read_text())
        assert record["settings"]["preserve_colors"] == "luminance"


def test_preserving_colours_needs_a_content_image_and_a_known_mode(vgg_weights, resized, capsys):
    paths = resized[0]
    with pytest.raises(jaxstyle.JaxstyleError, match="needs a content image"):
        jaxstyle.stylize(None, paths[1], weights=vgg_weights, preserve_colors="histogram", **RUN)
    with pytest.raises(jaxstyle.JaxstyleError, match="luminance or histogram, not 'hue'"):
        jaxstyle.stylize(*paths, weights=vgg_weights, preserve_colors="hue", **RUN)
    assert main(["stylize", *map(str, paths), "-o", "x.png", "--preserve-colors", "hue"]) == 2
    assert "invalid choice: 'hue'" in capsys.readouterr().err


def test_a_luminance_sweep_is_told_apart_by_its_contents_colours(vgg_weights, resized):
    """Its fingerprint (which decides resuming and "nothing to do") holds the content's
    own colours, not only the grey image the run sees."""
    from jaxstyle.resume import array_digest
    from jaxstyle.sweep import plan_sweep

    paths, content, _ = resized
    kept = plan_sweep(*paths, weights=vgg_weights, preserve_colors="luminance", **RUN)
    assert kept.fingerprint["original"] == array_digest(content)
    assert kept.fingerprint["content"] == array_digest(np.asarray(colors.luminance_image(content)))
    assert "original" not in plan_sweep(*paths, weights=vgg_weights, **RUN).fingerprint


def test_a_luminance_runs_noise_or_image_start_is_grey(tmp_path):
    """With preserve_colors="luminance" the optimisation sees grey images: a noise or
    image start too (it started in colour), while the content start is left as it is."""
    from jaxstyle.inputs import initial_image

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 8, 3), np.uint8)).save(photo)
    for init in ("noise", photo):
        coloured = np.asarray(initial_image(init, None, (6, 8), 3))
        grey = np.asarray(initial_image(init, None, (6, 8), 3, grey=True))
        assert np.ptp(coloured, axis=-1).max() > 0.1  # in colour without grey
        np.testing.assert_allclose(grey, np.asarray(jaxstyle.luminance_image(coloured)))
        assert np.ptp(grey, axis=-1).max() < 1e-6
    content = np.random.default_rng(1).random((6, 8, 3)).astype(np.float32)
    assert np.array_equal(initial_image("content", content, (6, 8), 3, grey=True), content)


def test_a_luminance_run_from_noise_starts_from_grey_noise(shared_image):
    """stylize passes the grey start on: its losses at step 0 from init noise equal
    those from the same noise made grey beforehand (from the coloured noise, they differ)."""
    pair = shared_image("tubingen.jpg"), shared_image("starry_night.jpg")
    run = dict(size=32, steps=0, seed=3, preserve_colors="luminance")
    from_noise = jaxstyle.stylize(*pair, init="noise", **run)
    noise = jax.random.uniform(jax.random.key(3), (*from_noise.image.shape[:2], 3))
    from_grey = jaxstyle.stylize(*pair, init=np.asarray(jaxstyle.luminance_image(noise)), **run)
    assert from_noise.final == pytest.approx(from_grey.final, rel=1e-5)


def test_a_coarse_to_fine_luminance_sweep_shows_every_pass_in_the_contents_colours(
    vgg_weights, resized
):
    """A sweep's callback (and a checkpointed stylize's, a one-cell sweep: --save-every
    with --checkpoint-every) showed a coarse pass's images grey, as the next pass starts
    from them; now in the result's colours, as stylize shows them (Adam: to 1e-5)."""
    paths = resized[0]
    run = dict(RUN, steps=2, coarse_to_fine=32, preserve_colors="luminance")
    plain, swept = [], []
    jaxstyle.stylize(
        *paths,
        weights=vgg_weights,
        callback=lambda step, losses, image: plain.append((step, image)),
        callback_every=1,
        **run,
    )
    jaxstyle.sweep(
        *paths,
        weights=vgg_weights,
        callback=lambda step, losses, images: swept.append((step, images[0])),
        callback_every=1,
        **run,
    )
    assert [step for step, _ in swept] == [step for step, _ in plain] == [1, 2, 3, 4]
    assert np.ptp(swept[0][1], axis=-1).max() > 0.1  # in colour
    for (_, got), (_, want) in zip(swept, plain, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
