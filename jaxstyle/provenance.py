"""Provenance of a result, recorded in every run record (OUT.json, sweep.json, batch jobs)."""

from __future__ import annotations

import platform


def run_metadata() -> dict:
    """What produced a result: package versions, jax backend, devices, machine (JSON-able)."""
    import jax

    import jaxstyle

    versions = {"jaxstyle": jaxstyle.__version__, "python": platform.python_version()}
    for name in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {
        "versions": versions,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.machine(),
    }
