"""The embedding model as the index sees it: texts in, L2-normalised float32 rows out, plus its tokenizer.

`SentenceEmbedder` wraps the sentence-transformers model that `ModelCache.embedder(spec)` loads (the embedded
all-MiniLM-L6-v2 by default), and remembers the vectors of the short texts it is asked for again and again
(`embed_memo`: the passage sentences every RAG answer focuses on), shared by every caller of that embedder. Tests pass
any object with the same four members. No gradio here.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

BATCH = 32
MEMO_TEXTS = 50_000  # vectors `embed_memo` keeps per embedder, least recently used dropped first
_embedders: weakref.WeakSet = weakref.WeakSet()  # every SentenceEmbedder, for fresh locks after a fork


class SentenceEmbedder:
    """name, dims, max_tokens, tokenize(text) -> tokens, embed(texts, on_batch) -> (n, dims) normalised float32."""

    def __init__(self, model, name: str):
        self.model = model
        self.name = name
        dims = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dims = int(dims())
        self.max_tokens = int(getattr(model, "max_seq_length", 0) or 0)  # 0 = unknown
        self.memo_limit = MEMO_TEXTS
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_lock = threading.Lock()
        self._encode_lock = threading.Lock()  # one encode at a time: each calling thread would start its own
        _embedders.add(self)  # team of torch threads, and the cores would spin between them

    def tokenize(self, text: str) -> list[int]:
        """Token ids without special tokens (used to count chunk sizes; never truncated)."""
        return self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def embed(self, texts: Sequence[str], on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            with self._encode_lock:
                rows.append(self.model.encode(batch, normalize_embeddings=True, convert_to_numpy=True))
            if on_batch:
                on_batch(min(start + BATCH, len(texts)), len(texts))
        if not rows:
            return np.zeros((0, self.dims), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)

    def embed_memo(self, texts: Sequence[str]) -> np.ndarray:
        """`embed`, remembering every text's vector: a text seen before (by any caller of this embedder) is not
        encoded again. Keeps the `memo_limit` most recently used texts. Texts not remembered are encoded shortest
        first, so a batch pads little."""
        found: dict[str, np.ndarray] = {}
        with self._memo_lock:
            for text in dict.fromkeys(texts):
                if text in self._memo:
                    self._memo.move_to_end(text)
                    found[text] = self._memo[text]
        missing = sorted((t for t in dict.fromkeys(texts) if t not in found), key=len)
        if missing:
            fresh = dict(zip(missing, self.embed(missing), strict=True))
            found |= fresh
            with self._memo_lock:
                self._memo.update(fresh)
                while len(self._memo) > self.memo_limit:
                    self._memo.popitem(last=False)
        if not found:
            return np.zeros((0, self.dims), dtype=np.float32)
        return np.stack([found[t] for t in texts])


def _fresh_locks_in_child() -> None:
    """A lock another thread held at a fork (a ZeroGPU slot) would never be released in the child."""
    for embedder in list(_embedders):
        embedder._memo_lock, embedder._encode_lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_in_child)


def load_embedder(cache, spec: str) -> SentenceEmbedder:
    """The cached embedder for `spec`, seen as the index sees it (a ModelError names it when it cannot be loaded).
    The wrapper is cheap and holds nothing of its own: the model stays in the cache."""
    return SentenceEmbedder(cache.embedder(spec), spec)
