"""`BatcherRegistry`: the one `Batcher` in front of each loaded base model, found by the model object itself.

Boundary: this module only finds or makes the batcher of a (base model, size, window); what a batcher does is
lab/generation/batcher.py's business, and how long a model stays loaded is `ModelCache`'s. The model is a weak key:
a batcher holds no model (its rows carry theirs), so its entry goes when the cache has released the model and the
last answer using it has ended. Thread-safe; a forked child starts with none (a batcher's worker thread stays in
the parent).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any


class BatcherRegistry:
    """Batchers by base model (held weakly) and by (size, window, mode), each made once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_base: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self, base: Any, size: int, window: float, make: Callable[[], Any], mode: str = "") -> Any:
        """The batcher of `base` for this size, window and mode; `make()` (cheap: no thread starts) runs once."""
        with self._lock:
            mine = self._by_base.setdefault(base, {})
            if (size, window, mode) not in mine:
                mine[(size, window, mode)] = make()
            return mine[(size, window, mode)]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(mine) for mine in self._by_base.values())

    def after_fork(self) -> None:
        """In a forked child: a fresh lock and no batchers (their worker threads do not exist there)."""
        self._lock = threading.Lock()
        self._by_base = weakref.WeakKeyDictionary()


BATCHERS = BatcherRegistry()  # the process's batchers: one per loaded base model
os.register_at_fork(after_in_child=BATCHERS.after_fork)
