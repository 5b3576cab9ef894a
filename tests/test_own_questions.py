"""Own data needs its own questions: the Start tab's comparison on a user's dataset and corpus without an
evaluation file asks questions held out from that dataset (never the sample's), says which, and refuses with a
clear message when the dataset holds none out.

The dataset here is a fictional domain (a bakery's recipes) unrelated to the sample's wind turbines.
"""

from __future__ import annotations

import json

import pytest

from lab.arena import showcase, showcase_data
from lab.data.evalset import read_evalset, sample_evalset_path

FACTS = [(f"How many grams of rye flour go into loaf number {n} at Quillmoor Bakery?", f"{40 + 7 * n} grams.")
         for n in range(1, 31)]  # fmt: skip


def _chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": "You answer baking questions."},
                         {"role": "user", "content": question}, {"role": "assistant", "content": answer}]}  # fmt: skip


def _own_data(ws, tmp_path, facts) -> None:
    """Dataset and corpus 'bakery', saved as the Data tab saves them."""
    from lab.corpus import save_corpus
    from lab.data import save_dataset

    rows = tmp_path / "bakery.jsonl"
    rows.write_text("".join(json.dumps(_chat(q, a)) + "\n" for q, a in facts), encoding="utf-8")
    save_dataset(ws, "bakery", rows, overwrite=True)
    doc = tmp_path / "recipes.md"
    doc.write_text("# Quillmoor recipes\n\n" + "\n\n".join(f"{q} {a}" for q, a in facts), encoding="utf-8")
    save_corpus(ws, "bakery", [doc], overwrite=True)


def test_held_out_questions_take_the_user_turn_and_the_reply_to_it():
    from lab.data.evalset import HELD_OUT, held_out_questions

    parts = [{"type": "text", "text": "Dark."}]
    examples = [
        _chat("What proofs overnight?", "The sourdough."),
        {"messages": [{"role": "user", "content": "First?"}, {"role": "user", "content": "Again?"},
                      {"role": "assistant", "content": "Reply."}]},
        {"messages": [{"role": "user", "content": "No reply?"}]},
        {"messages": [{"role": "user", "content": "Crust?"}, {"role": "assistant", "content": parts},
                      {"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "A2."}]},
    ]  # fmt: skip
    items = held_out_questions(examples, "mine")
    # a question left unanswered before the next one, or with no reply at all, is skipped
    assert [(it.question, it.answer) for it in items] == [
        ("What proofs overnight?", "The sourdough."),
        ("Crust?", "Dark."),
    ]
    assert [it.id for it in items] == ["mine-1", "mine-4"]
    assert all(it.answerable and it.group == HELD_OUT for it in items)
    assert held_out_questions([], "mine") == []


@pytest.mark.integration
def test_own_data_without_questions_is_asked_its_held_out_rows_never_the_samples(ws, cache, tmp_path):
    from lab.data import load_split

    _own_data(ws, tmp_path, FACTS)
    inputs = showcase.Inputs(dataset="bakery", corpus="bakery", questions=0, max_new_tokens=4, bootstrap=50,
                             contestants=["base"])  # fmt: skip
    held_out = {m["content"] for e in load_split(ws, "bakery", "val") for m in e["messages"] if m["role"] == "user"}
    assert held_out  # the dataset's validation split, never trained on
    assert showcase.work_plan(ws, inputs)["questions"] == len(held_out)
    result = showcase.run_showcase(ws, cache, inputs)
    asked = {r["question"] for r in result["questions"]}
    sample = {it.question for it in read_evalset(sample_evalset_path(ws))}
    assert asked and not asked & sample
    assert asked == held_out
    gold = {r["question"]: r["answer"] for r in result["questions"]}
    assert all(gold[q] == dict(FACTS)[q] for q in asked)  # the assistant turn is the reference answer
    source = result["showcase"]["question_source"]
    assert f"{len(held_out)} question/answer pairs held out from dataset 'bakery'" in source


def test_own_data_too_small_to_hold_out_asks_for_an_evaluation_file(ws, tmp_path):
    _own_data(ws, tmp_path, FACTS[:1])  # one row: nothing can be held out of training
    inputs = showcase.Inputs(dataset="bakery", corpus="bakery", contestants=["base"])
    with pytest.raises(showcase.ShowcaseError, match="holds no rows out of training") as caught:
        showcase.work_plan(ws, inputs)
    assert "evaluation JSONL" in str(caught.value) and "'bakery'" in str(caught.value)


def test_an_evaluation_file_is_still_used_as_given(ws, tmp_path):
    _own_data(ws, tmp_path, FACTS)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "Which loaf has seeds?", "answer": "Loaf 3"}) + "\n", encoding="utf-8")
    inputs = showcase.Inputs(dataset="bakery", corpus="bakery", qa=str(qa), contestants=["base"])
    items, _, said = showcase_data.question_set(ws, inputs)
    assert [it.question for it in items] == ["Which loaf has seeds?"] and "qa.jsonl" in said
