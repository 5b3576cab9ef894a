"""The decision card: winners only beyond chance, values equal to a recomputation from the rows, a recommendation
that never says more than the rows, places assigned from the data when the file has no groups."""

from __future__ import annotations

import random
import re
import statistics

from lab.arena import decision
from lab.arena.evaluation import summarize_rows
from lab.arena.scoring import question_row
from lab.config import GenConfig
from lab.data.evalset import EvalItem
from lab.generation import Answer

# A second domain (a bakery's recipes), nothing like the sample's wording.
PASSAGE = {"text": "Rye sourdough proofs for 14 hours at 24 C with starter R-7.", "source": "rye.md", "score": 0.7}


def _items(n: int, group: str = "documents_only", unanswerable: int = 0) -> list[EvalItem]:
    items = [EvalItem(f"q{i}", f"Proof time for loaf {i}?", f"{10 + i} hours", [], "rye.md", True, group)
             for i in range(n)]  # fmt: skip
    items += [EvalItem(f"u{i}", f"Oven brand of shop {i}?", "none", [], None, False, "unanswerable")
              for i in range(unanswerable)]  # fmt: skip
    return items


def _rows(system: str, items: list[EvalItem], right: set[int], passages: bool = True, latency: float = 1.0):
    """Scripted rows: correct on the answerable items whose index is in `right`, wrong elsewhere; unanswerable
    items answered "I don't know" when their index is in `right`, else made up."""
    out = []
    for i, it in enumerate(items):
        if it.answerable:
            text = f"It takes {it.answer}." if i in right else "It takes 99 minutes."
        else:
            text = "I don't know." if i in right else "Brand Zeta."
        ps = [dict(PASSAGE, text=f"{PASSAGE['text']} Loaf {i}: {it.answer}.")] if passages else []
        answer = Answer(text, ps, latency + 0.01 * i, 40 + i, 5, system)
        out.append(question_row(it, answer, system))
    return out


def _result(parts: dict[str, list[dict]], contestants: dict | None = None) -> dict:
    rows = [r for rs in parts.values() for r in rs]
    result = summarize_rows(rows, list(parts), GenConfig(), "finished", bootstrap=500)
    return result | {"contestants": contestants or {}}


def _row(c: dict, key: str) -> dict:
    return next(r for r in c["rows"] if r["key"] == key)


def _named(text: str) -> set[str]:
    return set(re.findall(r"\*\*(.+?)\*\*", text))


def test_a_30_point_win_on_60_questions_names_a_winner():
    items = _items(60)
    result = _result({"reader": _rows("reader", items, set(range(48))), "memo": _rows("memo", items, set(range(30)))},
                     {"reader": {"kind": "rag"}, "memo": {"kind": "ft"}})  # fmt: skip
    c = decision.card(result, bootstrap=500)
    row = _row(c, decision.DOCUMENTS)
    assert row["winner"] == "reader" and row["runner_up"] == "memo"
    assert abs(row["diff"]["value"] - 0.30) < 1e-9 and row["diff"]["lo"] > 0 and row["diff"]["n"] == 60
    assert "beyond chance" in row["sentence"] and "30 points" in row["sentence"]
    assert any("**reader** (RAG)" in s for s in c["recommendation"])


def test_a_tie_names_no_winner_and_the_recommendation_names_nobody():
    items = _items(60)
    result = _result({"a": _rows("a", items, set(range(30))), "b": _rows("b", items, set(range(15, 45)))})
    c = decision.card(result, bootstrap=500)
    row = _row(c, decision.DOCUMENTS)
    assert row["winner"] is None and row["diff"]["value"] == 0.0
    assert "cannot be told apart" in row["sentence"]
    assert all(r["winner"] is None for r in c["rows"] if r["key"] != "latency")
    assert not any(_named(s) for s in c["recommendation"]) and "No contestant is ahead" in c["recommendation"][0]


