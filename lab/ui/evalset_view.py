"""Pure views of an own-data evaluation set for the Start tab's review step: the editable table's rows and back
(through the one evaluation-file parser, so an edited table is checked like an uploaded file), and the note above
the table (questions per group, the documents held out of the index, what was dropped, how rough the questions
are). No gradio here.
"""

from __future__ import annotations

import html
import json
from typing import Any

from lab.arena.own_evalset import EMBEDDED_NOTE, counts_text, group_counts, is_embedded
from lab.data.evalset import EvalItem, EvalSetError, parse_evalset

COLUMNS = ("id", "group", "question", "answer", "answerable", "source", "held_out_doc")
DATATYPES = ("str", "str", "str", "str", "bool", "str", "str")
GROUP_MEANING = {
    "held-out": "held out from the fine-tuning dataset (taught facts)",
    "documents": "written from the documents (facts only in the documents)",
    "unanswerable": "written from documents kept out of the index (nothing answers them)",
}


def review_table(items: list[EvalItem]) -> dict[str, Any]:
    """The set as a Dataframe value: one row per question, COLUMNS as headers."""
    rows = [[it.id, it.group or "", it.question, it.answer, it.answerable, it.source or "", it.held_out_doc or ""]
            for it in items]  # fmt: skip
    return {"headers": list(COLUMNS), "data": rows}


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() not in ("false", "0", "no", "")


def items_from_table(rows: Any) -> list[EvalItem]:
    """The edited table's questions, checked by the evaluation-file parser (EvalSetError names each bad row);
    rows with an empty question are dropped (a cleared row is a deleted question)."""
    if isinstance(rows, dict):
        rows = rows.get("data") or []
    elif hasattr(rows, "to_numpy"):  # a pandas DataFrame
        rows = rows.to_numpy().tolist()
    rows = list(rows or [])
    lines = []
    for row in rows:
        cells = dict(zip(COLUMNS, [("" if v is None else v) for v in row], strict=False))
        if not str(cells.get("question", "")).strip():
            continue
        obj = {k: str(cells.get(k, "")).strip() or None for k in ("id", "group", "question", "answer", "source")}
        obj |= {"aliases": [], "answerable": _flag(cells.get("answerable", True))}
        obj |= {"held_out_doc": str(cells.get("held_out_doc", "")).strip() or None}
        lines.append(json.dumps(obj, ensure_ascii=False))
    if not lines:
        raise EvalSetError("the edited table", ["no questions left: every row's question is empty"])
    return parse_evalset("\n".join(lines), "the edited table")


def review_note(items: list[EvalItem], model: str = "", dropped: int = 0, fresh: bool = True) -> str:
    """The note above the review table: questions per group and what each group means, the documents held out of
    the index, how many generated questions were dropped, and (the embedded model) that the questions are rough."""
    held = sorted({it.held_out_doc for it in items if it.held_out_doc})
    lines = [f"**{len(items)} questions** ({counts_text(group_counts(items))}). "
             + ("Review and edit them below, then press **Use the edited questions**; or download the file, edit "
                "it and upload it again above." if fresh else "These questions will be asked.")]  # fmt: skip
    lines += [f"- {g}: {GROUP_MEANING[g]}" for g in group_counts(items) if g in GROUP_MEANING]
    if held:
        lines.append(f"- kept out of the comparison's index: {', '.join(html.escape(h) for h in held)}")
    if dropped:
        lines.append(f"- {dropped} generated questions dropped: the answer was not a short span copied from the text")
    if is_embedded(model):
        lines.append(f"\n⚠️ {EMBEDDED_NOTE}")
    return "\n".join(lines)
