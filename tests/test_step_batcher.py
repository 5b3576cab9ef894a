"""Continuous batching's queue (lab.generation.batcher.StepBatcher): requests join the live rows between steps, a
row's caller gets its answer as soon as that row ends, at most `max_batch` rows are live, sessions take turns for
free places, and an error fails only the rows live at that moment. A fake stepper stands in for the model
(tests/fakes.py); the embedded model's tests are in tests/test_stepper.py."""

from __future__ import annotations

import threading
import time

import pytest

from lab.errors import LabError
from lab.generation.batcher import StepBatcher, continuous
from tests.fakes import FakeStepper


def _submit_later(batcher, item, session: str, out: dict, at: dict) -> threading.Thread:
    def one():
        try:
            out[item[0]] = batcher.submit(item, None, session)
        except Exception as exc:
            out[item[0]] = exc
        at[item[0]] = time.monotonic()

    thread = threading.Thread(target=one, daemon=True)
    thread.start()
    return thread


def test_a_request_joins_rows_already_decoding_and_a_short_row_returns_before_a_long_one():
    fake = FakeStepper(seconds=0.02)
    batcher = StepBatcher(lambda: fake, max_batch=8, window_s=0.01)
    out, at = {}, {}
    long = _submit_later(batcher, ("long", 60), "a", out, at)
    time.sleep(0.3)  # "long" is decoding by now
    short = _submit_later(batcher, ("short", 3), "b", out, at)
    long.join(10), short.join(10)
    assert out == {"long": "long!", "short": "short!"}
    assert fake.joins == [["long"], ["short"]]  # the second joined the running stepper, no second batch
    assert at["short"] < at["long"]  # it did not wait for the long row to end
    assert max(fake.live_per_step) == 2


def test_at_most_max_batch_rows_are_live_and_sessions_take_turns_for_free_places():
    fake = FakeStepper(seconds=0.02)
    batcher = StepBatcher(lambda: fake, max_batch=2, window_s=0.05)
    out, at, threads = {}, {}, []
    threads += [_submit_later(batcher, ("x1", 10), "x1", out, at), _submit_later(batcher, ("x2", 25), "x2", out, at)]
    time.sleep(0.1)  # both places taken; now an eager session queues two, another session one
    threads += [_submit_later(batcher, ("a1", 40), "eager", out, at)]
    time.sleep(0.01)
    threads += [_submit_later(batcher, ("a2", 1), "eager", out, at)]
    time.sleep(0.01)
    threads += [_submit_later(batcher, ("b1", 1), "other", out, at)]
    for t in threads:
        t.join(10)
    assert out == {n: f"{n}!" for n in ("x1", "x2", "a1", "a2", "b1")}
    assert max(fake.live_per_step) == 2
    assert fake.joins == [["x1", "x2"], ["a1"], ["b1"], ["a2"]]  # the other session's turn before a second eager row


def test_an_error_fails_the_rows_live_then_and_later_requests_start_afresh():
    made: list[FakeStepper] = []

    def make():
        made.append(FakeStepper(seconds=0.01, fail_on="bad"))
        return made[-1]

    batcher = StepBatcher(make, max_batch=8, window_s=0.05)
    out, at = {}, {}
    threads = [_submit_later(batcher, (n, 5), n, out, at) for n in ("good", "bad")]
    for t in threads:
        t.join(10)
    assert all(isinstance(out[n], RuntimeError) for n in ("good", "bad"))
    after = _submit_later(batcher, ("later", 2), "c", out, at)
    after.join(10)
    assert out["later"] == "later!" and len(made) == 2


def test_a_row_that_ends_when_it_joins_is_answered_without_a_step():
    fake = FakeStepper()
    batcher = StepBatcher(lambda: fake, max_batch=4, window_s=0.01)
    assert batcher.submit(("instant", 0), None, "s") == "instant!"


def test_the_batch_mode_setting_is_read_and_checked(monkeypatch):
    monkeypatch.delenv("LAB_BATCH_MODE", raising=False)
    assert continuous()
    monkeypatch.setenv("LAB_BATCH_MODE", "whole")
    assert not continuous()
    monkeypatch.setenv("LAB_BATCH_MODE", "sometimes")
    with pytest.raises(LabError, match="LAB_BATCH_MODE='sometimes'"):
        continuous()
