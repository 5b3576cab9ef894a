"""The RAG tab: its formatters, the API through gradio_client against the launched app, and a real browser that
builds an index, retrieves passages and saves test-artifacts/rag-tab.png."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import pytest

from lab.rag import Passage
from lab.ui import rag_tab, rag_view

DOCS = Path(__file__).resolve().parent.parent / "data" / "docs"


def test_highlight_marks_question_words_and_escapes():
    out = rag_view.highlight("Oil <b>volume</b> of the gearbox: 410 litres", "What is the gearbox oil volume?")
    assert out == "<mark>Oil</mark> &lt;b&gt;<mark>volume</mark>&lt;/b&gt; of the <mark>gearbox</mark>: 410 litres"
    html = rag_view.passages_html([Passage("a <x>", "f.md", 0.5, "d:0", "d")], "a")
    assert "f.md" in html and "0.500" in html and "&lt;x&gt;" in html
    assert "No passage" in rag_view.passages_html([], "q")


def test_stats_and_metrics_tables():
    info = {
        "stats": {
            "documents": 2,
            "chunks": 5,
            "tokens_per_chunk": {"mean": 9.5, "min": 3, "max": 12},
            "dims": 384,
            "store": "qdrant-edge",
            "build_seconds": 1.5,
        },
        "embedded_docs": 1,
        "reused_docs": 1,
        "problems": ["x.bin: binary"],
    }
    md = rag_view.stats_markdown("idx", info)
    assert "| documents | 2 |" in md and "| chunks | 5 |" in md and "- x.bin: binary" in md
    rows = [{"mode": "dense", "hit_rate": 0.5, "k": 5, "mrr": 0.25, "n": 4}]
    assert "| dense | 0.500 (k=5) | 0.250 | 4 |" in rag_view.metrics_markdown(rows)
    with pytest.raises(ValueError, match="chunk sizes 'a, b'"):
        rag_view.chunk_sizes("a, b")
    assert rag_view.chunk_sizes("128, 256 512") == [128, 256, 512]


def test_cancel_stops_a_build_at_its_next_progress_report(ws):
    seen = []
    report = rag_tab.checked_progress(ws, "idx", lambda f, desc: seen.append(desc))
    report(0.1, "embedding chunk 32 of 64")
    assert "`idx`" in rag_tab.request_cancel(ws, "idx")
    with pytest.raises(ValueError, match="build of 'idx' cancelled"):
        report(0.5, "embedding chunk 64 of 64")
    assert seen == ["embedding chunk 32 of 64"]
    rag_tab.checked_progress(ws, "idx", lambda f, desc: None)(0.1, "a new build starts uncancelled")


@pytest.fixture(scope="module")
def small_docs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rag-ui") / "docs"
    folder.mkdir()
    for name in ("08-blade-inspection.md", "13-lightning-protection.md"):
        shutil.copy(DOCS / name, folder / name)
    return folder


@pytest.mark.integration
def test_build_query_info_delete_through_the_api(client, small_docs):
    name = f"ui-{uuid.uuid4().hex[:6]}"
    status, _ = client.predict(
        str(small_docs), name, "markdown", 256, 32, "embedded", "", False, api_name="/rag_build"
    )
    assert f"Index `{name}`" in status and "| 2 |" in status
    hits, prompt = client.predict(
        name, "How often is the internal rope-access blade inspection?", 3, False, 0, api_name="/rag_query"
    )
    assert hits.count("rag-hit") == 3 and "08-blade-inspection.md" in hits.split("rag-hit")[1]
    assert "<mark>" in hits and "rope-access blade inspection?" in prompt
    hybrid, _ = client.predict(name, "blade inspection", 2, True, 0.99, api_name="/rag_query")
    assert "No passage" in hybrid  # the cutoff removed every passage
    info, hybrid_default = client.predict(name, api_name="/rag_info")
    assert "qdrant-edge" in info and hybrid_default["value"] is False
    bad, _ = client.predict("/no/such/folder", "x1", "markdown", 256, 32, "embedded", "", False, api_name="/rag_build")
    assert "✗" in bad and "/no/such/folder" in bad
    qa = small_docs.parent / "qa.jsonl"
    rows = [
        ("How often is the internal rope-access blade inspection?", "08-blade-inspection.md"),
        ("What alarm does a lightning strike raise?", "13-lightning-protection.md"),
    ]
    qa.write_text("".join(json.dumps({"question": q, "source": s}) + "\n" for q, s in rows), encoding="utf-8")
    scores = client.predict(name, str(qa), 1, None, api_name="/rag_eval")
    assert "| dense | 1.000 (k=1) | 1.000 | 2 |" in scores and "| hybrid |" in scores
    chart, table = client.predict(name, str(qa), "64, 128", 1, None, api_name="/rag_sweep")
    assert "| 64 |" in table and "| 128 |" in table and chart["mark"] == "line"
    assert [(r[0], r[2]) for r in chart["data"]] == [(64, "dense"), (64, "hybrid"), (128, "dense"), (128, "hybrid")]
    assert chart["data"][0][1] > chart["data"][2][1]  # smaller chunks, more of them
    deleted, _ = client.predict(name, api_name="/rag_delete")
    assert f"Deleted index `{name}`" in deleted
    gone, _ = client.predict(name, "x", 3, False, 0, api_name="/rag_query")
    assert "no index named" in gone and name in gone


@pytest.mark.integration
def test_rag_tab_in_a_browser(page, shot, small_docs):
    page.get_by_role("tab", name="RAG").click()
    corpus = page.get_by_label("Corpus (saved name or folder path)")
    corpus.fill(str(small_docs))
    corpus.press("Enter")
    page.get_by_label("Index name").fill("browser-idx")
    page.get_by_role("button", name="Build index").click()
    try:
        page.locator("h3", has_text="browser-idx").first.wait_for(timeout=120_000)
    finally:
        shot(page, "rag-tab")
    page.get_by_role("textbox", name="Question").fill("Which alarm follows a lightning strike?")
    page.get_by_role("button", name="Retrieve").click()
    page.locator(".rag-hit").first.wait_for(timeout=60_000)
    assert page.locator(".rag-hit").count() == 5
    assert "13-lightning-protection.md" in page.locator(".rag-hit").first.inner_text()
    assert page.locator(".rag-hit mark").count() > 0
    shot(page, "rag-tab")


def test_passages_render_as_text_not_markdown():
    md = "## Blade inspection\n\n| task | interval |\n|---|---|\n| **rope access** | 48 months |\n- see [manual](x.md)"
    text = rag_view.plain_text(md)
    assert text.splitlines()[0] == "Blade inspection"
    assert "rope access · 48 months" in text and "• see manual" in text
    assert not any(mark in text for mark in ("##", "**", "|", "---", "]("))
    html = rag_view.passages_html([Passage(md, "f.md", 0.5, "d:0", "d")], "rope access interval")
    assert "**" not in html and "|---" not in html and "<mark>rope</mark>" in html


def test_index_stats_are_one_fact_per_row():
    info = {
        "stats": {"documents": 2, "chunks": 5, "tokens_per_chunk": {"mean": 9.5, "min": 3, "max": 12}, "dims": 384,
                  "store": "qdrant-edge", "build_seconds": 1.5},
        "embedded_docs": 1,
        "reused_docs": 1,
    }  # fmt: skip
    rows = [line for line in rag_view.stats_markdown("idx", info).splitlines() if line.startswith("| ")]
    assert all(line.count("|") == 3 for line in rows)  # two columns: a label and its value
    assert "| tokens per chunk | 9.5 on average (3 to 12) |" in rows and "| build time | 1.5 s |" in rows


@pytest.mark.integration
def test_actions_without_an_index_ask_for_one(client):
    hits, prompt = client.predict("", "What is checked?", 3, False, 0, 4, api_name="/rag_query")
    assert "choose or build an index" in hits and prompt == ""
    assert "choose or build an index" in client.predict("", "", 3, None, api_name="/rag_eval")
    assert "choose or build an index" in client.predict("", api_name="/rag_delete")[0]
    assert "choose or build an index" in client.predict("", api_name="/rag_info")[0]


@pytest.mark.integration
def test_full_prompt_is_what_the_arena_sends(client, app_home, cache, small_docs):
    """The prompt the tab shows equals the Arena responder's own prompt for the same question (focus included)."""
    from lab.config import GenConfig
    from lab.generation.engine import ModelResponder, _prompt_text
    from lab.rag import open_index
    from lab.workspace import Workspace

    name = f"ui-{uuid.uuid4().hex[:6]}"
    client.predict(str(small_docs), name, "markdown", 256, 32, "embedded", "", False, api_name="/rag_build")
    question = "Which alarm follows a lightning strike?"
    _, prompt = client.predict(name, question, 5, True, 0.3, 4, api_name="/rag_query")  # display options differ
    index = open_index(Workspace.open(app_home), name, cache)
    arena = ModelResponder(f"rag:{name}", None, cache.tokenizer("embedded"), index)
    gen = GenConfig(top_k=5, focus_sentences=4)
    expected = _prompt_text(arena.tok, arena._messages(question, arena._retrieve([question], gen)[0], gen))
    assert prompt == expected
    _, unfocused = client.predict(name, question, 5, False, 0, 0, api_name="/rag_query")
    assert len(unfocused) > len(prompt)  # focus 0 sends the whole (cut) passages
    client.predict(name, api_name="/rag_delete")


