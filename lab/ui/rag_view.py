"""Pure view formatters for the RAG tab: retrieved passages as highlighted HTML, index statistics, hit-rate
tables and misses as Markdown, and the parsing of its typed inputs. No gradio and no I/O here; lab/ui/rag_tab.py
builds the components and wires them to events.
"""

from __future__ import annotations

import html
import re

from lab.rag import RagError
from lab.rag.retrieve import terms

_WORD = re.compile(r"[^\W_]+")
_MD_LINE = [
    (re.compile(r"^\s{0,3}#{1,6}\s+"), ""),  # heading marks
    (re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$"), None),  # table separator rows: dropped
    (re.compile(r"^\s*>\s?"), ""),  # block quotes
    (re.compile(r"^(\s*)[*+-]\s+"), r"\1• "),  # list bullets
]
_MD_INLINE = [
    (re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links and images: their text
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),  # bold
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"\1"),  # italics
    (re.compile(r"`([^`]*)`"), r"\1"),  # inline code
]


def plain_text(markdown: str) -> str:
    """A Markdown passage as readable text: no heading marks, emphasis, link syntax or table rules; table rows
    become cells separated by " · ", list items keep a bullet. Line breaks are kept."""
    lines = []
    for line in (markdown or "").splitlines():
        for pattern, repl in _MD_LINE:
            if pattern.search(line):
                line = None if repl is None else pattern.sub(repl, line)
                if line is None:
                    break
        if line is None:
            continue
        if line.strip().startswith("|") and line.strip().endswith("|"):
            line = " · ".join(c.strip() for c in line.strip().strip("|").split("|"))
        for pattern, repl in _MD_INLINE:
            line = pattern.sub(repl, line)
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def highlight(text: str, question: str) -> str:
    """HTML-escaped `text` with the question's words (not stop words) wrapped in <mark>."""
    wanted = set(terms(question))
    out, last = [], 0
    for m in _WORD.finditer(text):
        if m.group(0).lower() in wanted:
            out += [html.escape(text[last : m.start()]), f"<mark>{html.escape(m.group(0))}</mark>"]
            last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def passages_html(passages, question: str) -> str:
    if not passages:
        return "<p>No passage passed the similarity cutoff.</p>"
    cards = [
        f"<div class='rag-hit' style='border:1px solid #ccc;border-radius:8px;padding:8px;margin:6px 0'>"
        f"<b>#{rank}</b> · cosine <b>{p.score:.3f}</b> · <code>{html.escape(p.source)}</code> · "
        f"<small>{html.escape(p.chunk_id)}</small>"
        f"<div style='white-space:pre-wrap;margin-top:4px'>{highlight(plain_text(p.text), question)}</div></div>"
        for rank, p in enumerate(passages, start=1)
    ]
    return "".join(cards)


def stats_markdown(name: str, info: dict) -> str:
    """The index's statistics as a two-column table (one fact per row, readable in a narrow column)."""
    s = info["stats"]
    t = s["tokens_per_chunk"]
    facts = [
        ("documents", s["documents"]),
        ("chunks", s["chunks"]),
        ("tokens per chunk", f"{t['mean']} on average ({t['min']} to {t['max']})"),
        ("embedding dimensions", s["dims"]),
        ("vector store", s["store"]),
        ("build time", f"{s['build_seconds']} s" if "build_seconds" in s else "?"),
        ("last build", f"embedded {info.get('embedded_docs', 0)} documents, reused {info.get('reused_docs', 0)}"),
    ]
    lines = [f"### Index `{name}`", "| statistic | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts)]
    problems = info.get("problems") or []
    if problems:
        lines.append("\n**Skipped or noted:**\n" + "\n".join(f"- {html.escape(p)}" for p in problems))
    return "\n".join(lines)


def metrics_markdown(rows: list[dict]) -> str:
    lines = ["| mode | hit rate@k | MRR | questions |", "|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['hit_rate']:.3f} (k={r['k']}) | {r['mrr']:.3f} | {r['n']} |" for r in rows]
    return "\n".join(lines)


def misses_markdown(row: dict, limit: int = 20, width: int = 90) -> str:
    """The questions one mode missed (no passage from their source in the top k), each with its id, its text cut to
    `width` characters and the document that holds its answer; at most `limit`, then how many more."""
    missed = row.get("missed") or [{"id": m, "question": "", "source": ""} for m in row.get("misses", [])]
    if not missed:
        return f"**{row['mode'].capitalize()} misses:** none: every question found its document in the top {row['k']}."
    lines = [f"**{row['mode'].capitalize()} misses** ({len(missed)} of {row['n']}: no passage from the question's "
             f"document in the top {row['k']}):"]  # fmt: skip
    for m in missed[:limit]:
        text = " ".join(str(m.get("question") or "").split())
        text = text if len(text) <= width else text[: width - 1].rstrip() + "…"
        where = f" (answer in `{m['source']}`)" if m.get("source") else ""
        lines.append(f"- `{m.get('id') or '?'}` {_md_plain(text)}{where}")
    if len(missed) > limit:
        lines.append(f"- ... and {len(missed) - limit} more")
    return "\n".join(lines)


def _md_plain(text: str) -> str:
    """Text shown as it is inside Markdown: markup and HTML characters taken literally."""
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def chunk_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in re.split(r"[,\s]+", text.strip()) if s]
    except ValueError as exc:
        raise RagError(f"chunk sizes {text!r}: write whole numbers separated by commas, e.g. 128, 256") from exc
    if not sizes or len(sizes) > 6:
        raise RagError(f"chunk sizes {text!r}: give 1 to 6 sizes, e.g. 128, 256, 512")
    return sizes


def questions_path(qa, upload) -> str:
    path = (upload or "").strip() if isinstance(upload, str) else ""
    path = path or (qa or "").strip()
    if not path:
        raise RagError("upload an evaluation file (JSONL with question and source) or type its path")
    return path
