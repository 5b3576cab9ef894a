"""The Start tab's first screen, as pure functions: the examples represent the headline (winner right and loser
wrong, the reverse, both right), "too few questions to tell" never stands beside an interval that excludes zero,
the answer comes first and the recipe (idk_above, AVX-512, shares) is folded under "How this was measured", and a
quick look is labelled with its wide intervals. No model is loaded."""

from __future__ import annotations

import re

from lab.arena import reference, showcase
from lab.arena.verdict import headline, verdict
from lab.ui import start_view


def _row(qid, system, category, group="g", answerable=True):
    return {"id": qid, "system": system, "category": category, "group": group, "answerable": answerable,
            "question": f"question {qid}?", "answer": "x", "prediction": f"{system} on {qid}"}  # fmt: skip


def _result(table: dict[str, dict[str, str]], kinds: dict[str, str] | None = None) -> dict:
    """A comparison from {question id: {system: category}}; systems ranked by their correct count."""
    rows = [_row(q, s, c) for q, cats in table.items() for s, c in cats.items()]
    systems = sorted({s for cats in table.values() for s in cats})
    rate = {s: sum(r["category"] == "correct" for r in rows if r["system"] == s) / len(table) for s in systems}
    out = {"questions": rows, "systems": [{"system": s, "correct_rate": rate[s], "n_answerable": len(table)}
                                          for s in systems]}  # fmt: skip
    out["contestants"] = {s: {"kind": k} for s, k in (kinds or {}).items()}
    return out


def test_the_examples_show_the_winner_right_the_reverse_and_both_right():
    table = {
        "q1": {"RAG": "wrong", "ft": "wrong", "base": "wrong"},  # first in the old order (they all disagree less)
        "q2": {"RAG": "correct", "ft": "correct", "base": "wrong"},
        "q3": {"RAG": "wrong", "ft": "correct", "base": "wrong"},
        "q4": {"RAG": "correct", "ft": "wrong", "base": "wrong"},
        "q5": {"RAG": "correct", "ft": "wrong", "base": "correct"},
    }
    result = _result(table, {"RAG": "rag", "ft": "ft", "base": "base"})
    assert reference.headline_pair(result) == ("RAG", "ft")
    picked = reference.headline_examples(result, 3)
    cats = [(ex["answers"]["RAG"]["category"], ex["answers"]["ft"]["category"]) for ex in picked]
    assert cats == [("correct", "wrong"), ("wrong", "correct"), ("correct", "correct")]


def test_without_a_reverse_case_the_examples_fill_up_and_without_kinds_the_runner_up_is_the_loser():
    table = {f"q{i}": {"A": "correct", "B": "wrong" if i % 2 else "correct", "C": "wrong"} for i in range(6)}
    result = _result(table)
    assert reference.headline_pair(result) == ("A", "B")
    picked = reference.headline_examples(result, 3)
    assert len(picked) == 3 and picked[0]["answers"]["B"]["category"] == "wrong"
    assert picked[1]["answers"]["B"]["category"] == "correct"  # no reverse case: both right comes next
    assert reference.headline_examples({"systems": [], "questions": []}) == []


def _intervals(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"95% CI ([+-]?\d+) to ([+-]?\d+)", text)]


def test_too_few_questions_is_never_printed_beside_an_interval_that_excludes_zero():
    # six answerable questions: A right on all, B wrong on all; a bootstrap interval collapses to +100 to +100
    table = {f"q{i}": {"A": "correct", "B": "wrong"} for i in range(6)}
    result = _result(table)
    result["systems"] = [s | {"n": 6} for s in result["systems"]]
    said = headline(result) + "\n" + verdict(result)
    for line in said.splitlines():
        if "too few questions" in line:
            assert all(lo <= 0 <= hi for lo, hi in _intervals(line)), line


def test_the_first_screen_leads_with_the_answer_and_folds_the_recipe():
    ref = reference.reference()
    heading, said, _verdict, _chart, _examples, _table, how = start_view.show(ref)
    assert said.startswith("### What the evidence says")
    for jargon in ("idk_above", "AVX-512", "share"):
        assert jargon not in heading and jargon not in said and jargon not in start_view.QUESTION
        assert jargon in how  # folded under "How this was measured", still there
    assert len(start_view.QUESTION) < 300


def test_a_quick_look_is_labelled_with_its_wide_intervals():
    result = {"systems": [{"system": "base"}], "status": "finished", "created_at": 0,
              "showcase": {"questions": 12, "inputs": {"questions": 12, "quick": True}}}  # fmt: skip
    assert "Quick look" in start_view.heading_md(result) and "intervals are wide" in start_view.heading_md(result)
    full = {**result, "showcase": {"questions": 40, "inputs": {"questions": 40}}}
    assert "Quick look" not in start_view.heading_md(full) and "40 questions" in start_view.heading_md(full)
    assert showcase.quick_look(showcase.Inputs()).questions == 12
