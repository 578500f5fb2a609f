"""Provenance of a result, recorded in every run record (OUT.json, sweep.json, batch jobs)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
from collections.abc import Sequence
from typing import Any

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")
"""The packages whose versions a record and ``jaxstyle --version`` name."""


def versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """jaxstyle's version, each installed one of :data:`PACKAGES`' and ``extra``'s
    (e.g. torch) and Python's, read from the packages' metadata (nothing is imported)."""
    from importlib import metadata

    from jaxstyle import __version__

    found = {"jaxstyle": __version__}
    for name in (*PACKAGES, *extra):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return {**found, "python": platform.python_version()}


def run_metadata() -> dict:
    """What produced a result: package versions, jax backend, devices, machine, and the
    directory the run started in, which its relative input paths are relative to
    (JSON-able)."""
    import jax

    return {
        "versions": versions(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.machine(),
        "directory": os.getcwd(),
    }


def run_sources(result: Any) -> dict:
    """A result's ``inputs`` (image paths) and ``weights`` (set name) entries of its
    record, those it knows (a result of arrays has no ``inputs``)."""
    return {k: getattr(result, k) for k in ("inputs", "weights") if getattr(result, k) is not None}


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
