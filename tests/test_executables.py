"""The disk cache of compiled programs: warm processes skip tracing, keys that tell
programs apart, and a cache that can only ever cost a compile, never a wrong result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxstyle import disk_cache, executables
from jaxstyle.errors import JaxstyleError
from jaxstyle.executables import keyed, load_or_compile, program_key, signature
from jaxstyle.objective import make_loss_fn

ROOT = Path(__file__).resolve().parent.parent

# One stylize (or, with a "style_weight" list, a sweep) in a fresh process: jax's
# persistent cache is the suite's (so compiles are shared), the executable cache is the
# test's own. Prints how often VGG19 and the loss were traced, and saves the image(s).
RUN = """
import json, sys
import jax, numpy as np
import jaxstyle
from jaxstyle import batching, disk_cache, executables, objective
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
disk_cache.enable(sys.argv[2])
traces = {"features": 0, "total_loss": 0}
def counted(name, fn):
    def wrapper(*a, **k):
        traces[name] += 1
        return fn(*a, **k)
    return wrapper
objective._features = counted("features", objective._features)
objective.total_loss = counted("total_loss", objective.total_loss)
batching.total_loss = objective.total_loss  # the sweep's loss (imported by name there)
settings = json.loads(sys.argv[4])
if isinstance(settings.get("style_weight"), list):
    result = jaxstyle.sweep(sys.argv[5], sys.argv[6], size=64, steps=3, **settings)
    image, final = result.images, {k: v.tolist() for k, v in result.final.items()}
else:
    result = jaxstyle.stylize(sys.argv[5], sys.argv[6], size=64, steps=3, **settings)
    image, final = result.image, result.final
