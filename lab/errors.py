"""The one family of errors meant for the user, and how any error becomes one short message.

`LabError` is the base of every error whose message names the bad value and what to do (it is a ValueError, so
callers that catch ValueError keep working). `user_message(exc)` is what the UI and the CLI show: a LabError's own
message; an OSError's (a full disk, a permission, a missing file: the user's machine, not a bug) as it is; any
other exception is a bug: it is logged with its traceback on the `lab` logger and shown as one line saying so.
"""

from __future__ import annotations

import logging

log = logging.getLogger("lab")


class LabError(ValueError):
    """An error meant for the user: the message names the bad value and what to do about it."""


def expected(exc: BaseException) -> bool:
    """True for errors of the user's input or machine (LabError, OSError); logs the traceback of any other."""
    if isinstance(exc, (LabError, OSError)):
        return True
    log.error("unexpected %s", type(exc).__name__, exc_info=exc)
    return False


def user_message(exc: BaseException) -> str:
    """The short message to show for `exc` (the traceback of a bug goes to the log, see `expected`)."""
    if expected(exc):
        return str(exc) or type(exc).__name__
    return f"unexpected error ({type(exc).__name__}: {exc}); this is a bug, the traceback is in the app's log"


def setup_logging(level: int = logging.INFO) -> None:
    """Log the `lab` logger to stderr once (the app's console, a Space's log); idempotent."""
    if not any(getattr(h, "_lab", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._lab = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(level)
