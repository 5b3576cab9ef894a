"""Document corpora for RAG: read md / txt / pdf / html as text and save named corpora in the workspace.

`read_document(path)` turns one file into text or raises a `CorpusError` naming the file and the problem
(binary, not UTF-8, empty, unreadable or encrypted PDF, unsupported type). `save_corpus` copies the good files
of an upload into `corpora/NAME/` all-or-nothing (through `Workspace.atomic_dir`), keeps duplicate contents
once and reports every skipped file. `corpus_files` lists a corpus for the RAG layer.
This module does not chunk, embed or index (that is lab.rag) and imports nothing from the UI.
"""

from __future__ import annotations

import hashlib
import html.parser
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import LabError
from lab.workspace import Workspace, WorkspaceError

TEXT_SUFFIXES = (".md", ".markdown", ".txt")
HTML_SUFFIXES = (".html", ".htm")
SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + (".pdf",)
MAX_DOCUMENT_MB = 50.0
MAX_FILES = 1000  # per upload: a class of 30 must not be able to fill the disk one corpus at a time
MAX_TOTAL_MB = 1000.0


class CorpusError(LabError):
    """A document or corpus cannot be used; the message names the file and what to do."""


@dataclass
class CorpusReport:
    name: str
    saved: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (file name, same content as)
    chars: int = 0

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "saved": self.saved,
            "skipped": [{"file": f, "message": m} for f, m in self.skipped],
            "duplicates": [{"file": f, "same_as": s} for f, s in self.duplicates],
            "chars": self.chars,
        }


def decode_text(raw: bytes, name: str) -> str:
    """Decode UTF-8 text (BOM allowed); raise CorpusError for binary data or other encodings."""
    if b"\x00" in raw[:65536]:
        raise CorpusError(
            f"{name}: looks like a binary file (it contains NUL bytes); upload text, markdown, html or pdf"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusError(
            f"{name}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); re-save the file as UTF-8"
        ) from None


def read_document(path: str | Path) -> str:
    """The text of one document (md, txt, pdf, html); raises CorpusError naming the file and the problem."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CorpusError(f"{name}: file type {suffix or '(none)'!r} is not supported; use {', '.join(SUFFIXES)}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if suffix == ".pdf":
        text = _pdf_text(raw, name)
    elif suffix in HTML_SUFFIXES:
        text = html_to_text(decode_text(raw, name))
    else:
        text = decode_text(raw, name)
    if not text.strip():
        raise CorpusError(f"{name}: the document is empty (no text found); remove it or add content")
    return text


def _pdf_text(raw: bytes, name: str) -> str:
    import io

    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorpusError(f"{name}: the PDF is encrypted with a password; upload an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except CorpusError:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files
        raise CorpusError(f"{name}: the PDF cannot be read ({type(exc).__name__}: {exc}); re-export it") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise CorpusError(f"{name}: the PDF has no extractable text (a scan?); run OCR on it first")
    return text


class _HtmlText(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "section", "article", "pre", "table", "ul", "ol", "blockquote"}
    SKIP = {"script", "style", "head", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK or re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML page, headings as markdown '#' lines, scripts and styles dropped."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]+", " ", text)
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _check_file(path: Path, max_mb: float) -> str:
    """Return the file's content hash, or raise CorpusError saying why it cannot join a corpus."""
    if not path.is_file():
        raise CorpusError(f"{path.name}: no such file")
    size_mb = path.stat().st_size / 1e6
    if size_mb > max_mb:
        raise CorpusError(f"{path.name}: {size_mb:.3g} MB is over the {max_mb:g} MB limit per document; split it")
    read_document(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _target_name(name: str, taken: set[str]) -> str:
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    candidate, n = f"{stem}{suffix}", 2
    while candidate.lower() in taken:
        candidate, n = f"{stem}-{n}{suffix}", n + 1
    taken.add(candidate.lower())
    return candidate


def save_corpus(
    ws: Workspace, name: str, paths, overwrite: bool = False, max_mb: float = MAX_DOCUMENT_MB
) -> CorpusReport:
    """Copy the readable documents among `paths` into corpus `name`, all-or-nothing; report the rest.

    Raises CorpusError when no file is usable (nothing is written then); an existing corpus of that name is
    only replaced when `overwrite` is true, and survives any failure. Files over `max_mb` are skipped; more than
    MAX_FILES files are refused whole.
    """
    ws.dir("corpora", name)  # validates the name before any work
    if ws.exists("corpora", name) and not overwrite:
        raise WorkspaceError(f"corpus {name!r} already exists; pick another name or tick overwrite")
    paths = list(paths or [])
    if len(paths) > MAX_FILES:
        raise CorpusError(f"{len(paths)} files is over the limit of {MAX_FILES} per corpus: upload fewer at a time")
    total_mb = sum(Path(p).stat().st_size for p in paths if Path(p).is_file()) / 1e6
    if total_mb > MAX_TOTAL_MB:
        raise CorpusError(f"the upload is {total_mb:.0f} MB, over the {MAX_TOTAL_MB:g} MB limit per corpus: split it")
    report, good, seen = CorpusReport(name), [], {}
    for path in sorted({Path(p) for p in paths}, key=lambda p: p.name):
        try:
            digest = _check_file(path, max_mb)
        except CorpusError as exc:
            report.skipped.append((path.name, str(exc)))
            continue
        if digest in seen:
            report.duplicates.append((path.name, seen[digest]))
            continue
        seen[digest] = path.name
        good.append(path)
    if not good:
        reasons = "; ".join(m for _, m in report.skipped) or "no files given"
        raise CorpusError(f"corpus {name!r} not saved: no usable document ({reasons})")
    taken: set[str] = set()
    with ws.atomic_dir("corpora", name, overwrite=overwrite) as staging:
        for path in good:
            target = _target_name(path.name, taken)
            shutil.copyfile(path, staging / target)
            report.saved.append(target)
            report.chars += len(read_document(staging / target))
    return report


def corpus_files(ws: Workspace, name: str) -> list[Path]:
    """The documents of a saved corpus `name`, or of a folder path; sorted by name."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        try:
            folder = ws.dir("corpora", name)
        except WorkspaceError:
            folder = None
        if folder is None or not folder.is_dir():
            known = ", ".join(list_corpora(ws)) or "none"
            raise CorpusError(f"no corpus named {name!r} and no such folder; saved corpora: {known}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    return [p for p in files if not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def list_corpora(ws: Workspace) -> list[str]:
    return ws.list("corpora")
