"""Pure view formatters for the Data tab: a validation Report, saved datasets and corpora as Markdown, table
rows and HTML. No gradio and no I/O here, so they are unit-testable; lab/ui/data_tab.py wires them to events.
"""

from __future__ import annotations

import html

MAX_ERROR_ROWS = 500
COLORS = {"trained": "#b7ebc6", "not trained (weight 0)": "#e4e4e7"}


def status_markdown(report) -> str:
    """Verdict, counts and error kinds of a validation report; a valid one's warnings follow (an invalid one's
    warnings are shown after its errors, by `warnings_markdown`)."""
    if report.valid:
        head = (
            f"### ✓ {report.source} is valid\n{len(report.examples)} examples ({report.format} format"
            f"{'' if report.format == 'chat' else ', converted to chat messages'}). Save it below as a dataset."
        )
    else:
        kinds = ", ".join(f"`{k}` ×{n}" for k, n in sorted(report.error_counts().items()))
        head = (
            f"### ✗ {report.source} is not valid\n{len(report.errors)} error(s) "
            f"in {report.records} record(s): {kinds or 'no usable examples'}. "
            "Fix the lines listed below and upload again; nothing was saved."
        )
    return head + ("\n\n" + warnings_markdown(report) if report.valid and report.warnings else "")


def warnings_markdown(report) -> str:
    warnings = "".join(f"\n- ⚠ `{w.kind}`: {w.message}" for w in report.warnings)
    return "**Warnings**" + warnings if warnings else ""


def refused_markdown(report, limit: int = 10) -> str:
    """Why a file was not saved: one heading, then its errors as a list (line, kind, message)."""
    items = [
        f"- {f'line {e.line}' if e.line else 'file'} · `{e.kind}`: {html.escape(e.message, quote=False)}"
        for e in report.errors[:limit]
    ]
    if len(report.errors) > limit:
        items.append(f"- … and {len(report.errors) - limit} more (press **Validate** to see them all)")
    if not items:
        items.append("- no usable examples in the file")
    return (
        f"### ✗ Not saved: {html.escape(report.source, quote=False)} is not valid\n"
        f"{len(report.errors)} error(s); fix them and upload again:\n\n" + "\n".join(items)
    )


def error_rows(report) -> list[list]:
    rows = [[e.line if e.line else "", e.kind, e.message] for e in report.errors[:MAX_ERROR_ROWS]]
    if len(report.errors) > MAX_ERROR_ROWS:
        rows.append(["", "…", f"{len(report.errors) - MAX_ERROR_ROWS} more errors: use the CLI with --json"])
    return rows


def _fmt(value) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def stats_markdown(stats: dict) -> str:
    """Distribution table (min, p10, median, p90, max, mean) plus duplicates and the epoch/token estimate."""
    if not stats:
        return ""
    rows = [
        ("tokens per example", "tokens"),
        ("assistant (trained) tokens", "assistant_tokens"),
        ("messages", "messages"),
    ]
    lines = ["| per example | min | p10 | median | p90 | max | mean |", "|---|---|---|---|---|---|---|"]
    for label, key in rows:
        if stats.get(key):
            d = stats[key]
            lines.append(
                f"| {label} | " + " | ".join(_fmt(d[k]) for k in ("min", "p10", "median", "p90", "max", "mean")) + " |"
            )
    text = (
        "\n".join(lines) + f"\n\n**{stats['examples']:,}** examples, **{stats.get('duplicates', 0)}** exact duplicates"
    )
    if "estimate" in stats:
        est = stats["estimate"]
        text += (
            f", **{stats['over_max_length']}** longer than max_length {stats['max_length']}.\n\n"
            f"**Estimate:** {est['epochs']} epochs × {est['tokens_per_epoch']:,} tokens = "
            f"**{est['total_tokens']:,} training tokens** ({est['trained_tokens']:,} of them assistant tokens "
            "that carry the loss)."
        )
    return text


def preview_html(
    segments: list[tuple[str, str | None]], index: int, total: int, line: int | None, default_system: str = ""
) -> str:
    """The chat-template rendering with trained tokens highlighted, as escaped HTML; `default_system` is a system
    prompt the chat template added because the example has none (said above the rendering)."""
    parts = []
    for text, label in segments:
        piece = html.escape(text)
        if label:
            piece = (
                f'<mark title="{html.escape(label)}" style="background:{COLORS.get(label, "#fde68a")}">{piece}</mark>'
            )
        parts.append(piece)
    legend = " ".join(f'<mark style="background:{c}">{html.escape(k)}</mark>' for k, c in COLORS.items())
    where = f" (line {line})" if line else ""
    note = (
        "<p class='default-system'><b>Note:</b> the chat template adds a default system prompt that is not in "
        f"your data: <q>{html.escape(default_system)}</q>. Training sees it too; give your examples a system "
        "message to replace it.</p>"
        if default_system
        else ""
    )
    return (
        f"<div><b>Example {index + 1} of {total}{where}</b> as the model sees it in training. {legend}{note}"
        '<pre style="white-space:pre-wrap;word-break:break-word;font-size:13px">' + "".join(parts) + "</pre></div>"
    )


def dataset_rows(metas: list[dict]) -> list[list]:
    rows = []
    for m in metas:
        if "error" in m:
            rows.append([m["name"], "", "", "", "", m["error"]])
        else:
            c = m["counts"]
            rows.append([m["name"], c["train"], c["val"], m["format"], m["source"], m["created"]])
    return rows


def corpus_markdown(report) -> str:
    lines = [f"### ✓ corpus `{report.name}` saved: {len(report.saved)} documents, {report.chars:,} characters"]
    lines += [f"- ⚠ skipped {html.escape(m)}" for _f, m in report.skipped]
    lines += [f"- skipped {html.escape(f)}: same content as {html.escape(s)}" for f, s in report.duplicates]
    return "\n".join(lines)
