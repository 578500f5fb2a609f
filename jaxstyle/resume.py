"""Resumable runs: checkpoints of a run's state, and SIGTERM/SIGINT as "save and stop".

A :class:`Checkpointing` directory holds ``run.json`` (the fingerprint of the
run: what it computes) and ``step_NNNNNNNN/`` Orbax checkpoints, of which the
newest complete one is kept. Orbax writes a checkpoint under a temporary name
and renames it when complete, so a run killed mid-save (even by SIGKILL)
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxstyle.errors import JaxstyleError
from jaxstyle.images import write_text_atomic
from jaxstyle.settings import check_every

try:
    import fcntl
except ImportError:  # Windows: runs into one directory are not guarded
    fcntl = None

CHECKPOINTS = ".jaxstyle-checkpoint"
"""The checkpoint directory inside a sweep's or batch's output directory."""

STEP = re.compile(r"^step_(\d{8})$")
"""The name of a complete checkpoint's directory (Orbax renames it to that when done)."""


def array_digest(array: Any) -> str:
    """A short SHA-256 of an array's dtype, shape and values (for run fingerprints)."""
    a = np.ascontiguousarray(np.asarray(array))
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()[:16]


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so that a
    fingerprint compares equal to the one saved from it."""
    return json.loads(json.dumps(value))


def recorded_fingerprint(path: Path, key: str = "fingerprint") -> Any:
    """The ``"fingerprint"`` (or ``key``) of the JSON record at ``path``; None if there
    is none."""
    try:
        return json.loads(Path(path).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def json_digest(value: Any) -> str:
    """A short SHA-256 of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


FINGERPRINT_WORDS = {
    "cells": "cells' weights, style scales, blends or seeds",
    "start": "starting images",
    "painted_before": "the frame painted before the chunk",
}
"""How a checkpoint mismatch names the fingerprint's parts that are not plain words."""


def _differing(name: str, saved: Any, mine: Any) -> str:
    """A fingerprint part that differs, in words: with the keys that differ where both
    are dicts (e.g. "settings (learning_rate, steps)"), so that the message says which
    option to give back."""
    if not (isinstance(saved, dict) and isinstance(mine, dict)):
        return name
    keys = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
    return f"{name} ({', '.join(keys)})"


