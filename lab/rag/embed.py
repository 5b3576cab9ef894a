"""The embedding model as the index sees it: texts in, L2-normalised float32 rows out, plus its tokenizer.

`SentenceEmbedder` wraps the sentence-transformers model that `ModelCache.embedder(spec)` loads (the embedded
all-MiniLM-L6-v2 by default). Tests pass any object with the same four members. No gradio here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BATCH = 32


class SentenceEmbedder:
    """name, dims, max_tokens, tokenize(text) -> tokens, embed(texts, on_batch) -> (n, dims) normalised float32."""

    def __init__(self, model, name: str):
        self.model = model
        self.name = name
        dims = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dims = int(dims())
        self.max_tokens = int(getattr(model, "max_seq_length", 0) or 0)  # 0 = unknown

    def tokenize(self, text: str) -> list[int]:
        """Token ids without special tokens (used to count chunk sizes; never truncated)."""
        return self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def embed(self, texts: Sequence[str], on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            rows.append(self.model.encode(batch, normalize_embeddings=True, convert_to_numpy=True))
            if on_batch:
                on_batch(min(start + BATCH, len(texts)), len(texts))
        if not rows:
            return np.zeros((0, self.dims), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)


def load_embedder(cache, spec: str) -> SentenceEmbedder:
    """The cached embedder for `spec`, seen as the index sees it (a ModelError names it when it cannot be loaded).
    The wrapper is cheap and holds nothing of its own: the model stays in the cache."""
    return SentenceEmbedder(cache.embedder(spec), spec)
