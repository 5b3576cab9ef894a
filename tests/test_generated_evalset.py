"""Questions generated for documents without an evaluation file: only short golds copied verbatim from their
chunk are kept, questions from held-out documents become unanswerable controls, the file reads back."""

from __future__ import annotations

from lab.data import evalset as es

TEXT = "The proofing cabinet holds 24 C. Starter R-7 is fed twice a day with rye flour."


def test_verbatim_gold_keeps_only_short_spans_copied_from_the_source():
    assert es.verbatim_gold('"Starter R-7."', TEXT) == "Starter R-7"
    assert es.verbatim_gold("24   C", TEXT) == "24 C"  # spacing aside
    assert es.verbatim_gold("twice a day", TEXT.upper()) == "twice a day"  # case aside
    assert es.verbatim_gold("fed two times daily", TEXT) is None  # a paraphrase
    long = "Starter R-7 is fed twice a day with rye flour"  # 10 words, verbatim
    assert long in TEXT and es.verbatim_gold(long, TEXT) is None
    assert es.verbatim_gold("", TEXT) is None and es.verbatim_gold("...", TEXT) is None


def test_generated_items_drop_bad_pairs_and_say_why():
    pairs = [
        ("What temperature does the cabinet hold?", "24 C", "bake.md", TEXT),
        ("How is the starter fed?", "It is fed two times daily", "bake.md", TEXT),
        ("What temperature does the cabinet hold?", "24 C", "bake.md", TEXT),  # a repeat
        ("Starter name", "R-7", "bake.md", TEXT),  # not a question
    ]
    items, dropped = es.generated_items(pairs)
    assert [(it.question, it.answer, it.source, it.group) for it in items] == [
        ("What temperature does the cabinet hold?", "24 C", "bake.md", es.GENERATED)
    ]
    assert len(dropped) == 3 and "not a span of at most 8 words copied from bake.md" in dropped[0]


def test_generate_questions_with_a_scripted_generator(tmp_path):
    docs = {"bake.md": TEXT, "secret.md": "The vault code is 4471 and only the owner knows it."}
    prompts = []

    def complete(prompt: str) -> str:
        prompts.append(prompt)
        if "vault" in prompt:
            return "Q: What is the vault code?\nA: 4471"
        return "Q: Which starter is fed twice a day?\nA: Starter R-7\nQ: What flour feeds it?\nA: a good flour"

    items, dropped = es.generate_questions(docs, complete, held_out=("secret.md",))
    assert len(prompts) == 2 and all("at most 8 words" in p for p in prompts)
    assert [(it.answer, it.answerable) for it in items] == [("Starter R-7", True), ("I don't know", False)]
    assert items[1].group == es.UNANSWERABLE_GROUP and len(dropped) == 1
    path = es.write_evalset(items, tmp_path / "generated.jsonl")
    assert es.read_evalset(path) == items
