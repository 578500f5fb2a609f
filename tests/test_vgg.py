"""The VGG convolutions' custom gradients, Winograd, and the weights prepared as jit arguments."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.architecture import CONV_SHAPES, LAYER_INDEX, blocks, deepest
from jaxstyle.errors import JaxstyleError
from jaxstyle.objective import LossArgs, compute_targets, make_loss_fn
from jaxstyle.presets import get_preset
from jaxstyle.settings import resolve_settings
from jaxstyle.vgg import (
    WINOGRAD_F4_MIN_TILES,
    WINOGRAD_LAYERS,
    WINOGRAD_MIN_SIZE,
    choose_conv_algorithm,
    conv3x3,
    features,
    pool2x2,
    prepare_weights,
    relu,
    transpose_kernel,
    vgg_features,
    winograd_conv3x3,
    winograd_kernels,
    winograd_tile,
)
from jaxstyle.winograd import TILINGS, winograd_kernel
from jaxstyle.winograd import winograd_conv3x3 as _winograd_conv3x3

RNG = np.random.default_rng(3)


def plain_conv(x, kernel):
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _direct(kernel):
    return conv3x3, (kernel, transpose_kernel(kernel))


def _winograd(kernel):
    return winograd_conv3x3, (winograd_kernel(kernel),)


def _winograd4(kernel):
    return winograd_conv3x3, (winograd_kernel(kernel, out=4),)


@pytest.mark.parametrize(
    "convolution", [_direct, _winograd, _winograd4], ids=["direct", "winograd", "winograd4"]
)
@pytest.mark.parametrize("shape", [(2, 9, 7, 5), (1, 1, 2, 5)], ids=["odd", "tiny"])
def test_conv_value_and_gradients_equal_xla_autodiff(convolution, shape):
    """Value, image gradient (through the transposed kernel; Winograd's through its
    kernel read transposed) and kernel gradient of both algorithms equal XLA's
    convolution and its autodiff (float32; odd sides exercise Winograd's partial
    tiles). F(4x4)'s larger transforms round more: 1e-4 there, 1e-5 otherwise."""
    tol = 1e-4 if convolution is _winograd4 else 1e-5
    x = jnp.asarray(RNG.standard_normal(shape), jnp.float32)
    kernel = jnp.asarray(RNG.standard_normal((3, 3, shape[-1], 4)), jnp.float32)
    probe = jnp.asarray(RNG.standard_normal((*shape[:3], 4)), jnp.float32)

    def ours(x, k):  # the kernel gradient reaches k through the kernels' derivation
        conv, kernels = convolution(k)
        return jnp.sum(jnp.tanh(conv(x, *kernels)) * probe)

    def reference(x, k):
        return jnp.sum(jnp.tanh(plain_conv(x, k)) * probe)

    value, (dx, dk) = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))(x, kernel)
    ref_value, (ref_dx, ref_dk) = jax.jit(jax.value_and_grad(reference, argnums=(0, 1)))(x, kernel)
    np.testing.assert_allclose(value, ref_value, rtol=tol)
    np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dk, ref_dk, rtol=tol, atol=tol)

    conv, kernels = convolution(kernel)
    if len(kernels) == 2:  # the value does not depend on the transposed kernel
        dkt = jax.grad(lambda kt: jnp.sum(conv(x, kernels[0], kt) * probe))(kernels[1])
        assert not np.any(dkt)

    # vmapped over images, kernels shared
    def one(x, probe):
        return jnp.sum(jnp.tanh(conv(x[None], *kernels)[0]) * probe)

    per_image = jax.jit(jax.vmap(jax.grad(one)))(x, probe)
    np.testing.assert_allclose(per_image, ref_dx, rtol=tol, atol=tol)


