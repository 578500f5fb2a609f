"""The one exception type users see."""

import re
import signal
from numbers import Integral, Real
from typing import Any

import numpy as np


class JaxstyleError(Exception):
    """A problem with the user's input or environment.

    The CLI prints its message as one line on stderr and exits with status 2;
    library callers can catch it. Messages say what is wrong and how to fix it.
    """


class Interrupted(JaxstyleError):
    """A run stopped by SIGTERM/SIGINT after saving a checkpoint; ``exit_code`` is
    128 + the signal number, as a shell reports a process killed by it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def integer(name: str, value: Any) -> int:
    """``value`` as a Python int, refused unless an integer (not a bool): a
    :class:`JaxstyleError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise JaxstyleError(f"{name} must be an integer, not {value!r}")
    return int(value)


def number(name: str, value: Any) -> Any:
    """``value``, refused unless a real number (not a bool): a :class:`JaxstyleError`
    naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise JaxstyleError(f"{name} must be a number, not {value!r}")
    return value


def boolean(name: str, value: Any) -> bool:
    """``value`` as a Python bool, refused unless a bool (a string such as "no" would be
    true): a :class:`JaxstyleError` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise JaxstyleError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def stopped_by(signum: int) -> str:
    """How a message names the signal that stopped a command: "terminated (SIGTERM)",
    else "interrupted" (SIGINT), the same for stylize, sweep and batch."""
    return "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"


def signal_of(err: KeyboardInterrupt) -> int:
    """The signal a KeyboardInterrupt stands for: SIGINT, or SIGTERM for the command
    line's subclass of it (raised by SIGTERM outside a checkpointed loop)."""
    return signal.SIGINT if type(err) is KeyboardInterrupt else signal.SIGTERM


def brief(err: BaseException, limit: int = 200) -> str:
    """A library error's message for one line of ours: its first sentence, without
    TensorStore's ``[tensorstore_spec=...]`` dump; if long, its status and last clause
    (the cause: "RESOURCE_EXHAUSTED: ...: No space left on device"), at most ``limit``
    characters."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    text = re.split(r" \[(?:tensorstore_spec|os_error_code)=", text)[0].split(". ")[0]
    parts = text.split(": ")
    if len(text) > limit and len(parts) > 2:
        text = f"{parts[0]}: ...: {parts[-1]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
