"""The XLA options jaxstyle compiles its programs with, per backend, and ``jit``.

On XLA:CPU (jax 0.10), dot products and convolutions are handed to YNNPACK by
default. With those library fusions turned off, XLA runs them itself (Eigen),
and jaxstyle's steps ran faster on a 2-core AMD EPYC, the same programs timed
alternately in one process (``scripts/bench_xla_options.py``): a 192x256 Adam
step 687 -> 608 ms with Winograd (813 -> 669 ms direct), an L-BFGS step
1017 -> 912 ms, a vmapped batch of 8 at 96x128 188 -> 161 ms per image.
Results agree to float32 rounding.

Options apply per compiled program (``jax.jit(..., compiler_options=...)``),
so jaxstyle changes nothing for the other programs of a process; an option
that ``XLA_FLAGS`` already sets is left to it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""Options for XLA:CPU: an empty list of YNNPACK fusion types turns them off."""


def compiler_options(backend: str | None = None) -> dict[str, Any] | None:
    """jaxstyle's XLA options for ``backend`` (default: jax's default backend), for
    ``jax.jit(..., compiler_options=...)``; None where it has none."""
    if (backend or jax.default_backend()) != "cpu":
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    return {k: v for k, v in CPU_OPTIONS.items() if f"--{k}=" not in flags} or None


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` with :func:`compiler_options`, chosen at the first call
    (so that importing jaxstyle does not start a jax backend). Called on tracers
    (inside another traced function) it is the plain ``jax.jit``: XLA takes
    options only for a whole program."""

    @functools.cache
    def jitted(backend: str | None) -> Callable:
        options = None if backend is None else compiler_options(backend)
        return jax.jit(fn, compiler_options=options, **kwargs)

    def for_call(args: Any) -> Callable:
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args))
        return jitted(None if traced else jax.default_backend())

    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> Any:
        return for_call((args, kw))(*args, **kw)

    call.lower = lambda *args, **kw: for_call((args, kw)).lower(*args, **kw)
    return call