@pytest.mark.parametrize("out", sorted(TILINGS))
def test_winograd_tiling_computes_the_correlation_and_flips_by_permuting(out):
    """In float64: A^T[(G g) * (B^T d)] is the 1-D correlation of every input tile d
    with every kernel g (Lavin & Gray's identity, checked on the basis), and the
    flipped kernel's G g is the kernel's permuted and scaled (G J = S P G), which
    the transposed convolution relies on."""
    t = TILINGS[out]
    for i in range(t.out):
        for k in range(3):
            for position in range(t.tile):
                got = np.sum(t.a_t[i] * t.g[:, k] * t.b_t[:, position])
                assert got == pytest.approx(float(position == i + k), abs=1e-12)
    order, scale = t.flip()
    assert sorted(order) == list(range(t.tile))
    np.testing.assert_allclose(t.g[:, ::-1], scale[:, None] * t.g[list(order)], atol=1e-12)


@pytest.mark.parametrize("out", sorted(TILINGS))
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transposed"])
def test_winograd_transforms_are_traced_separably(out, transpose):
    """The input transform B^T d B is t combinations of rows then t of columns over
    whole arrays, the output transform A^T m A m then m, each a sum of at most t
    scaled terms (t - 1 adds, t scalings): the program stays small. Done per tile
    position (t + t^2 and m + m^2 combinations), F(4x4)'s step took twice as long to
    compile and a warm start 1.2 s longer to load its programs."""
    t = TILINGS[out]
    x = jnp.zeros((1, 8, 8, 4), jnp.float32)
    u = winograd_kernel(jnp.zeros((3, 3, 4, 4), jnp.float32), out=out)
    jaxpr = jax.make_jaxpr(lambda x: _winograd_conv3x3(x, u, transpose=transpose))(x).jaxpr
    arithmetic = [e for e in jaxpr.eqns if e.primitive.name in ("add", "sub", "mul", "neg")]
    assert 0 < len(arithmetic) <= (2 * t.tile + 2 * t.out) * (2 * t.tile - 1)


def test_winograd_tile_counts_4x4_tiles_of_every_vmapped_image():
    """F(4x4) from WINOGRAD_F4_MIN_TILES output tiles of 4x4 (partial ones count),
    over the images of the call and those vmap runs beside it; F(2x2) below."""
    assert WINOGRAD_F4_MIN_TILES == 64
    assert winograd_tile((1, 29, 32, 8)) == 4  # 8 x 8 tiles
    assert winograd_tile((1, 28, 32, 8)) == 2  # 7 x 8
    assert winograd_tile((2, 16, 16, 8)) == 2  # 2 x 16
    assert winograd_tile((2, 16, 16, 8), batch=2) == 4
    assert winograd_tile((1, 6, 8, 512), batch=8) == 2  # a 96x128 sweep's conv5_1
    assert winograd_tile((1, 12, 16, 512), batch=8) == 4  # its block 4


BLOCK3 = ("conv3_1", "conv3_2", "conv3_3", "conv3_4")
BLOCK4 = ("conv4_1", "conv4_2", "conv4_3", "conv4_4")


def test_winograd_kernels_are_each_layers_tile_up_to_the_last_layer():
    """Per Winograd layer, F(4x4) where its input (the image halved per pooling) has
    64 tiles of 4x4 over the images run at once, else F(2x2); no layer past the last."""

    def tiles(m, names):
        return {(name, m) for name in names}

    # 96x128: blocks 3-5 see 24x32 (48 tiles), 12x16, 6x8
    assert winograd_kernels((96, 128), "relu5_1") == tiles(2, (*BLOCK3, *BLOCK4, "conv5_1"))
    # 256x256: 64x64 (256 tiles), 32x32 (64), 16x16 (16)
    expected = tiles(4, BLOCK3 + BLOCK4) | {("conv5_1", 2)}
    assert winograd_kernels((256, 256), "relu5_1") == expected
    # 64x64, 8 at once: 16x16 (16 tiles x 8), 8x8 (4 x 8)
    expected = tiles(4, BLOCK3) | tiles(2, ("conv4_1", "conv4_2"))
    assert winograd_kernels((64, 64), "relu4_2", batch=8) == expected
    assert winograd_kernels((64, 64), "relu2_1") == set()


