"""Build, open, list and delete named indexes under LAB_HOME/indexes/NAME/.

An index folder holds config.json (the RagConfig), meta.json (build id, settings fingerprint, documents with
their content hashes, per-file problems, statistics), chunks.jsonl, embeddings.npy (the chunk vectors, kept so
a rebuild re-embeds only documents whose hash changed) and store/ (the embedded Qdrant Edge shard; absent when
the vectors live on a Qdrant server). A build happens in a staging folder that replaces the old index only when
complete, so a failed or cancelled build leaves the previous index untouched. No gradio here.

Fork safety (a ZeroGPU Space runs GPU calls in a fork of the app): the sample build's lock and the open embedded
Qdrant Edge stores belong to the process that made them. After a fork the child gets fresh locks (the sample
build's and the open-index registry's, `lab.rag.registry`), each open edge store is opened again on its first use
there (the inherited handle stays referenced, never used or dropped, since its own locks may have been held by a
thread that does not exist in the child), and torch computes on one CPU thread.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab.config import RagConfig
from lab.rag.chunking import Chunk, Document, RagError, load_documents, split_document
from lab.rag.embed import load_embedder
from lab.rag.registry import IndexRegistry
from lab.rag.retrieve import Index
from lab.rag.store import API_KEY_ENV, edge_store, point_id, server_store
from lab.workspace import SAMPLE, Workspace

Progress = Callable[[float, str], None]

_sample_locks: dict[str, threading.Lock] = {}  # one per workspace: the sample index is built once
_sample_locks_guard = threading.Lock()
_edge_indexes: weakref.WeakSet = weakref.WeakSet()  # open indexes whose vectors live in an embedded edge store
_inherited: list[Any] = []  # stores a forked child inherited: kept, never used nor dropped there
_handles = IndexRegistry()  # the open index of each folder (the current build, opened with one model cache)


def _sample_lock(ws: Workspace) -> threading.Lock:
    with _sample_locks_guard:
        return _sample_locks.setdefault(str(ws.root), threading.Lock())


class ReopenedEdgeStore:
    """An embedded edge store that a forked child inherited: opened again at `path` on first use, in the child."""

    def __init__(self, path: str):
        self.path = path
        self._store: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        with self._lock:
            if self._store is None:
                self._store = edge_store(self.path)
        return getattr(self._store, name)


def _after_fork_in_child() -> None:
    """Fresh sample-build locks (a lock held by another thread at the fork would never be released in the child);
    every open edge store swapped for one reopened on first use; torch's CPU work single-threaded, since the
    parent's OpenMP thread pool does not survive a fork (embedding a query there hung in layer_norm)."""
    global _sample_locks_guard
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    _sample_locks_guard = threading.Lock()
    _sample_locks.clear()
    _handles.after_fork()
    for index in list(_edge_indexes):
        _inherited.append(index.store)
        index.store = ReopenedEdgeStore(index.store.path)


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass
class BuildReport:
    name: str
    stats: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    embedded_docs: int = 0  # documents whose chunks were embedded in this build
    reused_docs: int = 0  # documents whose vectors were reused from the previous build


def fingerprint(config: RagConfig) -> dict[str, Any]:
    """The settings that change chunks or vectors: when they differ, nothing can be reused."""
    return {k: getattr(config, k) for k in ("chunker", "chunk_size", "overlap", "embed_model")}


def list_indexes(ws: Workspace) -> list[str]:
    return [n for n in ws.list("indexes") if (ws.dir("indexes", n) / "meta.json").is_file()]


def index_info(ws: Workspace, name: str) -> dict[str, Any]:
    """meta.json of an index (stats, documents, problems); ValueError naming it when it does not exist."""
    return json.loads((_folder(ws, name) / "meta.json").read_text(encoding="utf-8"))


def _folder(ws: Workspace, name: str) -> Path:
    folder = ws.dir("indexes", name)
    if not (folder / "meta.json").is_file():
        existing = ", ".join(list_indexes(ws)) or "none"
        raise RagError(f"no index named {name!r}; existing indexes: {existing}. Build it first")
    return folder


def _previous(ws: Workspace, config: RagConfig) -> dict[str, tuple[list[dict], np.ndarray]]:
    """doc_id -> (chunk rows, vectors) of the current index when its chunk settings match `config`."""
    folder = ws.dir("indexes", config.name)
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("fingerprint") != fingerprint(config):
            return {}
        rows = _read_chunks(folder)
        vectors = np.load(folder / "embeddings.npy")
    except (OSError, ValueError):
        return {}
    by_doc: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_doc.setdefault(row["doc_id"], []).append(i)
    return {d: ([rows[i] for i in idx], vectors[idx]) for d, idx in by_doc.items()}


