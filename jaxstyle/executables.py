"""A disk cache of compiled programs, so that a warm start skips tracing and lowering.

jax's persistent compilation cache keys a program by its lowered HLO, so a new
process must still trace and lower every program before it can look it up.
For a 256 px ``jaxstyle stylize`` on a 2-core CPU that was about 3.5 s of an
8 s warm start (VGG19 traced through Flax for the targets, the L-BFGS start
and its step). This cache keys a program by what determines it instead:

  * the program: a jaxstyle function's module and name with its static
    arguments, or the key a factory gave the function it built (:func:`keyed`);
  * the inputs: the pytree structure, shapes, dtypes, weak types and
    placement of every argument, and which arguments are donated;
  * the environment: a digest of jaxstyle's source files, the versions of
    jax, jaxlib, flax, optax and numpy, jax's tracing configuration,
    ``XLA_FLAGS`` and the compiler options, the devices and the host's CPU;

and stores the compiled executable (``jax.experimental.serialize_executable``),
so a hit costs only its deserialisation. Anything it cannot key safely (a
function without a key, inputs sharded over several devices, several
processes) is compiled the usual way, and so is anything that fails to load.
Entries are files ``<key>.jaxstyle-exe`` in :mod:`jaxstyle.disk_cache`'s
directory (jax's own entries end in ``-cache``).

Deserialising is most of a warm start's wait for its programs (XLA:CPU
rebuilds each program's HLO and thunks: 0.6-1.4 s for a 256 px L-BFGS step
on a 2-core CPU), and it releases the GIL. So the cache remembers which program
a process asked for after each one (``<key>.jaxstyle-next``), and after the
first of a label (:func:`prefetch`, e.g. a CLI command); when one is served,
the programs that followed it last time are deserialised on a background thread
while the caller goes on loading images and computing targets.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.metadata
import os
import pickle
import platform
import queue
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol, cast

import jax

from jaxstyle import disk_cache

KIND, NEXT = "exe", "next"
"""This module's entries in :mod:`jaxstyle.disk_cache`: programs ``<key>.jaxstyle-exe``,
each with ``<key>.jaxstyle-next`` naming the program asked for after it."""
PREFETCH_DEPTH = 8
"""How many programs down the remembered order are deserialised ahead."""

_previous_key: str | None = None  # the program this process asked for last


def prefetch(label: str) -> None:
    """Mark the start of a run labelled ``label`` (e.g. ``"cli stylize"``): the
    programs that the last run so labelled asked for begin to deserialise in the
    background now, and this run's are remembered under the label in turn."""
    global _previous_key
    if not caching():
        return
    _previous_key = "label-" + hashlib.sha256(label.encode()).hexdigest()
    _prefetch_after(_previous_key)


class _Keyed(Protocol):
    """A function that :func:`keyed` labelled."""

    program_key: Hashable | None

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


def keyed(fn: Callable, *parts: Hashable) -> Callable:
    """``fn`` labelled with a program key: its module and name and ``parts``, which
    must determine what the function computes (the settings a factory closed over;
    a function among them stands for its own key). Returns ``fn``."""
    keys = [program_key(p) if callable(p) else p for p in parts]
    labelled = cast(_Keyed, fn)  # a function takes attributes; typing has no word for it
    labelled.program_key = None if None in keys else (fn.__module__, fn.__qualname__, *keys)
    return fn


def program_key(fn: Callable) -> Hashable | None:
    """The key :func:`keyed` gave ``fn``; for a jaxstyle function defined at module
    level (no closure), its module and name; otherwise None."""
    if hasattr(fn, "program_key"):
        return fn.program_key
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", "")
    closure = getattr(fn, "__closure__", None)
    if module.startswith("jaxstyle.") and "<locals>" not in qualname and not closure:
        return (module, qualname)
    return None


def signature(args: Any) -> Hashable | None:
    """What a compiled program needs to know of its inputs ``args`` (a pytree of arrays
    or ``jax.ShapeDtypeStruct``); None where an input is placed on several devices."""
    leaves, treedef = jax.tree.flatten(args)
    avals = []
    for x in leaves:
        sharding = getattr(x, "sharding", None)
        if isinstance(x, jax.Array) and not x.committed:
            sharding = None
        if sharding is not None and len(sharding.device_set) > 1:
            return None
        placement = None if sharding is None else _placement(sharding)
        aval = jax.api_util.shaped_abstractify(x)
        # jax annotates that as giving the AbstractValue base class; it gives a ShapedArray
        # pyrefly: ignore[missing-attribute]
        avals.append((aval.shape, str(aval.dtype), aval.weak_type, placement))
    return (str(treedef), tuple(avals))


def _placement(sharding: jax.sharding.Sharding) -> tuple:
    """A one-device sharding by what it means: its device and memory kind. A
    ``NamedSharding`` over a one-device mesh places the same whatever its spec: a
    sweep's carry restored from a checkpoint (spec ``P("cells")``) must find the
    step compiled for a fresh carry (some leaves ``P()``)."""
    (device,) = sharding.device_set
    return (device.platform, device.id, sharding.memory_kind)