def test_weights_prepared_for_a_shape_hold_and_read_its_kernels_only(vgg_weights, monkeypatch):
    """Weights prepared with a shape's :func:`winograd_kernels` store those kernels
    alone, VGG19 then reads them without deriving any and gives the same features as
    with every kernel stored; a kernel the shape needs but not stored is refused."""
    import jaxstyle.vgg_module

    images = jnp.asarray(RNG.uniform(size=(2, 64, 64, 3)), jnp.float32)
    layers = ("relu3_1", "relu4_2", "relu5_1")
    kernels = winograd_kernels((64, 64), "relu5_1", batch=2 * 4)  # F(4x4) in block 3 only
    assert {m for _, m in kernels} == {2, 4}
    vgg = prepare_weights(vgg_weights, conv_algorithm="winograd", kernels=kernels)
    stored = {(name, int(key[1:])) for name, ks in vgg.winograd.items() for key in ks}
    assert stored == kernels
    size = sum((m + 2) ** 2 * np.prod(CONV_SHAPES[name]) * 4 for name, m in kernels)
    assert sum(x.nbytes for x in jax.tree.leaves(vgg.winograd)) == size  # 103.5 MiB
    full = prepare_weights(vgg_weights, conv_algorithm="winograd")  # both tilings, conv3_1-conv5_4
    assert sum(x.nbytes for x in jax.tree.leaves(full.winograd)) == 435.5 * 2**20

    def refuse(*args):
        raise AssertionError("a Winograd kernel was derived in the traced program")

    expected = features(full, images, layers, "max", "float32", "winograd", batch=4)
    jax.clear_caches()  # trace anew, with derivation refused
    monkeypatch.setattr(jaxstyle.vgg_module, "derived_kernels", refuse)
    out = features(vgg, images, layers, "max", "float32", "winograd", batch=4)
    for name in layers:
        np.testing.assert_array_equal(out[name], expected[name])

    missing = dict(vgg.winograd, conv3_2={})
    lacking = dataclasses.replace(vgg, winograd=missing)
    with pytest.raises(JaxstyleError, match="lack the F.4x4. Winograd kernel of conv3_2"):
        features(lacking, images, layers, "max", "float32", "winograd", batch=4)


def test_relu_gradient_equals_jax_nn_relu_and_reads_only_the_output():
    """Value and gradient equal ``jax.nn.relu``'s, 0 at 0 included; the backward
    pass sees the input only through the barrier that keeps XLA from fusing the
    ReLU's mask back onto the pre-activation."""
    x = jnp.asarray([[-2.0, -0.0, 0.0, 1e-30, 3.0]], jnp.float32)
    probe = jnp.asarray([[1.0, 2.0, 3.0, 4.0, 5.0]], jnp.float32)
    for f in (relu, jax.nn.relu):
        np.testing.assert_array_equal(f(x), jax.nn.relu(x))
    got = jax.grad(lambda x: jnp.sum(relu(x) * probe))(x)
    want = jax.grad(lambda x: jnp.sum(jax.nn.relu(x) * probe))(x)
    np.testing.assert_array_equal(got, want)
    assert got.tolist() == [[0.0, 0.0, 0.0, 4.0, 5.0]]
    hlo = jax.jit(jax.grad(lambda x: jnp.sum(relu(x) * probe))).lower(x).as_text()
    assert "optimization_barrier" in hlo


