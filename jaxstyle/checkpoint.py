"""Every Orbax call of jaxstyle lives here: saving and loading pytrees of arrays."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from orbax.checkpoint import v1 as ocp

# Orbax logs each save/load at INFO through absl; keep the CLI quiet.
logging.getLogger("absl").setLevel(logging.WARNING)


def save_tree(path: Path, tree: Any) -> None:
    """Write a pytree of arrays to the (new) directory ``path``."""
    ocp.save(Path(path).absolute(), tree)


def load_tree(path: Path) -> Any:
    """Read back a pytree written by :func:`save_tree`, as NumPy arrays."""
    return ocp.load(Path(path).absolute())
