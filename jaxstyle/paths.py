"""Paths the user gives: checked to be paths before anything opens them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jaxstyle.errors import JaxstyleError


def user_path(value: Any, what: str) -> Path:
    """``value`` (a str or ``os.PathLike``) as a Path; anything else, or an empty
    path, is a :class:`JaxstyleError` naming ``what`` (e.g. "an image path")."""
    if not isinstance(value, (str, os.PathLike)):
        raise JaxstyleError(f"{what} must be a str or path, not {type(value).__name__}")
    if not os.fspath(value):
        raise JaxstyleError(f"{what} is empty")
    return Path(value)


def check_creatable(path: Path) -> None:
    """A :class:`JaxstyleError` unless ``path`` can be created: its nearest existing
    ancestor is a directory this process may write in."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise JaxstyleError(f"cannot write {path}: {ancestor} is a file, not a directory")
    if ancestor.is_dir() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise JaxstyleError(f"cannot write {path}: the directory {ancestor} is not writable")


def umask() -> int:
    """The process's file mode creation mask (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
