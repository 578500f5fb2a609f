"""The one exception type users see."""


class JaxstyleError(Exception):
    """A problem with the user's input or environment.

    The CLI prints its message as one line on stderr and exits with status 2;
    library callers can catch it. Messages say what is wrong and how to fix it.
    """
