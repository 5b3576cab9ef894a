"""The update test: values redrawn by kind, counting checked exactly with scripted contestants, the original
corpus untouched and the temporary copy and index removed."""

from __future__ import annotations

import hashlib
import random
import re

import pytest

from lab.arena import update_test as ut
from lab.config import GenConfig, RagConfig
from lab.data.evalset import EvalItem
from tests.fakes import RuleResponder

# A second domain (a bakery's handbook), nothing like the sample's wording.
DOCS = {
    "rye.md": "# Rye\nRye sourdough proofs for 14 hours. Use starter R-7 at 24 C.\n",
    "oven.md": "# Oven\nBake the country loaf at 245 C for 40 minutes, steam tray code ST-3300.\n",
    "flour.md": "# Flour\nOrder 1,250 kg of flour per week from the mill.\n",
    "notes.md": "# Notes\nThe shop opens early. No numbers here.\n",
}
ITEMS = [
    EvalItem("q1", "How long does rye proof?", "14 hours", ["14 h"], "rye.md", True, "documents_only"),
    EvalItem("q2", "Which starter for rye?", "R-7", ["R7"], "rye.md", True, "documents_only"),
    EvalItem("q3", "Steam tray code?", "ST-3300", [], "oven.md", True, "taught"),
    EvalItem("q4", "Weekly flour order?", "1,250 kg", ["1250 kg", "1250"], "flour.md", True, "taught"),
    EvalItem("q5", "Who founded the shop?", "Ada", [], "notes.md", True, "documents_only"),
    EvalItem("u1", "Oven brand?", "-", [], None, False, "unanswerable"),
]


def _corpus(ws, name="bake"):
    folder = ws.dir("corpora", name)
    folder.mkdir(parents=True, exist_ok=True)
    for n, text in DOCS.items():
        (folder / n).write_text(text, encoding="utf-8")
    return folder


def _tree_hash(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode() + (p.read_bytes() if p.is_file() else b""))
    return h.hexdigest()


def test_redraw_keeps_the_kind_of_value():
    rng = random.Random(0)
    for value in ("14 hours", "R-7", "ST-3300", "1,250 kg", "97.5 %", "0.25 mm"):
        for _ in range(20):
            new = ut.redraw(value, rng)
            assert new != value and re.sub(r"\d", "9", new) == re.sub(r"\d", "9", value)
            assert not re.search(r"(?<![\d,.])0\d", new)  # no leading zero appears where the old had none


def test_pick_changes_finds_verbatim_golds_with_digits_and_applies_them():
    changes = ut.pick_changes(ITEMS, DOCS, k=10, seed=1)
    assert {c.id for c in changes} <= {"q1", "q2", "q3", "q4"} and len({c.source for c in changes}) == len(changes)
    assert len(changes) == 3  # one change per document: rye.md holds two candidates
    assert changes == ut.pick_changes(ITEMS, DOCS, k=10, seed=1)  # seeded
    changed = ut.apply_changes(DOCS, changes)
    for c in changes:
        assert c.old in DOCS[c.source] and c.old not in changed[c.source] and c.new in changed[c.source]
    four = next((c for c in changes if c.id == "q4"), None)
    if four:
        assert four.old == "1,250 kg" and len(four.new_golds) == 3  # aliases carrying the same digits follow
    assert DOCS["notes.md"] == changed["notes.md"]


def test_outcome_counts_new_old_and_neither():
    c = ut.Change("q4", "flour.md", "1,250 kg", "3,871 kg", ["1,250 kg", "1250"], ["3,871 kg", "3871"])
    assert ut.outcome("Order 3871 kilograms", c) == ut.NEW
    assert ut.outcome("It is 1250.", c) == ut.OLD
    assert ut.outcome("About 2 tonnes.", c) == ut.NEITHER
    assert ut.count({"a": "new", "b": "old", "c": "old"}) == {"new": 1, "old": 2, "neither": 0}


def test_run_counts_scripted_contestants_exactly_and_never_touches_the_corpus(ws):
    folder = _corpus(ws)
    before = _tree_hash(folder)
    built = {}

    def build(config: RagConfig):
        built["docs"] = ut.read_docs(__import__("pathlib").Path(config.corpus))
        built["name"] = config.name
        ws.dir("indexes", config.name).mkdir(parents=True)

    by_question = {it.question: it for it in ITEMS}

    def follows(q):  # reads the re-indexed copy: the sentence of its source holding the value
        return built["docs"][by_question[q].source]

    fakes = {
        "rag:" + "x": RuleResponder("reader", follows),
        "ft:run1": RuleResponder("memory", lambda q: f"It is {by_question[q].answer}."),
        "base": RuleResponder("neither", lambda q: "I don't know."),
    }
    asked = []

    def responder(spec):
        asked.append(spec)
        return fakes["rag:x" if spec.startswith("rag:") else spec]

    contestants = {"RAG": "rag:bake", "fine-tuned": "ft:run1", "base": "base"}
    config, times = RagConfig(name="bake", corpus="bake"), {"fine-tuned": 95.0}
    result = ut.run_update_test(ws, ITEMS, "bake", config, contestants, GenConfig(), k=3, seed=2, build=build,
                                responder=responder, training_s=times)  # fmt: skip
    assert result["k"] == 3
    assert result["counts"] == {"RAG": {"new": 3, "old": 0, "neither": 0},
                                "fine-tuned": {"new": 0, "old": 3, "neither": 0},
                                "base": {"new": 0, "old": 0, "neither": 3}}  # fmt: skip
    assert asked[0] == f"rag:{built['name']}" and asked[1:] == ["ft:run1", "base"]
    assert result["training_s"] == {"fine-tuned": 95.0} and result["reindex_s"] >= 0
    assert _tree_hash(folder) == before
    assert not ws.exists("indexes", built["name"]) and not any((ws.tmp / "update-test").iterdir())


