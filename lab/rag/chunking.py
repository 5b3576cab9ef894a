"""Documents in, chunks out: read a corpus (a saved corpus name or a folder, through lab.corpus), skip what
cannot be used with a per-file message, hash each document's content, and split it with LlamaIndex's parsers.

Chunk sizes are counted in the embedder's own tokens (never tiktoken, which needs the network). Owns no storage
and no embeddings; knows nothing about gradio.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab.corpus import MAX_DOCUMENT_MB, CorpusError, corpus_files, read_document
from lab.errors import LabError
from lab.workspace import Workspace, WorkspaceError


class RagError(LabError):
    """A RAG request cannot work; the message names the bad value and what to do."""


@dataclass(frozen=True)
class Document:
    doc_id: str  # content hash: identical files share it
    source: str  # file name
    text: str


@dataclass(frozen=True)
class Chunk:
    chunk_id: str  # DOC_ID:N, stable while the document and the chunk settings do not change
    doc_id: str
    source: str
    text: str
    tokens: int


@dataclass
class Loaded:
    documents: list[Document] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file: why it was skipped"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def corpus_paths(ws: Workspace, corpus: str) -> list[Path]:
    """Files of a folder path (all of them, so unsupported ones get a message) or of a saved corpus name."""
    folder = Path(corpus).expanduser()
    if corpus and folder.is_dir():
        return sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder))
    try:
        return corpus_files(ws, corpus)
    except (CorpusError, WorkspaceError) as exc:
        raise RagError(str(exc)) from exc


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def load_documents(ws: Workspace, corpus: str) -> Loaded:
    """Read every file of the corpus; bad, empty, huge and duplicate files become messages, not errors."""
    out, seen = Loaded(), {}
    for path in corpus_paths(ws, corpus):
        size_mb = path.stat().st_size / 1e6
        if size_mb > MAX_DOCUMENT_MB:
            out.problems.append(f"{path.name}: {size_mb:.0f} MB is over the {MAX_DOCUMENT_MB:.0f} MB limit; split it")
            continue
        try:
            text = read_document(path)
        except CorpusError as exc:  # its message starts with the file name
            out.problems.append(str(exc))
            continue
        doc_id = content_hash(text)
        if doc_id in seen:
            out.problems.append(f"{path.name}: same content as {seen[doc_id]}; indexed once")
            continue
        seen[doc_id] = path.name
        out.documents.append(Document(doc_id, path.name, text))
    return out


def split_document(
    doc: Document, chunker: str, chunk_size: int, overlap: int, tokenize: Callable[[str], list]
) -> list[Chunk]:
    """Chunks of one document. markdown: split at headings first, then by sentences within each section."""
    from llama_index.core import Document as LiDocument
    from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter

    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=overlap, tokenizer=tokenize)
    if chunker == "markdown":
        nodes = MarkdownNodeParser().get_nodes_from_documents([LiDocument(text=doc.text)])
        sections = merge_small([n.get_content() for n in nodes], chunk_size, tokenize)
    else:
        sections = [doc.text]
    texts = [t for s in sections if s.strip() for t in splitter.split_text(s) if t.strip()]
    return [Chunk(f"{doc.doc_id}:{i}", doc.doc_id, doc.source, t, len(tokenize(t))) for i, t in enumerate(texts)]


def merge_small(sections: list[str], chunk_size: int, tokenize: Callable[[str], list]) -> list[str]:
    """Join neighbouring sections while they fit in one chunk, so short headings do not become lone chunks."""
    merged: list[str] = []
    size = 0
    for text in (s.strip() for s in sections):
        n = len(tokenize(text))
        if merged and size + n <= chunk_size:
            merged[-1] += "\n\n" + text
            size += n
        else:
            merged.append(text)
            size = n
    return [m for m in merged if m]
