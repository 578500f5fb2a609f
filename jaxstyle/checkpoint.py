"""Every Orbax call of jaxstyle lives here: saving and loading pytrees of arrays.

Orbax is imported at the first call: it takes 0.5-0.8 s to import on a 2-core
CPU, which a warm start that reads its weights from the disk cache's copy
(:func:`jaxstyle.weights.load`) and saves no checkpoint need not spend.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from jaxstyle.errors import brief

# Orbax logs each save/load at INFO through absl; keep the CLI quiet.
logging.getLogger("absl").setLevel(logging.WARNING)

# Orbax saves from two threads of one process at once can fail (seen: tensorstore NOT_FOUND
# in one thread's own temporary directory, then EEXIST), so a process runs one at a time;
# processes stay independent (each writes its own directory, then renames it).
_ONE_AT_A_TIME = threading.RLock()
_DROPPING = False  # whether _drop_leftovers has run


class TreeIOError(ValueError):
    """An Orbax save or load that failed; the message is its reason, in one short line."""


def _drop_leftovers() -> None:
    """When an Orbax call fails, its other reads and writes still finish in TensorStore's
    threads, into its closed event loop: drop (from the first call on) the "Task
    exception was never retrieved" logs, "Event loop is closed" errors and Orbax's own
    logs of the error, which would print tracebacks beside the one-line error."""
    global _DROPPING
    if _DROPPING:
        return
    _DROPPING = True
    logging.getLogger("asyncio").addFilter(
        lambda record: "exception was never retrieved" not in record.getMessage()
    )
    logging.getLogger("absl").addFilter(  # Orbax's threads, failing with the same error
        lambda record: "_SignalingThread.run() raised an exception" not in record.getMessage()
    )
    previous = sys.unraisablehook

    def hook(unraisable):
        if not (
            isinstance(unraisable.exc_value, RuntimeError)
            and "loop is closed" in str(unraisable.exc_value)
        ):
            previous(unraisable)

    sys.unraisablehook = hook


def save_tree(path: Path, tree: Any) -> None:
    """Write a pytree of arrays to the (new) directory ``path``; :class:`TreeIOError`
    if it fails (its partial temporary directory removed)."""
    from orbax.checkpoint import v1 as ocp

    _drop_leftovers()
    with _ONE_AT_A_TIME:
        try:
            # orbax annotates the path as an etils epath.Path or a str; it takes any os.PathLike
            ocp.save(Path(path).absolute(), tree)  # pyrefly: ignore[bad-argument-type]
        except Exception as err:  # Orbax and TensorStore raise many kinds (full disk: ValueError)
            for tmp in Path(path).parent.glob(f"{Path(path).name}.orbax-checkpoint-tmp*"):
                shutil.rmtree(tmp, ignore_errors=True)
            raise TreeIOError(brief(err)) from err


def load_tree(path: Path) -> Any:
    """Read back a pytree written by :func:`save_tree`, as NumPy arrays;
    :class:`TreeIOError` if it cannot be read."""
    from orbax.checkpoint import v1 as ocp

    _drop_leftovers()
    with _ONE_AT_A_TIME:
        try:
            # orbax annotates the path as an etils epath.Path or a str; it takes any os.PathLike
            return ocp.load(Path(path).absolute())  # pyrefly: ignore[bad-argument-type]
        except Exception as err:  # damaged or missing files: many kinds, as above
            raise TreeIOError(brief(err)) from err
