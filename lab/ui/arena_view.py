"""Pure view formatters for the Arena tab: contestants by one friendly name (the id small), answers as Markdown,
passages as plain-text HTML, blind-battle sides and reveals, tables as rows, the verdict as a list, charts as figures.

No gradio components and no events here (so everything is unit-testable); matplotlib is imported inside the
figure functions. Nothing here runs a model or touches the database.
"""

from __future__ import annotations

import html
import re
from typing import Any

from lab.arena.showcase import CONTESTANTS as SHOWCASE_CONTESTANTS
from lab.generation import Answer, passage_dict
from lab.metrics.charts import ci_bars
from lab.metrics.rate import Rate, format_rate

# The names the Start tab gives its contestants, by contestant id template (one friendly name per kind everywhere).
_SHOWCASE_NAMES = {template: label for label, template, _ in SHOWCASE_CONTESTANTS}


def friendly(spec: str, rag_trained: bool = False) -> str:
    """A contestant's friendly name, as the Start tab names it: base, fine-tuned, RAG, fine-tuned + RAG, trained for
    RAG + RAG (`rag_trained`: its run was trained on RAG prompts); another base model by its short name. An id
    that is not understood is its own name."""
    kind, _, rest = (spec or "").partition(":")
    if kind == "base":
        return _SHOWCASE_NAMES["base"] + (f" {rest.rstrip('/').rsplit('/', 1)[-1]}" if rest else "")
    if kind == "ft" and rest:
        return "trained for RAG" if rag_trained else _SHOWCASE_NAMES["ft:{plain}"]
    if kind == "rag" and rest:
        return _SHOWCASE_NAMES["rag:{index}"]
    if kind == "ft+rag" and rest:
        return _SHOWCASE_NAMES["ft+rag:{rag}:{index}" if rag_trained else "ft+rag:{plain}:{index}"]
    return spec or ""


def _name(spec: str, names: dict[str, str] | None) -> str:
    return (names or {}).get(spec) or friendly(spec)


def name_text(spec: str, names: dict[str, str] | None = None) -> str:
    """The friendly name with the id after it in brackets, for plain-text places (table cells, chart legends);
    just the name when it is the id."""
    name = _name(spec, names)
    return name if name == spec else f"{name} ({spec})"


def name_html(spec: str, names: dict[str, str] | None = None) -> str:
    """The friendly name in bold with the id small beside it (HTML, also inside Markdown)."""
    name = _name(spec, names)
    small = "" if name == spec else f" <small><code>{html.escape(spec)}</code></small>"
    return f"<b>{html.escape(name)}</b>{small}"


SUMMARY_COLUMNS = (
    "correct_rate",
    "wrong_rate",
    "skipped_rate",
    "idk_rate",
    "hallucination_rate",
    "exact_match",
    "token_f1",
    "rouge_l",
    "similarity",
    "groundedness",
    "retrieval_hit",
)
CHART_METRICS = ("correct_rate", "hallucination_rate", "exact_match", "token_f1", "rouge_l", "similarity")
SUMMARY_HEADERS = {
    "correct_rate": "correct",
    "wrong_rate": "wrong",
    "skipped_rate": "skipped",
    "idk_rate": "I don't know",
    "hallucination_rate": "hallucination",
    "exact_match": "exact match",
    "token_f1": "token F1",
    "rouge_l": "ROUGE-L",
    "similarity": "similarity",
    "groundedness": "grounded",
    "retrieval_hit": "retrieval hit",
}
QUESTION_COLUMNS = ["id", "system", "category", "question", "answer", "prediction", "token_f1", "latency_s"]
QUESTION_HEADERS = ["id", "contestant", "category", "question", "expected answer", "answer given", "F1", "seconds"]
QUESTION_WIDTHS = ["7%", "11%", "10%", "24%", "14%", "22%", "5%", "7%"]  # wraps instead of scrolling sideways
BATTLE_WAITING = "Both answers appear here together, once both are complete."
_MARKUP = [
    (re.compile(r"^\s*#{1,6}\s+", re.M), ""),  # heading marks
    (re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$\n?", re.M), ""),  # table rule rows
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),  # bold
    (re.compile(r"`([^`]*)`"), r"\1"),  # inline code
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: keep the words
]


