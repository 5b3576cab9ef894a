"""The passage sentences a RAG contestant focuses on are encoded once per embedder, not once per answer: the
Arena builds a new responder for every answer, and the same chunks come back for many questions. The prompt a
responder builds is the same with the shared memory as with a fresh one."""

from __future__ import annotations

import os
import threading
import time

import pytest

from lab.config import GenConfig
from lab.rag import Passage
from lab.rag.embed import SentenceEmbedder

pytestmark = pytest.mark.integration

PASSAGES = [
    Passage(
        "The pump is checked every 500 hours. Its filter is blue and sits behind the left panel. "
        "Replace the filter when the pressure drops below two bar.",
        "manual.md",
        0.9,
        "c1",
        "d1",
    ),
    Passage(
        "The cooling fan runs whenever the motor is warm. Clean its grille once a month with a soft brush. "
        "A noisy fan usually means a loose mounting bolt.",
        "fans.md",
        0.8,
        "c2",
        "d2",
    ),
]
QUESTIONS = ["How often is the pump checked?", "What colour is the filter?", "Why is the fan noisy?"]


class Counting(SentenceEmbedder):
    """The real embedder, counting the texts its model encodes."""

    def __init__(self, model, name):
        super().__init__(model, name)
        self.texts: list[str] = []

    def embed(self, texts, on_batch=None):
        self.texts.extend(texts)
        return super().embed(texts, on_batch)


class Fixed:
    """A retriever that always finds PASSAGES, over `embedder`."""

    def __init__(self, embedder):
        self.embedder = embedder

    def retrieve(self, question, top_k=None):
        return list(PASSAGES)


@pytest.fixture(scope="module")
def parts(cache):
    return cache.embedder("embedded"), cache.tokenizer("embedded"), cache.generator("embedded")


def _prompt(embedder, parts, question: str) -> list[dict[str, str]]:
    from lab.generation import ModelResponder

    _, tok, model = parts
    responder = ModelResponder("rag", model, tok, Fixed(embedder))  # a new responder per answer, as in the Arena
    return responder._messages(question, PASSAGES, GenConfig(focus_sentences=2))


def test_second_answer_over_the_same_passages_encodes_no_sentence_again(parts):
    embedder = Counting(parts[0], "embedded")
    _prompt(embedder, parts, QUESTIONS[0])
    first = len(embedder.texts)
    assert first > 2  # the question and the passages' sentences
    _prompt(embedder, parts, QUESTIONS[1])
    assert embedder.texts[first:] == [QUESTIONS[1]]  # only the new question


def test_prompts_with_the_shared_memory_equal_prompts_built_afresh(parts):
    shared = Counting(parts[0], "embedded")
    for question in QUESTIONS:
        plain = SentenceEmbedder(parts[0], "embedded")
        plain.embed_memo = None  # a fresh private memory per answer: the prompt as it was built before
        assert _prompt(shared, parts, question) == _prompt(plain, parts, question)


def test_the_memory_keeps_only_the_most_recent_texts_and_their_exact_vectors(parts):
    import numpy as np

    embedder = Counting(parts[0], "embedded")
    embedder.memo_limit = 2
    texts = ["A blue filter.", "A loose bolt on the fan.", "Two bar of pressure."]
    alone = embedder.embed(texts)
    for i, text in enumerate(texts):
        assert np.allclose(embedder.embed_memo([text])[0], alone[i], atol=1e-5)
    assert len(embedder._memo) == 2
    before = len(embedder.texts)
    assert np.array_equal(embedder.embed_memo(texts[1:]), embedder.embed_memo(texts[1:]))
    assert len(embedder.texts) == before  # the two most recent were remembered
    embedder.embed_memo(texts[:1])
    assert embedder.texts[before:] == texts[:1]  # the oldest had been dropped


def test_a_fork_while_the_memory_is_locked_does_not_hang_the_child(parts):
    embedder = SentenceEmbedder(parts[0], "embedded")
    embedder.embed_memo(["A blue filter."])
    with embedder._memo_lock:  # another thread is inside the memory at the fork
        pid = os.fork()
        if pid == 0:  # the child: a remembered text needs the memory only
            os._exit(0 if embedder.embed_memo(["A blue filter."]).shape == (1, embedder.dims) else 1)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    if done == (0, 0):
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0


class Overlap:
    """The real sentence-transformers model, recording how many encodes run at once."""

    def __init__(self, model):
        self.model, self.running, self.most = model, 0, 0
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.model, name)

    def encode(self, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)  # widen the window in which another thread could enter
            return self.model.encode(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def test_threads_embedding_at_once_encode_one_at_a_time(parts):
    model = Overlap(parts[0])
    embedder = SentenceEmbedder(model, "embedded")
    threads = [threading.Thread(target=embedder.embed, args=([f"Question number {i}?"],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert model.most == 1
