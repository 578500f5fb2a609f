"""VGG19 features: ``vgg_features``, its convolutions and weight preparation.

The network itself is a Flax module (:mod:`jaxstyle.vgg_module`), imported
when a program that runs it is first traced: a warm start, which loads its
programs compiled (:mod:`jaxstyle.executables`), does not import Flax.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Iterable
from functools import partial

import jax
import jax.numpy as jnp

from jaxstyle.architecture import (
    CONV_NAMES,
    LAYER_INDEX,
    LAYER_NAMES,
    blocks,
    conv_inputs,
    deepest,
    min_side,
)
from jaxstyle.compiler import jit
from jaxstyle.errors import JaxstyleError, boolean
from jaxstyle.weights import Preprocessing, VGG19Weights, check_weight_set
from jaxstyle.winograd import TILINGS, winograd_kernel
from jaxstyle.winograd import winograd_conv3x3 as _winograd_conv3x3

POOLINGS = ("max", "avg")
COMPUTE_DTYPES = ("float32", "bfloat16")
CONV_ALGORITHMS = ("auto", "direct", "winograd")
WINOGRAD_LAYERS = tuple(name for name in CONV_NAMES if name >= "conv3")
"""The convolutions that ``conv_algorithm="winograd"`` runs by Winograd: blocks 3-5."""


DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=DIMENSIONS)


def _circular_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """:func:`_conv` on a torus: each side of the (N, H, W, C) input continues on the
    opposite one, where SAME pads with zeros."""
    wrapped = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    return jax.lax.conv_general_dilated(
        wrapped, kernel, (1, 1), "VALID", dimension_numbers=DIMENSIONS
    )


def transpose_kernel(kernel: jax.Array) -> jax.Array:
    """(3, 3, Cin, Cout) -> (3, 3, Cout, Cin): flipped in space, channels swapped; the
    kernel whose SAME convolution is the transpose of ``kernel``'s."""
    return jnp.swapaxes(kernel[::-1, ::-1], 2, 3)


def _with_image_gradient(conv, image_gradient, doc: str):
    """``conv(x, kernel)`` as ``f(x, kernel, *kernels)`` whose gradient with respect
    to ``x`` is ``image_gradient(grad, kernel, *kernels)``: the transposed
    convolution, from kernels stored for it (``kernels``) or from ``kernel`` itself."""

    @jax.custom_vjp
    def f(x, kernel, *kernels):
        return conv(x, kernel)

    def fwd(x, kernel, *kernels):  # CustomVJPPrimals: .value, .perturbed
        # the kernel's gradient only where it is differentiated: an image gradient
        # then traces no kernel VJP (for Winograd, a second copy of the convolution)
        x_kept = x.value if kernel.perturbed else None
        return conv(x.value, kernel.value), (x_kept, kernel.value, [k.value for k in kernels])

    def bwd(residuals, grad):
        x, kernel, kernels = residuals
        kernel_grad = None
        if x is not None:
            kernel_grad = jax.vjp(lambda k: conv(x, k), kernel)[1](grad)[0]
        return image_gradient(grad, kernel, *kernels), kernel_grad, *(None for _ in kernels)

    f.defvjp(fwd, bwd, symbolic_zeros=True)
    f.__doc__ = doc
    return f


conv3x3 = _with_image_gradient(
    _conv,
    lambda grad, kernel, kernel_t: _conv(grad, kernel_t),
    """SAME 3x3 convolution, stride 1: (N, H, W, Cin), (3, 3, Cin, Cout) -> (N, H, W, Cout).

    ``kernel_t`` must be ``transpose_kernel(kernel)``: the gradient with respect
    to ``x`` is the convolution with it. Given as an input, it is computed once
    per weight set rather than in every call of a jitted step that receives the
    weights as arguments (XLA derives it per call there: measured +15% per Adam
    step at 128 px on XLA:CPU). The value does not depend on ``kernel_t``.
    """,
)

circular_conv3x3 = _with_image_gradient(
    _circular_conv,
    lambda grad, kernel, kernel_t: _circular_conv(grad, kernel_t),
    """:func:`conv3x3` with the image's sides wrapped around (``padding="wrap"``: the
    features of an image tiled in every direction), for tileable images:
    (N, H, W, Cin), (3, 3, Cin, Cout), ``kernel_t`` -> (N, H, W, Cout). Its
    transpose, the image gradient, is the circular convolution with ``kernel_t``.
    """,
)

