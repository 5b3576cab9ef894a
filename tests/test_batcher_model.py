"""Shared batches on the embedded model: answers that meet in one batch (plain and passage-reading contestants of
one base, each deciding abstention by itself) are the greedy answers each gets alone, in fewer generate calls than
answers, and still grow token by token."""

from __future__ import annotations

import threading

import pytest

from lab.config import GenConfig
from lab.rag import Passage

pytestmark = pytest.mark.integration

QUESTIONS = [
    "What is the capital of Italy?",
    "Name a fruit that is yellow.",
    "Why do leaves change colour in autumn? Answer in one sentence.",
    "What is 3 + 4?",
    "Which planet is closest to the sun?",
]


class OnePassage:
    """A retriever that always finds one relevant passage (so the contestant reads passages and decides abstention)."""

    def retrieve(self, question, top_k=None):
        return [Passage("The pump is checked every 500 hours; the filter is blue.", "manual.md", 0.9, "c1", "d1")]


@pytest.fixture(scope="module")
def pair(cache):
    from lab.generation import ModelResponder

    tok = cache.tokenizer("embedded")
    base = ModelResponder("base", cache.generator("embedded"), tok)
    rag = ModelResponder("rag", cache.generator("embedded"), tok, OnePassage())
    return base, rag


def test_concurrent_answers_share_batches_and_equal_the_answers_alone(pair):
    from lab.generation.batcher import Batcher
    from lab.generation.engine import generate_rows

    base, rag = pair
    gen = GenConfig(max_new_tokens=16, idk_above=0.5)
    asks = [(base, q) for q in QUESTIONS] + [(rag, q) for q in QUESTIONS[:3]]
    alone = [list(r.stream(q, gen))[-1].text for r, q in asks]
    calls: list[int] = []

    def counted(rows):
        calls.append(len(rows))
        return generate_rows(rows)

    batcher = Batcher(counted, max_batch=8, window_s=0.5)
    together: list = [None] * len(asks)
    partial: list[list[str]] = [[] for _ in asks]

    def ask(i: int) -> None:
        r, q = asks[i]
        together[i] = r.answer_batched(q, gen, batcher, f"session{i}", lambda a, i=i: partial[i].append(a.text))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert [a.text for a in together] == alone
    assert all(a.done and a.completion_tokens > 0 for a in together)
    assert len(calls) < len(asks) and max(calls) > 1  # batched: fewer generate calls than answers
    for i in range(len(QUESTIONS)):  # the plain answers grew token by token up to the final text
        assert len(partial[i]) > 1 and partial[i][-1] == together[i].text


def test_one_batcher_per_base_model(pair):
    from lab.generation.engine import batcher_for

    base, rag = pair
    assert batcher_for(base.model) is batcher_for(rag.model)


def test_arena_answers_from_several_sessions_meet_in_shared_batches(pair, cache, monkeypatch):
    """live.stream_many given the cache (as the Arena's side-by-side and battle events give it): three sessions
    asking at once get their greedy answers, from fewer generate calls than answers; LAB_BATCH=0 streams alone."""
    from lab.arena import live
    from lab.generation.engine import batcher_for

    base, rag = pair
    gen = GenConfig(max_new_tokens=12, idk_above=0.5)
    monkeypatch.setenv("LAB_BATCH_WINDOW_MS", "400")
    shared = batcher_for(base.model)
    before = shared.batches
    finals: dict = {}

    def session(i: int) -> None:
        *_, (answers, errors) = live.stream_many([lambda: base, lambda: rag], QUESTIONS[i], gen, 0.05, cache, f"s{i}")
        finals[i] = ([a.text for a in answers], errors)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i in range(3):
        assert finals[i] == ([list(r.stream(QUESTIONS[i], gen))[-1].text for r in (base, rag)], ["", ""])
    assert 0 < shared.batches - before < 6
    monkeypatch.setenv("LAB_BATCH", "0")
    before = shared.batches
    *_, (answers, errors) = live.stream_many([lambda: base], QUESTIONS[0], gen, 0.05, cache, "alone")
    assert answers[0].text == finals[0][0][0] and shared.batches == before
