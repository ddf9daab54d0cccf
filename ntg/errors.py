"""User-facing errors: the CLI prints these as one line (no traceback) and exits with status 2."""


class NtgError(Exception):
    """A problem with the user's input or environment, with what to do about it in the message."""