PADDINGS = ("zero", "wrap")
"""How VGG19's convolutions see past an image's sides: zeros (as trained), or the
opposite side (a torus: the image's features as a tile among copies of itself)."""

winograd_conv3x3 = _with_image_gradient(
    _winograd_conv3x3,
    lambda grad, u: _winograd_conv3x3(grad, u, transpose=True),
    """:func:`conv3x3` by Winograd F(m x m, 3x3): (N, H, W, Cin), (t*t, Cin, Cout) ->
    (N, H, W, Cout), the kernel ``winograd_kernel(kernel, out=m)`` (t = m + 2). The
    image gradient reads the same kernel (no transposed copy: see
    :mod:`jaxstyle.winograd`).
    """,
)

circular_winograd_conv3x3 = _with_image_gradient(
    partial(_winograd_conv3x3, wrap=True),
    lambda grad, u: _winograd_conv3x3(grad, u, transpose=True, wrap=True),
    """:func:`winograd_conv3x3` with the image's sides wrapped around, as
    :func:`circular_conv3x3`: (N, H, W, Cin), (t*t, Cin, Cout) -> (N, H, W, Cout).
    """,
)

WINOGRAD_F4_MIN_TILES = 64
"""The fewest 4x4 output tiles (N * ceil(H/4) * ceil(W/4)) of a convolution that
Winograd runs by F(4x4, 3x3); fewer take F(2x2, 3x3)."""


