"""The one exception type users see."""


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
