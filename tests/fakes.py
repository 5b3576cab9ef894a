"""Fakes shared by unit tests: stand-ins for the expensive parts (a model's batched generate), never for the
libraries under test."""

from __future__ import annotations

import threading
import time


class FakeGenerate:
    """A batched generate function for `lab.generation.batcher.Batcher`: answers each item with `f"{item}!"`
    after `seconds`, records every batch it was given, and raises `fail_on`'s error for a batch holding that item.
    `gate`, when set, holds every batch until it is released (so a test can queue requests behind a running one)."""

    def __init__(self, seconds: float = 0.0, fail_on: object = None, gate: threading.Event | None = None):
        self.seconds, self.fail_on, self.gate = seconds, fail_on, gate
        self.batches: list[list] = []
        self.started = threading.Event()

    def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.seconds)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError(f"generation failed on {self.fail_on!r}")
        return [f"{item}!" for item in items]
