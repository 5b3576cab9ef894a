"""RAG engine with a deterministic fake embedder: exact retrieval, hybrid fusion, persistence, incremental
rebuilds, bad inputs, atomic builds, the LlamaIndex store adapters and the retrieval metrics."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lab.config import RagConfig
from lab.rag import Passage, RagError, build_index, delete_index, list_indexes, open_index
from lab.rag.retrieve import rrf

# Words the fake embedder "understands", each pulling toward one topic dimension; all other words are invisible.
TOPICS = {"gearbox": 0, "oil": 0, "lubricant": 0, "blade": 1, "rotor": 1, "crack": 1, "helmet": 2, "safety": 2}
DIMS = 4


class FakeEmbedder:
    """Topic-count vectors plus a constant dimension, L2-normalised; counts every text it embeds."""

    name = "fake"
    dims = DIMS
    max_tokens = 0

    def __init__(self):
        self.embedded: list[str] = []

    def tokenize(self, text):
        return text.split()

    def embed(self, texts, on_batch=None):
        self.embedded.extend(texts)
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, 3] = 1.0
            for word in text.lower().replace(".", " ").replace("?", " ").split():
                if word in TOPICS:
                    out[i, TOPICS[word]] += 1.0
        if on_batch:
            on_batch(len(texts), len(texts))
        return out / np.linalg.norm(out, axis=1, keepdims=True)


DOCS = {
    "gearbox.md": "# Gearbox\n\nChange the gearbox oil every year with the approved lubricant.",
    "blades.md": "# Blades\n\nInspect every blade and the rotor for a crack after storms.",
    "safety.md": "# Safety\n\nSafety first: a helmet for safety, helmet checks, blade and gearbox safety. ZX9041.",
}


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def fake():
    return FakeEmbedder()


def _build(ws, folder, fake, name="t", **settings):
    return build_index(
        ws,
        RagConfig(**{"name": name, "corpus": str(folder), "chunk_size": 64, "overlap": 8, **settings}),
        embedder=fake,
    )


def test_passage_contract():
    assert [f.name for f in dataclasses.fields(Passage)] == ["text", "source", "score", "chunk_id", "doc_id"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Passage("t", "s", 1.0, "c", "d").text = "x"


def test_dense_retrieves_the_matching_chunk(ws, docs, fake):
    report = _build(ws, docs, fake)
    assert report.stats["documents"] == 3 and report.stats["chunks"] == 3 and report.stats["dims"] == DIMS
    passages = open_index(ws, "t", embedder=fake).retrieve("When is the gearbox oil changed?", top_k=2)
    assert passages[0].source == "gearbox.md" and passages[0].chunk_id.endswith(":0")
    assert "approved lubricant" in passages[0].text
    assert passages[0].score > passages[1].score
    assert passages[0].score == pytest.approx(
        float(fake.embed([passages[0].text])[0] @ fake.embed(["gearbox oil"])[0])
    )


def test_similarity_cutoff_drops_weak_passages(ws, docs, fake):
    _build(ws, docs, fake)
    index = open_index(ws, "t", embedder=fake)
    assert len(index.retrieve("crack in the rotor blade", top_k=3, cutoff=0.0)) == 3
    kept = index.retrieve("crack in the rotor blade", top_k=3, cutoff=0.9)
    assert [p.source for p in kept] == ["blades.md"]


def test_hybrid_finds_what_only_bm25_finds(ws, docs, fake):
    _build(ws, docs, fake)
    index = open_index(ws, "t", embedder=fake)
    question = "Which strap is ZX9041?"  # no word the fake embedder understands: dense ranks by chunk shape
    assert index.retrieve(question, top_k=1, hybrid=False)[0].source != "safety.md"
    assert index.bm25_rows(question, 5) == [next(i for i, c in enumerate(index.chunks) if c["source"] == "safety.md")]
    assert index.retrieve(question, top_k=1, hybrid=True)[0].source == "safety.md"


def test_rrf_orders_by_summed_reciprocal_ranks():
    assert rrf([[1, 2, 3], [3]]) == [3, 1, 2]
    assert rrf([[5, 6], [6, 5]], k=1) == [5, 6]  # a tie keeps the first seen
    assert rrf([[], []]) == []


def test_index_persists_and_reopens(ws, docs, fake):
    _build(ws, docs, fake, hybrid=True)
    first = open_index(ws, "t", embedder=fake).retrieve("blade rotor crack", top_k=3)
    reopened = open_index(ws, "t", embedder=FakeEmbedder())
    assert reopened.config.hybrid is True and reopened.config.chunk_size == 64
    assert reopened.retrieve("blade rotor crack", top_k=3) == first
    assert list_indexes(ws) == ["t"]
    meta = json.loads((ws.dir("indexes", "t") / "meta.json").read_text())
    assert meta["stats"]["tokens_per_chunk"]["max"] <= 64 and meta["stats"]["build_seconds"] >= 0


def test_rebuild_embeds_only_changed_documents(ws, docs, fake):
    _build(ws, docs, fake)
    assert len(fake.embedded) == 3
    (docs / "blades.md").write_text("# Blades\n\nThe rotor blade gets a helmet-shaped cap.", encoding="utf-8")
    (docs / "gearbox.md").unlink()
    fake.embedded.clear()
    report = _build(ws, docs, fake)
    assert fake.embedded == ["# Blades\n\nThe rotor blade gets a helmet-shaped cap."]
    assert (report.embedded_docs, report.reused_docs, report.stats["chunks"]) == (1, 1, 2)
    sources = {p.source for p in open_index(ws, "t", embedder=fake).retrieve("gearbox oil", top_k=5)}
    assert sources == {"blades.md", "safety.md"}
    fake.embedded.clear()
    _build(ws, docs, fake, chunk_size=48)  # new chunk settings: nothing can be reused
    assert len(fake.embedded) == 2


def test_bad_files_get_messages_and_good_files_are_indexed(ws, docs, fake):
    from pypdf import PdfWriter

    (docs / "empty.md").write_text("   \n", encoding="utf-8")
    (docs / "image.bin").write_bytes(b"\x89PNG\x00\x00\x01binary")
    (docs / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    with open(docs / "locked.pdf", "wb") as fh:
        writer.write(fh)
    (docs / "copy-of-gearbox.md").write_text(DOCS["gearbox.md"], encoding="utf-8")
    report = _build(ws, docs, fake)
    named = {p.split(":")[0] for p in report.problems}
    assert named == {"empty.md", "image.bin", "latin1.txt", "broken.pdf", "locked.pdf", "gearbox.md"}
    assert any(p.startswith("gearbox.md: same content as copy-of-gearbox.md") for p in report.problems)
    assert report.stats["documents"] == 3 and len(fake.embedded) == 3  # the duplicate was embedded once
    assert open_index(ws, "t", embedder=fake).retrieve("gearbox oil", top_k=1)[0].source in (
        "gearbox.md",
        "copy-of-gearbox.md",
    )


def test_empty_corpus_and_unknown_index_name_the_problem(ws, tmp_path, fake):
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(RagError, match="nothing.*no usable documents"):
        _build(ws, empty, fake)
    with pytest.raises(RagError, match="'no-such-corpus'"):
        build_index(ws, RagConfig(name="x", corpus="no-such-corpus"), embedder=fake)
    with pytest.raises(ValueError, match="no index named 'ghost'.*existing indexes: none"):
        open_index(ws, "ghost", embedder=fake)
    assert list_indexes(ws) == []


def test_failed_build_keeps_the_old_index(ws, docs, fake):
    _build(ws, docs, fake)
    before = open_index(ws, "t", embedder=fake).retrieve("gearbox oil", top_k=3)

    class Exploding(FakeEmbedder):
        def embed(self, texts, on_batch=None):
            raise KeyboardInterrupt  # a cancel in the middle of embedding

    (docs / "gearbox.md").write_text("changed", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        _build(ws, docs, Exploding())

    def failing_progress(fraction, message):
        if message.startswith("writing"):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_index(
            ws,
            RagConfig(name="t", corpus=str(docs), chunk_size=64, overlap=8),
            embedder=fake,
            progress=failing_progress,
        )
    assert open_index(ws, "t", embedder=fake).retrieve("gearbox oil", top_k=3) == before
    assert [p.name for p in (ws.root / "indexes").iterdir()] == ["t"]


def test_delete_index(ws, docs, fake):
    _build(ws, docs, fake)
    delete_index(ws, "t")
    assert list_indexes(ws) == [] and not ws.dir("indexes", "t").exists()
    with pytest.raises(ValueError, match="no index named 't'"):
        delete_index(ws, "t")


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
def test_qdrant_server_store_behind_the_same_api(ws, docs, fake):
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")  # stands in for a server: same client API
    config = RagConfig(name="srv", corpus=str(docs), chunk_size=64, overlap=8, store_url="http://qdrant.example:6333")
    first = build_index(ws, config, embedder=fake, qdrant_client=client).stats["collection"]
    assert client.collection_exists(first) and not (ws.dir("indexes", "srv") / "store").exists()
    index = open_index(ws, "srv", embedder=fake, qdrant_client=client)
    assert index.retrieve("rotor crack", top_k=1)[0].source == "blades.md"
    second = build_index(ws, config, embedder=fake, qdrant_client=client).stats["collection"]
    assert not client.collection_exists(first) and client.collection_exists(second)
    build_index(ws, config.replace(store_url=""), embedder=fake, qdrant_client=client)  # moved to the embedded store
    assert not client.collection_exists(second) and (ws.dir("indexes", "srv") / "store").is_dir()
    delete_index(ws, "srv", qdrant_client=client)


def test_unreachable_qdrant_server_is_a_clear_error(ws, docs, fake):
    config = RagConfig(name="srv", corpus=str(docs), chunk_size=64, overlap=8, store_url="http://127.0.0.1:9")
    with pytest.raises(RagError, match="store_url 'http://127.0.0.1:9': the Qdrant server failed"):
        build_index(ws, config, embedder=fake)
    assert list_indexes(ws) == []


def test_llamaindex_can_use_the_edge_store(tmp_path):
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.schema import TextNode

    from lab.rag.store import edge_store

    class LiFake(BaseEmbedding):
        def _get_text_embedding(self, text):
            return FakeEmbedder().embed([text])[0].tolist()

        def _get_query_embedding(self, query):
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query):
            return self._get_text_embedding(query)

    store = edge_store(str(tmp_path / "shard"), DIMS)
    nodes = [TextNode(text=t, id_=f"00000000-0000-0000-0000-00000000000{i}") for i, t in enumerate(DOCS.values())]
    index = VectorStoreIndex(
        nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=LiFake()
    )
    hits = index.as_retriever(similarity_top_k=1).retrieve("rotor crack")
    assert hits[0].node.get_content() == DOCS["blades.md"] and store.count() == 3
    store.close()


QUESTIONS = [
    {"id": "a", "question": "gearbox oil", "source": "gearbox.md"},
    {"id": "b", "question": "rotor crack", "source": "blades.md"},
    {"id": "c", "question": "Which strap is ZX9041?", "source": "safety.md"},
]


def test_hit_rate_and_mrr_dense_vs_hybrid(ws, docs, fake, tmp_path):
    from lab.data.evalset import EvalSetError
    from lab.rag.evaluate import compare_modes, load_questions

    qa = tmp_path / "qa.jsonl"
    lines = [json.dumps(q) for q in QUESTIONS] + [json.dumps({"question": "no source", "source": None}), ""]
    qa.write_text("\n".join(lines), encoding="utf-8")
    questions = load_questions(qa)
    assert len(questions) == 3
    _build(ws, docs, fake)
    dense, hybrid = compare_modes(open_index(ws, "t", embedder=fake), questions, k=1)
    assert (dense["hit_rate"], dense["mrr"], dense["misses"]) == (0.6667, 0.6667, ["c"])
    assert dense["missed"] == [{"id": "c", "question": "Which strap is ZX9041?", "source": "safety.md"}]
    assert (hybrid["hit_rate"], hybrid["mrr"], hybrid["misses"]) == (1.0, 1.0, [])
    (tmp_path / "bad.jsonl").write_text('{"question": "x", "source": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(EvalSetError, match=r"bad.jsonl: 1 bad line\(s\): line 2: not valid JSON"):
        load_questions(tmp_path / "bad.jsonl")  # the one question-file parser, the Arena's


def test_chunk_size_sweep_builds_nothing_permanent(ws, docs, fake):
    from lab.rag.evaluate import chunk_size_sweep

    base = RagConfig(name="t", corpus=str(docs), chunk_size=64, overlap=8)
    (docs / "long.md").write_text("# Long\n\n" + "Filler words about nothing much here. " * 40, encoding="utf-8")
    rows = chunk_size_sweep(ws, base, QUESTIONS, [32, 64], fake, k=1)
    assert [(r["chunk_size"], r["mode"]) for r in rows] == [
        (32, "dense"),
        (32, "hybrid"),
        (64, "dense"),
        (64, "hybrid"),
    ]
    assert rows[0]["chunks"] > rows[2]["chunks"] > 4
    assert rows[3]["hit_rate"] == 1.0 and list_indexes(ws) == [] and not any(ws.tmp.iterdir())