def check_callback(name: str, callback: Any) -> None:
    """Refuse a callback (``callback``, ``on_plan``) that is neither None nor callable
    before the run that would first call it: the one check, and wording, of stylize,
    sweep and batch."""
    if callback is not None and not callable(callback):
        raise JaxstyleError(f"{name} must be a function or None, not {type(callback).__name__}")


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Where and how often a run saves its state.

    Attributes:
      directory: the checkpoint directory (created on the first save).
      fingerprint: a JSON-able description of what the run computes; a
        checkpoint written with another fingerprint is refused, never mixed in.
      every: steps between saves; 0 saves only when the run is interrupted.
      final: also save the finished run's state (a coarse-to-fine pass, which
        the next pass starts from, so that a rerun takes it up instead of
        running it again).
    """

    directory: Path
    fingerprint: dict
    every: int = 0
    final: bool = False

    def for_pass(self, i: int, passes: int, fingerprint: dict | None = None) -> Checkpointing:
        """The checkpoints of pass ``i`` of a run of ``passes`` (coarse-to-fine), with
        ``fingerprint`` (default: this one's): these, for a single pass; else
        ``pass<i>`` under this directory, the fingerprint marked with the pass,
        and a finished pass's state kept (the next pass starts from it)."""
        fingerprint = self.fingerprint if fingerprint is None else fingerprint
        if passes == 1:
            return dataclasses.replace(self, fingerprint=fingerprint)
        return Checkpointing(
            self.directory / f"pass{i}", {**fingerprint, "pass": i}, self.every, i < passes - 1
        )

    def __post_init__(self):
        check_every("checkpoint every", self.every)

    def check_fingerprint(self) -> None:
        """Refuse (:class:`JaxstyleError`, naming what differs) a checkpoint written with
        another fingerprint; none yet is fine."""
        path = self.directory / "run.json"
        if not path.exists():
            return
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise JaxstyleError(f"checkpoint {self.directory} is unreadable: {err}") from None
        mine = as_json(self.fingerprint)
        if saved != mine:
            differ = sorted(
                _differing(FINGERPRINT_WORDS.get(k, k), saved.get(k), mine.get(k))
                for k in set(saved) | set(mine)
                if saved.get(k) != mine.get(k)
            )
            raise JaxstyleError(
                f"checkpoint {self.directory} was written by a run with other settings "
                f"(differing: {', '.join(differ)}); rerun with those, or delete the "
                "checkpoint directory to start over"
            )

    def _steps(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if STEP.match(p.name) and p.is_dir())

    def newest(self) -> int:
        """The step of the newest complete checkpoint; 0 if there is none."""
        steps = self._steps()
        return int(steps[-1].name[5:]) if steps else 0

    def load(self) -> Any | None:
        """The newest saved tree (NumPy leaves), or None if there is none; refuses a
        checkpoint with another fingerprint (:class:`JaxstyleError`)."""
        self.check_fingerprint()
        from jaxstyle.checkpoint import TreeIOError, load_tree

        steps = self._steps()
        if not steps:
            return None
        try:
            return load_tree(steps[-1])
        except TreeIOError as err:
            raise JaxstyleError(
                f"checkpoint {steps[-1]} is unreadable ({err}); "
                f"delete {self.directory} to start over"
            ) from None

    def save(self, step: int, tree: Any) -> None:
        """Save ``tree`` as the state after ``step`` steps and drop older checkpoints."""
        self.check_fingerprint()
        self.directory.mkdir(parents=True, exist_ok=True)
        run_json = self.directory / "run.json"
        if not run_json.exists():
            write_text_atomic(run_json, json.dumps(self.fingerprint, indent=1) + "\n")
        from jaxstyle.checkpoint import TreeIOError, save_tree

        path = self.directory / f"step_{step:08d}"
        try:
            save_tree(path, tree)  # every process calls it (Orbax coordinates them)
        except TreeIOError as err:
            kept = self.newest()
            then = (
                f"the checkpoint of step {kept} is kept: fix that, then rerun "
                "the same command to resume from it"
                if kept
                else "fix that, then rerun the same command"
            )
            raise JaxstyleError(
                f"cannot save a checkpoint in {self.directory}: {err}; {then}"
            ) from None
        for old in self._steps():
            if old != path:
                shutil.rmtree(old, ignore_errors=True)

    @contextlib.contextmanager
    def held(self) -> Generator[None, None, None]:
        """Within the block this run holds the directory (created): another run that
        asks for it meanwhile (the same command started twice, into one output) is
        refused in one line instead of mixing its saves with these, and a save that a
        killed run left unfinished is removed (Orbax would warn of it). The lock (an
        ``flock`` of the directory) ends with the process, even killed; with several
        processes (``jax.distributed``) it is not taken: they all save there."""
        if fcntl is None or jax.process_count() > 1:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JaxstyleError(
                    f"checkpoint {self.directory} is in use by another jaxstyle run; wait "
                    "for it to end (or stop it), or give another output"
                ) from None
            except OSError:  # a filesystem without locks (some network shares): unguarded
                pass
            for tmp in self.directory.glob("step_*.orbax-checkpoint-tmp*"):
                shutil.rmtree(tmp, ignore_errors=True)
            yield
        finally:
            os.close(fd)

    def clear(self) -> None:
        """Remove the checkpoint directory (once the run's outputs are written)."""
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def stop_requests() -> Generator[Callable[[], int], None, None]:
    """Within the block, SIGTERM and SIGINT are recorded instead of ending the process;
    the yielded function returns the first such signal's number (0 while none came).
    With several processes (``jax.distributed``) it is a collective that returns
    the same answer on all of them, so that they stop at the same step.
    A second SIGINT raises ``KeyboardInterrupt`` at once. Outside the main thread
    signals cannot be caught and the function always returns 0."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return
    received: list[int] = []

    def handler(signum, frame):
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)

    def first() -> int:
        return received[0] if received else 0

    def first_anywhere() -> int:
        """The same decision on every process: the first signal any of them got."""
        from jax.experimental import multihost_utils

        return int(multihost_utils.process_allgather(np.int32(first())).max())

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield first if jax.process_count() == 1 else first_anywhere
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
