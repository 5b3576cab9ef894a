"""The update test saved beside its evaluation: read back into every decision card of it, written by the Start tab's
panel (scripted contestants, no model), its estimate from saved times, and Cancel between stages keeps nothing."""

from __future__ import annotations

import json

from lab.arena import costs
from lab.arena import update_test as ut
from lab.arena.scoring import question_row
from lab.config import GenConfig, RagConfig
from lab.generation import Answer
from tests.fakes import RuleResponder
from tests.test_update_test import ITEMS, _corpus, _tree_hash

SPECS = {"rag:bake": "rag:bake", "ft:run1": "ft:run1"}


def _saved_eval(ws, eval_id="showcase-e1"):
    """A saved evaluation of a RAG and a fine-tuned contestant over the corpus "bake", its index and run."""
    _corpus(ws)
    index = ws.dir("indexes", "bake")
    index.mkdir(parents=True)
    RagConfig(name="bake", corpus="bake").save(index / "config.json")
    (index / "meta.json").write_text(json.dumps({"stats": {"build_seconds": 3.5}}), encoding="utf-8")
    run = ws.dir("runs", "run1")
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"metrics": {"runtime_s": 95.0}}), encoding="utf-8")
    rows = [question_row(it, Answer("I don't know.", latency_s=0.5), s) for s in SPECS for it in ITEMS]
    info = {"rag:bake": {"kind": "rag", "index": "bake"}, "ft:run1": {"kind": "ft", "run": "run1"}}
    result = {"id": eval_id, "questions": rows, "systems": [{"system": s} for s in SPECS],
              "gen": GenConfig().to_dict(), "contestants": info}  # fmt: skip
    folder = ws.dir("evals", eval_id)
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(result), encoding="utf-8")
    return result


def _hooks(ws):
    built = {}

    def build(config):
        built["docs"] = ut.read_docs(__import__("pathlib").Path(config.corpus))
        ws.dir("indexes", config.name).mkdir(parents=True)

    by_question = {it.question: it for it in ITEMS}
    answers = {
        "rag": lambda q: built["docs"][by_question[q].source],  # reads the changed copy
        "ft": lambda q: f"It is {by_question[q].answer}.",  # remembers the old fact
    }
    return {"build": build, "responder": lambda spec: RuleResponder(spec, answers[spec.split(":")[0]])}


def test_a_saved_update_test_shows_on_every_card_of_its_evaluation(ws):
    result = _saved_eval(ws)
    assert ut.saved(ws, result) is None
    assert "update" not in {r["key"] for r in costs.card_for(ws, result, bootstrap=50)["rows"]}
    update = ut.update_for(ws, None, result, k=3, seed=1, **_hooks(ws))
    assert ut.save(ws, result, update) == ws.dir("evals", "showcase-e1") / ut.FILE
    assert ut.save(ws, {"questions": []}, update) is None  # not a saved evaluation: nothing written
    card = costs.card_for(ws, json.loads((ws.dir("evals", "showcase-e1") / "results.json").read_text()), bootstrap=50)
    row = next(r for r in card["rows"] if r["key"] == "update")
    assert row["counts"] == {"rag:bake": {"new": 3, "old": 0, "neither": 0},
                             "ft:run1": {"new": 0, "old": 3, "neither": 0}}  # fmt: skip
    assert "took 95 s" in row["sentence"] and card["update"]["seed"] == 1


def test_the_estimate_reads_the_saved_build_time_and_measured_latency(ws):
    result = _saved_eval(ws)
    assert ut.forecast_s(ws, result, k=4) == (3.5, 2 * 4 * 0.5)
    from lab.ui.start_update import estimate_md

    assert "about 8 s" in estimate_md(ws, result, 4) and "re-index about 4 s" in estimate_md(ws, result, 4)


def test_the_panel_runs_saves_and_shows_the_counts(ws):
    from lab.ui import start_update

    result = _saved_eval(ws)
    steps = list(start_update._on_run(ws, None, result, lambda: False, 3, **_hooks(ws)))
    progress, said = steps[-1]
    assert progress.startswith("Done") and "| rag:bake | 3 | 0 | 0 |" in said and "| ft:run1 | 0 | 3 | 0 |" in said
    assert ut.saved(ws, result)["counts"]["rag:bake"]["new"] == 3


def test_cancel_between_stages_keeps_nothing_and_touches_no_document(ws):
    from lab.ui import start_update

    result = _saved_eval(ws)
    before = _tree_hash(ws.dir("corpora", "bake"))
    seen = []

    def stopped():  # Cancel pressed while the re-index runs: the next stage does not start
        seen.append(1)
        return len(seen) > 1

    progress, _ = list(start_update._on_run(ws, None, result, stopped, 3, **_hooks(ws)))[-1]
    assert "cancelled" in progress and ut.saved(ws, result) is None
    assert _tree_hash(ws.dir("corpora", "bake")) == before
    assert not any((ws.tmp / "update-test").iterdir()) and ws.list("indexes") == ["bake"]
