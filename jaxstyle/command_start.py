"""Ctrl-C while the ``jaxstyle`` command imports jax: one line, not a traceback.

A KeyboardInterrupt raised inside jax's import breaks it in ways the command cannot
catch: an ImportError from a C extension's initialisation, or an exception that a
garbage-collection callback swallows (the command then runs on). In the command, SIGINT
is therefore only noted while ``import jaxstyle`` runs, and acted on once it is done.
"""

import contextlib
import signal
import sys
import threading
from pathlib import Path

from jaxstyle.errors import stopped_by

COMMAND_NAMES = ("jaxstyle", "jaxstyle.exe", "jaxstyle-script.py")
"""``sys.argv[0]``'s name in the console script (on Windows its launcher or script)."""


def is_command() -> bool:
    """Whether this process is the ``jaxstyle`` command (its console script, or
    ``python -m jaxstyle`` in any spelling), not a program importing jaxstyle."""
    script = (getattr(sys, "argv", None) or [""])[0]  # an embedding may set none
    by_module = _module_run(getattr(sys, "orig_argv", [])) == "jaxstyle"
    return Path(script).name in COMMAND_NAMES or by_module


def _module_run(argv: list[str]) -> str | None:
    """The module the interpreter's own arguments ``argv`` run (``-m jaxstyle``,
    ``-mjaxstyle``, ``-Im jaxstyle``, ...), read as CPython reads its options;
    None for a script, ``-c`` or stdin."""
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-", "--") or not arg.startswith("-"):  # stdin, or a script
            return None
        if arg == "--check-hash-based-pycs":  # the one long option with a value
            next(args, None)
        if arg.startswith("--"):
            continue
        for i, flag in enumerate(arg[1:], start=2):
            if flag in "cmWX":  # the options that take a value, attached or next
                value = arg[i:] or next(args, "")
                if flag in "cm":
                    return value if flag == "m" else None
                break
    return None


@contextlib.contextmanager
def interrupts_noted():
    """In the command's main thread, a SIGINT inside the block is noted; at its end
    the command exits "jaxstyle: interrupted", status 130, as the command line says it
    later on. Elsewhere (a library import, another thread) nothing changes."""
    main = threading.current_thread() is threading.main_thread()
    if (
        not (main and is_command())
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    noted: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if noted:
        print(f"jaxstyle: {stopped_by(signal.SIGINT)}", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT)