def plain_text(text: str) -> str:
    """Markdown source as readable plain text: markup characters dropped, line breaks kept."""
    out = str(text or "")
    for pattern, repl in _MARKUP:
        out = pattern.sub(repl, out)
    return re.sub(r"\n{3,}", "\n\n", out).strip()


def passages_md(passages: list[Any], max_chars: int = 300) -> str:
    """A short numbered list (source, score, start of the text as plain words) for Markdown views."""
    if not passages:
        return ""
    lines = ["**Passages**"]
    for i, p in enumerate(passages, 1):
        d = passage_dict(p)
        text = " ".join(plain_text(d.get("text") or "").split())
        text = text[:max_chars] + ("..." if len(text) > max_chars else "")
        text = html.escape(text).replace("*", "\\*").replace("_", "\\_")
        lines.append(f"{i}. `{d.get('source')}` (score {float(d.get('score') or 0):.2f}): {text}")
    return "\n".join(lines)


def passages_html(
    passages: list[Any], none_note: str = "No passages: this contestant answers from the model alone."
) -> str:
    """An accordion (closed) with every passage in full, as plain text, with its source and score."""
    if not passages:
        return f"<p class='arena-nopass'><small>{html.escape(none_note)}</small></p>"
    cards = []
    for i, p in enumerate(passages, 1):
        d = passage_dict(p)
        head = f"<b>[{i}]</b> <code>{html.escape(str(d.get('source') or '?'))}</code>"
        score = f" &middot; score {float(d.get('score') or 0):.2f}"
        body = f"<div style='white-space:pre-wrap;margin-top:4px'>{html.escape(plain_text(d.get('text') or ''))}</div>"
        cards.append(
            f"<div class='arena-passage' style='border-top:1px solid #8884;padding:6px 0'>{head}{score}{body}</div>"
        )
    n = len(passages)
    summary = f"Passages ({n}): the full text {'it' if n == 1 else 'they'} read"
    return f"<details class='arena-passages'><summary>{summary}</summary>{''.join(cards)}</details>"


WITHHELD = 'most of its words are not in the passages it read, so it said "I don\'t know" instead of its draft'


def speed(answer: Answer) -> str:
    return f"{answer.latency_s:.1f} s, {answer.completion_tokens} tokens, {answer.tokens_per_s:.1f} tokens/s"


def answer_md(title: str, answer: Answer | None, error: str = "", names: dict[str, str] | None = None) -> str:
    """One side-by-side column: title (a contestant id: shown by its friendly name, the id small), answer text (or
    a waiting/error note), speed; passages go in passages_html."""
    title = name_html(title, names)
    if error:
        return f"### {title}\n\n**Error:** {error}"
    if answer is None:
        return f"### {title}\n\n*waiting...*"
    state = "" if answer.done else " *(generating...)*"
    body = answer.text or "*...*"
    if answer.draft:
        body += f"\n\n<small>{WITHHELD}: {answer.draft}</small>"
    return f"### {title}\n\n{body}{state}\n\n<small>{speed(answer)}</small>"


def battle_reveal_html(side: str, name: str, answer: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """After the vote: who answered on this side, how fast, a withheld draft, the answer as generated when the
    blind view changed it, and the passages it read."""
    lines = [f"<p>Model {side} was {name_html(name)} <small>({html.escape(answer.get('speed', ''))})</small></p>"]
    if answer.get("draft"):
        lines.append(f"<p><small>{html.escape(WITHHELD)}: {html.escape(answer['draft'])}</small></p>")
    if answer.get("generated"):
        lines.append(
            f"<p><small>as generated (before the vote it was shown as plain text up to its last full sentence, "
            f"without citations or source names): "
            f"{html.escape(answer['generated'])}</small></p>"
        )
    lines.append(passages_html(answer.get("passages") or []))
    return "".join(lines)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}"


