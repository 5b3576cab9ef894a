"""Arena view formatters without a browser: the per-question filter, summary cells with intervals, charts."""

from __future__ import annotations

from fakes import Scripted, eval_items

from lab.arena import evaluation
from lab.config import GenConfig
from lab.ui import arena_view as view


def _result():
    liar = Scripted("base", {f"price {i}?": "It costs 100 euro." for i in range(4)})
    responders = {"base": liar, "rag:x": Scripted("rag:x", {})}
    return evaluation.run_evaluation(eval_items(), responders, GenConfig(), bootstrap=50)


def test_filter_finds_the_hallucinations_of_one_contestant():
    rows = view.question_rows(_result(), system="base", category="hallucination")
    assert len(rows) == 4 and {r[1] for r in rows} == {"base"} and {r[2] for r in rows} == {"hallucination"}
    assert view.question_rows(_result(), system="rag:x", category="hallucination") == []
    assert len(view.question_rows(_result(), text="PRICE 2")) == 2


def test_summary_cells_and_figures():
    result = _result()
    head, rows = view.summary_rows(result)
    base = dict(zip(head, rows[0], strict=True))
    assert base["hallucination"] == "100% [100-100]" and base["I don't know"] == "0% [0-0]"
    detail = view.question_detail(result, "q0", "base")
    assert "category: **skipped**" in detail and "`docs/a.md` (score 0.80)" in detail
    assert view.bar_chart(result).axes[0].get_ylabel().startswith("%")
    from lab.arena.leaderboard import leaderboard

    board = leaderboard([{"system_a": "x", "system_b": "y", "winner": "a"}], bootstrap=5)
    assert view.leaderboard_rows(board)[0][1] == "x" and view.heatmap(board).axes


def test_passages_open_in_full_as_plain_text_and_say_when_there_are_none():
    text = "## Torque table\n\n| Joint | Value |\n|---|---|\n| **Flange** | `3,600 Nm` |\n\n" + "word " * 400
    shown = view.passages_html([{"text": text, "source": "m.md", "score": 0.5}, {"text": "<b>x</b>", "source": "n"}])
    assert shown.startswith("<details") and "Passages (2)" in shown and "m.md" in shown and "score 0.50" in shown
    assert "Torque table" in shown and "Flange" in shown and "3,600 Nm" in shown
    assert not any(mark in shown for mark in ("##", "**", "`", "|---"))  # markup dropped, words kept
    assert shown.count("word") == 400 and "&lt;b&gt;x&lt;/b&gt;" in shown  # nothing cut, nothing interpreted
    assert "answers from the model alone" in view.passages_html([]) and "<details" not in view.passages_html([])


def test_verdict_items_are_one_sentence_with_the_interval_after_it():
    md = view.verdict_md(_result()["verdict"])
    items = md.split("\n- ")
    assert len(items) == len(_result()["verdict"].splitlines())
    with_interval = [i for i in items if "CI" in i]
    assert with_interval
    for item in with_interval:
        sentence, note = item.split("\n")
        assert "CI" not in sentence and sentence.rstrip().endswith(".") and note.strip().startswith("<small>")


def test_empty_summary_columns_are_dropped_and_the_threshold_panel_needs_both_kinds_of_question():
    result = _result()
    only_answerable = dict(
        result, systems=[dict(s, hallucination_rate=None, idk_rate=None) for s in result["systems"]]
    )
    head, rows = view.summary_rows(only_answerable)
    assert "hallucination" not in head and "I don't know" not in head and len(rows[0]) == len(head)
    assert "hallucination" in view.summary_rows(result)[0]
    curve = [{"threshold": 0.5, "correct_rate": 0.4, "hallucination_rate": 0.2}]
    with_curve = dict(result, idk_curve={"rag:x": curve}, gen={"idk_above": 0.5})
    fig = view.bar_chart(with_curve)
    assert len(fig.axes) == 2 and fig.axes[1].get_xlabel().startswith("hallucination")
    undrawable = dict(result, idk_curve={"rag:x": [dict(curve[0], hallucination_rate=None)]})
    assert len(view.bar_chart(undrawable).axes) == 1  # no unanswerable question: no empty panel


def test_a_contestant_with_too_few_votes_shows_no_interval_and_is_named_in_a_warning():
    from lab.arena.leaderboard import leaderboard

    one = leaderboard([{"system_a": "x", "system_b": "y", "winner": "a"}], bootstrap=20, seed=0)
    assert all(row[3].startswith("too few votes") for row in view.leaderboard_rows(one))  # one vote: no point "CI"
    assert "Too few votes to rank yet" in view.few_votes(one) and "x, y" in view.few_votes(one)
    many = [{"system_a": "x", "system_b": "y", "winner": "a" if i % 3 else "b"} for i in range(12)]
    board = leaderboard(many, bootstrap=20, seed=0)
    assert all(" to " in row[3] for row in view.leaderboard_rows(board)) and view.few_votes(board) == ""
