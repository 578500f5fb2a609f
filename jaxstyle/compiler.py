"""How jaxstyle compiles: its XLA options per backend, ``jit``, and the caches.

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

:func:`enable_compilation_cache` keeps compiled programs on disk: jax's
persistent cache, and :mod:`jaxstyle.executables` for jaxstyle's own programs.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import jax

from jaxstyle import disk_cache, executables
from jaxstyle.errors import JaxstyleError

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""Options for XLA:CPU: an empty list of YNNPACK fusion types turns them off."""


def compiler_options(backend: str | None = None) -> dict[str, Any] | None:
    """jaxstyle's XLA options for ``backend`` (default: jax's default backend), for
    ``jax.jit(..., compiler_options=...)``; None where it has none."""
    if (backend or jax.default_backend()) != "cpu":
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    return {k: v for k, v in CPU_OPTIONS.items() if f"--{k}=" not in flags} or None


def enable_compilation_cache(
    directory: str | os.PathLike | None = None, *, run_label: str | None = None
) -> Path:
    """Keep compiled programs on disk, so later processes start without compiling
    (the CLI calls this). Turns on jax's persistent compilation cache, for every
    program however quick to compile, and :mod:`jaxstyle.executables`, which also
    saves tracing and lowering jaxstyle's own programs; weight sets and runs'
    targets are kept there too (:mod:`jaxstyle.disk_cache`).

    Args:
      directory: where (``~`` expanded); default ``$JAXSTYLE_CACHE``, else
        ``$XDG_CACHE_HOME/jaxstyle/jax`` (``~/.cache/jaxstyle/jax``).
      run_label: names what this process is about to run (the CLI: ``"cli
        stylize"`` etc.): the programs the last process so labelled used start
        loading in the background at once (:func:`jaxstyle.executables.prefetch`).

    Returns:
      The directory.
    """
    fix = "set JAXSTYLE_CACHE to one of your own" if directory is None else "give one of yours"
    if directory is None:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        directory = os.environ.get("JAXSTYLE_CACHE") or home / "jaxstyle" / "jax"
    directory = Path(directory).expanduser()  # "~/..." quoted in a shell or a .env file
    try:
        directory.mkdir(parents=True, exist_ok=True)
        writable = os.access(directory, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise JaxstyleError(f"the compilation cache {directory} is not a writable directory: {fix}")
    if os.name == "posix" and not _users_own(directory):
        raise JaxstyleError(
            f"the compilation cache {directory} is not yours alone (its programs are pickles, "
            f"which run code when read): {fix}"
        )
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    disk_cache.enable(directory)
    if run_label is not None:
        executables.prefetch(run_label)
    return directory


def _users_own(directory: Path) -> bool:
    """Whether ``directory`` (POSIX) is this user's and others may not write in it."""
    stat = directory.stat()
    return stat.st_uid == os.getuid() and not stat.st_mode & 0o002


class Jitted(Protocol):
    """What :func:`jit` gives: the jitted function, with its ``lower`` and ``compile``."""

    lower: Callable[..., jax.stages.Lowered]
    compile: Callable[..., jax.stages.Compiled]

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


def jit(fn: Callable, **kwargs: Any) -> Jitted:
    """``jax.jit(fn, **kwargs)`` with :func:`compiler_options`, chosen at the first call
    (so that importing jaxstyle does not start a jax backend), and compiled programs
    kept in :mod:`jaxstyle.executables`' disk cache when that is enabled. Called on
    tracers (inside another traced function) it is the plain ``jax.jit``: XLA takes
    options only for a whole program.

    The result also has ``.lower(*args)`` and ``.compile(*args)``; the latter takes
    arrays or ``jax.ShapeDtypeStruct`` and gives the compiled program (to be called
    with the non-static arguments) through the same caches as a call."""
    static_positions, static_names = _statics(fn, kwargs)
    settings = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
    programs: dict = {}

    @functools.cache
    def jitted(backend: str | None) -> jax.stages.Wrapped:
        options = None if backend is None else compiler_options(backend)
        return jax.jit(fn, compiler_options=options, **kwargs)

    def split(args: tuple, kw: dict) -> tuple[tuple, dict, tuple]:
        """(dynamic args, dynamic kwargs, static values) of a call."""
        dynamic = tuple(a for i, a in enumerate(args) if i not in static_positions)
        dynamic_kw = {k: v for k, v in kw.items() if k not in static_names}
        static = (
            tuple((i, a) for i, a in enumerate(args) if i in static_positions),
            tuple(sorted((k, v) for k, v in kw.items() if k in static_names)),
        )
        return dynamic, dynamic_kw, static

    def lower(*args: Any, **kw: Any) -> jax.stages.Lowered:
        return jitted(None if _traced(args, kw) else jax.default_backend()).lower(*args, **kw)

    def compiled(args: tuple, kw: dict, static: tuple, inputs: Any) -> jax.stages.Compiled:
        """The program for a call's arguments: from memory, from the disk cache, or
        compiled (``inputs``: their :func:`executables.signature`, None if unkeyable)."""
        backend = jax.default_backend()
        options = compiler_options(backend)

        def compile_fn(f: Callable) -> jax.stages.Compiled:
            return jax.jit(f, compiler_options=options, **kwargs).lower(*args, **kw).compile()

        if inputs is None:
            return compile_fn(fn)
        key = (backend, static, inputs)
        if key not in programs:
            program = executables.program_key(fn)
            programs[key] = executables.load_or_compile(
                None if program is None else (program, static, settings),
                inputs,
                fn,
                compile_fn,
                options=options,
            )
        return programs[key]

    def compile(*args: Any, **kw: Any) -> jax.stages.Compiled:
        dynamic, dynamic_kw, static = split(args, kw)
        return compiled(args, kw, static, executables.signature((dynamic, dynamic_kw)))

    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> Any:
        if _traced(args, kw):
            return jitted(None)(*args, **kw)
        dynamic, dynamic_kw, static = split(args, kw)
        inputs = executables.signature((dynamic, dynamic_kw))
        if inputs is None or executables.program_key(fn) is None:  # jax's caches serve it
            return jitted(jax.default_backend())(*args, **kw)
        return compiled(args, kw, static, inputs)(*dynamic, **dynamic_kw)

    jitted_call = cast(Jitted, call)  # a function takes attributes; typing has no word for it
    jitted_call.lower = lower
    jitted_call.compile = compile
    return jitted_call


def _traced(args: tuple, kw: dict) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kw)))


def _statics(fn: Callable, kwargs: dict) -> tuple[set[int], set[str]]:
    """The positions and names of ``fn``'s static arguments under ``jax.jit(fn, **kwargs)``
    (jax makes a parameter static by position or by name, whichever is given)."""
    nums = kwargs.get("static_argnums", ())
    names = kwargs.get("static_argnames", ())
    positions = {nums} if isinstance(nums, int) else set(nums)
    named = {names} if isinstance(names, str) else set(names)
    if not positions and not named:
        return positions, named
    parameters = list(inspect.signature(fn).parameters)
    positions |= {parameters.index(n) for n in named if n in parameters}
    named |= {parameters[i] for i in positions if i < len(parameters)}
    return positions, named