def _read_chunks(folder: Path) -> list[dict]:
    with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _chunk_all(docs: list[Document], config: RagConfig, embedder, previous) -> tuple[list[Chunk], list[int]]:
    """Chunks of every document (reused ones first taken from `previous`) and the positions still to embed."""
    chunks, todo = [], []
    for doc in docs:
        if doc.doc_id in previous:
            chunks.extend(Chunk(**{**r, "source": doc.source}) for r in previous[doc.doc_id][0])
            continue
        new = split_document(doc, config.chunker, config.chunk_size, config.overlap, embedder.tokenize)
        todo.extend(range(len(chunks), len(chunks) + len(new)))
        chunks.extend(new)
    return chunks, todo


def _vectors(chunks, todo, previous, embedder, progress: Progress | None) -> np.ndarray:
    """Vectors for every chunk: reused rows from the previous build, fresh embeddings for `todo`."""
    vectors = np.zeros((len(chunks), embedder.dims), dtype=np.float32)
    reused = {r["chunk_id"]: v for rows, vecs in previous.values() for r, v in zip(rows, vecs, strict=True)}
    fresh = set(todo)
    for i, c in enumerate(chunks):
        if i not in fresh:
            vectors[i] = reused[c.chunk_id]

    def on_batch(done: int, total: int) -> None:
        if progress:
            progress(0.1 + 0.8 * done / max(total, 1), f"embedding chunk {done} of {total}")

    if todo:
        vectors[todo] = embedder.embed([chunks[i].text for i in todo], on_batch)
    return vectors


def build_index(
    ws: Workspace,
    config: RagConfig,
    cache=None,
    *,
    embedder=None,
    progress: Progress | None = None,
    qdrant_client: Any = None,
) -> BuildReport:
    """Build (or incrementally rebuild) index `config.name` from `config.corpus`; see the module docstring."""
    ws.dir("indexes", config.name)  # validates the name before any work
    started = time.perf_counter()
    embedder = embedder or load_embedder(cache, config.embed_model)
    loaded = load_documents(ws, config.corpus)
    if not loaded.documents:
        why = "; ".join(loaded.problems) or "it has no files"
        raise RagError(f"corpus {config.corpus!r} has no usable documents ({why}); add Markdown, text or PDF files")
    if progress:
        progress(0.05, f"chunking {len(loaded.documents)} documents")
    window = getattr(embedder, "max_tokens", 0)
    if window and config.chunk_size > window:
        loaded.problems.append(
            f"chunk_size {config.chunk_size}: larger than the embedder's {window}-token window, so only the first "
            f"{window} tokens of each chunk are embedded; use chunk_size <= {window}"
        )
    previous = _previous(ws, config)
    chunks, todo = _chunk_all(loaded.documents, config, embedder, previous)
    vectors = _vectors(chunks, todo, previous, embedder, progress)
    if progress:
        progress(0.92, "writing the vector store")
    embedded = {chunks[i].doc_id for i in todo}
    report = BuildReport(config.name, {}, loaded.problems, len(embedded), len(loaded.documents) - len(embedded))
    old_url, old_collection = _old_collection(ws, config.name)
    with ws.atomic_dir("indexes", config.name, overwrite=True) as staging:
        report.stats = write_folder(staging, config, loaded.documents, chunks, vectors, qdrant_client)
        report.stats["build_seconds"] = round(time.perf_counter() - started, 2)
        _write_meta(staging, config, loaded, report)
    if old_collection:
        _drop_collection(old_url, old_collection, qdrant_client)
    return report


def write_folder(folder: Path, config: RagConfig, docs, chunks: list[Chunk], vectors, qdrant_client=None) -> dict:
    """Write chunks, vectors and the vector store into `folder`; returns the statistics."""
    config.save(folder / "config.json")
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(json.dumps(c.__dict__, ensure_ascii=False) + "\n")
    np.save(folder / "embeddings.npy", vectors)
    collection = f"expertlab-{config.name or 'index'}-{uuid.uuid4().hex[:8]}" if config.store_url else ""
    _fill_store(folder, config, chunks, vectors, collection, qdrant_client)
    tokens = [c.tokens for c in chunks] or [0]
    return {
        "documents": len(docs),
        "chunks": len(chunks),
        "tokens_per_chunk": {"mean": round(float(np.mean(tokens)), 1), "min": min(tokens), "max": max(tokens)},
        "dims": int(vectors.shape[1]),
        "store": "qdrant-server" if config.store_url else "qdrant-edge",
        "collection": collection,
    }


def _nodes(chunks: list[Chunk], vectors) -> list:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    return [
        TextNode(
            id_=point_id(c.chunk_id),
            text=c.text,
            embedding=vectors[i].tolist(),
            metadata={"chunk_id": c.chunk_id, "source": c.source},
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=c.doc_id)},
        )
        for i, c in enumerate(chunks)
    ]


