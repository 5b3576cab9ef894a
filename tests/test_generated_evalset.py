"""Questions generated for documents without an evaluation file: only short golds copied verbatim from their
chunk are kept, questions from held-out documents become unanswerable controls, the file reads back."""

from __future__ import annotations

from fakes import QuestionWriter

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


def test_trim_to_question_drops_words_that_only_repeat_the_question():
    assert es.trim_to_question("The cabinet holds 24 C.", "What temperature does the cabinet hold?") == "holds 24 C."
    assert es.trim_to_question("Starter R-7", "Which starter is fed twice a day?") == "Starter R-7"  # one word
    assert es.trim_to_question("R-7 is the starter.", "Which is the starter?") == "R-7"
    assert es.trim_to_question("The starter.", "Which starter?") == "The starter."  # nothing left: unchanged


def test_generation_keeps_only_verbatim_short_golds_through_llamaindex_question_generation():
    docs = {"bake.md": TEXT}
    writer = QuestionWriter(
        {"proofing cabinet": ["1. Which starter is fed twice a day?", "Q: How is the starter fed?",
                              "Question 3: What does the cabinet hold, and why does it matter so much for the bread?",
                              "Starter name"]},  # fmt: skip
        {
            "Which starter is fed twice a day?": "Starter R-7 is fed twice a day.",  # good once trimmed
            "How is the starter fed?": "It is fed two times daily",  # not copied from the text
            "What does the cabinet hold, and why does it matter so much for the bread?":
                "The proofing cabinet holds 24 C. Starter R-7 is fed twice",  # copied, but 11 words
        },
    )  # fmt: skip
    items, dropped = es.generate_questions(docs, writer, per_chunk=3)
    assert [(it.question, it.answer, it.source, it.group, it.answerable) for it in items] == [
        ("Which starter is fed twice a day?", "Starter R-7", "bake.md", es.GENERATED, True)
    ]
    assert len(dropped) == 2 and all("not a span of at most 8 words copied from bake.md" in d for d in dropped)
    # the questions came from LlamaIndex's DatasetGenerator prompt, with the generator passed as its LLM
    asked = [p for p in writer.prompts if "\nQuestion: " not in p]
    assert len(asked) == 1 and "generate only questions based on the below query" in asked[0]
    assert "Write 3 short questions" in asked[0] and TEXT in asked[0]
    assert sum("\nQuestion: " in p for p in writer.prompts) == 3  # one answer per question line, at most per_chunk
    from llama_index.core import Settings

    assert Settings._llm is None and Settings._embed_model is None  # no global LLM or embedder was reached for


def test_controls_come_only_from_held_out_documents_and_read_back(tmp_path):
    docs = {"bake.md": TEXT, "secret.md": "The vault code is 4471 and only the owner knows it."}
    writer = QuestionWriter(
        {"vault": ["What is the vault code?"], "proofing": ["What flour feeds the starter?"]},
        {"What is the vault code?": "4471", "What flour feeds the starter?": "rye flour"},
    )
    items, dropped = es.generate_questions(docs, writer, held_out=("secret.md",))
    assert [(it.question, it.answer, it.answerable, it.group, it.held_out_doc) for it in items] == [
        ("What flour feeds the starter?", "rye flour", True, es.GENERATED, None),
        ("What is the vault code?", "I don't know", False, es.UNANSWERABLE_GROUP, "secret.md"),
    ]
    assert dropped == []
    path = es.write_evalset(items, tmp_path / "generated.jsonl")
    assert es.read_evalset(path) == items
    assert "held_out_doc" not in path.read_text().splitlines()[0]  # only controls carry it


def test_held_out_documents_are_seeded_never_all_and_none_of_one():
    names = [f"d{i}.md" for i in range(10)]
    assert es.held_out_documents(names, 0.2, seed=1) == es.held_out_documents(list(reversed(names)), 0.2, seed=1)
    assert len(es.held_out_documents(names, 0.2)) == 2 and len(es.held_out_documents(names, 1.0)) == 9
    assert es.held_out_documents(["only.md"]) == ()
