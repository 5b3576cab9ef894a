"""Retrieval over one built index: dense top-k from the vector store, BM25 over the same chunks, reciprocal-rank
fusion of both (hybrid), and an optional similarity cutoff.

`Passage.score` is always the cosine similarity between question and chunk (so one threshold means the same in
both modes); hybrid only changes which chunks are chosen and their order. No gradio, no storage layout here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from lab.config import RagConfig
from lab.rag.store import point_id, search_many

RRF_K = 60  # the constant of reciprocal-rank fusion (Cormack et al.); larger = flatter
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Passage:
    text: str
    source: str  # the document's file name
    score: float  # cosine similarity to the question
    chunk_id: str
    doc_id: str


def terms(text: str) -> list[str]:
    """Lower-cased words without English stop words: BM25's tokens and the words the UI highlights."""
    from bm25s.stopwords import STOPWORDS_EN

    stop = set(STOPWORDS_EN)
    return [w for w in _WORD.findall(text.lower()) if w not in stop]


def rrf(rankings: list[list[int]], k: int = RRF_K) -> list[int]:
    """Reciprocal-rank fusion: ids ordered by sum of 1/(k + rank) over the rankings (ties: first seen first)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda i: -scores[i])


class Index:
    """A built index: `retrieve(query, top_k)` and the batched `retrieve_many(queries, top_k)`."""

    def __init__(self, name: str, config: RagConfig, chunks: list[dict], vectors, store, embedder, meta: dict):
        self.name = name
        self.config = config
        self.chunks = chunks
        self.vectors = vectors
        self.store = store
        self.embedder = embedder
        self.meta = meta
        self._row = {point_id(c["chunk_id"]): i for i, c in enumerate(chunks)}
        self._bm25: Any = None

    def __len__(self) -> int:
        return len(self.chunks)

    def retrieve(self, query: str, top_k: int | None = None, **options: Any) -> list[Passage]:
        return self.retrieve_many([query], top_k, **options)[0]

    def retrieve_many(
        self, queries: list[str], top_k: int | None = None, hybrid: bool | None = None, cutoff: float | None = None
    ) -> list[list[Passage]]:
        """Best-first passages for each query; `hybrid`/`cutoff` default to the index's config."""
        k = int(top_k or self.config.top_k)
        hybrid = self.config.hybrid if hybrid is None else hybrid
        cutoff = self.config.similarity_cutoff if cutoff is None else cutoff
        if not queries:
            return []
        qvecs = self.embedder.embed(list(queries))
        depth = max(4 * k, 20) if hybrid else k
        dense = search_many(self.store, qvecs, min(depth, len(self.chunks)))
        out = []
        for query, qvec, hits in zip(queries, qvecs, dense, strict=True):
            rows = [self._row[pid] for pid, _ in hits if pid in self._row]
            if hybrid:
                rows = rrf([rows, self.bm25_rows(query, depth)])
            out.append(self._passages(rows, qvec, k, cutoff))
        return out

    def _passages(self, rows: list[int], qvec, k: int, cutoff: float) -> list[Passage]:
        passages = []
        for row in rows:
            score = float(np.dot(self.vectors[row], qvec))
            if cutoff and score < cutoff:
                continue
            c = self.chunks[row]
            passages.append(Passage(c["text"], c["source"], score, c["chunk_id"], c["doc_id"]))
            if len(passages) == k:
                break
        return passages

    def bm25_rows(self, query: str, k: int) -> list[int]:
        """Chunk rows ranked by BM25 (only rows that share a word with the query)."""
        tokens = [t for t in terms(query) if t in self._bm25_model().vocab_dict]
        if not tokens:
            return []
        scores = self._bm25_model().get_scores(tokens)
        top = np.argsort(-scores, kind="stable")[:k]
        return [int(i) for i in top if scores[i] > 0]

    def _bm25_model(self):
        if self._bm25 is None:
            import bm25s

            model = bm25s.BM25()
            model.index([terms(c["text"]) or ["\u2205"] for c in self.chunks], show_progress=False)
            self._bm25 = model
        return self._bm25
