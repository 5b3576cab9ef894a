"""Cancel keeps what exists: after a cancelled run the Start tab shows the last finished comparison (or the
cancelled run's partial one, marked partial), never the empty state while a comparison exists.

The Start tab's run handler is driven as the app drives it, with a stop flag already raised (Cancel pressed as the
run starts): deterministic, and no model is loaded.
"""

from __future__ import annotations

import threading

import gradio as gr
import pytest

from lab.arena import evaluation, reference, showcase
from lab.config import GenConfig
from lab.data.evalset import read_evalset, sample_evalset_path, stratified
from lab.generation import Answer
from lab.ui import start_tab, start_view

CONTESTANTS = {"base": "base", "RAG": "rag:sample"}


class Scripted:
    """Answers correctly on every `every`-th question, otherwise with a fixed wrong sentence."""

    def __init__(self, items, every: int):
        self.gold = {it.question: it.answer for it in items}
        self.every, self.calls = every, 0

    def answer_many(self, questions, gen):
        self.calls += len(questions)
        return [
            Answer(self.gold[q] if i % self.every == 0 else "Blue.", [], 0.1, 5, 2) for i, q in enumerate(questions)
        ]


class CancelledAtOnce:
    """The Start tab's stop flags with Cancel already pressed: the run stops before its first stage."""

    def fresh(self, request):
        flag = threading.Event()
        flag.set()
        return flag


def _save_comparison(ws, name: str = "cancel-test") -> dict:
    from lab.data import ensure_sample_domain

    ensure_sample_domain(ws)
    items = stratified(read_evalset(sample_evalset_path(ws)), 10)
    evals = {}
    for n, (label, spec) in enumerate(CONTESTANTS.items(), 2):
        result = evaluation.run_evaluation(items, {label: Scripted(items, n)}, GenConfig(), bootstrap=30)
        evals[label] = {"spec": spec, "result": result}
    result = showcase.compose(evals, showcase.Inputs(questions=10, bootstrap=30), "finished")
    eval_id = evaluation.save_evaluation(ws, result, "sample", f"{showcase.PREFIX}{name}")
    return evaluation.load_evaluation(ws, eval_id)


def _cancelled_run(ws, cache) -> tuple:
    """The last view the run handler yields for a run cancelled at once (progress, the shown parts, switch)."""
    shown = [gr.Markdown() for _ in range(7)]
    view = start_tab.RunView(gr.Markdown(), gr.Button(), gr.State(""), shown, gr.Radio())
    outputs = list(start_tab._on_run(ws, cache, CancelledAtOnce(), "sample", "sample", None, 10, ["base"], None,
                                  view=view))  # fmt: skip
    assert all(set(o) <= {view.progress, view.button, view.armed} for o in outputs[:-1])  # the view stays as it is
    last = outputs[-1]
    assert set(last) == {view.progress, *shown, view.switch}  # the button and the confirmed inputs stay as they are
    return last[view.progress], *(last[c] for c in shown), last[view.switch]


@pytest.mark.integration
def test_cancel_keeps_the_last_finished_comparison_on_screen(ws, cache):
    saved = _save_comparison(ws)
    progress, heading, headline, verdict, chart, examples, table, how, view, *_ = _cancelled_run(ws, cache)
    assert "No comparison on this workspace yet" not in heading
    assert heading.startswith("### Latest comparison") and "2 contestants" in heading
    assert verdict == saved["verdict"] and verdict
    assert chart is not None and "What the evidence says" in headline
    assert all(f"<th>{label}</th>" in examples for label in CONTESTANTS)
    assert table is not None and [row[0] for row in table["data"]] == list(CONTESTANTS)  # not a table headed 1 2 3
    assert table["headers"][0] == "contestant"
    assert "cancelled" in progress and "last finished comparison" in progress


@pytest.mark.integration
def test_cancel_with_nothing_finished_shows_the_shipped_reference_not_an_empty_view(ws, cache):
    progress, heading, headline, verdict, chart, examples, table, how, view, *_ = _cancelled_run(ws, cache)
    assert heading.startswith("### Reference comparison") and "No comparison" not in heading
    assert verdict == reference.reference()["verdict"] and chart is not None and table["data"]
    assert not view.visible  # no workspace comparison to switch to
    assert "shipped reference" in progress


def test_a_partial_comparison_is_shown_marked_partial_when_none_finished(tmp_path):
    from lab.workspace import Workspace

    ws = Workspace.open(tmp_path)
    items = stratified(read_evalset(sample_evalset_path(ws)), 6)
    part = evaluation.run_evaluation(items, {"base": Scripted(items, 2)}, GenConfig(), bootstrap=20)
    partial = showcase.compose({"base": {"spec": "base", "result": part}}, showcase.Inputs(), "cancelled")
    partial["run"] = {"status": "cancelled", "stages": [], "total_s": 12.0}
    shown = start_tab.after_run(ws, partial)
    assert shown is partial
    assert "cancelled: partial" in start_view.heading_md(shown)
    assert "marked partial" in start_view.done_line(partial, shown)
    empty = showcase.compose({}, showcase.Inputs(), "cancelled")
    assert start_tab.after_run(ws, empty)["reference"]  # nothing at all: the shipped reference, never a blank


@pytest.mark.integration
def test_cancel_through_the_app_keeps_the_chart_table_and_verdict(client, app_home):
    import time

    from lab.workspace import Workspace

    saved = _save_comparison(Workspace.open(app_home), "cancel-client-test")
    job = client.submit("sample", "sample", None, 8, ["base"], api_name="/start_run")
    deadline = time.time() + 120
    while not any("Stage" in str(out[0]) for out in job.outputs()) and not job.done() and time.time() < deadline:
        time.sleep(0.2)
    client.predict(api_name="/start_cancel")
    progress, heading, headline, verdict, chart, examples, table, how, view, *_ = job.result(timeout=300)
    assert "No comparison on this workspace yet" not in heading and heading.startswith("### Latest comparison")
    assert verdict == saved["verdict"] and chart is not None
    assert table["headers"][0] == "contestant" and [row[0] for row in table["data"]] == list(CONTESTANTS)
    assert "cancelled" in progress and "last finished comparison" in progress
