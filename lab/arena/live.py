"""Live answering for side-by-side and battles: several contestants answer at the same time.

`stream_many` runs one thread per contestant and yields snapshots (latest partial answer and error per
contestant) until all are done, so a UI can show the answers growing next to each other. Given the model cache
(and batching on, lab.generation.batcher), answers from every caller that share a base model are generated
together in batches, sessions taking turns; each answer still grows token by token. Snapshots are sent only when
something changed (or as a heartbeat), and less often the more streams run at once, so a class's updates do not
take the CPU that generates the answers. No gradio here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from lab.config import GenConfig
from lab.errors import user_message
from lab.generation import Answer, batcher, stream_answer
from lab.models import import_libraries

UPDATES_PER_S = 20.0  # snapshots a second over all the streams of this process, once their own poll is slower
HEARTBEAT_S = 5.0  # an unchanged snapshot is still sent this often (a caller may show the time waited)


class _Streams:
    """How many `stream_many` calls are running in this process."""

    def __init__(self) -> None:
        self._lock, self.count = threading.Lock(), 0

    def __enter__(self) -> _Streams:
        with self._lock:
            self.count += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.count -= 1


STREAMS = _Streams()


def interval(poll_s: float, streams: int) -> float:
    """Seconds between one stream's snapshots: `poll_s`, or longer when many streams share the updates budget."""
    return max(poll_s, streams / UPDATES_PER_S)


def stream_many(
    makers: list[Callable[[], Any]],
    question: str,
    gen: GenConfig,
    poll_s: float = 0.25,
    cache=None,
    session: str = "",
) -> Iterator[tuple[list[Answer | None], list[str]]]:
    """`makers` build the responders (in the worker threads, so slow loads do not block the others). With `cache`,
    a model-backed responder answers through its base model's shared batcher, taking turns as `session`."""
    latest: list[Answer | None] = [None] * len(makers)
    errors = [""] * len(makers)
    shared = cache is not None and batcher.enabled()

    def work(i: int) -> None:
        try:
            responder = makers[i]()
            if shared and hasattr(responder, "answer_batched"):
                latest[i] = _batched(responder, question, gen, session, lambda a: latest.__setitem__(i, a))
                return
            for answer in stream_answer(responder, question, gen):
                latest[i] = answer
        except Exception as exc:  # shown next to the answer; a worker thread must never die silently
            errors[i] = user_message(exc)

    import_libraries()  # before the threads: two first imports of transformers at once can fail
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(makers))]
    for t in threads:
        t.start()
    sent, sent_at = None, 0.0
    with STREAMS:
        while any(t.is_alive() for t in threads):
            time.sleep(interval(poll_s, STREAMS.count))
            now = _state(latest, errors)
            if now != sent or time.monotonic() - sent_at >= HEARTBEAT_S:
                sent, sent_at = now, time.monotonic()
                yield list(latest), list(errors)
    yield list(latest), list(errors)


def _state(latest: list[Answer | None], errors: list[str]) -> tuple:
    """What a snapshot shows: each answer's text and whether it is done, and each error."""
    return tuple((a.text, a.done) if a is not None else None for a in latest), tuple(errors)


def _batched(responder, question: str, gen: GenConfig, session: str, partial) -> Answer:
    from lab.generation.engine import batcher_for

    return responder.answer_batched(question, gen, batcher_for(responder.model), session, partial)


def all_done(answers: list[Answer | None], errors: list[str]) -> bool:
    return all(e or (a is not None and a.done) for a, e in zip(answers, errors, strict=True))