def load_or_compile(
    program: Hashable | None,
    inputs: Hashable | None,
    fn: Callable,
    compile_fn: Callable[[Callable], jax.stages.Compiled],
    *,
    options: Any = None,
) -> jax.stages.Compiled:
    """The compiled program: from the cache when enabled and it holds one for
    ``program`` on ``inputs`` (:func:`program_key`, :func:`signature`) under
    compiler ``options``; otherwise ``compile_fn(fn)``, stored for next time.

    ``compile_fn(f)`` must jit, lower and compile ``f`` for the inputs. Only a
    program that XLA compiled there and then is stored: on XLA:CPU (jaxlib 0.10)
    an executable that jax loaded from its persistent cache serialises without
    its machine code, and the copy fails when run ("Function ... not found"). So
    ``compile_fn`` is given a new alias of ``fn`` (else jax may hand back the
    executable it holds for ``fn``) and jax's persistent cache is bypassed.
    """
    key = _key(program, inputs, options)
    path = None if key is None else disk_cache.entry(key, KIND)
    if key is None or path is None:
        return compile_fn(fn)
    _follow(key)
    compiled = _background.take(path) if _background else _load(path)
    if compiled is None:
        compiled, fresh = _compile_fresh(fn, compile_fn)
        if fresh:
            _store(path, compiled)
    else:
        _prefetch_after(key)
    return compiled


def _follow(key: str) -> None:
    """Remember that ``key`` came after the previous program asked for."""
    global _previous_key
    previous, _previous_key = _previous_key, key
    if previous is None or previous == key:
        return
    link = disk_cache.entry(previous, NEXT)
    if link is None:  # nothing is cached
        return
    if _read_link(link) != key:
        disk_cache.write(link, key.encode())


def _prefetch_after(key: str) -> None:
    """Queue the stored programs that followed ``key`` last time (up to
    :data:`PREFETCH_DEPTH` links on) for deserialising in the background."""
    seen = {key}
    for _ in range(PREFETCH_DEPTH):
        link = disk_cache.entry(key, NEXT)
        if link is None:  # nothing is cached
            return
        following = _read_link(link)
        if following is None or following in seen:
            return
        key = following
        seen.add(key)
        path = disk_cache.entry(key, KIND)
        if path is not None and path.exists():
            _start_background().add(path)


def _read_link(link: Path) -> str | None:
    """The key a ``<key>.jaxstyle-next`` entry names; None if it is missing or is not
    a key (truncated, or another program's file)."""
    try:
        key = link.read_bytes().decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return key if len(key) == 64 and all(c in "0123456789abcdef" for c in key) else None


class _Prefetcher:
    """Deserialises cache entries on one background thread, in the order added."""

    def __init__(self) -> None:
        self.jobs: dict[Path, Future] = {}
        self.added: set[Path] = set()
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="jaxstyle-prefetch", daemon=True)
        self.thread.start()
        atexit.register(self.stop)  # registered after jax's: runs before jax's clean-up

    def _work(self) -> None:
        while (job := self.queue.get()) is not None:
            path, future = job
            if future.set_running_or_notify_cancel():
                future.set_result(_load(path))

    def add(self, path: Path) -> None:
        if path not in self.added:
            self.added.add(path)
            self.jobs[path] = future = Future()
            self.queue.put((path, future))

    def take(self, path: Path) -> jax.stages.Compiled | None:
        """The program at ``path``: the background's copy if it has begun on it,
        else loaded here (not loaded twice)."""
        future = self.jobs.pop(path, None)
        if future is None or future.cancel():
            return _load(path)
        return future.result()

    def stop(self) -> None:
        """Drop what has not begun and wait for what has (a process exits cleanly)."""
        for future in self.jobs.values():
            future.cancel()
        self.queue.put(None)
        self.thread.join()


_background: _Prefetcher | None = None


def _start_background() -> _Prefetcher:
    global _background
    if _background is None:
        _background = _Prefetcher()
    return _background


_events = {"compiles": 0, "cache_hits": 0}


@functools.cache
def _count_compile_events() -> None:
    try:
        from jax._src.dispatch import BACKEND_COMPILE_EVENT
    except ImportError:  # a later jax: no compile is seen, so nothing is stored
        return

    def on_event(event: str, **kwargs: Any) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            _events["cache_hits"] += 1

    def on_duration(event: str, duration_secs: float, **kwargs: Any) -> None:
        if event == BACKEND_COMPILE_EVENT:
            _events["compiles"] += 1

    jax.monitoring.register_event_listener(on_event)
    jax.monitoring.register_event_duration_secs_listener(on_duration)