def test_no_changeable_fact_is_a_clear_error(ws):
    _corpus(ws)
    with pytest.raises(ut.UpdateTestError, match="no answerable question"):
        ut.run_update_test(ws, [ITEMS[4]], "bake", RagConfig(name="bake"), {"b": "base"}, GenConfig(),
                           build=lambda c: None, responder=lambda s: None)  # fmt: skip


def test_the_card_shows_the_update_row_with_the_exact_counts_and_times():
    from lab.arena import decision

    update = {"k": 3, "outcomes": {"RAG": {"q1": "new", "q2": "new", "q3": "old"},
                                   "fine-tuned": {"q1": "old", "q2": "old", "q3": "neither"}},
              "reindex_s": 4.2, "training_s": {"fine-tuned": 95.0}}  # fmt: skip
    card = decision.card({"questions": [], "systems": []}, update=update, bootstrap=100)
    row = next(r for r in card["rows"] if r["key"] == "update")
    assert row["counts"] == {
        "RAG": {"new": 2, "old": 1, "neither": 0},
        "fine-tuned": {"new": 0, "old": 2, "neither": 1},
    }
    assert row["cells"]["RAG"]["value"] == 2 / 3 and row["cells"]["fine-tuned"]["value"] == 0.0
    assert row["winner"] is None  # 3 questions: too few to call a winner
    assert "re-indexing the changed documents took 4.2 s" in row["sentence"] and "took 95 s" in row["sentence"]
    assert card["update"] == update


def test_update_for_a_saved_evaluation_reads_its_contestants_index_and_training_time(ws):
    import json

    from lab.arena import costs, decision
    from lab.arena.scoring import question_row
    from lab.generation import Answer

    _corpus(ws)
    index = ws.dir("indexes", "bake")
    index.mkdir(parents=True)
    RagConfig(name="bake", corpus="bake").save(index / "config.json")
    (index / "meta.json").write_text(json.dumps({"stats": {"build_seconds": 3.5}}), encoding="utf-8")
    run = ws.dir("runs", "run1")
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"metrics": {"runtime_s": 95.0, "peak_memory_mb": 812.5}}))
    specs = {"rag:bake": "rag:bake", "ft:run1": "ft:run1"}
    rows = [question_row(it, Answer("I don't know."), s) for s in specs for it in ITEMS]
    info = {"rag:bake": {"kind": "rag", "index": "bake"}, "ft:run1": {"kind": "ft", "run": "run1"}}
    result = {"questions": rows, "systems": [{"system": s} for s in specs], "gen": GenConfig().to_dict(),
              "contestants": info}  # fmt: skip
    built = []

    def build(config):
        built.append(config)
        ws.dir("indexes", config.name).mkdir(parents=True)

    answers = {"rag": lambda q: "I don't know.", "ft": lambda q: "I don't know."}
    out = ut.update_for(ws, None, result, k=2, seed=0, build=build,
                        responder=lambda spec: RuleResponder(spec, answers[spec.split(":")[0]]))  # fmt: skip
    assert built[0].name.startswith("update-test-") and built[0].corpus.startswith(str(ws.tmp / "update-test"))
    assert out["k"] == 2 and out["training_s"] == {"ft:run1": 95.0}
    assert out["counts"]["rag:bake"] == {"new": 0, "old": 0, "neither": 2}
    found = costs.gather_costs(ws, result)
    assert found["rag:bake"]["index_s"] == 3.5 and found["rag:bake"]["index_mb"] >= 0
    assert found["ft:run1"] == {"train_s": 95.0, "peak_mb": 812.5} and found["_machine"]
    card = costs.card_for(ws, result, update=out, bootstrap=100)
    one_time = {r["key"]: r for r in card["rows"]}
    assert one_time["train_s"]["cells"]["ft:run1"]["value"] == 95.0
    assert one_time["index_s"]["cells"]["rag:bake"]["value"] == 3.5
    assert "training **ft:run1** took 95 s" in one_time["update"]["sentence"]
    assert decision.DOCUMENTS in one_time  # groups name places: no lookup needed


@pytest.mark.integration
def test_a_fine_tuned_plus_rag_contestant_is_asked_over_the_changed_index_end_to_end(ws, cache, embedded_path):
    """ft+rag:RUN:INDEX (a tiny LoRA adapter on the embedded model) with the real index build and responders."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = _corpus(ws)
    before = _tree_hash(folder)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(embedded_path), lora).save_pretrained(
        ws.dir("runs", "tiny") / "adapter"
    )
    contestants = {"fine-tuned + RAG": "ft+rag:tiny:bake", "RAG": "rag:bake"}
    asked = []

    def responder(spec):  # the real contestant, its id recorded
        from lab.arena.contestants import responder as real

        asked.append(spec)
        return real(ws, cache, spec)

    result = ut.run_update_test(ws, ITEMS, "bake", RagConfig(name="bake", corpus="bake"), contestants,
                                GenConfig(max_new_tokens=8), k=2, seed=0, cache=cache, responder=responder,
                                training_s={"fine-tuned + RAG": 1.0})  # fmt: skip
    temp = asked[1].split(":")[1]
    assert asked == [f"ft+rag:tiny:{temp}", f"rag:{temp}"] and temp.startswith("update-test-")
    assert result["k"] == 2 and all(sum(c.values()) == 2 for c in result["counts"].values())
    assert set(result["counts"]) == set(contestants) and all(len(a) == 2 for a in result["answers"].values())
    assert result["reindex_s"] > 0 and result["training_s"] == {"fine-tuned + RAG": 1.0}
    assert _tree_hash(folder) == before and not ws.exists("indexes", temp)
