"""The one exception type for bad user input."""


class UserError(Exception):
    """A problem with what the user gave (a flag, a path, a file).

    ``main.py`` prints ``error: <message>`` and exits with status 2, without a traceback. The message names the
    flag or the path at fault.
    """
