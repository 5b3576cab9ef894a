"""RAG: named retrieval indexes over the user's documents (LlamaIndex parsing, Qdrant vector stores, BM25).

Public API (other layers import only these names):
    Passage, Index, open_index(ws, name, cache) -> Index, list_indexes(ws), index_info(ws, name),
    build_index(ws, config, cache), delete_index(ws, name), ensure_sample_index(ws, cache), RagError,
    retrieval_metrics / compare_modes / chunk_size_sweep (lab.rag.evaluate).
Sub-modules: chunking (documents -> chunks), embed (the embedder), store (vector stores), index (build / open /
delete on disk), retrieve (dense, BM25, fusion), evaluate (hit rate, MRR, sweeps). No gradio here; llama_index,
qdrant and sentence-transformers are imported inside functions.
"""

from lab.rag.chunking import RagError
from lab.rag.index import (
    BuildReport,
    build_index,
    delete_index,
    ensure_sample_index,
    index_info,
    list_indexes,
    open_index,
)
from lab.rag.retrieve import Index, Passage

__all__ = [
    "BuildReport",
    "Index",
    "Passage",
    "RagError",
    "build_index",
    "delete_index",
    "ensure_sample_index",
    "index_info",
    "list_indexes",
    "open_index",
]
