"""Live answering's snapshots (lab.arena.live.stream_many): a snapshot goes out only when an answer changed (or
as a heartbeat), and each stream's snapshots come less often the more streams run at once, so a class's page
updates do not take the CPU that generates its answers."""

from __future__ import annotations

import threading
import time

from lab.arena import live
from lab.config import GenConfig
from lab.generation import Answer


class Waiting:
    """A contestant that shows nothing for `seconds` (queued behind a class), then grows its answer in two steps."""

    name = "waiting"

    def __init__(self, seconds: float):
        self.seconds = seconds

    def stream(self, question, gen):
        time.sleep(self.seconds)
        yield Answer("Half", done=False)
        time.sleep(0.3)
        yield Answer("Half an answer.")


def test_an_unchanged_answer_sends_no_snapshot_until_it_changes():
    snapshots = list(live.stream_many([lambda: Waiting(1.5)], "q", GenConfig(), poll_s=0.05))
    texts = [answers[0].text if answers[0] else None for answers, _ in snapshots]
    assert texts[-1] == "Half an answer."
    assert len(snapshots) <= 5, texts  # polling every 50 ms over 1.8 s sent about 36 before
    assert texts.count(None) <= 1


def test_many_streams_at_once_share_the_updates_budget():
    assert live.interval(0.25, 1) == 0.25
    assert live.interval(0.25, 60) == 60 / live.UPDATES_PER_S
    seen: list[int] = []
    gate = threading.Event()

    class Counting:
        name = "counting"

        def stream(self, question, gen):
            gate.wait(5)
            seen.append(live.STREAMS.count)  # every stream has started by now
            yield Answer("done")

    threads = [threading.Thread(target=lambda: list(live.stream_many([Counting], "q", GenConfig(), 0.01)))
               for _ in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(0.5)
    gate.set()
    for t in threads:
        t.join(5)
    assert max(seen) == 3 and live.STREAMS.count == 0