def rate_cell(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    if value is None:
        return ""
    return format_rate(Rate.of(summary, key), "short")


def summary_rows(result: dict[str, Any], names: dict[str, str] | None = None) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: one per contestant, rates in % with 95% intervals, latency (p50 / p95 in one column) and
    tokens/s. A column no contestant has a value for (e.g. hallucination when the set has no unanswerable question)
    is left out."""
    systems = result.get("systems", [])
    columns = [k for k in SUMMARY_COLUMNS if any(s.get(k) is not None for s in systems)]
    head = ["contestant", "n", *(SUMMARY_HEADERS[k] for k in columns), "seconds p50 / p95", "tokens/s"]
    rows = []
    for s in systems:
        p50, p95 = (s.get(k) or 0 for k in ("latency_p50", "latency_p95"))
        speed = [f"{p50:.2f} / {p95:.2f}", round(s.get("tokens_per_s") or 0, 1)]
        rows.append([name_text(s["system"], names), s["n"], *(rate_cell(s, k) for k in columns), *speed])
    return head, rows


def summary_widths(head: list[str]) -> list[str]:
    """Column widths (in %) that fit the summary table in its box: the contestant's name wider, `n` narrow, the
    rest shared (cells wrap), so no column is cut off at the right however many metrics there are."""
    rest = max(1, len(head) - 2)
    share = (100 - 16 - 4) / rest
    return ["16%", "4%", *[f"{share:.2f}%"] * rest]


def question_rows(
    result: dict[str, Any], system: str = "", category: str = "", text: str = "", names: dict[str, str] | None = None
) -> list[list[Any]]:
    """Per-question rows filtered by contestant (its id), category and a text search (case-insensitive); the
    contestant column shows the friendly name with the id."""
    out = []
    needle = text.strip().lower()
    for r in result.get("questions", []):
        if system and r["system"] != system or category and r["category"] != category:
            continue
        if needle and needle not in f"{r['question']} {r['prediction']} {r['answer']}".lower():
            continue
        row = [round(r[c], 2) if isinstance(r.get(c), float) else r.get(c) for c in QUESTION_COLUMNS]
        row[QUESTION_COLUMNS.index("system")] = name_text(r["system"], names)
        out.append(row)
    return out


def question_detail(result: dict[str, Any], qid: str, system: str, names: dict[str, str] | None = None) -> str:
    """One answer in full with its passages; `system` is the contestant's id or its row's name (as name_text)."""
    for r in result.get("questions", []):
        if r["id"] == qid and system in (r["system"], name_text(r["system"], names)):
            who = name_html(r["system"], names)
            head = f"**{qid}** / {who}: {r['question']}\n\ngold: `{r['answer']}`  \nanswer: {r['prediction']}"
            return f"{head}  \ncategory: **{r['category']}**\n\n{passages_md(r.get('passages') or [], 600)}"
    return ""


def bar_chart(result: dict[str, Any], names: dict[str, str] | None = None):
    """Grouped bar chart: one group per metric, one bar per contestant, with 95% interval whiskers; beside it,
    when passage-reading contestants recorded their abstention probabilities, the threshold's trade-off panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = result.get("systems", [])
    curves = result.get("idk_curve") or {}
    drawable = any(
        p["correct_rate"] is not None and p["hallucination_rate"] is not None for c in curves.values() for p in c
    )
    if drawable:  # a second panel: the abstention threshold's trade-off (needs answerable and unanswerable questions)
        fig, (ax, right) = plt.subplots(1, 2, figsize=(13, 3.8), width_ratios=[2.6, 1])
        _curve_panel(right, systems, curves, (result.get("gen") or {}).get("idk_above"))
    else:
        fig, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / max(1, len(systems))
    for i, s in enumerate(systems):
        xs = [m + (i - (len(systems) - 1) / 2) * width for m in range(len(CHART_METRICS))]
        rates = [Rate.of(s, k) for k in CHART_METRICS]
        ci_bars(ax, xs, rates, width=width, label=name_text(s["system"], names))
    ax.set_xticks(range(len(CHART_METRICS)), [m.replace("_", " ") for m in CHART_METRICS])
    ax.set_ylabel("% (whiskers: 95% CI)")
    ax.set_ylim(0, 105)
    ax.set_title("Metrics per contestant", loc="left", fontsize=10)
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1, 1), ncols=max(1, len(systems)), frameon=False)
    fig.tight_layout()
    return fig