def _fill_store(folder, config, chunks, vectors, collection, qdrant_client) -> None:
    if not config.store_url:
        store = edge_store(str(folder / "store"), int(vectors.shape[1]))
        try:
            for start in range(0, len(chunks), 2000):
                store.add(_nodes(chunks[start : start + 2000], vectors[start : start + 2000]))
            store.finish()
        finally:
            store.close()
        return
    store = server_store(config.store_url, collection, qdrant_client)
    try:
        for start in range(0, len(chunks), 512):
            store.add(_nodes(chunks[start : start + 512], vectors[start : start + 512]))
    except Exception as exc:
        _drop_collection(config.store_url, collection, qdrant_client)
        raise RagError(
            f"store_url {config.store_url!r}: the Qdrant server failed ({type(exc).__name__}: {exc}); check the "
            f"URL and the {API_KEY_ENV} environment variable, or leave the URL empty for the embedded store"
        ) from exc
    except BaseException:
        _drop_collection(config.store_url, collection, qdrant_client)
        raise


def _write_meta(folder: Path, config: RagConfig, loaded, report: BuildReport) -> None:
    meta = {
        "name": config.name,
        "build_id": uuid.uuid4().hex,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "fingerprint": fingerprint(config),
        "stats": report.stats,
        "documents": [{"source": d.source, "doc_id": d.doc_id} for d in loaded.documents],
        "problems": loaded.problems,
        "embedded_docs": report.embedded_docs,
        "reused_docs": report.reused_docs,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _old_collection(ws: Workspace, name: str) -> tuple[str, str]:
    """(server URL, collection) of the current index `name` when its vectors live on a Qdrant server."""
    try:
        url = RagConfig.load(ws.dir("indexes", name) / "config.json").store_url
        return url, index_info(ws, name)["stats"].get("collection", "") if url else ""
    except (ValueError, OSError, KeyError):
        return "", ""


def _drop_collection(url: str, collection: str, qdrant_client=None) -> None:
    try:
        server_store(url, collection, qdrant_client).client.delete_collection(collection)
    except Exception:  # the server may be gone; a stale collection is harmless
        pass


def delete_index(ws: Workspace, name: str, *, qdrant_client: Any = None) -> None:
    folder = _folder(ws, name)
    config = RagConfig.load(folder / "config.json")
    collection = index_info(ws, name)["stats"].get("collection", "")
    _handles.drop(str(folder))
    shutil.rmtree(folder)
    if config.store_url and collection:
        _drop_collection(config.store_url, collection, qdrant_client)


def open_index(ws: Workspace, name: str, cache=None, *, embedder=None, qdrant_client: Any = None) -> Index:
    """The index `name`, ready to retrieve; `sample` is built on first use. With `cache` (and no `embedder`), one
    handle per build is kept and shared (`IndexRegistry`)."""
    if name == SAMPLE and SAMPLE not in list_indexes(ws) and cache is not None:
        ensure_sample_index(ws, cache)
    folder = _folder(ws, name)
    meta = index_info(ws, name)
    config = RagConfig.load(folder / "config.json")

    def make() -> Index:
        emb = embedder or load_embedder(cache, config.embed_model)
        store = _open_store(folder, config, meta, qdrant_client)
        index = Index(name, config, _read_chunks(folder), _vectors_file(folder), store, emb, meta)
        if not config.store_url:
            _edge_indexes.add(index)
        return index

    if cache is None or embedder is not None:
        return make()
    return _handles.get(str(folder), meta["build_id"], cache, make)


def _vectors_file(folder: Path):
    """Chunk vectors, memory-mapped: only the rows a query touches are read (100k x 384 floats = 150 MB)."""
    return np.load(folder / "embeddings.npy", mmap_mode="r")


def _open_store(folder: Path, config: RagConfig, meta: dict, qdrant_client=None):
    if config.store_url:
        return server_store(config.store_url, meta["stats"]["collection"], qdrant_client)
    return edge_store(str(folder / "store"))


def sample_corpus(ws: Workspace) -> str:
    """The sample corpus: the workspace's saved `sample` corpus, else the shipped sample's docs folder."""
    from lab.data import ensure_sample_domain

    ensure_sample_domain(ws)
    if ws.exists("corpora", SAMPLE):
        return SAMPLE
    from lab.storage import sample_dir

    return str(sample_dir() / "docs")


def ensure_sample_index(ws: Workspace, cache, progress: Progress | None = None) -> BuildReport | None:
    """Build index `sample` with the default settings unless it exists; returns the report when it built.

    Callers racing for it (the Arena and the RAG tab in two browser tabs) share one lock per workspace, so the
    sample is embedded once; a forked child starts with a fresh one."""
    with _sample_lock(ws):
        if SAMPLE in list_indexes(ws):
            return None
        return build_index(ws, RagConfig(name=SAMPLE, corpus=sample_corpus(ws)), cache, progress=progress)
