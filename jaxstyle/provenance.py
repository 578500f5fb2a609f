"""Provenance of a result, recorded in every run record (OUT.json, sweep.json, batch jobs)."""

from __future__ import annotations

import json
import math
import platform
from typing import Any


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


def record_text(record: Any) -> str:
    """A JSON record as indented text; NaN and infinities (a diverged loss) are written
    as null, since strict JSON parsers reject bare ``NaN``/``Infinity``."""

    def finite(value: Any) -> Any:
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(record), indent=1, allow_nan=False) + "\n"
