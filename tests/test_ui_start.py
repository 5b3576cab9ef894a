"""The Start tab in the launched app: it is the first tab and selected on page load, a visitor sees the latest
finished comparison at once (verdict, chart, three examples answered by every contestant side by side, summary)
through gradio_client and in a real browser (screenshot test-artifacts/start-tab.png), a bad evaluation file
stops the run with a message naming the bad line, the time ranges of the quick look and the whole comparison are
shown before either starts, a quick look runs and is labelled as such, and the pickers offer a corpus saved after
the page loaded."""

from __future__ import annotations

import json
import re
import shutil
import uuid

import pytest

from lab.arena import evaluation, showcase
from lab.config import GenConfig
from lab.data.evalset import read_evalset, sample_evalset_path, stratified
from lab.generation import Answer
from lab.ui import start_tab

CONTESTANTS = {"base": "base", "fine-tuned": "ft:demo", "RAG": "rag:sample"}


class Scripted:
    """Answers correctly on every `every`-th question, otherwise with a fixed wrong sentence."""

    def __init__(self, items, every: int):
        self.gold = {it.question: it.answer for it in items}
        self.every, self.calls = every, 0

    def answer_many(self, questions, gen):
        out = []
        for q in questions:
            self.calls += 1
            text = self.gold[q] if self.calls % self.every == 0 else "The valve is painted blue."
            out.append(Answer(text, [], 0.1, 10, 5))
        return out


@pytest.fixture(scope="module")
def comparison(app_home, app_url):
    """A finished comparison saved in the app's workspace the way the engine saves one."""
    from lab.workspace import Workspace

    ws = Workspace.open(app_home)
    items = stratified(read_evalset(sample_evalset_path(ws)), 12)
    evals = {}
    for n, (label, spec) in enumerate(CONTESTANTS.items(), 1):
        result = evaluation.run_evaluation(items, {label: Scripted(items, n + 1)}, GenConfig(), bootstrap=50)
        evals[label] = {"spec": spec, "result": result}
    result = showcase.compose(evals, showcase.Inputs(questions=12, bootstrap=50), "finished")
    result["showcase"]["total_s"] = 287.0
    eval_id = evaluation.save_evaluation(ws, result, "sample", f"{showcase.PREFIX}ui-test")
    return evaluation.load_evaluation(ws, eval_id)


def test_latest_comparison_through_the_api(client, comparison):
    heading, headline, verdict, chart, examples, table, how, view = client.predict(api_name="/start_latest")
    assert "Latest comparison" in heading and "12 questions" in heading and "3 contestants" in heading
    assert verdict == comparison["verdict"] and "**" in verdict
    assert headline.startswith("### What the evidence says") and "answered the most correctly" in headline
    assert view["value"] == start_tab.LATEST and view["visible"]  # the switch back to the reference is offered
    assert chart is not None
    for label in CONTESTANTS:
        assert f"<th>{label}</th>" in examples
    assert examples.count("<tr>") == 4  # header + three questions
    assert [row[0] for row in table["data"]] == list(CONTESTANTS)
    assert [row[3] for row in table["data"]] == list(CONTESTANTS.values())
    n_answerable = comparison["systems"][0]["n_answerable"]
    assert f"of {n_answerable} answerable" in table["headers"][1]  # the subset's answerable count, in the header


def test_the_view_switch_shows_the_shipped_reference_and_back(client, comparison):
    heading, *_ = client.predict(start_tab.REFERENCE, api_name="/start_view")
    assert heading.startswith("### Reference comparison") and "123 questions" in heading
    heading, *_ = client.predict(start_tab.LATEST, api_name="/start_view")
    assert heading.startswith("### Latest comparison")


def test_a_bad_evaluation_file_stops_with_the_line(client, tmp_path, comparison):
    from gradio_client import handle_file

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q?", "answer": "a"}) + "\n" + json.dumps({"question": ""}) + "\n")
    progress, *_ = client.predict("sample", "sample", handle_file(str(bad)), 0, ["base"], api_name="/start_run")
    assert "did not start" in progress and "line 2" in progress  # refused before anything starts


def test_no_contestant_ticked_runs_nothing(client, comparison):
    progress, *_ = client.predict("sample", "sample", None, 0, [], api_name="/start_run")
    assert "tick at least one contestant" in progress


def test_start_tab_is_first_and_shows_the_last_result_on_load(page, shot, comparison):
    tabs = page.get_by_role("tab")
    assert tabs.first.inner_text().strip() == "Start"
    assert page.get_by_role("tab", name="Start").get_attribute("aria-selected") == "true"
    page.get_by_role("heading", name="Latest comparison").wait_for()
    assert page.get_by_role("heading", name="What the evidence says").is_visible()
    assert page.locator("#start-view").get_by_text(start_tab.REFERENCE).is_visible()  # the way back to the reference
    assert page.get_by_role("button", name="Run the whole comparison").is_visible()
    assert page.get_by_role("button", name="Quick look").is_visible()
    estimate = page.locator("#start-estimate").get_by_text(re.compile(r"quick look \(12 questions.*about"))
    estimate.wait_for(timeout=180_000)  # two forecasts, each reading the data and the tokenizer
    assert not page.get_by_text("idk_above").first.is_visible()  # the recipe is folded
    assert page.get_by_role("button", name="Cancel").first.is_visible()
    assert page.get_by_text("Fine-tune, RAG, or both?").is_visible()
    page.locator(".start-ex").wait_for()
    assert page.locator(".start-ex tr").count() == 4
    assert page.locator(".start-ex th").count() == 1 + len(CONTESTANTS)
    shot(page, "start-tab")
    page.locator("#start-chart img").wait_for()
    shot(page, "start-tab")
    page.locator("#start-view").get_by_text(start_tab.REFERENCE).click()
    page.get_by_role("heading", name="Reference comparison, shipped with ExpertLab").wait_for()
    shot(page, "start-tab-reference")


def test_the_time_ranges_are_shown_before_anything_starts(client, comparison):
    text = client.predict("sample", "sample", None, 40, ["base", "RAG"], api_name="/start_estimate")
    assert "quick look (12 questions, wide intervals)" in text and "whole comparison (40 questions)" in text
    assert len(re.findall(r"about \d+(-\d+)? (s|min)|a few seconds", text)) == 2, text


def test_the_start_pickers_offer_a_corpus_saved_after_the_page_loaded(client, app_home, tmp_path):
    from gradio_client import handle_file

    doc = tmp_path / "late.md"
    doc.write_text("# Late\nThe late valve is green.\n", encoding="utf-8")
    name = f"start-{uuid.uuid4().hex[:6]}"
    try:
        status, _ = client.predict([handle_file(str(doc))], name, False, api_name="/data_save_corpus")
        dataset, corpus = client.predict("sample", "sample", api_name="/start_pickers")
        assert name in [c[0] if isinstance(c, list) else c for c in corpus["choices"]]
        assert corpus["value"] == "sample" and dataset["value"] == "sample"  # the selection is kept
    finally:
        shutil.rmtree(app_home / "corpora" / name, ignore_errors=True)


@pytest.mark.integration
def test_a_quick_look_runs_and_is_labelled(client, comparison):
    """Last in this module: it makes a one-contestant comparison the latest."""
    progress, heading, *_ = client.predict("sample", "sample", None, 40, ["base"], api_name="/start_quick")
    assert "Comparison finished" in progress and "(estimated " in progress
    assert "Quick look" in heading and "12 questions" in heading and "intervals are wide" in heading
