"""Retrieval quality on a question set with `source` fields: hit rate@k and MRR, dense vs hybrid, and a
chunk-size sweep (each size built into a throwaway folder, never saved as an index).

A hit means one of the top-k passages comes from the question's source document (sources deduplicated first,
so several chunks of one document count once; the same rank function as the Arena's scores). Questions without
a source are left out. No gradio here.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from lab.config import RagConfig
from lab.data.evalset import read_evalset
from lab.metrics.scoring import retrieval_rank
from lab.rag.chunking import RagError, load_documents
from lab.workspace import Workspace


def load_questions(path: str | Path) -> list[dict]:
    """Questions with a `source`, read by the one question-file parser (lab.data.evalset, `answer` optional here);
    an EvalSetError names every bad line, a RagError a file without a question that names its document."""
    path = Path(path)
    if not path.is_file():
        raise RagError(f"question file {str(path)!r} does not exist; pass a JSONL file with question and source")
    rows = [item.to_dict() for item in read_evalset(path, require_answer=False) if item.source]
    if not rows:
        raise RagError(f"{path.name}: no question has a 'source' field naming its document; nothing to measure")
    return rows


def _ranks(index, questions: list[dict], k: int, hybrid: bool) -> list[int | None]:
    results = index.retrieve_many([q["question"] for q in questions], k, hybrid=hybrid, cutoff=0.0)
    # the Arena's rule (lab.metrics.scoring.retrieval_rank: file name, case-insensitive), so both report alike
    return [retrieval_rank(q["source"], (p.source for p in passages)) or None for q, passages in
            zip(questions, results, strict=True)]  # fmt: skip


def retrieval_metrics(index, questions: list[dict], k: int = 5, hybrid: bool = False) -> dict:
    """{"hit_rate", "mrr", "n", "k", "mode", "misses": [question ids or texts], "missed": [{"id", "question",
    "source"}]} for one mode (`missed`: the questions themselves, to show people)."""
    ranks = _ranks(index, questions, k, hybrid)
    hits = [r for r in ranks if r]
    return {
        "mode": "hybrid" if hybrid else "dense",
        "k": k,
        "n": len(ranks),
        "hit_rate": round(len(hits) / len(ranks), 4),
        "mrr": round(sum(1.0 / r for r in hits) / len(ranks), 4),
        "misses": [q.get("id") or q["question"] for q, r in zip(questions, ranks, strict=True) if not r],
        "missed": [
            {"id": q.get("id") or "", "question": q["question"], "source": q["source"]}
            for q, r in zip(questions, ranks, strict=True)
            if not r
        ],
    }


def compare_modes(index, questions: list[dict], k: int = 5) -> list[dict]:
    return [retrieval_metrics(index, questions, k, hybrid) for hybrid in (False, True)]


def chunk_size_sweep(
    ws: Workspace,
    base: RagConfig,
    questions: list[dict],
    sizes: list[int],
    embedder,
    k: int = 5,
    progress: Callable[[float, str], None] | None = None,
) -> list[dict]:
    """One row per chunk size and mode: {"chunk_size", "chunks", "mode", "hit_rate", "mrr"}."""
    from lab.rag.index import _chunk_all, _vectors, write_folder
    from lab.rag.retrieve import Index
    from lab.rag.store import edge_store

    docs = load_documents(ws, base.corpus).documents
    rows = []
    for n, size in enumerate(sizes):
        if progress:
            progress(n / len(sizes), f"chunk size {size}: embedding")
        config = base.replace(chunk_size=size, overlap=min(base.overlap, size // 4), store_url="")
        chunks, todo = _chunk_all(docs, config, embedder, {})
        vectors = _vectors(chunks, todo, {}, embedder, None)
        folder = Path(tempfile.mkdtemp(prefix="sweep-", dir=ws.tmp))
        try:
            write_folder(folder, config, docs, chunks, vectors)
            store = edge_store(str(folder / "store"))
            index = Index("sweep", config, [c.__dict__ for c in chunks], vectors, store, embedder, {})
            for m in compare_modes(index, questions, k):
                rows.append({"chunk_size": size, "chunks": len(chunks), "mode": m["mode"]})
                rows[-1].update(hit_rate=m["hit_rate"], mrr=m["mrr"])
            store.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rows
