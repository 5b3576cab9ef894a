"""Training for RAG: the rewrite's targets on a small fixture (fake retriever), determinism, distractors from
unrelated sources, the max-length warning, and the equality of a rewritten training prompt with the prompt the
Arena's ft+rag contestant sends for the same question and index (real embedder, real index)."""

from __future__ import annotations

import json

import pytest

from lab.config import GenConfig, RagConfig, TrainConfig
from lab.generation import IDK
from lab.training import ragdata

NO_FOCUS = GenConfig(focus_sentences=0)

# topic -> (source, passage text); the fake retriever returns the topic's passage first, then the next topic's.
PASSAGES = {
    "valve": ("valves.md", "The Zorblat valve is painted teal and opens at 4 bar."),
    "pump": ("pumps.md", "The Frell pump is oiled by Ada Brink every Tuesday."),
    "fan": ("fans.md", "The Quorn fan spins at 900 rpm and has five blades."),
    "door": ("doors.md", "The hatch door is locked with a brass key."),
}
TOPICS = list(PASSAGES)


class FakeRetriever:
    """Returns the passage of the topic word found in the question, then the following topic's passage."""

    embedder = None

    def retrieve(self, question: str, top_k=None):
        topic = next((t for t in TOPICS if t in question.lower()), "door")
        nxt = TOPICS[(TOPICS.index(topic) + 1) % len(TOPICS)]
        return [{"text": PASSAGES[t][1], "source": PASSAGES[t][0], "score": 0.9 - i / 10} for i, t in
                enumerate((topic, nxt))]  # fmt: skip


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}  # fmt: skip


EXAMPLES = [
    chat("What colour is the valve?", "The valve is teal."),  # supported by its passage
    chat("Who oils the pump?", "Ada Brink oils it."),  # supported
    chat("How fast does the fan spin?", "It spins at 1200 rpm under load conditions."),  # not in the passages
    chat("What is the door made of?", "I don't know."),  # an abstention in the data
]


def test_targets_follow_the_passages_and_the_prompt_is_the_arenas():
    rows = ragdata.rewrite(EXAMPLES, FakeRetriever(), NO_FOCUS, share=0.0, seed=1)
    kinds = [r["rag"] for r in rows]
    assert kinds == ["kept", "kept", "unsupported", "idk_in_data"]
    targets = [r["messages"][-1]["content"] for r in rows]
    assert targets[:2] == ["The valve is teal.", "Ada Brink oils it."]
    assert targets[2] == targets[3] == f"{IDK}."
    from lab.generation import arena_rag_messages

    arena = arena_rag_messages("What colour is the valve?", FakeRetriever().retrieve("valve"), NO_FOCUS)
    assert rows[0]["messages"][:-1] == arena  # the dataset's own system prompt is replaced by the Arena's
    assert "Zorblat valve is painted teal" in rows[0]["messages"][1]["content"]


def test_distractor_copies_use_unrelated_sources_and_are_seeded():
    many = EXAMPLES * 5
    rows = ragdata.rewrite(many, FakeRetriever(), NO_FOCUS, share=0.4, seed=7)
    extra = [r for r in rows if r["rag"] == "distractor"]
    assert len(extra) == round(0.4 * len(many))
    for row in extra:
        assert row["messages"][-1]["content"] == f"{IDK}."
        question = row["messages"][1]["content"].split("Question: ")[1]
        own = {src for src, _ in [PASSAGES[t] for t in TOPICS if t in question.lower()] or [PASSAGES["door"]]}
        shown = {src for src, _ in PASSAGES.values() if f"(source: {src})" in row["messages"][1]["content"]}
        assert own.isdisjoint(shown), (question, shown)
    again = ragdata.rewrite(many, FakeRetriever(), NO_FOCUS, share=0.4, seed=7)
    other = ragdata.rewrite(many, FakeRetriever(), NO_FOCUS, share=0.4, seed=8)
    assert again == rows
    assert other != rows
    counts = ragdata.counts(rows)
    assert counts == {"kept": 10, "unsupported": 5, "idk_in_data": 5, "distractors": 8, "near_misses": 0, "total": 28}


