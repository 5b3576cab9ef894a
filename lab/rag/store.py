"""Vector stores behind one LlamaIndex interface (`BasePydanticVectorStore`).

- `EdgeVectorStore`: our adapter over `qdrant-edge-py` (Qdrant's engine embedded in the process, HNSW), the
  default; its files live inside the index folder, so nothing has to be started.
- `server_store(url, collection)`: LlamaIndex's own `QdrantVectorStore` on a Qdrant server (API key from the
  environment variable QDRANT_API_KEY).

Point ids are UUIDs derived from chunk ids (`point_id`). Only this module imports qdrant libraries; they are
imported inside functions so `import lab` stays light. No gradio here.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from lab.rag.chunking import RagError

API_KEY_ENV = "QDRANT_API_KEY"
# Below this many chunks an exact scan is fast enough (about 9 ms p50 at 100k on 2 cores) while building the HNSW
# graph takes minutes, so the graph is built only for bigger indexes.
HNSW_FROM = 250_000
_NS = uuid.UUID("6f1c1d4e-5b0a-4c55-9d39-3f1f0e6c2a11")


def point_id(chunk_id: str) -> str:
    return str(uuid.uuid5(_NS, chunk_id))


def _edge_store_class():
    """Defined lazily so llama_index is imported only when a store is used."""
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        VectorStoreQuery,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeShard,
        EdgeVectorParams,
        FieldCondition,
        Filter,
        MatchValue,
        Point,
        Query,
        QueryBatchRequest,
        QueryRequest,
        UpdateOperation,
    )

    class EdgeVectorStore(BasePydanticVectorStore):
        """A LlamaIndex vector store over an embedded Qdrant Edge shard at `path` (cosine distance)."""

        stores_text: bool = True
        path: str
        dims: int
        _shard: Any = PrivateAttr()

        def __init__(self, path: str, dims: int | None = None, **kwargs: Any):
            shard_exists = os.path.isdir(path) and any(os.scandir(path))
            if not shard_exists and not dims:
                raise RagError(f"no vector store at {path!r}; rebuild the index")
            super().__init__(path=str(path), dims=int(dims or 0), **kwargs)
            if shard_exists:
                self._shard = EdgeShard.load(str(path))
            else:
                # No write-ahead log: an index is written once, flushed, then only read, and without a WAL
                # several processes (the app, the CLI) can open the same shard at the same time.
                vectors = EdgeVectorParams(size=int(dims), distance=Distance.Cosine)
                config = EdgeConfig(vectors=vectors, wal_enabled=False)
                self._shard = EdgeShard.create(str(path), config)

        @classmethod
        def class_name(cls) -> str:
            return "EdgeVectorStore"

        @property
        def client(self) -> Any:
            return self._shard

        def add(self, nodes, **kwargs: Any) -> list[str]:
            points = [
                Point(id=n.node_id, vector=list(map(float, n.get_embedding())), payload=node_to_metadata_dict(n))
                for n in nodes
            ]
            for start in range(0, len(points), 1000):
                self._shard.update(UpdateOperation.upsert_points(points[start : start + 1000]))
            return [n.node_id for n in nodes]

        def delete(self, ref_doc_id: str, **kwargs: Any) -> None:
            flt = Filter(must=[FieldCondition(key="doc_id", match=MatchValue(ref_doc_id))])
            self._shard.update(UpdateOperation.delete_points_by_filter(flt))

        def _request(self, embedding, k: int, payload: bool) -> Any:
            return QueryRequest(limit=k, query=Query.Nearest(list(map(float, embedding))), with_payload=payload)

        def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
            hits = self._shard.query(self._request(query.query_embedding, query.similarity_top_k, True))
            nodes = [metadata_dict_to_node(h.payload) for h in hits]
            return VectorStoreQueryResult(
                nodes=nodes, similarities=[h.score for h in hits], ids=[str(h.id) for h in hits]
            )

        def search_many(self, embeddings, k: int) -> list[list[tuple[str, float]]]:
            """(point id, cosine) best first for each row: one planned batch, no payloads (the fast path)."""
            batch = QueryBatchRequest([self._request(e, k, False) for e in embeddings])
            return [[(str(h.id), float(h.score)) for h in hits] for hits in self._shard.query_batch(batch)]

        def count(self) -> int:
            return int(self._shard.info().points_count)

        def finish(self) -> None:
            """Build the HNSW graph when it pays off, then flush to disk."""
            if self.count() >= HNSW_FROM:
                self._shard.optimize()
            self._shard.flush()

        def close(self) -> None:
            self._shard.close()

    return EdgeVectorStore


def edge_store(path: str, dims: int | None = None):
    return _edge_store_class()(path, dims)


def server_store(url: str, collection: str, client: Any = None):
    """LlamaIndex's QdrantVectorStore on a server at `url`; `client` lets tests pass an in-memory QdrantClient."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    try:
        if client is None:
            key = os.environ.get(API_KEY_ENV) or None
            client = QdrantClient(url=url, api_key=key, timeout=30, check_compatibility=False)
        return QdrantVectorStore(collection_name=collection, client=client)
    except Exception as exc:
        raise RagError(
            f"store_url {url!r}: the Qdrant server failed ({type(exc).__name__}: {exc}); check the URL and the "
            f"{API_KEY_ENV} environment variable, or leave the URL empty for the embedded store"
        ) from exc


def search_many(store, embeddings, k: int) -> list[list[tuple[str, float]]]:
    """(point id, cosine) best first for each query row, whichever store it is."""
    if hasattr(store, "search_many"):
        return store.search_many(embeddings, k)
    from llama_index.core.vector_stores.types import VectorStoreQuery

    out = []
    for emb in embeddings:
        try:
            res = store.query(VectorStoreQuery(query_embedding=[float(x) for x in emb], similarity_top_k=k))
        except Exception as exc:
            raise RagError(
                f"the Qdrant server did not answer ({type(exc).__name__}: {exc}); check that it runs and that "
                f"{API_KEY_ENV} is set if it needs a key"
            ) from exc
        out.append([(str(i), float(s)) for i, s in zip(res.ids or [], res.similarities or [], strict=False)])
    return out
