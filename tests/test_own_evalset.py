"""The evaluation set built for own data without an evaluation file: held-out taught questions, questions generated
from the documents (verbatim short golds only) and unanswerable controls from documents held out of the index;
the comparison's index then leaves those documents out."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fakes import QuestionWriter, WordCountEmbedder

from lab.arena import own_evalset, showcase, showcase_data
from lab.corpus import save_corpus
from lab.data import load_split, save_dataset
from lab.data.evalset import GENERATED, HELD_OUT, UNANSWERABLE_GROUP, read_evalset
from lab.rag import index_info

# A second domain: a ferry line's operations notes, one fact per document.
DOCS = {
    "harbour.md": "The ferry Nordlys leaves pier 3 at 07:40 every weekday.",
    "engine.md": "The main engine is serviced every 1,200 running hours by the crew chief.",
    "tickets.md": "A single adult ticket costs 38 kroner and a bicycle costs 12 kroner extra.",
    "safety.md": "Each deck carries 14 life rafts, inspected in March by the harbour master.",
    "cafe.md": "The onboard cafe sells cinnamon buns baked in Tromvik each morning.",
}
QUESTIONS = {
    "Nordlys": ["Which pier does the Nordlys leave from?"],
    "main engine": ["How often is the main engine serviced?"],
    "single adult": ["How much does a single adult ticket cost?"],
    "life rafts": ["How many life rafts does each deck carry?"],
    "cafe": ["Where are the cinnamon buns baked?"],
}
ANSWERS = {
    "Which pier does the Nordlys leave from?": "pier 3",
    "How often is the main engine serviced?": "every 1,200 running hours",
    "How much does a single adult ticket cost?": "A single adult ticket costs 38 kroner.",  # trimmed
    "How many life rafts does each deck carry?": "Each deck has about fourteen rafts",  # not copied: dropped
    "Where are the cinnamon buns baked?": "in Tromvik",
}


def _own_data(ws, tmp_path) -> None:
    folder = tmp_path / "ferry"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    save_corpus(ws, "ferry", sorted(folder.iterdir()))
    turns = [(f"Which berth does boat {i} use?", f"Boat {i} uses berth {i + 10}.") for i in range(30)]
    chats = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in turns]
    path = tmp_path / "crew.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in chats), encoding="utf-8")
    save_dataset(ws, "crew", path)


def test_own_set_has_taught_generated_and_controls_from_held_out_documents_only(ws, tmp_path):
    _own_data(ws, tmp_path)
    writer = QuestionWriter(QUESTIONS, ANSWERS)
    own = own_evalset.build_own_evalset(ws, writer, "crew", "ferry", n=4, seed=3, held_out_share=0.4)
    assert len(own.held_out_docs) == 2 and set(own.held_out_docs) < set(DOCS)
    groups = own.counts()
    assert list(groups) == [HELD_OUT, GENERATED, UNANSWERABLE_GROUP][: len(groups)] and groups[HELD_OUT] >= 1
    for it in own.items:
        if it.group == GENERATED:  # a verbatim short span of a document the index keeps
            assert it.source not in own.held_out_docs and it.answer in DOCS[it.source] and len(it.answer.split()) <= 8
        elif it.group == UNANSWERABLE_GROUP:  # written from a held-out document, nothing answers it
            assert not it.answerable and it.held_out_doc in own.held_out_docs and it.source is None
    golds = {it.source: it.answer for it in own.items if it.group == GENERATED}
    expected = {"harbour.md": "pier 3", "tickets.md": "costs 38 kroner", "cafe.md": "in Tromvik",
                "engine.md": "every 1,200 running hours"}  # fmt: skip
    assert golds == {d: a for d, a in expected.items() if d in golds} and "safety.md" not in golds  # a paraphrase
    assert any("fourteen rafts" in reason for reason in own.dropped) or "safety.md" in own.held_out_docs
    again = own_evalset.build_own_evalset(ws, QuestionWriter(QUESTIONS, ANSWERS), "crew", "ferry", n=4, seed=3,
                                          held_out_share=0.4)  # fmt: skip
    assert again.items == own.items  # seeded
    path = own_evalset.write_own(own, tmp_path / "own.jsonl").path
    assert read_evalset(path) == own.items


def test_the_comparison_index_leaves_the_held_out_documents_out(ws, tmp_path, monkeypatch):
    _own_data(ws, tmp_path)
    own = own_evalset.build_own_evalset(ws, QuestionWriter(QUESTIONS, ANSWERS), "crew", "ferry", n=4, seed=3,
                                        held_out_share=0.4)  # fmt: skip
    items = read_evalset(own_evalset.write_own(own, tmp_path / "own.jsonl").path)
    held_out = showcase_data.held_out_docs(items)
    assert held_out and set(held_out) == {it.held_out_doc for it in items if not it.answerable}
    embedder = WordCountEmbedder()
    monkeypatch.setattr("lab.rag.index.load_embedder", lambda cache, spec: embedder)  # no embedding model
    cache = SimpleNamespace()
    run = SimpleNamespace(ws=ws, cache=cache, inputs=showcase.Inputs(dataset="crew", corpus="ferry"),
                          ctx={"held_out_docs": held_out}, report=lambda *a: None)  # fmt: skip
    showcase._index(run)  # the comparison's index stage
    indexed = {d["source"] for d in index_info(ws, run.ctx["index"])["documents"]}
    assert indexed == set(DOCS) - set(held_out)
    assert run.ctx["index"] != "ferry" and "ferry" in ws.list("corpora")  # the user's corpus is untouched
    assert run.ctx["index"] == showcase_data.index_name(ws, showcase_data.indexed_corpus(ws, "ferry", held_out))


@pytest.mark.integration
def test_cli_generates_a_set_with_the_embedded_model_and_the_comparison_uses_it(ws, cache, tmp_path, capsys):
    """End to end on the ferry domain: `evalset generate` with the embedded model, then `showcase --qa` on it (RAG
    only): its index leaves the held-out documents out, and it says which questions it asked."""
    from lab.cli import main

    _own_data(ws, tmp_path)
    out = tmp_path / "ferry-questions.jsonl"
    assert main(["evalset", "generate", "--dataset", "crew", "--corpus", "ferry", "--n", "2", "--seed", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr()
    items = read_evalset(out)
    assert "questions (" in printed.out and "rough" in printed.err
    assert {it.group for it in items} <= {HELD_OUT, GENERATED, UNANSWERABLE_GROUP}
    taught = {r["messages"][0]["content"] for r in load_split(ws, "crew", "val")}
    assert taught and {it.question for it in items if it.group == HELD_OUT} == taught
    assert sum(it.group == GENERATED for it in items) <= 2
    for it in items:
        if it.group == GENERATED:
            assert len(it.answer.split()) <= 8 and it.answer.lower() in DOCS[it.source].lower()
        if it.group == UNANSWERABLE_GROUP:
            assert it.held_out_doc in DOCS and not it.answerable
    held_out = {it.held_out_doc for it in items if it.held_out_doc}
    code = main(["showcase", "--data", "crew", "--docs", "ferry", "--qa", str(out), "--contestants", "RAG",
                 "--questions", "0", "--max-new-tokens", "16", "--bootstrap", "50", "--yes"])  # fmt: skip
    assert code == 0
    from lab.arena.showcase import latest

    result = latest(ws)
    index = result["showcase"]["contestants"]["RAG"].split(":", 1)[1]
    assert {d["source"] for d in index_info(ws, index)["documents"]} == set(DOCS) - held_out
    assert f"asked {len(items)}: " in result["showcase"]["question_source"]
