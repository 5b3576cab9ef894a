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
