"""The decision card's UI rendering: a Markdown table whose cells are the card's values, the winner starred, and
the Start tab and batch evaluation showing it."""

from __future__ import annotations

from lab.arena.reference import reference
from lab.arena.report import format_cell
from lab.ui import decision_view
from tests.test_decision import _items, _result, _rows


def test_markdown_cells_are_the_cards_values_and_only_winners_are_starred():
    items = _items(60)
    result = _result({"reader": _rows("reader", items, set(range(48))), "memo": _rows("memo", items, set(range(30)))})
    card = decision_view._card(result, 500)
    md = decision_view.card_markdown(card)
    headers, rows = decision_view.card_rows(card)
    assert headers == ["Criterion", "reader", "memo"]
    for row, shown in zip(card["rows"], rows, strict=True):
        for system, text in zip(card["systems"], shown[1:], strict=True):
            star = decision_view.STAR if row["winner"] == system else ""
            assert text == format_cell(row["cells"][system]) + star
            assert f"| {text} |" in md or f"| {text}" in md
    assert md.count("★") == 1 + sum(1 for r in card["rows"] if r["winner"])  # the legend's star, then each winner's
    assert decision_view.card_markdown({"questions": []}) == "" and decision_view.card_html({"questions": []}) == ""


def test_start_tab_and_batch_evaluation_show_the_card(tmp_path):
    from lab.ui import arena_eval, start_tab
    from lab.workspace import Workspace

    shipped = reference()
    said = start_tab._show(shipped)[1]
    assert said.startswith("### What the evidence says") and "The decision card" in said
    assert "| Made-up answers on questions nothing answers |" in said
    items = _items(12)
    result = _result({"a": _rows("a", items, {1, 2})}) | {"id": "e1"}
    assert "The decision card" in arena_eval._show(Workspace.open(tmp_path / "home"), result)[1]
