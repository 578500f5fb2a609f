"""Every Orbax call of jaxstyle lives here: saving and loading pytrees of arrays.

Orbax is imported at the first call: it takes 0.5-0.8 s to import on a 2-core
CPU, which a warm start that reads its weights from the disk cache's copy
(:func:`jaxstyle.weights.load`) and saves no checkpoint need not spend.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

# Orbax logs each save/load at INFO through absl; keep the CLI quiet.
logging.getLogger("absl").setLevel(logging.WARNING)

# Orbax saves from two threads of one process at once can fail (seen: tensorstore NOT_FOUND
# in one thread's own temporary directory, then EEXIST), so a process runs one at a time;
# processes stay independent (each writes its own directory, then renames it).
_ONE_AT_A_TIME = threading.RLock()


def save_tree(path: Path, tree: Any) -> None:
    """Write a pytree of arrays to the (new) directory ``path``."""
    from orbax.checkpoint import v1 as ocp

    with _ONE_AT_A_TIME:
        # orbax annotates the path as an etils epath.Path or a str; it takes any os.PathLike
        ocp.save(Path(path).absolute(), tree)  # pyrefly: ignore[bad-argument-type]


def load_tree(path: Path) -> Any:
    """Read back a pytree written by :func:`save_tree`, as NumPy arrays."""
    from orbax.checkpoint import v1 as ocp

    with _ONE_AT_A_TIME:
        # orbax annotates the path as an etils epath.Path or a str; it takes any os.PathLike
        return ocp.load(Path(path).absolute())  # pyrefly: ignore[bad-argument-type]
