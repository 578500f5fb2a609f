"""jaxstyle's XLA options: which backend gets them, and that its programs are built with them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import compiler, optimize


def _product(a):
    return jnp.tanh(a @ a.T).sum()


A = np.random.default_rng(0).standard_normal((96, 256)).astype(np.float32)
YNN = "ynn_fusion"  # XLA:CPU's name for a YNNPACK library fusion in the compiled HLO


def test_options_are_for_the_cpu_unless_xla_flags_set_them(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert compiler.compiler_options("cpu") == compiler.CPU_OPTIONS
    assert compiler.compiler_options("gpu") is None
    assert compiler.compiler_options("tpu") is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=individual_dot")
    assert compiler.compiler_options("cpu") is None


def test_programs_compile_without_ynnpack_fusions_and_give_the_same_values():
    """XLA's default gives the matrix product to YNNPACK; jaxstyle's jit, and
    compile_once (every step, init and final-loss program), do not. The two sum in
    different orders: 1.1e-6 relative apart on a host with AVX-512."""
    assert jax.default_backend() == "cpu"
    default = jax.jit(_product).lower(A).compile()
    ours = compiler.jit(_product).lower(A).compile()
    assert YNN in default.as_text()  # if XLA stops using YNNPACK, this test is moot
    assert YNN not in ours.as_text()
    assert YNN not in optimize.compile_once(_product, A).as_text()
    np.testing.assert_allclose(ours(A), default(A), rtol=1e-5)


def test_jit_inside_a_traced_function_is_the_plain_jit():
    """XLA takes options only for a whole program: nested, the wrapper drops them."""
    inner = compiler.jit(_product)
    outer = compiler.jit(lambda a: inner(a) + jax.vmap(inner)(a[None])[0])
    np.testing.assert_allclose(outer(A), 2 * _product(A), rtol=1e-5)
    assert YNN not in compiler.jit(lambda a: inner(a)).lower(A).compile().as_text()
