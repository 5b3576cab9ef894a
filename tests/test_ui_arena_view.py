"""Arena view formatters without a browser: the per-question filter, summary cells with intervals, charts."""

from __future__ import annotations

from lab.arena import evaluation
from lab.config import GenConfig
from lab.ui import arena_view as view
from tests.test_arena import Scripted, _items


def _result():
    liar = Scripted("base", {f"price {i}?": "It costs 100 euro." for i in range(4)})
    responders = {"base": liar, "rag:x": Scripted("rag:x", {})}
    return evaluation.run_evaluation(_items(), responders, GenConfig(), bootstrap=50)


def test_filter_finds_the_hallucinations_of_one_contestant():
    rows = view.question_rows(_result(), system="base", category="hallucination")
    assert len(rows) == 4 and {r[1] for r in rows} == {"base"} and {r[3] for r in rows} == {"hallucination"}
    assert view.question_rows(_result(), system="rag:x", category="hallucination") == []
    assert len(view.question_rows(_result(), text="PRICE 2")) == 2


def test_summary_cells_and_figures():
    result = _result()
    head, rows = view.summary_rows(result)
    base = dict(zip(head, rows[0], strict=True))
    assert base["hallucination_rate"] == "100 [100-100]" and base["idk_rate"] == "0 [0-0]"
    detail = view.question_detail(result, "q0", "base")
    assert "category: **skipped**" in detail and "`docs/a.md` (score 0.80)" in detail
    assert view.bar_chart(result).axes[0].get_ylabel().startswith("%")
    from lab.arena.leaderboard import leaderboard

    board = leaderboard([{"system_a": "x", "system_b": "y", "winner": "a"}], bootstrap=5)
    assert view.leaderboard_rows(board)[0][1] == "x" and view.heatmap(board).axes