def _curve_panel(ax, systems: list[dict[str, Any]], curves: dict[str, list], chosen: float | None) -> None:
    """Correct (answerable) against hallucination (unanswerable) rate: a line per passage-reading contestant as
    its abstention threshold moves (the evaluated threshold ringed), a dot for every other contestant."""
    for i, s in enumerate(systems):
        color = f"C{i}"
        curve = [p for p in curves.get(s["system"], []) if p["correct_rate"] is not None]
        curve = [p for p in curve if p["hallucination_rate"] is not None]
        if curve:
            xs, ys = [100 * p["hallucination_rate"] for p in curve], [100 * p["correct_rate"] for p in curve]
            ax.plot(xs, ys, "-", color=color, marker=".", markersize=4, linewidth=1)
        if s.get("correct_rate") is not None and s.get("hallucination_rate") is not None:
            x, y = 100 * s["hallucination_rate"], 100 * s["correct_rate"]
            ax.plot([x], [y], "o", color=color, markersize=7, markerfacecolor="none" if curve else color)
    ax.set_xlabel("hallucination % (unanswerable)")
    ax.set_ylabel("correct % (answerable)")
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    note = f"\n(ring: {chosen:g}, as evaluated; dot: no threshold)" if chosen else ""
    ax.set_title(f"Abstention threshold 0.05 to 0.95{note}", loc="left", fontsize=9)
    ax.grid(alpha=0.3)


MIN_VOTES = 10  # below this a contestant's bootstrap interval is too narrow to mean anything


def leaderboard_rows(board: dict[str, Any], names: dict[str, str] | None = None) -> list[list[Any]]:
    """Table rows (the contestant by its friendly name with its id); a contestant with fewer than MIN_VOTES votes
    shows "too few votes" instead of an interval (a bootstrap over one or two votes gives a point, which would look
    certain)."""
    return [
        [r["rank"], name_text(r["name"], names), r["rating"], _interval(r), r["votes"], r["wins"], r["ties"]]
        for r in board["rows"]
    ]


def _interval(row: dict[str, Any]) -> str:
    if row["votes"] < MIN_VOTES:
        return f"too few votes (< {MIN_VOTES})"
    return f"{row['ci'][0]:.0f} to {row['ci'][1]:.0f}"


def few_votes(board: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """A warning naming the contestants with fewer than MIN_VOTES votes, or ""."""
    few = [name_text(r["name"], names) for r in board["rows"] if r["votes"] < MIN_VOTES]
    if not few:
        return ""
    return (
        f" **Too few votes to rank yet** for {', '.join(few)} (under {MIN_VOTES} each): their ratings can move a "
        "lot with the next votes."
    )


def heatmap(board: dict[str, Any], names: dict[str, str] | None = None):
    """Win-rate matrix (row beats column, ties half) as a heatmap with the numbers written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = (
        [f"{_name(n, names)}\n{n}" if _name(n, names) != n else n for n in board["names"]],
        board["win_rate"],
    )
    fig, ax = plt.subplots(figsize=(2.2 + 1.3 * len(labels), 1.6 + 0.9 * len(labels)))
    data = [[float("nan") if v is None else v for v in row] for row in matrix]
    ax.imshow(data, cmap="RdYlGn", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, "" if v is None else f"{v:.2f}", ha="center", va="center", fontsize=9)
    ax.set_title("win rate of row over column")
    fig.tight_layout()
    return fig
