"""The decision card's UI rendering: a Markdown table whose cells are the card's values, the winner starred, and
the Start tab and batch evaluation showing it."""

from __future__ import annotations

from pathlib import Path

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


def test_start_tab_and_batch_evaluation_show_the_card(ws):
    from lab.ui import arena_eval, start_view

    shipped = reference()
    said = start_view.show(shipped)[1]
    assert said.startswith("### What the evidence says") and "The decision card" in said
    assert "| Made-up answers on questions nothing answers |" in said
    items = _items(12)
    result = _result({"a": _rows("a", items, {1, 2})}) | {"id": "e1"}
    assert "The decision card" in arena_eval._show(ws, result)["verdict"]


def _costly_result(ws):
    """An evaluation of ft:run1 and rag:bake, whose run and index folders record their one-time costs."""
    import json

    from fakes import Scripted, eval_items

    from lab.arena import evaluation
    from lab.config import GenConfig, RagConfig

    run, index = ws.dir("runs", "run1"), ws.dir("indexes", "bake")
    run.mkdir(parents=True)
    index.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"metrics": {"runtime_s": 95.0, "peak_memory_mb": 812.0}}))
    RagConfig(name="bake", corpus="bake").save(index / "config.json")
    (index / "meta.json").write_text(json.dumps({"stats": {"build_seconds": 3.5}}), encoding="utf-8")
    specs = ["ft:run1", "rag:bake"]
    result = evaluation.run_evaluation(eval_items(), {s: Scripted(s, {}) for s in specs}, GenConfig(), bootstrap=20)
    info = {"ft:run1": {"kind": "ft", "run": "run1"}, "rag:bake": {"kind": "rag", "index": "bake"}}
    return result | {"id": "e-costs", "contestants": info}


def test_the_card_shows_training_and_index_costs_the_workspace_records(ws):
    from lab.ui import arena_eval

    result = _costly_result(ws)
    without = decision_view.card_markdown(result, bootstrap=20)
    assert "Training time (one-time)" not in without and "Index build time (one-time)" not in without
    for md in (decision_view.card_markdown(result, bootstrap=20, ws=ws), arena_eval._show(ws, result)["verdict"]):
        rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| ")}
        assert rows["Training time (one-time)"] == "| Training time (one-time) | 95 s | n/a |"
        assert rows["Training peak memory"] == "| Training peak memory | 812 MB | n/a |"
        assert rows["Index build time (one-time)"] == "| Index build time (one-time) | n/a | 3.50 s |"
        assert rows["Index size on disk"].startswith("| Index size on disk | n/a | ")


def test_the_evidence_pack_button_writes_the_html_and_zip_of_the_result_shown(ws):
    import json
    import zipfile

    import gradio as gr

    from lab.ui import arena_eval

    with gr.Blocks() as demo:
        arena_eval.build(ws, None, ["base"])
    fn = next(f for f in demo.fns.values() if f.api_name == "arena_eval_pack")
    button = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "arena-eval-pack")
    assert button.value == "Evidence pack (HTML + zip)" and (button._id, "click") in [t[:2] for t in fn.targets]
    result = _costly_result(ws)
    shown = fn.fn(result)
    html_path, zip_path = (Path(p) for p in shown["value"])
    assert shown["visible"] is True and (html_path.name, zip_path.name) == ("report.html", "evidence.zip")
    assert html_path.parent == ws.downloads / "reports" / "e-costs"  # the folder the app serves
    page = html_path.read_text(encoding="utf-8")
    assert "decision card" in page.lower() and "Training time (one-time)" in page
    with zipfile.ZipFile(zip_path) as zf:
        card = json.loads(zf.read("card.json"))
        assert zf.read("report.html").decode("utf-8") == page
    assert {r["key"] for r in card["rows"]} >= {"train_s", "index_s"}
    assert fn.fn({})["visible"] is False  # nothing shown yet: a warning, no files
    shipped = decision_view.evidence_files(ws, reference())  # what a Start-tab button would pack: the reference
    assert [Path(p).name for p in shipped] == ["report.html", "evidence.zip"]
    assert all(Path(p).is_file() for p in shipped)


def test_the_start_tab_packs_the_comparison_it_shows(ws):
    import gradio as gr

    from lab.ui import start_tab

    with gr.Blocks() as demo:
        start_tab.build(demo, ws, None)
    fn = next(f for f in demo.fns.values() if f.api_name == "start_pack")
    shown = fn.fn(start_tab.REFERENCE)  # a fresh workspace shows the shipped reference
    html_path, zip_path = (Path(p) for p in shown["value"])
    assert shown["visible"] is True and (html_path.name, zip_path.name) == ("report.html", "evidence.zip")
    assert "decision card" in html_path.read_text(encoding="utf-8").lower()
    assert html_path.is_relative_to(ws.downloads)  # the folder the app serves