def test_max_pool_gradient_goes_to_each_windows_first_maximum():
    """2x2 max pooling: value as ``reduce_window``; the gradient of each window goes
    to its first maximum in row-major order (ties included, as PyTorch routes it),
    and a dropped odd row/column gets none. Reference: a NumPy loop."""
    x = RNG.standard_normal((2, 5, 7, 3)).astype(np.float32)
    x[0, 0:2, 0:2, 0] = [[1.0, 4.0], [4.0, 4.0]]  # a tie: (0, 1) takes it
    x[1, 2:4, 4:6, 2] = 0.0  # an all-zero window: (2, 4) takes it
    probe = RNG.standard_normal((2, 2, 3, 3)).astype(np.float32)
    value, grad = jax.value_and_grad(lambda x: jnp.sum(pool2x2(x) * probe))(jnp.asarray(x))
    want_grad = np.zeros_like(x)
    want_value = 0.0
    for n, i, j, c in np.ndindex(probe.shape):
        window = x[n, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
        a, b = np.unravel_index(np.argmax(window), (2, 2))  # argmax: the first maximum
        want_grad[n, 2 * i + a, 2 * j + b, c] = probe[n, i, j, c]
        want_value += window.max() * probe[n, i, j, c]
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    np.testing.assert_array_equal(grad, want_grad)
    assert grad[0, 0, 1, 0] == probe[0, 0, 0, 0] and grad[0, 1, 0, 0] == 0
    assert grad[1, 2, 4, 2] == probe[1, 1, 2, 2] and grad[1, 3, 5, 2] == 0
    window_max = jax.lax.reduce_window(x, -np.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(pool2x2(jnp.asarray(x)), window_max)


def test_winograd_features_equal_direct_ones(vgg_weights):
    """The real VGG19 through relu5_1 (blocks 3-5 by Winograd): every layer agrees with
    the direct convolutions to 1e-5 of its largest activation."""
    images = jnp.asarray(RNG.uniform(size=(2, 40, 56, 3)), jnp.float32)
    layers = ["relu3_1", "relu4_2", "relu5_1"]
    direct = vgg_features(vgg_weights, images, layers, conv_algorithm="direct")
    fast = vgg_features(vgg_weights, images, layers, conv_algorithm="winograd")
    for name in layers:
        scale = float(jnp.abs(direct[name]).max())
        assert scale > 0
        np.testing.assert_allclose(fast[name], direct[name], rtol=0, atol=1e-5 * scale)
        assert not np.array_equal(fast[name], direct[name])  # another algorithm did run

    # as 8 vmapped calls: F(4x4) in blocks 3 (192 tiles) and 4 (64), F(2x2) in 5 (16)
    vgg = prepare_weights(vgg_weights, conv_algorithm="winograd")
    four = features(vgg, images, tuple(layers), "max", "float32", "winograd", batch=8)
    for name in layers:
        scale = float(jnp.abs(direct[name]).max())
        np.testing.assert_allclose(four[name], direct[name], rtol=0, atol=1e-5 * scale)
        assert not np.array_equal(four[name], fast[name])  # F(4x4) did run


def test_rematerialised_blocks_give_the_same_features_and_gradient(vgg_weights):
    """``features(remat=True)`` (a jax.checkpoint per block, measured by
    scripts/bench_remat.py) runs the same layers: equal values and image gradients."""
    assert blocks("relu3_1") == (
        ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"),
        ("conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2"),
        ("conv3_1", "relu3_1"),
    )
    images = jnp.asarray(RNG.uniform(size=(1, 32, 40, 3)), jnp.float32)
    layers = ("relu1_1", "relu3_1", "relu4_2", "relu5_1")
    vgg = prepare_weights(vgg_weights)

    def energy(images, remat):
        out = features(vgg, images, layers, "max", remat=remat)
        return sum(jnp.sum(out[n] ** 2) / out[n].size for n in layers), out

    grad = jax.jit(jax.grad(energy, has_aux=True), static_argnums=1)
    (plain, plain_out), (remat, remat_out) = grad(images, False), grad(images, True)
    for name in layers:
        np.testing.assert_allclose(remat_out[name], plain_out[name], rtol=1e-6, atol=0)
    assert float(jnp.abs(plain).max()) > 0
    np.testing.assert_allclose(remat, plain, rtol=0, atol=1e-6 * float(jnp.abs(plain).max()))
    # remat did apply: its recomputations are fenced from CSE by optimisation barriers
    barriers = [grad.lower(images, r).as_text().count("optimization_barrier") for r in (0, 1)]
    assert barriers[1] > barriers[0]


def test_conv_algorithm_choice():
    assert jax.default_backend() == "cpu"  # the test suite's machine
    assert choose_conv_algorithm("auto") == "winograd"
    assert choose_conv_algorithm("auto", size=WINOGRAD_MIN_SIZE) == "winograd"
    assert choose_conv_algorithm("auto", size=WINOGRAD_MIN_SIZE - 1) == "direct"
    assert choose_conv_algorithm("winograd", size=32) == "winograd"
    assert choose_conv_algorithm("auto", "bfloat16") == "direct"
    assert choose_conv_algorithm("direct") == "direct"
    assert choose_conv_algorithm("winograd", "bfloat16") == "winograd"
    with pytest.raises(JaxstyleError, match="conv algorithm must be one of"):
        choose_conv_algorithm("fft")
    assert WINOGRAD_LAYERS[0] == "conv3_1" and WINOGRAD_LAYERS[-1] == "conv5_4"


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
def test_prepared_weights_as_arguments_give_the_same_loss_without_kernel_transforms(
    vgg_weights, algorithm
):
    """Weights passed as jit arguments: with :func:`prepare_weights` the image gradient
    reads the stored kernels (no ``rev`` of a kernel, and for Winograd no kernel
    transforms, in the traced program) and J and ∇J equal those of the plain weights."""
    settings = resolve_settings("jaxstyle", size=32, conv_algorithm=algorithm)
    objective = settings.objective(get_preset("jaxstyle"))
    assert objective.conv_algorithm == algorithm
    content = jnp.asarray(RNG.uniform(size=(32, 32, 3)), jnp.float32)
    image = jnp.asarray(RNG.uniform(size=(32, 32, 3)), jnp.float32)
    targets = compute_targets(vgg_weights, objective, content, [content[::-1]])
    value_and_grad = jax.value_and_grad(lambda x, a: make_loss_fn(objective)(x, a)[0])
    prepared = prepare_weights(vgg_weights, conv_algorithm=algorithm)
    assert (prepared.winograd is not None) == (algorithm == "winograd")
    results, programs = {}, {}
    for name, vgg in (("plain", vgg_weights), ("prepared", prepared)):
        args = LossArgs(vgg, targets, settings.loss_weights())
        results[name] = jax.jit(value_and_grad)(image, args)
        programs[name] = str(jax.make_jaxpr(value_and_grad)(image, args))
    flip = "rev[dimensions=(0, 1)]"  # a kernel flipped in space
    assert flip in programs["plain"] and flip not in programs["prepared"]
    if algorithm == "winograd":  # G g G^T: one product per kernel, only in "plain"
        products = {name: program.count("dot_general") for name, program in programs.items()}
        last = LAYER_INDEX[deepest(objective.layers)]
        run = [name for name in WINOGRAD_LAYERS if LAYER_INDEX[name] < last]
        assert products["plain"] == products["prepared"] + len(run)
    (j, g), (j_t, g_t) = results["plain"], results["prepared"]
    np.testing.assert_allclose(j_t, j, rtol=1e-6)
    np.testing.assert_allclose(g_t, g, rtol=1e-4, atol=1e-6 * float(jnp.abs(g).max()))
    assert prepare_weights(vgg_weights, conv_algorithm=algorithm) is prepared


@pytest.mark.parametrize("devices", [1, 2])
def test_cells_pick_winograd_tiles_by_the_cells_on_each_device(vgg_weights, monkeypatch, devices):
    """A sweep's or batch's vmapped loss runs VGG19 on all the cells of a device at
    once, so Winograd chooses its tiles for that many (cells / devices) images."""
    import jaxstyle.vgg_module
    from jaxstyle.batching import shared_loss_fn

    seen = []

    def recording(shape, batch=1):
        seen.append(batch)
        return winograd_tile(shape, batch)

    monkeypatch.setattr(jaxstyle.vgg_module, "winograd_tile", recording)
    settings = resolve_settings("jaxstyle", size=32, conv_algorithm="winograd")
    objective = settings.objective(get_preset("jaxstyle"))
    image = jax.ShapeDtypeStruct((32, 32, 3), jnp.float32)
    targets = jax.eval_shape(lambda x: compute_targets(vgg_weights, objective, x, [x]), image)
    seen.clear()
    weights = jax.tree.map(lambda w: jnp.stack([w] * 4), settings.loss_weights())
    loss_fn = shared_loss_fn(objective, False, devices)
    cells = jax.vmap(loss_fn, in_axes=(0, LossArgs(None, None, 0)))
    args = LossArgs(prepare_weights(vgg_weights, conv_algorithm="winograd"), targets, weights)
    jax.eval_shape(cells, jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.float32), args)
    # custom_vmap may also trace the function unbatched, for its output shapes
    assert 4 // devices in seen and set(seen) <= {1, 4 // devices}


def test_images_vgg19_cannot_read_are_refused_by_name(vgg_weights):
    # integer pixels ran as if in [0, 1] (activations ~466x too large), and maps
    # emptied by the poolings gave (N, 0, 0, C) features and NaN Grams, silently
    image = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(JaxstyleError, match="must be floats in \\[0, 1\\], not uint8"):
        vgg_features(vgg_weights, image, ["relu1_1"])
    objective = resolve_settings("jaxstyle", size=32).objective(get_preset("jaxstyle"))
    with pytest.raises(JaxstyleError, match="not uint8"):
        compute_targets(vgg_weights, objective, image[0], [image[0]])
    with pytest.raises(JaxstyleError, match="10x9 px images have no relu5_1 .* at least 16 px"):
        vgg_features(vgg_weights, np.zeros((1, 9, 10, 3), np.float32), ["relu1_1", "relu5_1"])
    with pytest.raises(JaxstyleError, match=r"not \(1, 3, 8, 8\)$"):  # no batch-axis hint
        vgg_features(vgg_weights, np.zeros((1, 3, 8, 8), np.float32), ["relu1_1"])


def test_a_weight_set_path_in_place_of_the_weights_is_refused_by_name(vgg_weights):
    # "Argument 'weights/vgg19-caffe' of type <class 'str'> is not a valid JAX type" from
    # jit, or an AttributeError of a dict, before (stylize takes weights=DIR, these do not)
    image = np.zeros((1, 32, 32, 3), np.float32)
    objective = resolve_settings("jaxstyle", size=32).objective(get_preset("jaxstyle"))
    calls = [
        lambda w: vgg_features(w, image, ["relu1_1"]),
        lambda w: prepare_weights(w),
        lambda w: compute_targets(w, objective, image[0], [image[0]]),
    ]
    for call in calls:
        with pytest.raises(JaxstyleError, match=r"not str: load it with .*load_vgg19\('w'\)$"):
            call("w")
        with pytest.raises(JaxstyleError, match=r"must be VGG19Weights .*, not dict$"):
            call(dict(vgg_weights.params))


@pytest.mark.parametrize(
    "kernels",
    [[("conv3_1", 4)], {("conv4_2", np.int64(2))}],
    ids=["list", "numpy-tile"],
)
def test_prepare_weights_takes_any_collection_of_kernels(vgg_weights, kernels):
    # a list was a TypeError (unhashable: the cache key)
    vgg = prepare_weights(vgg_weights, conv_algorithm="winograd", kernels=kernels)
    stored = {(name, int(key[1:])) for name, ks in vgg.winograd.items() for key in ks}
    assert stored == {(name, int(m)) for name, m in kernels}


@pytest.mark.parametrize(
    "kernels",
    ["conv3_1", [("conv1_1", 2)], [("conv3_1", 3)], [("conv3_1", 2.0)]],
    ids=["string", "direct-layer", "tile-3", "float-tile"],
)
def test_prepare_weights_names_bad_kernels(vgg_weights, kernels):
    # a ValueError from unpacking, or kernels that no convolution reads, before
    with pytest.raises(JaxstyleError, match=r"Winograd kernels must be \(convolution, tile side\)"):
        prepare_weights(vgg_weights, conv_algorithm="winograd", kernels=kernels)
