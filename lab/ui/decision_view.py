"""Pure rendering of the decision card for the UI: a Markdown table (a row per criterion, a column per contestant,
the winner starred), each row's sentence, the recommendation and the sample-size note; and the same card as an
HTML table or as rows for a Dataframe. The card itself is lab.arena.decision's (with the workspace's one-time costs
from lab.arena.costs when a workspace is given), and the evidence pack's files for a download button; no gradio here.
"""

from __future__ import annotations

import logging
from typing import Any

from lab.arena.costs import card_for
from lab.arena.decision import card as build_card
from lab.arena.report import card_table_html, format_cell, pack_for_download
from lab.errors import LabError
from lab.workspace import Workspace

STAR = " ★"


def _card(card_or_result: dict[str, Any], bootstrap: int, ws: Workspace | None = None) -> dict[str, Any] | None:
    """The card itself, or the card of an evaluation result; with a workspace it carries the one-time costs (training
    time and peak memory, index build time and size) that the contestants' run and index folders record."""
    if "rows" in card_or_result and "recommendation" in card_or_result:
        return card_or_result
    if not card_or_result.get("questions"):
        return None
    if ws is not None:
        try:
            return card_for(ws, card_or_result, bootstrap=bootstrap)
        except (OSError, ValueError):  # an unreadable run or index record: the card without its one-time rows
            logging.getLogger(__name__).warning("one-time costs not read", exc_info=True)
    return build_card(card_or_result, bootstrap=bootstrap)


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def card_rows(card: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the card as text cells, the row winner's cell starred: a Dataframe's value."""
    headers = ["Criterion", *card["systems"]]
    rows = []
    for row in card["rows"]:
        cells = [
            format_cell(row["cells"].get(s, {})) + (STAR if row.get("winner") == s else "") for s in card["systems"]
        ]
        rows.append([row["criterion"], *cells])
    return headers, rows


def card_markdown(card_or_result: dict[str, Any], bootstrap: int = 1000, ws: Workspace | None = None) -> str:
    """The decision card as Markdown (built from an evaluation result when given one, with the one-time costs the
    workspace `ws` records when given); "" without answers."""
    card = _card(card_or_result, bootstrap, ws)
    if not card or not card["systems"]:
        return ""
    headers, rows = card_rows(card)
    kinds = [f"{_escape(s)}<br><small>{_escape(card['kinds'].get(s) or '')}</small>" for s in card["systems"]]
    lines = [
        "### Which should I choose? The decision card",
        f"Each cell: the measured value with its 95% interval; {STAR.strip()} marks a row's winner, named only when "
        "it is ahead of the runner-up beyond chance (paired 95% interval of the difference excludes 0).",
        "",
        "| " + " | ".join(["Criterion", *kinds]) + " |",
        "|" + "---|" * len(headers),
    ]
    lines += ["| " + " | ".join(_escape(c) for c in r) + " |" for r in rows]
    lines += ["", *(f"- {r['sentence']}" for r in card["rows"])]
    lines += ["", "**Recommendation**", "", *(f"- {s}" for s in card["recommendation"]), "", card["sample_size"]]
    lines.append(f"\n<small>Questions placed by {card['places_how']}.</small>")
    return "\n".join(lines)


def card_html(card_or_result: dict[str, Any], bootstrap: int = 1000, ws: Workspace | None = None) -> str:
    """The card's table as HTML (the evidence pack's rendering)."""
    card = _card(card_or_result, bootstrap, ws)
    return card_table_html(card) if card and card["systems"] else ""


def evidence_files(ws: Workspace, result: dict[str, Any]) -> list[str]:
    """[report.html, evidence.zip] of the evaluation or comparison shown, written under the workspace's downloads
    folder (the one the app serves); LabError when nothing is shown. What an "Evidence pack" button returns."""
    if not (result or {}).get("questions"):
        raise LabError("no evaluation shown: run or load one, then press Evidence pack")
    paths = pack_for_download(ws, result)
    return [str(paths["html"]), str(paths["zip"])]
