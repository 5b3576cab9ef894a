"""The shared batcher (lab.generation.batcher): requests that arrive together run together, at most `max_batch`
at a time, sessions take turns, a batch's error reaches only its own callers, a lone request runs after the window.
A fake generate function stands in for the model (tests/fakes.py); the embedded model's test is in
tests/test_batcher_model.py."""

from __future__ import annotations

import threading
import time

import pytest

from lab.generation.batcher import Batcher, enabled, max_batch, window_s
from tests.fakes import FakeGenerate


def _ask(batcher: Batcher, items: list, session=lambda item: "", key=lambda item: None, delay: float = 0.0):
    """Submit every item from its own thread (in order, `delay` apart); returns {item: result or exception}."""
    out: dict = {}

    def one(item):
        try:
            out[item] = batcher.submit(item, key(item), session(item))
        except Exception as exc:
            out[item] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in items]
    for t in threads:
        t.start()
        time.sleep(delay)
    for t in threads:
        t.join(10)
    return out


def test_requests_arriving_together_share_one_batch_and_each_gets_its_own_answer():
    fake = FakeGenerate()
    batcher = Batcher(fake, max_batch=8, window_s=0.3)
    out = _ask(batcher, ["q1", "q2", "q3", "q4"], delay=0.01)
    assert out == {"q1": "q1!", "q2": "q2!", "q3": "q3!", "q4": "q4!"}
    assert len(fake.batches) == 1 and sorted(fake.batches[0]) == ["q1", "q2", "q3", "q4"]


def test_a_batch_never_holds_more_than_max_batch():
    fake = FakeGenerate(seconds=0.05)
    batcher = Batcher(fake, max_batch=3, window_s=0.3)
    items = [f"q{i}" for i in range(10)]
    out = _ask(batcher, items, session=lambda item: item)
    assert out == {i: f"{i}!" for i in items}
    assert max(len(b) for b in fake.batches) == 3
    assert sum(len(b) for b in fake.batches) == 10 and len(fake.batches) == 4


def test_a_full_batch_does_not_wait_for_the_window():
    fake = FakeGenerate()
    batcher = Batcher(fake, max_batch=2, window_s=30)
    t0 = time.monotonic()
    assert _ask(batcher, ["a", "b"]) == {"a": "a!", "b": "b!"}
    assert time.monotonic() - t0 < 5


def test_a_lone_request_runs_when_the_window_ends():
    fake = FakeGenerate()
    batcher = Batcher(fake, max_batch=16, window_s=0.2)
    t0 = time.monotonic()
    assert batcher.submit("alone") == "alone!"
    waited = time.monotonic() - t0
    assert 0.15 <= waited < 5
    assert fake.batches == [["alone"]]


def test_sessions_take_turns_so_one_session_cannot_starve_the_others():
    """Session "greedy" queues 6 requests before "x" and "y" ask one each; with room for 3 rows, the first batch
    after the running one holds x's and y's requests, not greedy's next three."""
    gate = threading.Event()
    fake = FakeGenerate(gate=gate)
    batcher = Batcher(fake, max_batch=3, window_s=0.05)
    blocker = threading.Thread(target=batcher.submit, args=("first", None, "other"))
    blocker.start()
    assert fake.started.wait(5)  # the worker is busy with "first": everything below queues behind it
    greedy = [f"g{i}" for i in range(6)]
    out: dict = {}
    threads = []
    for item, session in [*[(g, "greedy") for g in greedy], ("x1", "x"), ("y1", "y")]:
        t = threading.Thread(target=lambda i=item, s=session: out.__setitem__(i, batcher.submit(i, None, s)))
        t.start()
        threads.append(t)
        time.sleep(0.02)  # arrival order: greedy's six, then x, then y
    gate.set()
    for t in [blocker, *threads]:
        t.join(10)
    assert len(out) == 8
    second = fake.batches[1]
    assert "x1" in second and "y1" in second
    assert sum(item.startswith("g") for item in second) == 1


def test_an_error_reaches_the_callers_of_its_batch_only():
    gate = threading.Event()
    fake = FakeGenerate(fail_on="bad", gate=gate)
    batcher = Batcher(fake, max_batch=2, window_s=0.05)
    out = {}
    first = threading.Thread(target=lambda: out.__setitem__("ok0", batcher.submit("ok0")))
    first.start()
    assert fake.started.wait(5)
    threading.Timer(0.3, gate.set).start()  # the rest queue behind ok0 meanwhile
    later = _ask(batcher, ["bad", "ok1", "ok2", "ok3"], session=lambda item: item, delay=0.02)
    first.join(10)
    assert out == {"ok0": "ok0!"}
    failed = [i for i, r in later.items() if isinstance(r, Exception)]
    batch_of_bad = next(b for b in fake.batches if "bad" in b)
    assert sorted(failed) == sorted(batch_of_bad) and len(batch_of_bad) == 2
    assert all("generation failed on 'bad'" in str(later[i]) for i in failed)
    assert all(later[i] == f"{i}!" for i in later if i not in failed)


def test_only_requests_with_the_same_key_share_a_batch():
    fake = FakeGenerate()
    batcher = Batcher(fake, max_batch=8, window_s=0.3)
    items = ["a64", "b16", "c64", "d16"]
    out = _ask(batcher, items, key=lambda item: item[1:], session=lambda item: item)
    assert out == {i: f"{i}!" for i in items}
    assert sorted(sorted(b) for b in fake.batches) == [["a64", "c64"], ["b16", "d16"]]


def test_settings_come_from_the_environment_and_bad_values_are_refused(monkeypatch):
    from lab.errors import LabError

    monkeypatch.setenv("LAB_BATCH_SIZE", "4")
    monkeypatch.setenv("LAB_BATCH_WINDOW_MS", "250")
    monkeypatch.setenv("LAB_BATCH", "0")
    assert (max_batch(), window_s(), enabled()) == (4, 0.25, False)
    monkeypatch.setenv("LAB_BATCH", "1")
    assert enabled()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert not enabled()  # each answer runs in its own forked GPU worker there
    monkeypatch.setenv("LAB_BATCH_SIZE", "many")
    with pytest.raises(LabError, match="LAB_BATCH_SIZE='many'"):
        max_batch()


def test_rows_are_grouped_by_prompt_width_so_short_prompts_are_not_padded_to_long_ones():
    from lab.generation.engine import length_groups

    widths = [30, 200, 35, 210, 1000, 40]
    assert length_groups(widths) == [[0, 2, 5], [1, 3], [4]]
    assert length_groups([50] * 4) == [[0, 1, 2, 3]]


def test_arena_answering_events_let_in_enough_requests_for_batches_to_form(monkeypatch):
    """Batched, the side-by-side and battle events run many at once (bounded: twice the batch size); with
    LAB_BATCH=0 they keep the generation group's one-at-a-time limit."""
    from lab.ui.arena_battle import live_events
    from lab.ui.common import generation

    monkeypatch.delenv("LAB_BATCH", raising=False)
    monkeypatch.setenv("LAB_BATCH_SIZE", "12")
    assert live_events() == {"concurrency_id": "live", "concurrency_limit": 24}
    monkeypatch.setenv("LAB_BATCH", "0")
    assert live_events() == generation()