np.save(sys.argv[3], image)
print(json.dumps({"traces": traces, "final": final}))
"""


def _run_fresh(tmp_path, pair, name, **settings):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cmd = [
        sys.executable,
        "-c",
        RUN,
        os.environ["JAXSTYLE_CACHE"],
        str(tmp_path / "executables"),
        str(tmp_path / f"{name}.npy"),
        json.dumps(settings),
        *map(str, pair),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["traces"], out["final"], np.load(tmp_path / f"{name}.npy")


def test_a_warm_process_traces_nothing_and_gets_the_same_image(tmp_path, shared_image):
    """L-BFGS stylize (targets, start, steps, final losses) in fresh processes: the
    first traces and stores every program; the second loads them all and traces VGG19
    not once, with a bit-identical image; a third with other loss weights (arrays, not
    part of the program) also loads them. Programs of other settings or shapes have
    other keys (the unit tests below)."""
    pair = shared_image("tubingen.jpg"), shared_image("starry_night.jpg")
    cold_traces, cold_final, cold = _run_fresh(tmp_path, pair, "cold", optimizer="lbfgs")
    assert cold_traces["features"] > 0 and cold_traces["total_loss"] > 0
    stored = list((tmp_path / "executables").glob("*.jaxstyle-exe"))
    assert len(stored) >= 5  # kernel transforms, content features, Grams, init, step, loss

    warm_traces, warm_final, warm = _run_fresh(tmp_path, pair, "warm", optimizer="lbfgs")
    assert warm_traces == {"features": 0, "total_loss": 0}
    np.testing.assert_array_equal(warm, cold)
    assert warm_final == cold_final

    traces, final, image = _run_fresh(tmp_path, pair, "other", optimizer="lbfgs", style_weight=1.0)
    assert traces == {"features": 0, "total_loss": 0}
    assert final["style"] != cold_final["style"] and not np.array_equal(image, cold)


def test_a_warm_sweep_traces_nothing_and_gets_the_same_images(tmp_path, shared_image):
    """A sweep's programs (vmapped start, step and final losses) are stored too: a
    second process runs the same sweep without tracing VGG19, bit-identically."""
    pair = shared_image("tubingen.jpg"), shared_image("starry_night.jpg")
    sweep = dict(optimizer="adam", style_weight=[1e2, 1e4])
    cold_traces, cold_final, cold = _run_fresh(tmp_path, pair, "cold", **sweep)
    assert cold_traces["total_loss"] > 0 and cold.shape[0] == 2
    warm_traces, warm_final, warm = _run_fresh(tmp_path, pair, "warm", **sweep)
    assert warm_traces == {"features": 0, "total_loss": 0}
    np.testing.assert_array_equal(warm, cold)
    assert warm_final == cold_final


@pytest.fixture
def cache(tmp_path):
    previous = disk_cache.enable(tmp_path)
    yield tmp_path
    disk_cache.enable(previous)


def _scale_and_add(x, y):
    return 2.0 * x + y


keyed(_scale_and_add, "a test program")  # not jaxstyle's own: it needs a key


def _unkeyed(x):
    return x


def _compile_counted(fn, args, counter, donate=()):
    def compile_fn(f):
        counter.append(1)
        return jax.jit(f, donate_argnums=donate).lower(*args).compile()

    return load_or_compile(program_key(fn), signature(args), fn, compile_fn)


def test_stored_program_loads_without_compiling_and_keeps_donation(cache):
    x, y = jnp.arange(4.0), jnp.ones(4)
    compiles = []
    first = _compile_counted(_scale_and_add, (x, y), compiles, donate=(0,))
    second = _compile_counted(_scale_and_add, (x, y), compiles, donate=(0,))
    assert len(compiles) == 1
    np.testing.assert_array_equal(second(jnp.arange(4.0), y), first(jnp.arange(4.0), y))
    donated = jnp.arange(4.0)
    second(donated, y)
    assert donated.is_deleted()


def test_a_labelled_run_prefetches_what_the_last_one_asked_for(cache, monkeypatch):
    monkeypatch.setattr(executables, "_background", None)
    runs = [(jnp.ones(n), jnp.ones(n)) for n in (2, 3, 4)]
    compiles, first = [], []
    executables.prefetch("a test run")
    for args in runs:
        first.append(_compile_counted(_scale_and_add, args, compiles))
    assert len(compiles) == 3 and executables._background is None  # nothing stored before

    loads = []  # threads that load this test's entries (other tests' prefetcher may be busy)
    load = executables._load

    def logged(path):
        if path.parent == cache:
            loads.append(threading.current_thread())
        return load(path)

    monkeypatch.setattr(executables, "_load", logged)
    executables.prefetch("a test run")  # a new run under the same label
    background = executables._background
    for future in list(background.jobs.values()):
        future.result()  # all three deserialised ahead, on the background thread
    assert loads == [background.thread] * 3
    for args, compiled in zip(runs, first, strict=True):
        again = _compile_counted(_scale_and_add, args, compiles)
        np.testing.assert_array_equal(again(*args), compiled(*args))
    assert len(compiles) == 3 and len(loads) == 3  # taken, neither compiled nor loaded again
    background.stop()
    assert not background.thread.is_alive()


def test_prefetch_follows_the_remembered_order_and_skips_what_is_gone(cache, monkeypatch):
    monkeypatch.setattr(executables, "_background", None)
    runs = [(jnp.ones(n), jnp.ones(n)) for n in (5, 6, 7)]
    entries = [
        disk_cache.entry(executables._key(program_key(_scale_and_add), signature(a), None), "exe")
        for a in runs
    ]
    executables.prefetch("another run")
    for args in runs:
        _compile_counted(_scale_and_add, args, [])
    entries[1].unlink()  # e.g. removed by the size limit
    executables.prefetch("another run")
    assert list(executables._background.jobs) == [entries[0], entries[2]]
    executables._background.stop()


def test_garbled_order_links_are_ignored_and_rewritten(cache, monkeypatch):
    """A ``.jaxstyle-next`` file that is not a key (binary garbage, a truncated key) is
    no link: nothing is prefetched from it, nothing crashes, and it is written anew."""
    monkeypatch.setattr(executables, "_background", None)
    runs = [(jnp.ones(n), jnp.ones(n)) for n in (8, 9)]
    executables.prefetch("a garbled run")
    for args in runs:
        _compile_counted(_scale_and_add, args, [])
    links = sorted(cache.glob("*.jaxstyle-next"))
    assert links
    for link, junk in zip(links, [b"\xff\xfe\x00 not text", b"0" * 63], strict=False):
        link.write_bytes(junk)
    executables.prefetch("a garbled run")
    assert executables._background is None  # no entry queued from a garbled link
    for args in runs:
        _compile_counted(_scale_and_add, args, [])
    assert all(len(executables._read_link(link) or "") == 64 for link in links)


def test_other_shapes_or_dtypes_are_other_programs(cache):
    compiles = []
    for x in (jnp.ones(4), jnp.ones(5), jnp.ones(4, jnp.bfloat16), jnp.ones(4)):
        _compile_counted(_scale_and_add, (x, x), compiles)
    assert len(compiles) == 3


def test_corrupt_entry_is_compiled_anew_and_replaced(cache):
    args = (jnp.ones(3), jnp.ones(3))
    compiles = []
    _compile_counted(_scale_and_add, args, compiles)
    (entry,) = cache.glob("*.jaxstyle-exe")
    entry.write_bytes(b"not an executable")
    result = _compile_counted(_scale_and_add, args, compiles)
    np.testing.assert_array_equal(result(*args), 3.0 * np.ones(3))
    assert len(compiles) == 2
    _compile_counted(_scale_and_add, args, compiles)  # the replacement loads
    assert len(compiles) == 2


def test_without_zstandard_entries_are_zlib_and_both_codecs_load(cache, monkeypatch):
    args = (jnp.ones(3), jnp.ones(3))
    compiles = []
    _compile_counted(_scale_and_add, args, compiles)  # written with zstd
    (entry,) = cache.glob("*.jaxstyle-exe")
    assert entry.read_bytes().startswith(executables.ZSTD_MAGIC)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # `import zstandard` fails
    _compile_counted(_scale_and_add, args, compiles)  # a zstd entry needs zstandard
    assert len(compiles) == 2 and not entry.read_bytes().startswith(executables.ZSTD_MAGIC)
    result = _compile_counted(_scale_and_add, args, compiles)  # the zlib entry loads
    np.testing.assert_array_equal(result(*args), 3.0 * np.ones(3))
    monkeypatch.undo()
    _compile_counted(_scale_and_add, args, compiles)  # so it does with zstandard there
    assert len(compiles) == 2


# A program in three fresh processes sharing jax's persistent cache and the executable
# cache: "jax" compiles it into jax's cache; "store" first runs it through jax.jit (so
# that jax holds the executable it loaded from its cache in memory), then stores it in
# the executable cache; "load" loads it from there (no compile) and runs it.
CONV_PROGRAM = """
import sys
import jax, jax.numpy as jnp, numpy as np
from jaxstyle import disk_cache
from jaxstyle.executables import keyed, load_or_compile, program_key, signature
jax.config.update("jax_compilation_cache_dir", sys.argv[2])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
def conv_gradient(x, w):
    def loss(x):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=CONV)
        return jnp.sum(jnp.transpose(y, (0, 2, 1, 3)) ** 2)
    return jax.grad(loss)(x)
