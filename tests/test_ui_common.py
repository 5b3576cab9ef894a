"""Shared UI plumbing: generation concurrency and threads from the environment, per-session cancel flags, the
background worker's result / error box."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from lab.errors import LabError
from lab.ui import common


def test_generation_groups_are_one_wide_on_a_cpu_unless_told(monkeypatch):
    import lab.models

    monkeypatch.delenv(common.CONCURRENCY_ENV, raising=False)
    monkeypatch.setattr(lab.models, "device", lambda: "cpu")
    assert common.generation(common.BATCH) == {"concurrency_id": "batch", "concurrency_limit": 1}
    monkeypatch.setattr(lab.models, "device", lambda: "cuda")
    assert common.gen_limit() == 2
    monkeypatch.setenv(common.CONCURRENCY_ENV, "3")
    assert common.generation()["concurrency_limit"] == 3
    monkeypatch.setenv(common.CONCURRENCY_ENV, "many")
    with pytest.raises(LabError, match="LAB_GEN_CONCURRENCY='many'"):
        common.gen_limit()


def test_gen_threads_are_set_only_when_asked(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv(common.THREADS_ENV, raising=False)
    assert common.apply_gen_threads() is None and torch.get_num_threads() == before
    monkeypatch.setenv(common.THREADS_ENV, "1")
    try:
        assert common.apply_gen_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv(common.THREADS_ENV, "0")
    with pytest.raises(LabError):
        common.apply_gen_threads()


def test_cancel_flags_are_per_session_and_the_worker_reports_a_bug_as_one_line():
    flags = common.SessionFlags()
    a, b = SimpleNamespace(session_hash="a"), SimpleNamespace(session_hash="b")
    flag_a = flags.fresh(a)
    assert not flags.cancel(b) and not flag_a.is_set()  # b has no work; a's flag untouched
    assert flags.cancel(a) and flag_a.is_set()
    assert not flags.fresh(a).is_set()  # a new start clears it
    box: dict = {}
    common.in_background(lambda: 1 / 0, box, "t").join(5)
    assert box["error"].startswith("unexpected error (ZeroDivisionError") and "result" not in box
    ok: dict = {}
    thread = common.in_background(lambda: (time.sleep(0.01), 42)[1], ok, "t")
    thread.join(5)
    assert ok == {"result": 42}


def test_read_only_lists_skip_the_queue_and_answer_a_plain_post(client, app_url):
    """The lists a browser polls are unqueued (a direct POST, as the browser sends them); generation stays queued."""
    import json
    import urllib.request

    deps = {d.get("api_name"): d for d in client.config["dependencies"]}
    for name in ("arena_contestants", "arena_leaderboard", "data_list", "rag_refresh", "train_runs", "start_latest"):
        assert deps[name]["queue"] is False, name
    for name in ("arena_side_by_side", "arena_battle", "arena_submit_vote", "train_start"):
        assert deps[name]["queue"] is not False, name

    def post(name: str, data: list):
        body = json.dumps({"data": data, "session_hash": "plain-post"}).encode()
        url = f"{app_url}/gradio_api/run/{name}"
        with urllib.request.urlopen(
            urllib.request.Request(url, body, {"Content-Type": "application/json"}), timeout=60
        ) as r:
            return json.loads(r.read())["data"]

    table = post("data_list", [])[0]
    assert any(row[0] == "sample" for row in table["data"]), table
    # An event with a session State input: the browser sends null for it and the server fills in the session's.
    assert len(deps["arena_contestants"]["inputs"]) == 1
    assert "base" in json.dumps(post("arena_contestants", [None]))


def test_generation_controls_carry_every_setting_into_the_config_including_the_abstention_threshold():
    import gradio as gr

    from lab.config import GenConfig

    with gr.Blocks():
        controls = common.gen_controls()
    defaults = common.gen_from(*[c.value for c in controls])
    d = GenConfig()
    assert (defaults.max_new_tokens, defaults.abstain_below, defaults.focus_sentences, defaults.idk_above) == (
        d.max_new_tokens, d.abstain_below, d.focus_sentences, d.idk_above)  # fmt: skip
    moved = common.gen_from(*[c.value for c in controls[:-1]], 0.85)
    assert moved.idk_above == 0.85 and common.gen_from(32, 0, -1, 0).idk_above == d.idk_above  # API callers of 4


@pytest.mark.parametrize("fraction, percent", [(0.0, 0), (0.5, 50), (1.0, 100), (1.7, 100), (None, 0)])
def test_progress_bar_is_drawn_and_written_at_0_mid_and_100_percent(fraction, percent):
    from lab.ui.common import progress_bar_html

    bar = progress_bar_html(fraction, "step <3>")
    assert f"width:{percent}%" in bar and f"aria-valuenow='{percent}'" in bar and "role='progressbar'" in bar
    assert f"{percent} % · step &lt;3&gt;" in bar  # the number written beside the bar, the label escaped
    assert "[ ]" not in bar and "#" not in bar.replace("#e4e4e7", "").replace("#a1a1aa", "").replace("#2563eb", "")


def test_start_and_arena_progress_views_use_the_drawn_bar():
    from lab.ui import arena_eval, start_view

    update = SimpleNamespace(number=2, total=5, label="Index", message="embedding", fraction=0.0,
                             stage_eta_s=12, overall_eta_s=90)  # fmt: skip
    for text in (start_view.progress_md(update), arena_eval._progress({"progress": (0, 8, "loading")})):
        assert "role='progressbar'" in text and "0 %" in text and "[ " not in text


def test_shows_errors_turns_a_user_error_into_the_outputs_and_logs_a_bug_once(caplog):
    import gradio as gr

    @common.shows_errors(common.fail_with(gr.skip()))
    def save(name):
        if name == "bad":
            raise LabError("name 'bad' is taken: choose another")
        if name == "disk":
            raise OSError("disk full")
        return 1 // 0

    with pytest.warns(UserWarning):  # gr.Warning outside an event is a Python warning
        heading, rest = save("bad")
    assert heading == "### ✗ name 'bad' is taken: choose another" and rest == gr.skip()
    with pytest.warns(UserWarning):
        assert save("disk")[0] == "### ✗ disk full"
    caplog.clear()
    with pytest.warns(UserWarning):
        heading, _ = save("bug")
    assert heading.startswith("### ✗ unexpected error (ZeroDivisionError") and "bug" in heading
    bugs = [r for r in caplog.records if r.exc_info]
    assert len(bugs) == 1 and bugs[0].exc_info[0] is ZeroDivisionError  # one traceback in the log


def test_shows_errors_keeps_a_generator_streaming_until_it_fails():
    import inspect

    @common.shows_errors(lambda message: ("error", message))
    def steps(n):
        yield "progress", 1
        if n:
            raise LabError("the slot ran out")
        yield "result", 2

    assert inspect.isgeneratorfunction(steps)
    assert list(steps(0)) == [("progress", 1), ("result", 2)]
    assert list(steps(1)) == [("progress", 1), ("error", "the slot ran out")]
