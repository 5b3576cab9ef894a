"""RAG benchmark, one run: (1) sample-domain build time and chunks/s with the embedded embedder; (2) query
embedding time; (3) vector-store query latency p50/p95 at 1k, 10k and 100k synthetic 384-d chunks, ours
(Qdrant Edge, embedded) beside LlamaIndex's default in-memory SimpleVectorStore, through the same LlamaIndex
`VectorStoreQuery` call, plus our batched fast path. Speeds are printed as ratios against that baseline.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python bench/rag.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DIMS = 384
TOP_K = 5


def pct(values: list[float]) -> tuple[float, float]:
    ms = np.array(values) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def bench_build(tmp: Path) -> None:
    from lab.cache import ModelCache
    from lab.config import RagConfig
    from lab.rag import build_index, open_index
    from lab.rag.embed import load_embedder
    from lab.rag.index import sample_corpus
    from lab.workspace import Workspace

    ws = Workspace.open(tmp / "home")
    cache = ModelCache(ws.model_cache)
    started = time.perf_counter()
    embedder = load_embedder(cache, "embedded")
    print(f"embedder load: {time.perf_counter() - started:.2f} s")
    report = build_index(ws, RagConfig(name="sample", corpus=sample_corpus(ws)), cache)
    s = report.stats
    print(
        f"sample build: {s['documents']} documents, {s['chunks']} chunks, {s['build_seconds']:.2f} s "
        f"({s['chunks'] / s['build_seconds']:.1f} chunks/s), tokens/chunk mean {s['tokens_per_chunk']['mean']}"
    )
    started = time.perf_counter()
    again = build_index(ws, RagConfig(name="sample", corpus=sample_corpus(ws)), cache)
    print(f"unchanged rebuild: {time.perf_counter() - started:.2f} s, re-embedded {again.embedded_docs} documents")
    questions = [f"How often is component {i} of the gearbox inspected?" for i in range(30)]
    times = []
    for q in questions:
        t = time.perf_counter()
        embedder.embed([q])
        times.append(time.perf_counter() - t)
    p50, p95 = pct(times)
    print(f"query embedding (one question, all-MiniLM-L6-v2, CPU): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    index = open_index(ws, "sample", cache)
    for hybrid in (False, True):
        times = []
        for q in questions:
            t = time.perf_counter()
            index.retrieve(q, TOP_K, hybrid=hybrid)
            times.append(time.perf_counter() - t)
        p50, p95 = pct(times)
        print(f"sample retrieve end to end ({'hybrid' if hybrid else 'dense'}, incl. embedding): p50 {p50:.1f} ms")


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def nodes(vectors: np.ndarray) -> list:
    from llama_index.core.schema import TextNode

    from lab.rag.store import point_id

    return [TextNode(id_=point_id(f"c{i}"), text=f"chunk {i}", embedding=v.tolist()) for i, v in enumerate(vectors)]


def time_queries(store, queries: np.ndarray) -> list[float]:
    from llama_index.core.vector_stores.types import VectorStoreQuery

    out = []
    for q in queries:
        request = VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=TOP_K)
        t = time.perf_counter()
        store.query(request)
        out.append(time.perf_counter() - t)
    return out


def bench_stores(sizes: list[int], tmp: Path) -> None:
    from llama_index.core.vector_stores import SimpleVectorStore

    from lab.rag.store import edge_store

    print(f"\nvector store query, top-{TOP_K}, {DIMS}-d, excluding query embedding (ms):")
    print(
        f"{'chunks':>8} {'ours p50':>9} {'ours p95':>9} {'batch p50':>10} {'simple p50':>11} {'simple p95':>11} "
        f"{'speed-up':>9} {'ours build s':>13} {'simple build s':>15}"
    )
    for n in sizes:
        vectors = synthetic(n)
        queries = synthetic(60, seed=1)
        batch = nodes(vectors)
        t = time.perf_counter()
        ours = edge_store(str(tmp / f"edge-{n}"), DIMS)
        ours.add(batch)
        ours.finish()
        ours_build = time.perf_counter() - t
        ours_times = time_queries(ours, queries)
        fast = []
        for q in queries:
            t = time.perf_counter()
            ours.search_many([q], TOP_K)
            fast.append(time.perf_counter() - t)
        ours.close()
        t = time.perf_counter()
        simple = SimpleVectorStore()
        simple.add(batch)
        simple_build = time.perf_counter() - t
        simple_times = time_queries(simple, queries[: 60 if n <= 10_000 else 15])
        o50, o95 = pct(ours_times)
        s50, s95 = pct(simple_times)
        print(
            f"{n:>8} {o50:>9.2f} {o95:>9.2f} {pct(fast)[0]:>10.2f} {s50:>11.2f} {s95:>11.2f} {s50 / o50:>8.1f}x "
            f"{ours_build:>13.1f} {simple_build:>15.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--skip-build", action="store_true", help="only the vector-store latency table")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as tmp:
        if not args.skip_build:
            bench_build(Path(tmp))
        bench_stores([int(s) for s in args.sizes.split(",")], Path(tmp))
    print(f"\nbench/rag.py total: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