def winograd_tile(shape: tuple[int, ...], batch: int = 1) -> int:
    """The output tile side m (4 or 2) of a Winograd convolution of an (N, H, W, C)
    input, run ``batch`` times at once under ``vmap``: F(4x4, 3x3) multiplies 1.78
    times less than F(2x2, 3x3) but pays for larger tiles, so it wins only with
    enough tiles per matrix product (:data:`WINOGRAD_F4_MIN_TILES`).

    Measured on a 2-core AMD EPYC (XLA:CPU, jax 0.10.2), a convolution and its
    image gradient, F(2x2) against F(4x4), ms: 48 tiles of 128/256 channels
    (24x32, batch 1) 5.9 against 7.6 and 9.3 against 11.1; 32 tiles of 512
    (6x8, batch 8) 17.1 against 24.1; 96 tiles of 512 (12x16, batch 8) 31.6
    against 22.4 and 61.3 against 41.9; 192 tiles (48x64, batch 1) 23.1 against
    18.5 and 34.7 against 23.2; 768 tiles (96x128, batch 1) 120 against 92 and
    201 against 122.
    """
    n, h, w = shape[:3]
    tiles = batch * n * -(-h // 4) * -(-w // 4)
    return 4 if tiles >= WINOGRAD_F4_MIN_TILES else 2


WINOGRAD_MIN_SIZE = 112
"""The smallest longest side (px) at which ``"auto"`` picks Winograd on the CPU."""


def choose_conv_algorithm(
    choice: str = "auto", compute_dtype: str = "float32", size: int | None = None
) -> str:
    """The convolution algorithm of blocks 3-5 (:data:`WINOGRAD_LAYERS`):
    ``"direct"`` or ``"winograd"``; ``"auto"`` is Winograd on the CPU in float32
    for images whose longest side ``size`` is at least :data:`WINOGRAD_MIN_SIZE`
    pixels (None: not known, taken as large), direct otherwise.

    Measured on a 2-core AMD EPYC (XLA:CPU, jax 0.10.2): a 192x256 Adam step of
    the jcjohnson objective took 664 ms with blocks 3-5 in Winograd against
    848 ms direct (scripts/bench.py; PyTorch: 706-744 ms), and 608 against
    669 ms with jaxstyle's XLA options (scripts/bench_xla_options.py, see
    :mod:`jaxstyle.compiler`); blocks 1-2 (64-128 channels on large maps) ran
    slower in Winograd, its transforms outweighing the saved multiplies. On
    small images the transforms outweigh them in every block: Adam steps per
    second, direct against Winograd (``scripts/bench.py --no-probe
    --conv-algorithm ...``), 15.9 against 11.9 at 24x32, 10.0 against 7.8 at
    48x64, 7.8-9.7 against 7.1-7.7 at 60x80, even at 84x112 (5.4-6.2 against
    5.6-6.4) and 3.8 against 4.4 at 96x128. The price of Winograd is start-up
    time: each Winograd convolution compiles in about 0.5 s against 0.07 s, and
    the step traces in 0.9 s against 0.4 s (``scripts/bench_startup.py --size
    256``: 29 s against 11 s from a cold start to the first L-BFGS step, 8.2 s
    against 6.6 s warm, the compiled programs then read from the persistent
    cache). Elsewhere direct: GPU libraries choose their own convolution
    algorithms (not measured there), and bf16 would round the transforms.

    Each Winograd convolution takes F(4x4, 3x3) or F(2x2, 3x3) by its number of
    tiles (:func:`winograd_tile`): F(4x4) runs where a large image or many
    vmapped ones give it enough, for faster steps
    (``scripts/bench_winograd_tiles.py``, best per process over two alternated
    rounds: 352-353 against 380-393 ms per Adam step at 256 px, 1131-1223
    against 1441-1588 ms at 512 px). Its transforms traced separably
    (:mod:`jaxstyle.winograd`), a 256 px stylize reaches its first step 16-19 s
    after a cold start and 2.2-2.5 s after a warm one (``scripts/bench_startup.py
    --size 256``, best of 3 warm), against 34-37 s and 3.4-3.8 s with F(4x4)'s
    transforms per tile position, alternated in the same hour.
    """
    if choice not in CONV_ALGORITHMS:
        raise JaxstyleError(
            f"conv algorithm must be one of {', '.join(CONV_ALGORITHMS)}, not {choice!r}"
        )
    if choice != "auto":
        return choice
    on_cpu = jax.default_backend() == "cpu"
    large = size is None or size >= WINOGRAD_MIN_SIZE
    return "winograd" if on_cpu and compute_dtype == "float32" and large else "direct"


@jax.custom_vjp
def relu(x: jax.Array) -> jax.Array:
    """max(x, 0), any shape; its gradient (zero at 0, as ``jax.nn.relu``'s) reads
    the output rather than the input.

    So the pre-activation need not be kept for the backward pass, and XLA:GPU
    applies the ReLU inside the cuDNN convolution; with ``jax.nn.relu`` the
    convolution wrote its output and a separate pass the ReLU's (201 MB each
    per block-1 layer at 512 px, batch 8, bfloat16), and a bfloat16 step there
    took 6% longer on an H200 (scripts/results/h200-2026-11-27-s16).
    """
    return jnp.maximum(x, 0)


def _relu_fwd(x):
    # The barrier keeps XLA from rewriting the backward's ``y > 0`` as ``x > 0``,
    # which would keep ``x`` alive and the ReLU out of the convolution.
    y = jax.lax.optimization_barrier(jnp.maximum(x, 0))
    return y, y


def _relu_bwd(y, grad):
    return (jnp.where(y > 0, grad, jnp.zeros_like(grad)),)


relu.defvjp(_relu_fwd, _relu_bwd)


def _windows(x: jax.Array) -> jax.Array:
    """(N, H, W, C) -> (N, H // 2, 2, W // 2, 2, C): the 2x2 windows of a stride-2
    VALID pooling (an odd last row/column dropped)."""
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def _max_pool2x2(x: jax.Array) -> jax.Array:
    return _windows(x).max(axis=(2, 4))


def _max_pool2x2_fwd(x):
    y = _max_pool2x2(x)
    return y, (x, y)


def _max_pool2x2_bwd(residuals, grad):
    """The gradient goes to each window's first maximum in row-major order (as
    PyTorch's and Caffe's max pooling route it): four selects that XLA fuses
    with the ReLU's, reading only the pooling's input and output."""
    x, y = residuals
    hits = _windows(x) == y[:, :, None, :, None, :]
    zero = jnp.zeros_like(grad)
    taken = jnp.zeros(grad.shape, bool)
    rows = []
    for a in (0, 1):
        row = []
        for b in (0, 1):
            first = hits[:, :, a, :, b] & ~taken
            taken = taken | first
            row.append(jnp.where(first, grad, zero))
        rows.append(jnp.stack(row, axis=3))
    n, h, w, c = x.shape
    full = jnp.stack(rows, axis=2).reshape(n, h // 2 * 2, w // 2 * 2, c)
    return (jnp.pad(full, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


_max_pool2x2.defvjp(_max_pool2x2_fwd, _max_pool2x2_bwd)


def pool2x2(x: jax.Array, pooling: str = "max") -> jax.Array:
    """2x2 pooling, stride 2, VALID (an odd last row/column is dropped):
    (N, H, W, C) -> (N, H // 2, W // 2, C); ``pooling`` is "max" or "avg".

    A reshape and a reduction rather than ``reduce_window``, whose gradient is
    a select-and-scatter (on XLA:CPU, 2x2 max pooling's gradient at 256 px took
    about 170 ms of a 710 ms Adam step). Max pooling's gradient goes to the
    first maximum of each window (see :func:`_max_pool2x2_bwd`): elementwise,
    no counting of ties. Tied ReLU zeros get no gradient either way, but flat
    image regions also give tied positive maxima, where sharing the gradient
    would differ (the README's main job ended with losses within 2% of the
    shared version's).
    """
    if pooling == "max":
        return _max_pool2x2(x)
    return _windows(x).mean(axis=(2, 4))


WinogradKernels = frozenset[tuple[str, int]]
"""A set of (convolution name, output tile side m): the Winograd kernels a run reads."""


def winograd_kernels(shape: tuple[int, int], last_layer: str, batch: int = 1) -> WinogradKernels:
    """The Winograd kernels that VGG19 up to ``last_layer`` reads for ``batch``
    (H, W) = ``shape`` images at once (N images per call times the calls ``vmap``
    runs together): each of :data:`WINOGRAD_LAYERS` with its :func:`winograd_tile`."""
    return frozenset(
        (name, winograd_tile((batch, h, w), 1))
        for name, h, w in conv_inputs(*shape, last_layer)
        if name in WINOGRAD_LAYERS
    )


def derived_kernels(
    kernel: jax.Array, winograd: bool, tiles: Iterable[int] = tuple(TILINGS)
) -> dict[str, jax.Array]:
    """What a convolution reads besides its (3, 3, Cin, Cout) ``kernel``: the transposed
    kernel ``{"kernel": (3, 3, Cout, Cin)}``, or with ``winograd`` the Winograd-domain
    kernels ``{"f2": (16, Cin, Cout), "f4": (36, Cin, Cout)}`` of F(2x2, 3x3) and
    F(4x4, 3x3) (which also serve the transposed convolution), those of ``tiles`` only."""
    if winograd:
        return {f"f{m}": winograd_kernel(kernel, out=m) for m in tiles}
    return {"kernel": transpose_kernel(kernel)}


def add_kernel_transforms(
    weights: VGG19Weights,
    conv_algorithm: str = "direct",
    kernels: Iterable[tuple[str, int]] | None = None,
) -> VGG19Weights:
    """``weights`` with every convolution's :func:`derived_kernels` (pure, jittable):
    ``transposed`` for the direct convolutions and, if ``conv_algorithm`` is
    "winograd", ``winograd`` for :data:`WINOGRAD_LAYERS`: those of ``kernels``
    only (see :func:`winograd_kernels`), or both tilings of every one if None."""
    fast = WINOGRAD_LAYERS if conv_algorithm == "winograd" else ()
    if kernels is None:
        kernels = [(name, m) for name in fast for m in TILINGS]
    tiles = {name: sorted(m for layer, m in kernels if layer == name) for name in fast}
    transposed, winograd = {}, {}
    for name, p in weights.params.items():
        if name not in fast:
            transposed[name] = derived_kernels(p["kernel"], False)
        elif tiles[name]:
            winograd[name] = derived_kernels(p["kernel"], True, tiles[name])
    return dataclasses.replace(weights, transposed=transposed, winograd=winograd or None)


_add_kernel_transforms = jit(add_kernel_transforms, static_argnums=(1, 2))


def prepare_weights(
    weights: VGG19Weights,
    *,
    conv_algorithm: str = "auto",
    kernels: WinogradKernels | None = None,
) -> VGG19Weights:
    """``weights`` on the default device, with the kernels of their image gradient
    (and of ``conv_algorithm``, see :func:`choose_conv_algorithm`) computed once.

    Pass these to jitted code that takes the VGG19 weights as arguments and
    differentiates with respect to the image: the steps then read the stored
    kernels instead of deriving them in every call. ``kernels``: the Winograd
    kernels to store (:func:`winograd_kernels` of the run's image shapes; each
    (Cin, Cout) layer's takes 16 or 36 x Cin x Cout floats), or all of both
    tilings (435 MiB) if None; running a shape that needs one not stored is an
    error. Cached per weight set (by identity), algorithm and kernels, so
    repeated runs share one copy.
    """
    check_weight_set(weights)
    return _prepared(weights, conv_algorithm, _kernel_set(kernels))


def _kernel_set(kernels: Iterable[tuple[str, int]] | None) -> WinogradKernels | None:
    """``kernels`` as a frozenset (hashable: a cache key); a clear error unless each is a
    (convolution of :data:`WINOGRAD_LAYERS`, tile side of :data:`TILINGS`) pair."""
    if kernels is None:
        return None
    try:
        pairs = frozenset((name, operator.index(m)) for name, m in kernels)
    except (TypeError, ValueError):  # not pairs, or unhashable
        pairs = None
    if pairs is None or any(n not in WINOGRAD_LAYERS or m not in TILINGS for n, m in pairs):
        raise JaxstyleError(
            "Winograd kernels must be (convolution, tile side) pairs such as ('conv3_1', 4), "
            f"conv3_1..conv5_4 and {' or '.join(map(str, TILINGS))} (winograd_kernels), "
            f"not {kernels!r}"
        )
    return pairs


@functools.lru_cache(maxsize=2)
def _prepared(
    weights: VGG19Weights, conv_algorithm: str, kernels: WinogradKernels | None
) -> VGG19Weights:
    algorithm = choose_conv_algorithm(conv_algorithm)
    in_order = None if kernels is None else tuple(sorted(kernels))  # a stable disk-cache key
    return _add_kernel_transforms(weights, algorithm, in_order)


def preprocess(images: jax.Array, preprocessing: Preprocessing) -> jax.Array:
    """RGB images in [0, 1], (..., H, W, 3) -> network input of the same shape."""
    x = images[..., ::-1] if preprocessing.bgr else images
    channel = (1,) * (x.ndim - 1) + (3,)
    mean = jnp.asarray(preprocessing.mean, x.dtype).reshape(channel)
    std = jnp.asarray(preprocessing.std, x.dtype).reshape(channel)
    return (x * preprocessing.scale - mean) / std


def check_compute_dtype(dtype: str) -> str:
    """``dtype`` if it is one of :data:`COMPUTE_DTYPES`; a clear error otherwise."""
    if dtype not in COMPUTE_DTYPES:
        raise JaxstyleError(
            f"compute dtype must be one of {', '.join(COMPUTE_DTYPES)}, not {dtype!r}"
        )
    return dtype


def layer_names(layers: Iterable[str], what: str = "layers") -> tuple[str, ...]:
    """``layers`` as a tuple; a clear error for one name given as a bare string
    (which would be taken letter by letter)."""
    if isinstance(layers, str):
        raise JaxstyleError(
            f"{what.replace('_', ' ')} must be a sequence of layer names such as "
            f"({layers!r},), not the string {layers!r}"
        )
    try:
        return tuple(layers)
    except TypeError:
        raise JaxstyleError(
            f"{what.replace('_', ' ')} must be a sequence of layer names, not {layers!r}"
        ) from None


def check_layers(layers: Iterable[str]) -> tuple[str, ...]:
    """The layer names as a tuple; a clear error for unknown ones."""
    layers = layer_names(layers)
    unknown = [name for name in layers if name not in LAYER_INDEX]
    if unknown:
        raise JaxstyleError(
            f"unknown VGG19 layer {', '.join(unknown)}; known layers are "
            f"conv1_1..conv5_4, relu1_1..relu5_4, pool1..pool5"
        )
    if not layers:
        raise JaxstyleError("no VGG19 layers requested")
    return layers


@partial(
    jit,
    static_argnames=(
        "layers",
        "pooling",
        "compute_dtype",
        "conv_algorithm",
        "batch",
        "remat",
        "padding",
    ),
)
def features(
    params: VGG19Weights,
    images: jax.Array,
    layers: tuple[str, ...],
    pooling: str,
    compute_dtype: str = "float32",
    conv_algorithm: str = "direct",
    batch: int = 1,
    remat: bool = False,
    padding: str = "zero",
):
    """Unchecked core of :func:`vgg_features`, for use inside traced code.

    The convolutions run in ``compute_dtype`` by ``conv_algorithm`` ("direct"
    or "winograd"); the activations come out in ``compute_dtype`` (bfloat16
    Grams then run on the matrix units; they and the losses accumulate in
    float32 either way). ``batch``: how many times ``vmap`` runs this call at
    once (it sees one call's N), for :func:`winograd_tile`. ``remat``: each
    block is a ``jax.checkpoint``, so a gradient keeps only the blocks' inputs
    and ``layers`` and recomputes the rest, a block at a time (less memory, one
    more forward pass). ``padding``: one of :data:`PADDINGS`.
    """
    from jaxstyle.vgg_module import VGG19

    last = deepest(layers)
    check_images(images, last)
    if padding not in PADDINGS:
        raise JaxstyleError(f"padding must be one of {', '.join(PADDINGS)}, not {padding!r}")
    if conv_algorithm == "winograd" and params.winograd is not None:
        needed = winograd_kernels((images.shape[1], images.shape[2]), last, batch * len(images))
        _check_prepared(params.winograd, needed)
    x = preprocess(images.astype(jnp.float32), params.preprocessing)
    variables = {"params": params.params}
    for collection in ("transposed", "winograd"):
        if getattr(params, collection) is not None:
            variables[collection] = getattr(params, collection)
    out: dict[str, jax.Array] = {}
    for block in blocks(last) if remat else (LAYER_NAMES[: LAYER_INDEX[last] + 1],):
        model = VGG19(block[-1], pooling, compute_dtype, conv_algorithm, batch, block[0], padding)
        kept = tuple(name for name in block if name in layers or name == block[-1])

        def run(variables, x, model=model, kept=kept) -> dict[str, jax.Array]:
            acts = model.apply(variables, x)
            # flax types apply's result as the output or (output, state) whatever
            # `mutable` is; without `mutable` it is the output
            return {name: acts[name] for name in kept}  # pyrefly: ignore[bad-index]

        out |= (jax.checkpoint(run) if remat else run)(variables, x)
        x = out[block[-1]]
    return {name: out[name] for name in layers}


def check_images(images: jax.Array, last_layer: str) -> None:
    """A clear error unless ``images`` are float (N, H, W, 3) whose feature maps at
    ``last_layer`` are not empty (sides of at least :func:`min_side`); static, so
    also inside traced code."""
    if images.ndim != 4 or images.shape[-1] != 3:
        hint = " (add a batch axis)" if images.ndim == 3 and images.shape[-1] == 3 else ""
        raise JaxstyleError(f"images must be (N, H, W, 3), not {images.shape}{hint}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise JaxstyleError(
            f"images must be floats in [0, 1], not {images.dtype} (divide uint8 pixels by 255)"
        )
    h, w, need = images.shape[1], images.shape[2], min_side(last_layer)
    if min(h, w) < need:
        raise JaxstyleError(
            f"{w}x{h} px images have no {last_layer} features: it needs sides of at least {need} px"
        )


def _check_prepared(stored: dict, needed: WinogradKernels) -> None:
    missing = sorted(k for k in needed if f"f{k[1]}" not in stored.get(k[0], {}))
    if missing:
        name, m = missing[0]
        raise JaxstyleError(
            f"the prepared weights lack the F({m}x{m}) Winograd kernel of {name} that "
            "this image shape needs; prepare them with kernels=None or this shape's kernels"
        )


def vgg_features(
    params: VGG19Weights,
    images: jax.Array,
    layers: Iterable[str],
    *,
    pooling: str = "max",
    compute_dtype: str = "float32",
    conv_algorithm: str = "auto",
    tileable: bool = False,
) -> dict[str, jax.Array]:
    """VGG19 activations of RGB images.

    Args:
      params: weights from :func:`jaxstyle.load_vgg19`.
      images: float (N, H, W, 3), RGB in [0, 1], sides at least 2**(poolings up
        to the deepest layer) px (16 for relu5_1); others are a JaxstyleError.
      layers: names such as ``"relu4_2"``; only layers up to the deepest are run.
      pooling: ``"max"`` (as trained) or ``"avg"`` (Gatys et al.'s choice).
      compute_dtype: ``"float32"`` or ``"bfloat16"`` (convolutions only).
      conv_algorithm: ``"auto"``, ``"direct"`` or ``"winograd"`` (see
        :func:`choose_conv_algorithm`); the results agree to about 1e-5 relative.
      tileable: each image's sides wrap around to the opposite ones (circular
        padding, :func:`circular_conv3x3`: the features of a ``tileable=True``
        run).

    Returns:
      ``{name: float32 (N, h, w, C)}`` in the order of ``layers``, h and w halved
      after each pool.
    """
    if pooling not in POOLINGS:
        raise JaxstyleError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    layers = check_layers(layers)
    dtype = check_compute_dtype(compute_dtype)
    images = jnp.asarray(images)
    check_images(images, deepest(layers))
    boolean("tileable", tileable)
    check_weight_set(params)
    algorithm = choose_conv_algorithm(conv_algorithm, dtype, max(images.shape[1:3]))
    padding = "wrap" if tileable else "zero"
    out = features(params, images, layers, pooling, dtype, algorithm, padding=padding)
    # jit returns dicts with sorted keys
    return {name: out[name].astype(jnp.float32) for name in layers}
