"""`Cancellations`: requests to stop named work in one workspace (an index build), kept as files in its tmp folder.

Boundary: this module only records and answers "was a stop asked for?"; the work checks it at its own safe points
(between embedding batches) and decides what stopping means. Files, not memory, so a request made in the app's main
process reaches work running in a forked worker, and no state lives in the module.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


class Cancellations:
    """Stop requests for one kind of named work (e.g. "index-build") in one workspace folder.

    `start(name)` clears an old request as the work begins; `request(name)` asks it to stop; `requested(name)` is
    what the work checks between steps."""

    def __init__(self, folder: str | Path, kind: str):
        self.folder = Path(folder)
        self.kind = kind

    @classmethod
    def of(cls, ws, kind: str) -> Cancellations:
        """The requests of `kind` in workspace `ws` (under its tmp folder, shared by every process using it)."""
        return cls(Path(ws.tmp) / "cancel", kind)

    def _flag(self, name: str) -> Path:
        digest = hashlib.sha256((name or "").strip().encode()).hexdigest()[:24]
        return self.folder / f"{self.kind}-{digest}.stop"

    def start(self, name: str) -> None:
        """The work `name` begins: a request left from before does not stop it."""
        self._flag(name).unlink(missing_ok=True)

    def request(self, name: str) -> None:
        """Ask the running work `name` to stop at its next check."""
        flag = self._flag(name)
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.touch()

    def requested(self, name: str) -> bool:
        return self._flag(name).exists()