def _compile_fresh(
    fn: Callable, compile_fn: Callable[[Callable], jax.stages.Compiled]
) -> tuple[jax.stages.Compiled, bool]:
    """``(compile_fn(alias of fn), whether XLA compiled it here)``, with jax's
    persistent cache bypassed (jax decides once per process whether to use it, so
    the switch is its module's own flag; if that is gone, the events still tell)."""
    from jax._src import compilation_cache as jax_cache

    _count_compile_events()
    before = dict(_events)
    alias = functools.wraps(fn)(lambda *args, **kwargs: fn(*args, **kwargs))
    settle = getattr(jax_cache, "is_cache_used", None)
    if settle is not None:
        settle(jax.devices()[0].client)  # jax's once-per-process decision, made now
    used = getattr(jax_cache, "_cache_used", None)
    if used is not None:
        jax_cache._cache_used = False
    try:
        compiled = compile_fn(alias)
    finally:
        if used is not None:
            jax_cache._cache_used = used
    compiled_here = _events["compiles"] > before["compiles"]
    return compiled, compiled_here and _events["cache_hits"] == before["cache_hits"]


def caching() -> bool:
    """Whether programs are cached: the directory is enabled and this is the only
    process (a multi-process run compiles as usual)."""
    return disk_cache.enabled() and jax.process_count() == 1


def _key(program, inputs, options) -> str | None:
    if program is None or inputs is None:
        return None
    return environment_digest(program, inputs, options)


def environment_digest(*parts: Any) -> str | None:
    """A disk-cache key for ``parts`` (values with a stable ``repr``) as computed in
    this environment: jaxstyle's source, library versions, tracing configuration,
    ``XLA_FLAGS``, devices and host CPU, which decide what programs compute down
    to rounding. None where nothing is cached (see :func:`caching`) or a part
    has no stable repr."""
    if not caching():
        return None
    try:
        tracing = _tracing_config()
    except (ImportError, AttributeError):  # a later jax: nothing is keyed
        return None
    text = repr((*parts, _environment(), tracing, _devices()))
    if " at 0x" in text:  # an object without a stable repr: cannot be keyed
        return None
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _environment() -> tuple:
    source = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        source.update(path.name.encode() + b"\0" + path.read_bytes())
    versions: list[tuple[str, str | None]] = []
    for name in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            versions.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((name, None))
    return source.hexdigest(), tuple(versions), os.environ.get("XLA_FLAGS", ""), _host_cpu()


def _host_cpu() -> str:
    """The host's CPU model and instruction-set flags (XLA:CPU compiles for them), as
    far as Linux tells; the machine type elsewhere."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return hashlib.sha256("\n".join(sorted(set(wanted))).encode()).hexdigest()


def _tracing_config() -> tuple:
    """jax's configuration that jit's own trace cache keys on (x64, matmul
    precision, dtype promotion, ...), minus objects without a stable repr."""
    from jax._src import config

    return tuple(v for v in config.trace_context() if " at 0x" not in repr(v))


def _devices() -> tuple:
    devices = jax.devices()
    return devices[0].client.platform_version, tuple((d.id, d.device_kind) for d in devices)


def _load(path: Path) -> jax.stages.Compiled | None:
    from jax.experimental import serialize_executable

    try:
        serialized, in_tree, out_tree, device_ids = pickle.loads(_decompress(path.read_bytes()))
        by_id = {d.id: d for d in jax.devices()}
        compiled = serialize_executable.deserialize_and_load(
            serialized, in_tree, out_tree, execution_devices=[by_id[i] for i in device_ids]
        )
    except Exception:  # missing, truncated, or from an incompatible build: compile anew
        return None
    disk_cache.used(path)
    return compiled


def _device_ids(compiled: jax.stages.Compiled) -> list[int]:
    """The devices ``compiled`` runs on: loaded without them, an executable is put on
    every device of the process (jax's default), and a one-device program then
    expects its inputs in as many shards as there are devices."""
    shardings = jax.tree.leaves((compiled.input_shardings, compiled.output_shardings))
    return sorted({d.id for s in shardings for d in s.device_set})


def _store(path: Path, compiled: jax.stages.Compiled) -> None:
    from jax.experimental import serialize_executable

    try:
        payload = pickle.dumps((*serialize_executable.serialize(compiled), _device_ids(compiled)))
    except Exception:  # not serialisable here: the run goes on uncached
        return
    disk_cache.write(path, _compress(payload))


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""A zstd frame's first bytes: entries are zstd where ``zstandard`` imports, else zlib."""


def _compress(data: bytes) -> bytes:
    """zstd (a dependency; as jax's own cache) or, where it is missing, zlib: a cache
    must not fail the run it serves."""
    try:
        import zstandard
    except ImportError:
        import zlib

        return zlib.compress(data, 1)
    return zstandard.ZstdCompressor(level=3).compress(data)


def _decompress(data: bytes) -> bytes:
    """:func:`_compress`'s input, whichever codec wrote it (an unreadable entry raises)."""
    if data.startswith(ZSTD_MAGIC):
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data)
    import zlib

    return zlib.decompress(data)