def test_every_value_equals_a_recomputation_from_the_rows():
    taught, docs = _items(20, "taught"), _items(20, "documents_only")
    for i, it in enumerate(docs):
        it.id = f"d{i}"
    items = taught + docs + _items(0, unanswerable=12)
    rng = random.Random(3)
    parts = {s: _rows(s, items, {i for i in range(len(items)) if rng.random() < p}, passages=s != "ft", latency=lat)
             for s, p, lat in (("ft", 0.3, 0.5), ("rag", 0.6, 1.5), ("both", 0.5, 2.0))}  # fmt: skip
    c = decision.card(_result(parts), bootstrap=300)
    for s, rows in parts.items():
        for place, group in ((decision.TAUGHT, "taught"), (decision.DOCUMENTS, "documents_only")):
            pool = [r for r in rows if r["group"] == group]
            cell = _row(c, place)["cells"][s]
            assert cell["value"] == sum(r["category"] == "correct" for r in pool) / len(pool) and cell["n"] == 20
            assert cell["lo"] <= cell["value"] <= cell["hi"]
        unans = [r for r in rows if not r["answerable"]]
        assert _row(c, "made_up")["cells"][s]["value"] == sum(r["category"] == "hallucination" for r in unans) / 12
        assert _row(c, decision.UNANSWERABLE)["cells"][s]["value"] == sum(r["category"] == "idk" for r in unans) / 12
        assert _row(c, "latency")["cells"][s]["value"] == statistics.median(r["latency_s"] for r in rows)
        assert _row(c, "prompt_tokens")["cells"][s]["value"] == statistics.median(r["prompt_tokens"] for r in rows)
    trace = _row(c, "traceability")["cells"]
    assert trace["ft"]["text"] == "no sources" and trace["ft"]["value"] is None
    correct = [r for r in parts["rag"] if r["answerable"] and r["category"] == "correct"]
    assert trace["rag"]["value"] == sum(r["groundedness"] >= 0.5 for r in correct) / len(correct)
    table = {(x["source_retrieved"], x["answer_in_passages"]): x for x in c["retrieval"]["rag"]}
    assert set(c["retrieval"]) == {"rag", "both"} and table[(True, True)]["correct"] == len(correct)
    assert sum(x["correct"] + x["wrong"] + x["skipped"] for x in c["retrieval"]["rag"]) == 40


def test_the_recommendation_never_names_more_than_the_row_winners():
    rng = random.Random(7)
    for trial in range(12):
        n = rng.choice([8, 20, 60])
        items = _items(n, rng.choice(["taught", "documents_only"]), unanswerable=rng.choice([0, 10]))
        parts = {s: _rows(s, items, {i for i in range(len(items)) if rng.random() < rng.random()})
                 for s in ("x", "y", "z")}  # fmt: skip
        c = decision.card(_result(parts), bootstrap=200)
        winners = {r["winner"] for r in c["rows"] if r["winner"]} | {r["runner_up"] for r in c["rows"] if r["winner"]}
        for sentence in c["recommendation"]:
            assert _named(sentence) <= winners, (trial, sentence)
        for r in c["rows"]:
            if r["winner"] and r["diff"]:
                assert r["diff"]["lo"] > 0 or r["diff"]["hi"] < 0
                assert r["diff"]["n"] >= decision.MIN_PAIRED


def test_places_come_from_the_data_when_the_file_has_no_groups():
    items = [
        {"id": "a", "answer": "R-7", "aliases": [], "answerable": True, "group": None},
        {"id": "b", "answer": "14 hours", "aliases": ["14 h"], "answerable": True, "group": None},
        {"id": "c", "answer": "blue tin", "aliases": [], "answerable": True, "group": None},
        {"id": "d", "answer": "-", "aliases": [], "answerable": False, "group": None},
    ]
    places, how = decision.assign_places(items, "Use starter R7 for rye.", "Rye proofs for 14 hours.")
    assert places == {"a": "taught", "b": "documents", "c": None, "d": "unanswerable"}
    assert "looked up in the training data" in how
    assert decision.place_of_group("generated", True) == "documents"
    assert (
        decision.place_of_group("held-out", True) == "taught" and decision.place_of_group("x", False) == "unanswerable"
    )
    named, how = decision.assign_places([dict(items[0], group="taught")], "", "")
    assert named == {"a": "taught"} and how == "the evaluation file's groups"


