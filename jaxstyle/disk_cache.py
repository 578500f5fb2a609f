"""jaxstyle's cache directory: what a warm start reads instead of redoing work.

Entries are files ``<key>.jaxstyle-<kind>``: compiled programs
(:mod:`jaxstyle.executables`), NumPy copies of weight sets
(:mod:`jaxstyle.weights`) and runs' targets (:mod:`jaxstyle.target_cache`).
Each is written whole or not at all (a complete temporary file renamed over
it); the least recently used go beyond :data:`MAX_BYTES`.
:func:`jaxstyle.enable_compilation_cache` (called by the CLI) enables the
directory, which must be the user's own: entries hold pickles.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MAX_BYTES = 1 << 30
"""The directory's size limit for jaxstyle's entries (1 GiB)."""

_directory: Path | None = None


def enable(directory: str | os.PathLike | None) -> Path | None:
    """Keep entries in ``directory`` (None: keep none); returns the directory used
    until now."""
    global _directory
    previous, _directory = _directory, None if directory is None else Path(directory)
    return previous


def enabled() -> bool:
    """Whether a directory is enabled (:func:`enable`)."""
    return _directory is not None


def entry(key: str, kind: str) -> Path | None:
    """Where the entry ``key`` of ``kind`` (e.g. ``"exe"``) lives; None when disabled."""
    return None if _directory is None else _directory / f"{key}.jaxstyle-{kind}"


def used(path: Path) -> None:
    """Note that the entry ``path`` was read (its recency, for the size limit)."""
    try:
        os.utime(path)
    except OSError:
        pass


def write(path: Path, data: bytes) -> bool:
    """Write the entry ``path`` whole, then keep the directory within :data:`MAX_BYTES`;
    False if it could not be written (no room, no permission: a later miss)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
            tmp = Path(f.name)
            f.write(data)
        os.replace(tmp, path)
    except BaseException as err:  # a full disk, Ctrl-C: no partial file left behind
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            return False
        raise
    _trim(path.parent)
    return True


def write_arrays(path: Path, tree: dict[str, dict]) -> bool:
    """:func:`write` ``{group: {name: array}}`` (e.g. a layer's kernel and bias) as
    an ``.npz`` (no pickles); False if it could not be written."""
    flat = {f"{group}/{name}": np.asarray(a) for group, d in tree.items() for name, a in d.items()}
    buffer = io.BytesIO()
    # numpy's stub fears a key named allow_pickle among the arrays; each of these holds a "/"
    # pyrefly: ignore[bad-argument-type]
    np.savez(buffer, **flat)
    return write(path, buffer.getvalue())


def read_arrays(path: Path) -> dict[str, dict] | None:
    """What :func:`write_arrays` wrote to the entry ``path`` (NumPy arrays), noted as
    used; None if there is none or it is unreadable."""
    try:
        loaded = np.load(path)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # an ``.npy``: another program's
            return None
        with loaded as arrays:
            flat = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    used(path)
    tree: dict[str, dict] = {}
    for key, array in flat.items():
        group, _, name = key.partition("/")
        tree.setdefault(group, {})[name] = array
    return tree


def _trim(directory: Path) -> None:
    entries = []
    for p in directory.glob("*.jaxstyle-*"):
        try:
            stat = p.stat()
        except OSError:
            continue
        entries.append((stat.st_mtime, stat.st_size, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= MAX_BYTES:
            break
        try:
            p.unlink(missing_ok=True)
        except OSError:  # not a file of ours (a directory, another user's): left alone
            continue
        total -= size
