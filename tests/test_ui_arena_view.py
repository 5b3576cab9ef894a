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


def test_one_friendly_name_per_contestant_as_the_start_tab_names_them_with_the_id_small():
    from lab.arena.showcase import ALL_CONTESTANTS

    specs = {"base": "base", "ft:r1": "fine-tuned", "rag:docs": "RAG", "ft+rag:r1:docs": "fine-tuned + RAG"}
    for spec, name in specs.items():
        assert view.friendly(spec) == name and name in ALL_CONTESTANTS
    assert view.friendly("ft+rag:r2:docs", rag_trained=True) == "trained for RAG + RAG" in ALL_CONTESTANTS
    assert view.friendly("base:org/Some-Model-1B") == "base Some-Model-1B"
    assert view.name_text("rag:docs") == "RAG (rag:docs)" and view.name_text("base") == "base"
    assert view.name_html("ft:r1") == "<b>fine-tuned</b> <small><code>ft:r1</code></small>"
    names = {"ft:r2": "trained for RAG"}
    assert view.name_text("ft:r2", names) == "trained for RAG (ft:r2)"


def test_the_arena_s_views_show_friendly_names_not_raw_ids():
    from lab.arena.leaderboard import leaderboard

    result = _result()
    head, rows = view.summary_rows(result)
    assert [r[0] for r in rows] == ["base", "RAG (rag:x)"]
    widths = view.summary_widths(head)  # every column has its share of the box: none is cut off at the right
    assert len(widths) == len(head) and abs(sum(float(w.rstrip("%")) for w in widths) - 100) < 0.1
    assert head[-2:] == ["seconds p50 / p95", "tokens/s"] and rows[0][-2].count(" / ") == 1
    assert {r[1] for r in view.question_rows(result, system="rag:x")} == {"RAG (rag:x)"}
    assert "RAG" in view.question_detail(result, "q0", "RAG (rag:x)")  # a row's name finds its answer
    legend = [t.get_text() for t in view.bar_chart(result).axes[0].get_legend().get_texts()]
    assert legend == ["base", "RAG (rag:x)"]
    board = leaderboard([{"system_a": "ft:r1", "system_b": "rag:docs", "winner": "a"}], bootstrap=5)
    assert [r[1] for r in view.leaderboard_rows(board)] == ["fine-tuned (ft:r1)", "RAG (rag:docs)"]
    ticks = [t.get_text() for t in view.heatmap(board).axes[0].get_yticklabels()]
    assert ticks == ["fine-tuned\nft:r1", "RAG\nrag:docs"]
    assert "<b>RAG</b>" in view.battle_reveal_html("B", "rag:docs", {"speed": "1 s"})
    assert view.answer_md("ft:r1", None).startswith("### <b>fine-tuned</b> <small>")


def test_the_eval_filters_follow_a_new_result_s_contestants_and_categories():
    from lab.ui import arena_eval

    result = _result()
    people, cats = arena_eval.filter_updates(result, "ft:gone", "hallucination", {})
    assert people["choices"] == [("(all contestants)", ""), ("base", "base"), ("RAG (rag:x)", "rag:x")]
    assert people["value"] == ""  # a contestant the new result lacks is no longer picked
    assert ("hallucination", "hallucination") in cats["choices"] and cats["value"] == "hallucination"
    kept, _ = arena_eval.filter_updates(result, "rag:x", "", {})
    assert kept["value"] == "rag:x"


def _own_run(ws, tmp_path, run: str, dataset: str, rows: int = 30) -> None:
    import json

    from lab.config import TrainConfig
    from lab.data import save_dataset

    turns = [(f"What is part {i} made of?", f"Part {i} is made of alloy {i}.") for i in range(rows)]
    chats = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in turns]
    path = tmp_path / f"{dataset}.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in chats), encoding="utf-8")
    save_dataset(ws, dataset, path, overwrite=True)
    ws.dir("runs", run).mkdir(parents=True)
    TrainConfig(name=run, dataset=dataset).save(ws.dir("runs", run) / "config.json")


def test_batch_evaluation_of_own_data_asks_its_held_out_questions_never_the_sample_s(ws, tmp_path):
    import pytest

    from lab.config import RagConfig
    from lab.data.evalset import read_evalset, sample_evalset_path
    from lab.errors import LabError
    from lab.ui import arena_eval

    _own_run(ws, tmp_path, "mine", "parts")
    path, said = arena_eval.default_questions(ws, ["base", "ft:mine", "ft+rag:mine:sample"])
    items = read_evalset(path)
    assert items and all(it.question.startswith("What is part") for it in items)
    assert f"{len(items)} questions held out from dataset 'parts'" in said
    sample = {it.question for it in read_evalset(sample_evalset_path(ws))}
    assert not sample & {it.question for it in items}
    path, said = arena_eval.default_questions(ws, ["base", "rag:sample"])
    assert path == str(sample_evalset_path(ws)) and "sample" in said
    ws.dir("indexes", "manuals").mkdir(parents=True)
    RagConfig(name="manuals", corpus="manuals").save(ws.dir("indexes", "manuals") / "config.json")
    with pytest.raises(LabError, match="rag:manuals reads your own documents.*upload an evaluation JSONL"):
        arena_eval.default_questions(ws, ["base", "rag:manuals"])


def test_the_leaderboard_is_computed_when_its_tab_opens(ws, cache):
    from lab.ui.app import build_app

    demo = build_app(ws, cache)
    fns = list(demo.fns.values())
    board = next(fn for fn in fns if fn.api_name == "arena_leaderboard")
    outputs = {id(b) for b in board.outputs}
    tab = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "arena-leaderboard")
    on_open = [fn for fn in fns if (tab._id, "select") in [(t[0], t[1]) for t in fn.targets]]
    assert any({id(b) for b in fn.outputs} == outputs for fn in on_open)
