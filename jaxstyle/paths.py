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


def umask() -> int:
    """The process's file mode creation mask (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
