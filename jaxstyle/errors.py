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


def brief(err: BaseException, limit: int = 200) -> str:
    """A library error's message for one line of ours: its first clause, whitespace
    collapsed, TensorStore's ``[tensorstore_spec=...]`` dump dropped, at most ``limit``
    characters."""
    text = " ".join(str(err).split("[tensorstore_spec=")[0].split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
