"""Document corpora: reading md / txt / html / pdf, clear errors for bad files, atomic saves, duplicates."""

from __future__ import annotations

import pytest

from lab.corpus import CorpusError, corpus_files, html_to_text, read_document, save_corpus
from lab.workspace import WorkspaceError


def make_pdf(text: str) -> bytes:
    """A minimal one-page PDF with `text` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def encrypted_pdf() -> bytes:
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf("secret"))))
    writer.encrypt("hunter2")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture
def docs(tmp_path):
    files = {
        "guide.md": b"# Guide\n\nTorque is 1,180 Nm.\n",
        "notes.txt": "\ufeffPlain notes.\r\nSecond line.\r\n".encode(),
        "page.html": b"<html><head><style>p{}</style><script>x=1</script></head>"
        b"<body><h2>Alarms</h2><p>E-17 &amp; E-18</p><ul><li>one</li></ul></body></html>",
        "manual.pdf": make_pdf("Gearbox oil every 6 months"),
        "copy.md": b"# Guide\n\nTorque is 1,180 Nm.\n",
        "empty.txt": b"  \n",
        "latin.txt": "f\xfcr".encode("latin-1"),
        "blob.md": b"\x00\x01\x02binary",
        "broken.pdf": b"%PDF-1.4 this is not really a pdf",
        "locked.pdf": encrypted_pdf(),
        "image.png": b"\x89PNG",
    }
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    return folder


def test_read_document_each_type(docs):
    assert read_document(docs / "guide.md").startswith("# Guide")
    assert read_document(docs / "notes.txt").startswith("Plain notes.")
    page = read_document(docs / "page.html")
    assert "## Alarms" in page and "E-17 & E-18" in page and "- one" in page and "x=1" not in page
    assert "Gearbox oil every 6 months" in read_document(docs / "manual.pdf")


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("empty.txt", "empty"),
        ("latin.txt", "not UTF-8"),
        ("blob.md", "binary"),
        ("broken.pdf", "cannot be read"),
        ("locked.pdf", "encrypted"),
        ("image.png", "not supported"),
    ],
)
def test_bad_documents_get_a_message_naming_the_file(docs, name, fragment):
    with pytest.raises(CorpusError, match=fragment) as info:
        read_document(docs / name)
    assert str(info.value).startswith(name)


def test_save_corpus_keeps_good_files_once_and_reports_the_rest(ws, docs):
    report = save_corpus(ws, "manuals", sorted(docs.iterdir()))
    assert sorted(report.saved) == ["copy.md", "manual.pdf", "notes.txt", "page.html"]
    assert report.duplicates == [("guide.md", "copy.md")]  # same content as a file already kept
    assert sorted(f for f, _ in report.skipped) == [
        "blob.md",
        "broken.pdf",
        "empty.txt",
        "image.png",
        "latin.txt",
        "locked.pdf",
    ]
    assert [p.name for p in corpus_files(ws, "manuals")] == sorted(report.saved)
    assert corpus_files(ws, str(docs))  # a folder path works too


def test_save_corpus_all_bad_writes_nothing_and_keeps_existing(ws, docs):
    save_corpus(ws, "keep", [docs / "guide.md"])
    with pytest.raises(CorpusError, match="no usable document"):
        save_corpus(ws, "keep", [docs / "empty.txt", docs / "broken.pdf"], overwrite=True)
    with pytest.raises(CorpusError):
        save_corpus(ws, "fresh", [docs / "latin.txt"])
    with pytest.raises(WorkspaceError, match="already exists"):
        save_corpus(ws, "keep", [docs / "notes.txt"])
    assert ws.list("corpora") == ["keep"]
    assert [p.name for p in corpus_files(ws, "keep")] == ["guide.md"]
    assert not [p for p in (ws.root / "corpora").iterdir() if p.name.startswith(".")]
    with pytest.raises(CorpusError, match="no corpus named 'missing'"):
        corpus_files(ws, "missing")


def test_same_file_name_from_two_folders_is_kept_under_two_names(ws, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "doc.md").write_text("one", encoding="utf-8")
    (tmp_path / "b" / "doc.md").write_text("two", encoding="utf-8")
    report = save_corpus(ws, "twins", [tmp_path / "a" / "doc.md", tmp_path / "b" / "doc.md"])
    assert sorted(report.saved) == ["doc-2.md", "doc.md"]


def test_html_to_text_drops_scripts_and_keeps_table_cells():
    text = html_to_text("<table><tr><td>A</td><td>B</td></tr></table><noscript>no</noscript>")
    assert "A | B" in text and "no" not in text.split()


def test_oversized_document_is_skipped_with_the_limit_named(ws, docs):
    report = save_corpus(ws, "small", [docs / "guide.md", docs / "manual.pdf"], max_mb=0.0005)
    assert report.saved == ["guide.md"]
    assert report.skipped[0][0] == "manual.pdf" and "over the 0.0005 MB limit" in report.skipped[0][1]
