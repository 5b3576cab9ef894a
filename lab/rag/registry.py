"""`IndexRegistry`: the open handle of each index folder, reused while its build and model cache stay the same.

Boundary: this module only keeps handles (an `Index` holds its chunks, memory-mapped vectors, store and embedder)
and hands the current one out; opening, building and deleting an index is lab/rag/index.py's business, and the
embedder inside a handle is loaded through `ModelCache`. One handle per folder: a new build or another cache
replaces it, a delete drops it. Thread-safe; `after_fork` gives a forked child fresh locks.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any


class IndexRegistry:
    """Open index handles by folder, each stamped with the build id and the cache (weakly) it was opened with."""

    def __init__(self) -> None:
        self._guard = threading.Lock()  # guards the two dictionaries only, never held while an index opens
        self._opening: dict[str, threading.Lock] = {}  # one per folder: the same index opens once at a time
        self._open: dict[str, tuple[str, Any, Any]] = {}  # folder -> (build id, weakref to the cache, handle)

    def get(self, folder: str, build: str, owner: Any, make: Callable[[], Any]) -> Any:
        """The handle of `folder` opened for build `build` with `owner` (the model cache), made by `make` once."""
        with self._guard:
            opening = self._opening.setdefault(folder, threading.Lock())
        with opening:
            with self._guard:
                entry = self._open.get(folder)
            if entry is not None and entry[0] == build and entry[1]() is owner:
                return entry[2]
            self.drop(folder)  # an old build's handle goes before the new one opens
            handle = make()
            with self._guard:
                self._open[folder] = (build, weakref.ref(owner), handle)
            return handle

    def drop(self, folder: str) -> bool:
        """Forget the handle of `folder` (the index was deleted or rebuilt); False when none was open."""
        with self._guard:
            return self._open.pop(folder, None) is not None

    def folders(self) -> list[str]:
        with self._guard:
            return list(self._open)

    def after_fork(self) -> None:
        """In a forked child: fresh locks (one held by another thread at the fork would never be released)."""
        self._guard = threading.Lock()
        self._opening = {}
