"""The VGG19 feature extractor as a Flax module: its convolutional part, NHWC."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxstyle.architecture import CONV_SHAPES, LAYER_INDEX, LAYER_NAMES
from jaxstyle.vgg import (
    WINOGRAD_LAYERS,
    circular_conv3x3,
    circular_winograd_conv3x3,
    conv3x3,
    derived_kernels,
    pool2x2,
    relu,
    winograd_conv3x3,
    winograd_tile,
)


class Conv3x3(nn.Module):
    """A VGG convolution (params ``kernel`` (3, 3, Cin, Cout), ``bias`` (Cout,)) in
    ``dtype``: by :func:`conv3x3`, or by :func:`winograd_conv3x3` if ``winograd``
    (its tile by :func:`winograd_tile` of the input's shape and ``batch``, the
    number of such calls ``vmap`` runs at once); for ``padding="wrap"`` by
    :func:`circular_conv3x3` or :func:`circular_winograd_conv3x3`.

    The kernel of the image gradient (direct, ``kernel``) or Winograd's (``f2``,
    ``f4``) is read from the variable collection ``"transposed"`` or
    ``"winograd"`` when given (see :func:`prepare_weights`), else derived.
    """

    features: int
    dtype: str = "float32"
    winograd: bool = False
    batch: int = 1
    padding: str = "zero"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (3, 3, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.winograd:
            collection, key = "winograd", f"f{winograd_tile(x.shape, self.batch)}"
        else:
            collection, key = "transposed", "kernel"
        if self.has_variable(collection, key):
            derived = self.variables[collection][key]
        else:  # the kernels not read here are traced and dropped
            derived = derived_kernels(kernel, self.winograd)[key]
        wrap = self.padding == "wrap"
        if self.winograd:
            conv, kernels = circular_winograd_conv3x3 if wrap else winograd_conv3x3, (derived,)
        else:
            conv, kernels = circular_conv3x3 if wrap else conv3x3, (kernel, derived)
        dtype = jnp.dtype(self.dtype)
        y = conv(x.astype(dtype), *(k.astype(dtype) for k in kernels))
        return y + bias.astype(dtype).reshape(1, 1, 1, -1)


class VGG19(nn.Module):
    """VGG19's convolutional part, NHWC, run up to ``last_layer`` only.

    Input is already preprocessed (see :func:`jaxstyle.vgg.preprocess`); the output maps
    every layer name up to and including ``last_layer`` to its activation.
    From ``first_layer`` on, the input is the activation before it instead (one
    block of a rematerialised run, see :func:`jaxstyle.vgg.features`).
    ``dtype`` is the computation dtype: inputs and float32 weights are cast to
    it for each convolution, and the activations come out in it.
    ``conv_algorithm`` ("direct" or "winograd") is that of :data:`WINOGRAD_LAYERS`,
    ``batch`` the number of such calls ``vmap`` runs at once, ``padding`` one of
    :data:`~jaxstyle.vgg.PADDINGS` (see :class:`Conv3x3`).
    """

    last_layer: str = "pool5"
    pooling: str = "max"
    dtype: str = "float32"
    conv_algorithm: str = "direct"
    batch: int = 1
    first_layer: str = "conv1_1"
    padding: str = "zero"

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        out = {}
        for name in LAYER_NAMES[LAYER_INDEX[self.first_layer] : LAYER_INDEX[self.last_layer] + 1]:
            if name.startswith("conv"):
                winograd = self.conv_algorithm == "winograd" and name in WINOGRAD_LAYERS
                conv = Conv3x3(
                    CONV_SHAPES[name][1], self.dtype, winograd, self.batch, self.padding, name=name
                )
                x = conv(x)
            elif name.startswith("relu"):
                x = relu(x)
            else:
                x = pool2x2(x, self.pooling)
            out[name] = x
        return out