def test_one_time_costs_and_the_sample_size_note():
    items = _items(12)
    parts = {"ft": _rows("ft", items, set(range(6)), passages=False), "rag": _rows("rag", items, set(range(8)))}
    costs = {"ft": {"train_s": 120.0, "peak_mb": 900.0}, "rag": {"index_s": 8.5, "index_mb": 1.2}}
    c = decision.card(_result(parts), costs=costs, bootstrap=200)
    assert _row(c, "train_s")["cells"] == {"ft": {"value": 120.0, "unit": "s"}, "rag": {"value": None, "unit": "s"}}
    assert _row(c, "index_mb")["cells"]["rag"]["value"] == 1.2
    assert decision.questions_needed(0.5) == 388  # two proportions 50% vs 40%, 95% confidence, 80% power
    assert decision.questions_needed(0.05) == decision.questions_needed(0.10)  # clipped to stay in [0, 1]
    assert "388 answerable questions" in decision.sample_size_note(0.5, 60) and "can be chance" in c["sample_size"]


def test_learning_curve_names_a_trend_only_when_the_intervals_allow():
    from lab.arena import learning_curve as lc

    rise = lc.curve({0.25: [1.0] * 5 + [0.0] * 55, 0.5: [1.0] * 30 + [0.0] * 30, 1.0: [1.0] * 55 + [0.0] * 5},
                    flat=[1.0] * 30 + [0.0] * 30, bootstrap=300)  # fmt: skip
    assert lc.trend(rise) == "up" and "more data helps" in lc.trend_sentence(rise)
    assert rise["cells"]["100%"]["value"] == 55 / 60 and rise["flat"]["value"] == 0.5
    noisy = lc.curve({0.25: [1.0, 0.0, 0.0, 1.0], 0.5: [1.0, 0.0, 1.0, 0.0], 1.0: [1.0, 1.0, 0.0, 1.0]}, bootstrap=300)
    assert lc.trend(noisy) == "none" and lc.NO_TREND in lc.trend_sentence(noisy)
    examples = list(range(40))
    assert (
        set(lc.subset(examples, 0.25, 1)) <= set(lc.subset(examples, 0.5, 1)) and len(lc.subset(examples, 0.5)) == 20
    )
    items = _items(20, "taught")
    c = decision.card(_result({"ft": _rows("ft", items, set(range(10)))}), curve=rise, bootstrap=100)
    assert (
        _row(c, "learning_curve")["sentence"] == lc.trend_sentence(rise)
        and _row(c, "learning_curve")["winner"] is None
    )


def test_the_shipped_reference_card_equals_a_recomputation_from_its_rows():
    from lab.arena.reference import reference

    shipped = reference()
    c = decision.card(shipped, bootstrap=200)
    places = {"taught": decision.TAUGHT, "documents_only": decision.DOCUMENTS}
    for s in c["systems"]:
        rows = [r for r in shipped["questions"] if r["system"] == s]
        for group, place in places.items():
            pool = [r for r in rows if r["group"] == group]
            assert _row(c, place)["cells"][s]["value"] == sum(r["category"] == "correct" for r in pool) / len(pool)
        unans = [r for r in rows if not r["answerable"]]
        made_up = sum(r["category"] == "hallucination" for r in unans) / len(unans)
        assert _row(c, "made_up")["cells"][s]["value"] == made_up
        summary = next(x for x in shipped["systems"] if x["system"] == s)
        assert abs(summary["hallucination_rate"] - made_up) < 1e-12
        assert (
            abs(summary["by_group"]["taught"]["correct_rate"] - _row(c, decision.TAUGHT)["cells"][s]["value"]) < 1e-12
        )
    for row in c["rows"]:
        assert not row["winner"] or row["diff"] is None or row["diff"]["lo"] > 0 or row["diff"]["hi"] < 0
