"""Focused context for small readers: keep only the sentences of the retrieved passages closest to the question.

A 135M model loses the answer in a page of text; giving it the few most similar sentences (in their original
order, still numbered by passage) is a context-layout lever that knows nothing about the domain. Uses the
retriever's own embedder (`embed(texts) -> normalised vectors`). Must not retrieve or generate.
"""

from __future__ import annotations

import re
from typing import Any

from lab.generation import passage_dict

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])|\n+")
MIN_CHARS = 15


def sentences(text: str) -> list[str]:
    """Sentences and lines (table rows, list items) of a passage, without markup-only fragments."""
    parts = (" ".join(p.split()) for p in _SPLIT.split(text or ""))
    return [p for p in parts if len(p.strip("#|-* ")) >= MIN_CHARS]


class MemoEmbedder:
    """Remembers the vector of every text it has embedded, so passages retrieved again (the same chunks come back
    for many questions) are embedded once. Belongs to one responder or one rewrite, never to the module. Over an
    embedder that keeps its own memo (`embed_memo`, shared by every responder over that embedder: the Arena builds a
    responder per answer) it uses that one."""

    def __init__(self, embedder, limit: int = 100_000):
        self.inner, self.limit, self.vectors = embedder, limit, {}

    def embed(self, texts: list[str]):
        import numpy as np

        shared = getattr(self.inner, "embed_memo", None)
        if shared is not None:
            return shared(texts)
        missing = sorted((t for t in dict.fromkeys(texts) if t not in self.vectors), key=len)  # batches pad little
        if missing:
            if len(self.vectors) + len(missing) > self.limit:
                self.vectors.clear()
            self.vectors.update(zip(missing, self.inner.embed(missing), strict=True))
        return np.stack([self.vectors[t] for t in texts])


def warm(embedder, questions: list[str], retrieved: list[list[Any]]) -> None:
    """Embed every question and passage sentence in one batched call, so later `focus_passages` calls on a
    `MemoEmbedder` find them all remembered (one big batch is far faster than one call per question)."""
    if isinstance(embedder, MemoEmbedder):
        texts = [s for ps in retrieved for p in ps for s in sentences(passage_dict(p).get("text") or "")]
        embedder.embed(list(dict.fromkeys([*questions, *texts])))


WARM_LIMIT = 20_000  # sentences of one index embedded ahead (the embedder's shared memory keeps 50,000)


def index_sentences(chunks: list[dict], limit: int = WARM_LIMIT) -> list[str]:
    """The distinct sentences of an index's chunks (`sentences` of each chunk's text), in order, at most `limit`."""
    found: dict[str, None] = {}
    for chunk in chunks:
        for s in sentences(chunk.get("text") or ""):
            found[s] = None
            if len(found) >= limit:
                return list(found)
    return list(found)


def warm_index(embedder, chunks: list[dict], limit: int = WARM_LIMIT, block: int = 256) -> int:
    """Embed the sentences of an index's chunks into the embedder's shared memory (`embed_memo`), `block` at a
    time, so focusing an answer on passages from that index encodes only its question; returns how many. An
    embedder without a shared memory is left alone (0)."""
    memo = getattr(embedder, "embed_memo", None)
    if memo is None:
        return 0
    texts = index_sentences(chunks, limit)
    for start in range(0, len(texts), block):
        memo(texts[start : start + block])
    return len(texts)


def focus_passages(question: str, passages: list[Any], embedder, keep: int) -> list[dict[str, Any]]:
    """Passages cut down to the `keep` sentences most similar to the question (order and numbering kept)."""
    pieces = [(i, s) for i, p in enumerate(passages) for s in sentences(passage_dict(p).get("text") or "")]
    if not pieces or keep <= 0:
        return [passage_dict(p) for p in passages]
    vectors = embedder.embed([question] + [s for _, s in pieces])
    scores = vectors[1:] @ vectors[0]
    chosen = set(sorted(range(len(pieces)), key=lambda k: -float(scores[k]))[:keep])
    out = []
    for i, p in enumerate(passages):
        kept = [s for k, (j, s) in enumerate(pieces) if j == i and k in chosen]
        if kept:
            out.append(passage_dict(p) | {"text": " ".join(kept)})
    return out