@pytest.mark.integration
def test_measure_accepts_an_uploaded_file(client, small_docs, tmp_path):
    from gradio_client import handle_file

    name = f"ui-{uuid.uuid4().hex[:6]}"
    client.predict(str(small_docs), name, "markdown", 256, 32, "embedded", "", False, api_name="/rag_build")
    qa = tmp_path / "my-eval.jsonl"
    qa.write_text(json.dumps({"question": "What alarm does a lightning strike raise?",
                              "source": "13-lightning-protection.md"}) + "\n", encoding="utf-8")  # fmt: skip
    scores = client.predict(name, "/no/such/path.jsonl", 1, handle_file(str(qa)), api_name="/rag_eval")
    assert "| dense | 1.000 (k=1) | 1.000 | 1 |" in scores
    missing = client.predict(name, "/no/such/path.jsonl", 1, None, api_name="/rag_eval")
    assert "/no/such/path.jsonl" in missing  # without an upload the typed path is used
    client.predict(name, api_name="/rag_delete")


@pytest.mark.browser
def test_rag_tab_starts_on_an_existing_index(page, shot):
    page.get_by_role("tab", name="RAG").click()
    picker = page.get_by_label("Index", exact=True)
    assert picker.input_value() == "sample"
    page.get_by_role("textbox", name="Question").fill("How often are the blades inspected?")
    page.get_by_role("button", name="Retrieve").click()
    try:
        page.locator(".rag-hit").first.wait_for(timeout=600_000)  # the sample index is built on first use
    finally:
        shot(page, "rag-tab-sample")
    hits = page.locator(".rag-hit").first.inner_text()
    assert "##" not in hits and "**" not in hits
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('Passages:'))", timeout=60_000
    )
    values = page.locator("textarea").evaluate_all("ts => ts.map(t => t.value)")
    prompt = next(v for v in values if "Passages:" in v)
    assert "Question: How often are the blades inspected?" in prompt
    shot(page, "rag-tab-sample")
    page.get_by_role("tab", name="Measure").click()
    page.get_by_role("button", name="Evaluate dense vs hybrid").click()
    page.get_by_text(re.compile(r"Dense misses")).first.wait_for(timeout=300_000)
    misses = page.get_by_text(re.compile(r"Dense misses")).first.locator("xpath=ancestor::div[1]").inner_text()
    assert "?" in misses or "none: every question" in misses  # the questions themselves, not bare ids
    shot(page, "rag-tab-measure")


def test_misses_list_the_questions_themselves_cut_to_a_line():
    long = "Which torque does the " + "very " * 30 + "long flange bolt take?"
    row = {"mode": "dense", "k": 5, "n": 40, "misses": ["q053", "q074"],
           "missed": [{"id": "q053", "question": "What is *the* <b>gearbox</b> oil?", "source": "gearbox.md"},
                      {"id": "q074", "question": long, "source": "bolts.md"}]}  # fmt: skip
    md = rag_view.misses_markdown(row)
    assert "**Dense misses** (2 of 40: no passage from the question's document in the top 5)" in md
    assert r"- `q053` What is \*the\* \<b\>gearbox\</b\> oil? (answer in `gearbox.md`)" in md
    line = next(x for x in md.splitlines() if "q074" in x)
    assert "Which torque does the very" in line and "…" in line and "long flange bolt" not in line
    assert "- ... and 1 more" in rag_view.misses_markdown(row, limit=1)
    assert "none: every question found its document" in rag_view.misses_markdown({**row, "misses": [], "missed": []})
