"""The VGG convolution's custom gradient and the weights prepared as jit arguments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle.objective import LossArgs, Objective, compute_targets, make_loss_fn
from jaxstyle.presets import get_preset
from jaxstyle.stylize import resolve_settings
from jaxstyle.vgg import conv3x3, transpose_kernel, with_transposed_kernels

RNG = np.random.default_rng(3)


def plain_conv(x, kernel):
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def test_conv3x3_value_and_gradients_equal_xla_autodiff():
    x = jnp.asarray(RNG.standard_normal((2, 9, 7, 5)), jnp.float32)
    kernel = jnp.asarray(RNG.standard_normal((3, 3, 5, 4)), jnp.float32)
    probe = jnp.asarray(RNG.standard_normal((2, 9, 7, 4)), jnp.float32)

    def ours(x, k, kt):
        return jnp.sum(jnp.tanh(conv3x3(x, k, kt)) * probe)

    def reference(x, k):
        return jnp.sum(jnp.tanh(plain_conv(x, k)) * probe)

    kernel_t = transpose_kernel(kernel)
    assert kernel_t.shape == (3, 3, 4, 5)
    value, (dx, dk, dkt) = jax.jit(jax.value_and_grad(ours, argnums=(0, 1, 2)))(x, kernel, kernel_t)
    ref_value, (ref_dx, ref_dk) = jax.jit(jax.value_and_grad(reference, argnums=(0, 1)))(x, kernel)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dk, ref_dk, rtol=1e-5, atol=1e-5)
    assert not np.any(dkt)  # the value does not depend on the transposed kernel

    # vmapped over images, kernels shared
    def one(x, probe):
        return jnp.sum(jnp.tanh(conv3x3(x[None], kernel, kernel_t)[0]) * probe)

    per_image = jax.jit(jax.vmap(jax.grad(one)))(x, probe)
    np.testing.assert_allclose(per_image, ref_dx, rtol=1e-5, atol=1e-5)


def test_transposed_weights_as_arguments_give_the_same_loss_without_kernel_transforms(
    vgg_weights,
):
    """Weights passed as jit arguments: with :func:`with_transposed_kernels` the image
    gradient reads the stored transposed kernels (no ``rev`` of a kernel in the traced
    program) and J and ∇J equal those of the plain weights."""
    settings = resolve_settings("jaxstyle", size=32)
    objective = Objective.from_preset(get_preset("jaxstyle"))
    content = jnp.asarray(RNG.uniform(size=(32, 32, 3)), jnp.float32)
    image = jnp.asarray(RNG.uniform(size=(32, 32, 3)), jnp.float32)
    targets = compute_targets(vgg_weights, objective, content, [content[::-1]])
    value_and_grad = jax.value_and_grad(lambda x, a: make_loss_fn(objective)(x, a)[0])
    results, programs = {}, {}
    for name, vgg in (("plain", vgg_weights), ("transposed", with_transposed_kernels(vgg_weights))):
        args = LossArgs(vgg, targets, settings.loss_weights())
        results[name] = jax.jit(value_and_grad)(image, args)
        programs[name] = str(jax.make_jaxpr(value_and_grad)(image, args))
    flip = "rev[dimensions=(0, 1)]"  # a kernel flipped in space
    assert flip in programs["plain"] and flip not in programs["transposed"]
    (j, g), (j_t, g_t) = results["plain"], results["transposed"]
    np.testing.assert_allclose(j_t, j, rtol=1e-6)
    np.testing.assert_allclose(g_t, g, rtol=1e-4, atol=1e-6 * float(jnp.abs(g).max()))
    assert with_transposed_kernels(vgg_weights) is with_transposed_kernels(vgg_weights)
