"""`Batcher`: concurrent requests for one model wait a short window, then run together in one batched call;
`StepBatcher`: the same queue in front of a stepper, where requests join the rows decoding and leave when done.

Owns: the queue, grouping (only requests with the same key share a batch), fairness (sessions take turns, one
request each per turn, so one session's many requests cannot starve the others), the maximum batch size, and handing
each caller its own result, or the error of its own batch only. The LAB_BATCH* settings are read here. Must not:
know about models, tokenizers or gradio: the `run` function (or the stepper) it is given does the work.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from lab.errors import LabError

ENABLE_ENV = "LAB_BATCH"  # 0 turns batching off: every answer generates alone, as it streams
SIZE_ENV = "LAB_BATCH_SIZE"  # rows generated together at most (bounds memory)
WINDOW_ENV = "LAB_BATCH_WINDOW_MS"  # how long the first request of a batch waits for others
MODE_ENV = "LAB_BATCH_MODE"  # "steps" (default): rows join and leave between decoding steps; "whole": whole batches
DEFAULT_SIZE = 16
DEFAULT_WINDOW_S = 0.1
log = logging.getLogger(__name__)


def _positive(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise LabError(f"{name}={raw!r} must be a number >= 0 (e.g. {default:g})")
    return value


def enabled() -> bool:
    """Batching is on unless LAB_BATCH is 0/false/off, or on a ZeroGPU Space (each answer runs in its own forked
    GPU worker there, so requests cannot meet in one process)."""
    from lab.models import on_zero_gpu

    off = os.environ.get(ENABLE_ENV, "").strip().lower() in ("0", "false", "off", "no")
    return not off and not on_zero_gpu()


def continuous() -> bool:
    """Whether rows decode step by step, joining and leaving between steps (LAB_BATCH_MODE "steps", the default),
    rather than in whole batches that run to their end ("whole")."""
    raw = os.environ.get(MODE_ENV, "").strip().lower() or "steps"
    if raw not in ("steps", "whole"):
        raise LabError(f"{MODE_ENV}={raw!r} must be 'steps' (rows join and leave between steps) or 'whole'")
    return raw == "steps"


def max_batch() -> int:
    """The most rows one batch generates (LAB_BATCH_SIZE; default 16, or 32 in class mode)."""
    from lab.classroom import CLASS_BATCH_SIZE, class_mode

    return max(1, int(_positive(SIZE_ENV, CLASS_BATCH_SIZE if class_mode() else DEFAULT_SIZE)))


def window_s() -> float:
    """How long a batch's first request waits for others (LAB_BATCH_WINDOW_MS, default 100 ms)."""
    return _positive(WINDOW_ENV, DEFAULT_WINDOW_S * 1000) / 1000


