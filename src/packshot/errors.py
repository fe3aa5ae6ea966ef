"""Errors packshot raises: every one carries a message a merchant can act on.

The CLI prints `str(error)` on one line and exits with `error.exit_code`; the service
(later) maps the same classes to HTTP statuses. Anything that is *not* a PackshotError
is a bug in packshot, and only then does a traceback reach the user (with --debug).
"""

from __future__ import annotations


class PackshotError(Exception):
    """Base class. The message says what went wrong and what to do about it."""

    exit_code = 1


class UsageError(PackshotError):
    """A wrong flag, a missing argument, a value out of range: the caller's mistake."""

    exit_code = 2


class PhotoError(PackshotError):
    """One photo can't be used. `reason` is a short machine-readable code."""

    def __init__(self, message: str, reason: str = "unreadable"):
        super().__init__(message)
        self.reason = reason


class PhotoSetError(PackshotError):
    """The photo set as a whole can't be used (empty folder, nothing accepted, not enough)."""


class ModelNotFoundError(PackshotError):
    """A model id or folder that can't be found or reached."""


class ModelLoadError(PackshotError):
    """A model was found but is not something packshot can load (wrong format, broken files)."""


class SetupError(PackshotError):
    """A failure of the machine's setup, for its operator to fix, not its user (the Hub
    unreachable and the model not downloaded, a gated model's licence not accepted).

    The CLI's user is the machine's operator and reads the message as it is. The studio tells
    the merchant it can't do this right now and gives the message to its operator's log."""


class ModelUnavailableError(ModelNotFoundError, SetupError):
    """A model that exists, but that this machine can't get now (offline, no access)."""