def test_near_miss_copies_drop_the_passage_holding_the_answer():
    many = EXAMPLES * 5  # 10 kept examples (valve, pump), each retrieved with the next topic's passage second
    rows = ragdata.rewrite(many, FakeRetriever(), NO_FOCUS, share=0.0, seed=3, near_miss=0.5)
    near = [r for r in rows if r["rag"] == "near_miss"]
    assert len(near) == 5  # half of the 10 kept examples
    for row in near:
        prompt = row["messages"][1]["content"]
        assert row["messages"][-1]["content"] == f"{IDK}."
        if "valve" in prompt.split("Question: ")[1]:
            assert "Zorblat" not in prompt and "Frell pump" in prompt  # the answer's passage is gone, the next stays
        else:
            assert "Frell pump" not in prompt and "Quorn fan" in prompt
    assert ragdata.rewrite(many, FakeRetriever(), NO_FOCUS, share=0.0, seed=3, near_miss=0.5) == rows
    assert rows[: len(many)] == ragdata.rewrite(many, FakeRetriever(), NO_FOCUS, share=0.0, seed=3)  # same base


def test_length_warning_names_the_cut_and_the_p90():
    p90, warning = ragdata.length_warning([100] * 9 + [700], 512)
    assert p90 == 700 and "cuts 1 of 10" in warning and "700" in warning
    assert ragdata.length_warning([100, 200], 512) == (200, "")


@pytest.fixture
def small_index(ws, cache, tmp_path):
    from lab.rag import build_index

    docs = tmp_path / "docs"
    docs.mkdir()
    for topic, (source, text) in PASSAGES.items():
        (docs / source).write_text(f"# {topic.title()}\n\n{text} It is checked yearly. Spare parts are kept.\n")
    build_index(ws, RagConfig(name="small", corpus=str(docs)), cache)
    return "small"


def test_rendered_training_prompt_equals_the_arena_prompt(ws, cache, small_index, tmp_path):
    from lab.arena.contestants import responder

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(chat(f"What about the {t}?", "It is teal.")) + "\n" for t in TOPICS))
    config = TrainConfig(dataset=str(data), rag_index=small_index, distractor_share=0.0)
    report = ragdata.preview(ws, cache, config)
    assert report.counts["total"] == len(TOPICS) and report.p90_tokens > 50 and not report.warning
    arena = responder(ws, cache, f"rag:{small_index}")
    gen = GenConfig()  # the Arena's defaults, focus included
    tok = cache.tokenizer("embedded")
    for row in report.examples[: len(TOPICS)]:
        question = row["messages"][1]["content"].split("Question: ")[1]
        sent = arena._messages(question, arena._retrieve([question], gen)[0], gen)
        prompt = tok.apply_chat_template(sent, tokenize=False, add_generation_prompt=True)
        trained = tok.apply_chat_template(row["messages"], tokenize=False)
        assert trained.startswith(prompt)
        assert trained[len(prompt) :].startswith(row["messages"][-1]["content"])


def test_a_run_trained_for_rag_trains_on_the_rewrite_and_records_its_index(ws, cache, small_index, tmp_path):
    from lab import jobs
    from lab.arena import contestants
    from lab.training import read_status
    from lab.training.lineage import lineage

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(chat(f"What about the {t}?", "It is teal.")) + "\n" for t in TOPICS * 3))
    config = TrainConfig(name="ragrun", dataset=str(data), rag_index=small_index, max_steps=1, batch_size=2,
                         max_length=384, warmup_ratio=0.0, save_steps=100)  # fmt: skip
    run_id = jobs.start(ws, config, cache)
    info = jobs.wait(ws, run_id, timeout=600)
    assert info["state"] == "finished", info["status"].get("error")
    rows = (ws.dir("runs", run_id) / ragdata.TRAIN_FILE).read_text().splitlines()
    status = read_status(ws.dir("runs", run_id))
    assert status["n_train"] == len(rows) == status["rag"]["counts"]["total"]
    assert lineage(ws, run_id)["rag_index"] == small_index and len(lineage(ws, run_id)["index_fingerprint"]) == 12
    assert "trained for RAG on index `small`" in (ws.dir("runs", run_id) / "README.md").read_text()
    pair = f"ft+rag:{run_id}:{small_index}"
    assert contestants.describe(ws, pair)["index_matches"] is True
    assert pair in contestants.available(ws) and "trained for RAG" in contestants.label(ws, pair)
