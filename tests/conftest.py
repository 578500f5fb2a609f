"""Shared test set-up: persistent compilation cache, strict JAX, real weights once."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

# XLA:CPU's collectives abort once a device's thread has waited 40 s for the others, which
# the multi-device subprocesses (their XLA_FLAGS start with these) exceeded on a loaded
# 2-core machine; set before jax reads XLA_FLAGS, for this process and the CLI's alike
os.environ["XLA_FLAGS"] = " ".join(
    [
        os.environ.get("XLA_FLAGS", ""),
        "--xla_cpu_collective_call_terminate_timeout_seconds=900",
        "--xla_cpu_collective_call_warn_stuck_timeout_seconds=300",
    ]
).strip()

import jax  # noqa: E402
import pytest

from jaxstyle import disk_cache

ROOT = Path(__file__).resolve().parent.parent
SHARED_IMAGES = ROOT.parent / "shared" / "images"

CACHE = ROOT / ".cache" / "jax"
os.environ["JAXSTYLE_CACHE"] = str(CACHE)  # the CLI's cache: the same directory
jax.config.update("jax_compilation_cache_dir", str(CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
disk_cache.enable(CACHE)  # as the CLI does: jaxstyle's programs load without tracing
jax.config.update("jax_numpy_rank_promotion", "raise")
# the same in the CLI subprocesses: their programs then have the same keys in the
# executable cache as this process's (the tracing configuration is part of a key)
os.environ["JAX_NUMPY_RANK_PROMOTION"] = "raise"


@pytest.fixture(scope="session")
def vgg_weights():
    """The real VGG19 weights (fetched into weights/ on first use)."""
    import jaxstyle

    return jaxstyle.load_vgg19()


@pytest.fixture(scope="session")
def shared_image():
    """Path of a photograph or painting in ../shared/images."""

    def get(name: str) -> Path:
        path = SHARED_IMAGES / name
        if not path.exists():
            pytest.fail(f"{path} is missing: the tests need ../shared/images beside the checkout")
        return path

    return get


@pytest.fixture
def sigterm_after():
    """A stand-in for ``jaxstyle.resume.stop_requests`` (patch ``jaxstyle.cells``'s):
    ``sigterm_after(n)`` reports SIGTERM (or ``signum``) from the n-th poll on (runs poll
    once after every step, and once after every segment between checkpoints)."""

    @contextlib.contextmanager
    def stop_requests(polls: int, signum: int = signal.SIGTERM):
        count = [0]

        def stopped():
            count[0] += 1
            return signum if count[0] >= polls else 0

        yield stopped

    return stop_requests


os.environ.setdefault("TQDM_DISABLE", "1")
