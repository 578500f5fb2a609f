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


def is_command() -> bool:
    """Whether this process is the ``jaxstyle`` command (its console script, or
    ``python -m jaxstyle``), not a program importing jaxstyle."""
    argv = getattr(sys, "orig_argv", [])
    by_module = any(a == "-m" and b == "jaxstyle" for a, b in zip(argv, argv[1:], strict=False))
    script = (getattr(sys, "argv", None) or [""])[0]  # an embedding may set none
    return Path(script).name == "jaxstyle" or by_module


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