@dataclass
class _Job:
    item: Any
    key: Hashable
    session: str
    arrived: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Batcher:
    """Serve `submit` calls from many threads in batches: `run(items) -> results` (one result per item, same order)
    is called with up to `max_batch` items sharing one key, from one worker thread.

    A batch forms when `max_batch` requests wait or the oldest waiting one has waited `window_s`. Sessions take
    turns: each contributes at most one request per round, and the sessions served go to the back of the line, so
    a session with many requests gets one row per round like everybody else. The worker thread starts on demand and
    ends after `idle_s` without requests. `batches` counts the calls to `run`.
    """

    any_key = False  # whether rows of different keys may share a batch

    def __init__(
        self,
        run: Callable[[list[Any]], list[Any]],
        max_batch: int = DEFAULT_SIZE,
        window_s: float = DEFAULT_WINDOW_S,
        idle_s: float = 5.0,
    ):
        self._run, self.max_batch, self.window_s, self.idle_s = run, max(1, max_batch), window_s, idle_s
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()  # per session, in turn order
        self._cond = threading.Condition(threading.Lock())
        self._worker: threading.Thread | None = None
        self.batches = 0
        self.sizes: list[int] = []

    def submit(self, item: Any, key: Hashable = None, session: str = "") -> Any:
        """Queue `item` and wait for its result; raises the error of the batch it ran in."""
        job = _Job(item, key, session)
        with self._cond:
            self._queues.setdefault(session, deque()).append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name="batcher", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def pending(self) -> int:
        with self._cond:
            return self._count()

    def _count(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _loop(self) -> None:
        while True:
            with self._cond:
                batch = self._next()
                if batch is None:
                    self._worker = None
                    return
            self._execute(batch)

    def _next(self) -> list[_Job] | None:
        """Wait (holding the condition) until a batch is due; None when idle for `idle_s`."""
        idle_until = time.monotonic() + self.idle_s
        while not self._queues:
            left = idle_until - time.monotonic()
            if left <= 0:
                return None
            self._cond.wait(left)
        while self._count() < self.max_batch:
            oldest = min(q[0].arrived for q in self._queues.values())
            left = oldest + self.window_s - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        return self._take(any_key=self.any_key)

    def _take(self, limit: int | None = None, any_key: bool = False) -> list[_Job]:
        """Round-robin over sessions: one request each per round, at most `limit` (default `max_batch`), all with
        the key of the first session's next one (any key with `any_key`)."""
        limit = self.max_batch if limit is None else limit
        key = next(iter(self._queues.values()))[0].key
        batch: list[_Job] = []
        served: list[str] = []
        while len(batch) < limit:
            took = False
            for session, queue in list(self._queues.items()):
                if len(batch) >= limit:
                    break
                if queue and (any_key or queue[0].key == key):
                    batch.append(queue.popleft())
                    took = True
                    if session not in served:
                        served.append(session)
            if not took:
                break
        for session in served:  # the sessions served go to the back of the line
            if self._queues[session]:
                self._queues.move_to_end(session)
            else:
                del self._queues[session]
        return batch

    def _execute(self, batch: list[_Job]) -> None:
        self.batches += 1
        self.sizes.append(len(batch))
        try:
            results = self._run([job.item for job in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} requests returned {len(results)} results")
            for job, result in zip(batch, results, strict=True):
                job.result = result
        except BaseException as exc:  # every caller of this batch gets it, in its own thread
            log.debug("batch of %d failed: %s", len(batch), exc)
            for job in batch:
                job.error = exc
        finally:
            for job in batch:
                job.done.set()


class StepBatcher(Batcher):
    """A `Batcher` whose rows decode step by step (continuous batching): `make()` gives a stepper with `add(pairs)`
    and `step()` (each returning the (ticket, result) pairs of the rows that ended) and `len()`. New requests join
    the live rows between steps, up to `max_batch` live rows, sessions taking turns as before; a row leaves as
    soon as it ends, so nobody waits for a whole batch. The first request of an idle batcher waits `window_s` for
    company. An error fails the rows live at that moment (and the ones joining), and a fresh stepper starts.
    `batches` counts the joins, `sizes` the rows of each. Rows of any key join: each row keeps its own settings."""

    any_key = True

    def __init__(
        self,
        make: Callable[[], Any],
        max_batch: int = DEFAULT_SIZE,
        window_s: float = DEFAULT_WINDOW_S,
        idle_s: float = 5.0,
    ):
        super().__init__(lambda items: [], max_batch, window_s, idle_s)
        self._make = make

    def _loop(self) -> None:
        stepper, live = None, {}
        while True:
            with self._cond:
                if live:
                    joining = self._take(self.max_batch - len(live), any_key=True) if self._queues else []
                else:
                    stepper, joining = None, self._next()
                    if joining is None:
                        self._worker = None
                        return
            try:
                stepper = stepper or self._make()
                ended = self._join(stepper, joining, live) + stepper.step()
            except BaseException as exc:  # the rows decoding together share the error
                log.debug("%d live rows failed: %s", len(live), exc)
                self._fail(list(live.values()), exc)
                stepper, live = None, {}
                continue
            self._deliver(ended, live)

    def _join(self, stepper, joining: list[_Job], live: dict[int, _Job]) -> list:
        if not joining:
            return []
        self.batches += 1
        self.sizes.append(len(joining))
        live.update((id(job), job) for job in joining)
        return stepper.add([(id(job), job.item) for job in joining])

    @staticmethod
    def _deliver(ended: list, live: dict[int, _Job]) -> None:
        for ticket, result in ended:
            job = live.pop(ticket)
            job.result = result
            job.done.set()

    @staticmethod
    def _fail(jobs: list[_Job], exc: BaseException) -> None:
        for job in jobs:
            job.error = exc
            job.done.set()
