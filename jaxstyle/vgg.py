"""The VGG19 feature extractor as a Flax module, and ``vgg_features``."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxstyle.architecture import CONV_SHAPES, LAYER_INDEX, LAYER_NAMES, deepest
from jaxstyle.errors import JaxstyleError
from jaxstyle.weights import Preprocessing, VGG19Weights

POOLINGS = ("max", "avg")
COMPUTE_DTYPES = ("float32", "bfloat16")


DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=DIMENSIONS)


def transpose_kernel(kernel: jax.Array) -> jax.Array:
    """(3, 3, Cin, Cout) -> (3, 3, Cout, Cin): flipped in space, channels swapped; the
    kernel whose SAME convolution is the transpose of ``kernel``'s."""
    return jnp.swapaxes(kernel[::-1, ::-1], 2, 3)


@jax.custom_vjp
def conv3x3(x: jax.Array, kernel: jax.Array, kernel_t: jax.Array) -> jax.Array:
    """SAME 3x3 convolution, stride 1: (N, H, W, Cin), (3, 3, Cin, Cout) -> (N, H, W, Cout).

    ``kernel_t`` must be ``transpose_kernel(kernel)``: the gradient with respect
    to ``x`` is the convolution with it. Given as an input, it is computed once
    per weight set rather than in every call of a jitted step that receives the
    weights as arguments (XLA derives it per call there: measured +15% per Adam
    step at 128 px on XLA:CPU). The value does not depend on ``kernel_t``.
    """
    return _conv(x, kernel)


def _conv3x3_fwd(x, kernel, kernel_t):
    return _conv(x, kernel), (x, kernel, kernel_t)


def _conv3x3_bwd(residuals, grad):
    x, kernel, kernel_t = residuals
    _, kernel_vjp = jax.vjp(lambda k: _conv(x, k), kernel)
    return _conv(grad, kernel_t), kernel_vjp(grad)[0], jnp.zeros_like(kernel_t)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


class Conv3x3(nn.Module):
    """A VGG convolution (params ``kernel`` (3, 3, Cin, Cout), ``bias`` (Cout,)), run by
    :func:`conv3x3` in ``dtype``; the transposed kernel is read from the variable
    collection ``"transposed"`` when given, else derived."""

    features: int
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (3, 3, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.has_variable("transposed", "kernel"):
            kernel_t = self.get_variable("transposed", "kernel")
        else:
            kernel_t = transpose_kernel(kernel)
        dtype = jnp.dtype(self.dtype)
        y = conv3x3(x.astype(dtype), kernel.astype(dtype), kernel_t.astype(dtype))
        return y + bias.astype(dtype).reshape(1, 1, 1, -1)


class VGG19(nn.Module):
    """VGG19's convolutional part, NHWC, run up to ``last_layer`` only.

    Input is already preprocessed (see :func:`preprocess`); the output maps
    every layer name up to and including ``last_layer`` to its activation.
    ``dtype`` is the computation dtype: inputs and float32 weights are cast to
    it for each convolution, and the activations come out in it.
    """

    last_layer: str = "pool5"
    pooling: str = "max"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        pool = nn.max_pool if self.pooling == "max" else nn.avg_pool
        out = {}
        for name in LAYER_NAMES[: LAYER_INDEX[self.last_layer] + 1]:
            if name.startswith("conv"):
                x = Conv3x3(CONV_SHAPES[name][1], dtype=self.dtype, name=name)(x)
            elif name.startswith("relu"):
                x = nn.relu(x)
            else:
                x = pool(x, (2, 2), strides=(2, 2))
            out[name] = x
        return out


def add_transposed_kernels(weights: VGG19Weights) -> VGG19Weights:
    """``weights`` with ``transposed`` filled in from their kernels (pure, jittable)."""
    params = weights.params
    transposed = {name: {"kernel": transpose_kernel(p["kernel"])} for name, p in params.items()}
    return dataclasses.replace(weights, transposed=transposed)


@functools.lru_cache(maxsize=4)
def with_transposed_kernels(weights: VGG19Weights) -> VGG19Weights:
    """``weights`` on the default device, with their transposed kernels.

    Pass these to jitted code that takes the VGG19 weights as arguments and
    differentiates with respect to the image: the image gradient then uses the
    stored transposed kernels instead of deriving them in every call. Cached per
    weight set (by identity), so repeated runs share one copy.
    """
    return jax.jit(add_transposed_kernels)(weights)


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


def check_layers(layers: Iterable[str]) -> tuple[str, ...]:
    """The layer names as a tuple; a clear error for unknown ones."""
    layers = tuple(layers)
    unknown = [name for name in layers if name not in LAYER_INDEX]
    if unknown:
        raise JaxstyleError(
            f"unknown VGG19 layer {', '.join(unknown)}; known layers are "
            f"conv1_1..conv5_4, relu1_1..relu5_4, pool1..pool5"
        )
    if not layers:
        raise JaxstyleError("no VGG19 layers requested")
    return layers


@partial(jax.jit, static_argnames=("layers", "pooling", "compute_dtype"))
def features(
    params: VGG19Weights,
    images: jax.Array,
    layers: tuple[str, ...],
    pooling: str,
    compute_dtype: str = "float32",
):
    """Unchecked core of :func:`vgg_features`, for use inside traced code.

    The convolutions run in ``compute_dtype``; the activations are returned
    in float32, so Grams and losses are computed in float32 either way.
    """
    model = VGG19(last_layer=deepest(layers), pooling=pooling, dtype=compute_dtype)
    x = preprocess(images.astype(jnp.float32), params.preprocessing)
    variables = {"params": params.params}
    if params.transposed is not None:
        variables["transposed"] = params.transposed
    out = model.apply(variables, x)
    return {name: out[name].astype(jnp.float32) for name in layers}


def vgg_features(
    params: VGG19Weights,
    images: jax.Array,
    layers: Iterable[str],
    *,
    pooling: str = "max",
    compute_dtype: str = "float32",
) -> dict[str, jax.Array]:
    """VGG19 activations of RGB images.

    Args:
      params: weights from :func:`jaxstyle.load_vgg19`.
      images: float (N, H, W, 3), RGB in [0, 1].
      layers: names such as ``"relu4_2"``; only layers up to the deepest are run.
      pooling: ``"max"`` (as trained) or ``"avg"`` (Gatys et al.'s choice).
      compute_dtype: ``"float32"`` or ``"bfloat16"`` (convolutions only).

    Returns:
      ``{name: float32 (N, h, w, C)}`` in the order of ``layers``, h and w halved
      after each pool.
    """
    if pooling not in POOLINGS:
        raise JaxstyleError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    layers = check_layers(layers)
    out = features(params, jnp.asarray(images), layers, pooling, check_compute_dtype(compute_dtype))
    return {name: out[name] for name in layers}  # jit returns dicts with sorted keys