CONV = ("NHWC", "HWIO", "NHWC")
keyed(conv_gradient, "a test program")
x, w = jnp.ones((1, 8, 8, 4)), jnp.full((3, 3, 4, 4), 0.5)
compiles = []
def compile_fn(f):
    compiles.append(f)
    return jax.jit(f).lower(x, w).compile()
if sys.argv[1] == "jax":
    np.save(sys.argv[3], jax.jit(conv_gradient).lower(x, w).compile()(x, w))
    sys.exit()
if sys.argv[1] == "store":
    jax.jit(conv_gradient)(x, w)
disk_cache.enable(sys.argv[3])
compiled = load_or_compile(program_key(conv_gradient), signature((x, w)), conv_gradient, compile_fn)
np.save(sys.argv[4], compiled(x, w))
print(len(compiles))
"""


def test_program_that_jax_loaded_from_its_cache_is_stored_whole(tmp_path):
    """On XLA:CPU an executable read from jax's persistent cache re-serialises without
    its machine code ("Function transpose_copy_fusion not found" when run), and jax
    keeps it in memory for the function: the stored program must be a compile of its own."""

    def run(*args):
        cmd = [sys.executable, "-c", CONV_PROGRAM, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.split()

    jax_cache, ours = str(tmp_path / "jax"), str(tmp_path / "ours")
    run("jax", jax_cache, str(tmp_path / "expected.npy"))
    assert run("store", jax_cache, ours, str(tmp_path / "stored.npy")) == ["1"]
    assert run("load", jax_cache, ours, str(tmp_path / "loaded.npy")) == ["0"]
    expected = np.load(tmp_path / "expected.npy")
    for name in ("stored", "loaded"):
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.npy"), expected)


def test_disabled_or_unkeyable_programs_always_compile(cache):
    args = (jnp.ones(3), jnp.ones(3))
    compiles = []
    for _ in range(2):
        _compile_counted(lambda x, y: x - y, args, compiles)  # no key: not stored
    disk_cache.enable(None)
    for _ in range(2):
        _compile_counted(_scale_and_add, args, compiles)
    assert len(compiles) == 4
    assert not list(cache.glob("*.jaxstyle-exe"))


def test_program_keys():
    from jaxstyle.objective import Objective

    assert program_key(_unkeyed) is None  # not jaxstyle's: its source is not hashed
    assert program_key(jax.numpy.sin) is None
    assert program_key(make_loss_fn) == ("jaxstyle.objective", "make_loss_fn")
    relu4 = Objective(content_layers=("relu4_2",), style_layers=("relu1_1",))
    relu3 = Objective(content_layers=("relu3_2",), style_layers=("relu1_1",))
    assert program_key(make_loss_fn(relu4)) != program_key(make_loss_fn(relu3))
    assert program_key(make_loss_fn(relu4)) == program_key(make_loss_fn(relu4))
    assert program_key(keyed(lambda x: x, make_loss_fn(relu4), 3))[2:] == (
        program_key(make_loss_fn(relu4)),
        3,
    )
    assert program_key(keyed(lambda x: x, lambda y: y)) is None  # built on an unkeyed function


def test_signature_tells_weak_types_and_structures_apart():
    assert signature((1.0,)) != signature((np.float32(1.0),))
    assert signature({"a": np.ones(2)}) != signature({"b": np.ones(2)})
    assert signature((np.ones(2),)) == signature((jax.ShapeDtypeStruct((2,), np.float64),))


def test_one_device_placements_are_told_apart_by_device_not_spec():
    """A sweep's carry restored from a checkpoint (spec P("cells")) and a fresh one
    (some leaves P()) on one device: the same program, the same key."""
    mesh = Mesh(np.array(jax.devices()[:1]), ("cells",))
    x = np.ones((2, 3), np.float32)
    specs = [NamedSharding(mesh, P("cells")), NamedSharding(mesh, P()), jax.devices()[0]]
    placed = {signature((jax.device_put(x, s),)) for s in specs}
    assert len(placed) == 1 and placed != {signature((x,))}  # committed or not: told apart


def test_inputs_on_several_devices_are_not_cached():
    code = (
        "import jax, numpy as np\n"
        "from jax.sharding import Mesh, NamedSharding, PartitionSpec as P\n"
        "from jaxstyle.executables import signature\n"
        "mesh = Mesh(np.array(jax.devices()), ('d',))\n"
        "x = jax.device_put(np.ones((4, 2)), NamedSharding(mesh, P('d')))\n"
        "one = jax.device_put(np.ones((4, 2)), jax.devices()[1])\n"
        "zero = jax.device_put(np.ones((4, 2)), jax.devices()[0])\n"
        "print(signature((x,)) is None, signature((one,)) is None)\n"
        "print(signature((one,)) != signature((zero,)))\n"
    )
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=2",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "False", "True"]


def test_a_stored_one_device_program_loads_onto_its_device_among_several(tmp_path):
    """With 2 devices, a program for inputs on one device (uncommitted: the default
    device; committed: device 1) is stored and loaded back onto that device alone.
    Loaded onto every device (jax's default), it expected 2 shards of each input
    and a warm `jaxstyle stylize` on a 2-GPU machine failed at its first program."""
    code = (
        "import sys, jax, numpy as np\n"
        "from jaxstyle import disk_cache\n"
        "from jaxstyle.executables import keyed, load_or_compile, program_key, signature\n"
        "disk_cache.enable(sys.argv[1])\n"
        "def double(x):\n"
        "    return 2.0 * x\n"
        "keyed(double, 'a test program')\n"
        "compiles = []\n"
        "def compile_fn(f):\n"
        "    compiles.append(1)\n"
        "    return jax.jit(f).lower(x).compile()\n"
        "for x in (np.arange(3.0), jax.device_put(np.arange(3.0), jax.devices()[1])):\n"
        "    for _ in range(2):  # compiled and stored, then loaded\n"
        "        y = load_or_compile(program_key(double), signature((x,)), double, compile_fn)(x)\n"
        "        print(y.tolist(), sorted(d.id for d in y.devices()), len(compiles))\n"
    )
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=2",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [
        "[0.0, 2.0, 4.0] [0] 1",
        "[0.0, 2.0, 4.0] [0] 1",
        "[0.0, 2.0, 4.0] [1] 2",
        "[0.0, 2.0, 4.0] [1] 2",
    ]


def test_least_recently_used_entries_go_beyond_the_size_limit(cache, monkeypatch):
    compiles = []
    _compile_counted(_scale_and_add, (jnp.ones(2), jnp.ones(2)), compiles)
    (first,) = cache.glob("*.jaxstyle-exe")
    monkeypatch.setattr(disk_cache, "MAX_BYTES", int(first.stat().st_size * 2.5))
    os.utime(first, (1, 1))  # the oldest
    for n in (3, 4):
        _compile_counted(_scale_and_add, (jnp.ones(n), jnp.ones(n)), compiles)
    remaining = list(cache.glob("*.jaxstyle-exe"))
    assert len(remaining) == 2 and first not in remaining


def test_an_entry_that_cannot_be_removed_is_passed_over(cache, monkeypatch):
    """A directory under an entry's name (or another user's file) is left alone when the
    size limit removes the oldest: the newer entries go instead, and nothing fails."""
    in_the_way = cache / "foreign.jaxstyle-exe"
    in_the_way.mkdir()
    os.utime(in_the_way, (1, 1))  # the oldest
    monkeypatch.setattr(disk_cache, "MAX_BYTES", 1)
    assert disk_cache.write(cache / "new.jaxstyle-targets", b"entry")
    assert in_the_way.is_dir() and not (cache / "new.jaxstyle-targets").exists()


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt])
def test_a_write_that_fails_leaves_no_partial_file(cache, monkeypatch, failure):
    """A full disk (a miss: False) or Ctrl-C (raised on) while an entry is written leaves
    neither the entry nor its temporary file (which nothing would ever remove)."""

    def fail(*args):
        raise failure

    monkeypatch.setattr(os, "replace", fail)
    if isinstance(failure, OSError):
        assert disk_cache.write(cache / "a.jaxstyle-targets", b"entry") is False
    else:
        with pytest.raises(KeyboardInterrupt):
            disk_cache.write(cache / "a.jaxstyle-targets", b"entry")
    assert list(cache.iterdir()) == []


def test_enable_compilation_cache_turns_on_both_caches(tmp_path, monkeypatch):
    import jaxstyle

    saved = {
        name: getattr(jax.config, name)
        for name in ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    }
    previous = disk_cache.enable(None)
    labels = []
    monkeypatch.setattr(executables, "prefetch", labels.append)
    try:
        monkeypatch.setenv("JAXSTYLE_CACHE", str(tmp_path / "env"))
        assert jaxstyle.enable_compilation_cache() == tmp_path / "env"
        assert jaxstyle.enable_compilation_cache(tmp_path / "mine") == tmp_path / "mine"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine")
        assert labels == []
        jaxstyle.enable_compilation_cache(tmp_path / "mine", run_label="cli stylize")
        assert labels == ["cli stylize"]
        assert disk_cache.enable(None) == tmp_path / "mine"
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("JAXSTYLE_CACHE", "~/cache")  # as quoted: no literal "~" directory
        assert jaxstyle.enable_compilation_cache() == tmp_path / "home" / "cache"
        assert (tmp_path / "home" / "cache").is_dir() and not (tmp_path / "~").exists()
        (tmp_path / "a file").write_text("not a directory")
        with pytest.raises(JaxstyleError, match="not a writable directory: give one of yours$"):
            jaxstyle.enable_compilation_cache(tmp_path / "a file")  # not the variable's fault
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o777)
        shared.chmod(0o777)  # anyone may plant an entry: a pickle, run when read
        with pytest.raises(JaxstyleError, match="shared is not yours alone .*pickles"):
            jaxstyle.enable_compilation_cache(shared)
        monkeypatch.setattr(os, "getuid", lambda: os.stat(tmp_path).st_uid + 1)
        with pytest.raises(JaxstyleError, match="mine is not yours alone"):  # another's
            jaxstyle.enable_compilation_cache(tmp_path / "mine")
    finally:
        disk_cache.enable(previous)
        for name, value in saved.items():
            jax.config.update(name, value)
