"""Alpaca, ShareGPT (glaive-style `function_call` / `observation` turns and `tools` included) and question/answer
(CSV / Parquet / JSON) records -> OpenAI chat records.

`prepare` checks each source record's fields (line-numbered Issues: missing_field, bad_content, unknown_role,
missing_columns, ...) and keeps clean rows; `to_chat` converts the clean rows to `{"messages": [...]}` with a
`datasets.Dataset.map`. The result then goes through the same chat checks as any chat upload (lab.data.validate).
"""

from __future__ import annotations

import json
from typing import Any

from lab.data import tools
from lab.data.formats import ANSWER_COLUMNS, QUESTION_COLUMNS, SYSTEM_COLUMNS, Issue, Record, pick_column, short

SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function_response": "tool",
    "function_call": "assistant",
}
CALL_ROLES = ("function_call",)


def _text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return str(value)
    return None


def to_chat(rows: list[tuple[int, dict]], fmt: str) -> list[Record]:
    """Convert clean alpaca / sharegpt / csv rows (checked by `prepare`) to chat records with datasets."""
    if not rows:
        return []
    from datasets import Dataset
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    quiet = are_progress_bars_disabled()
    disable_progress_bars()  # an in-memory map of an upload: no progress bar on stderr
    convert = _CONVERTERS[fmt]
    try:  # the chat record travels as JSON text: Arrow would give every nested object every other's keys
        ds = Dataset.from_list([{"line": line, **fields} for line, fields in rows])
        ds = ds.map(
            lambda row: {"chat": json.dumps(convert(row), ensure_ascii=False)},
            remove_columns=[c for c in ds.column_names if c != "line"],
        )
    finally:
        if not quiet:
            enable_progress_bars()
    return [Record(row["line"], json.loads(row["chat"])) for row in ds.to_list()]


def _system(row: dict) -> list[dict]:
    return [{"role": "system", "content": row["system"]}] if row.get("system") else []


def _alpaca(row: dict) -> dict:
    prompt = row["instruction"] + (f"\n\n{row['input']}" if row["input"].strip() else "")
    return {
        "messages": [
            *_system(row),
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": row["output"]},
        ]
    }


def _sharegpt(row: dict) -> dict:
    """Turns to messages: a function_call turn is an assistant message with tool_calls, an observation a tool
    message named after the call it answers; the record's tools are kept."""
    messages, pending = [], []
    for turn in json.loads(row["turns"]):
        role = SHAREGPT_ROLES[turn["from"].lower()]
        if turn["from"].lower() in CALL_ROLES:
            calls, _ = tools.calls(turn["value"])
            messages.append({"role": "assistant", "content": "", "tool_calls": calls})
            pending = [c["function"]["name"] for c in calls]
        elif role == "tool" and pending:
            messages.append({"role": "tool", "content": turn["value"], "name": pending.pop(0)})
        else:
            messages.append({"role": role, "content": turn["value"]})
    out = {"messages": [*_system(row), *messages]}
    if row["tools"]:
        out["tools"] = json.loads(row["tools"])
    return out


def _qa(row: dict) -> dict:
    return {
        "messages": [
            *_system(row),
            {"role": "user", "content": row["question"]},
            {"role": "assistant", "content": row["answer"]},
        ]
    }


_CONVERTERS = {"alpaca": _alpaca, "sharegpt": _sharegpt, "csv": _qa}


def prepare(records: list[Record], fmt: str, columns: list[str], cfg) -> tuple[list[tuple[int, dict]], list[Issue]]:
    """Check the source-format fields of alpaca / sharegpt / csv records; return clean rows and errors."""
    if fmt == "csv":
        return _prepare_qa(records, columns, cfg)
    rows, errors = [], []
    check = _alpaca_row if fmt == "alpaca" else _sharegpt_row
    for rec in records:
        if not isinstance(rec.value, dict):
            errors.append(Issue(rec.line, "not_an_object", f"expected a JSON object, got {short(rec.value)}"))
            continue
        row, problems = check(rec.value)
        errors.extend(Issue(rec.line, kind, msg) for kind, msg in problems)
        if row is not None and not problems:
            rows.append((rec.line, row))
    return rows, errors


def _field(obj: dict, key: str, required: bool) -> tuple[str, list[tuple[str, str]]]:
    if key not in obj:
        return "", [("missing_field", f"no {key!r} field")] if required else []
    text = _text(obj[key])
    if text is None:
        return "", [("bad_content", f"field {key!r} must be text, got {short(obj[key])}")]
    if required and not text.strip():
        return "", [("bad_content", f"field {key!r} is empty")]
    return text, []


def _alpaca_row(obj: dict) -> tuple[dict | None, list[tuple[str, str]]]:
    row, problems = {}, []
    for key, required in (("instruction", True), ("input", False), ("output", True), ("system", False)):
        row[key], found = _field(obj, key, required)
        problems += found
    return row, problems


def _sharegpt_row(obj: dict) -> tuple[dict | None, list[tuple[str, str]]]:
    turns = obj.get("conversations")
    if not isinstance(turns, list):
        return None, [("missing_messages", f"'conversations' must be a list of turns, got {short(turns)}")]
    if not turns:
        return None, [("empty_messages", "'conversations' is empty")]
    system, problems = _field(obj, "system", False)
    listed, why = tools.tools_list(obj.get("tools"))
    problems += [("bad_tools", why)] if why else []
    clean = []
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            problems.append(("bad_content", f"turn {i} must be an object with 'from' and 'value', got {short(turn)}"))
        elif "from" not in turn:
            problems.append(("message_missing_role", f"turn {i} has no 'from'"))
        elif str(turn["from"]).lower() not in SHAREGPT_ROLES:
            known = ", ".join(sorted(SHAREGPT_ROLES))
            problems.append(("unknown_role", f"turn {i}: 'from' {short(turn['from'])} is not one of {known}"))
        elif "value" not in turn:
            problems.append(("message_missing_content", f"turn {i} has no 'value'"))
        elif str(turn["from"]).lower() in CALL_ROLES:
            value = turn["value"]
            _calls, why = tools.calls(value if isinstance(value, str) else json.dumps(value))
            if why:
                problems.append(("bad_tool_calls", f"turn {i} ({turn['from']}): {why}"))
            else:
                clean.append(
                    {"from": str(turn["from"]), "value": value if isinstance(value, str) else json.dumps(value)}
                )
        elif not isinstance(turn["value"], str):
            problems.append(("bad_content", f"turn {i}: 'value' must be text, got {short(turn['value'])}"))
        else:
            clean.append({"from": str(turn["from"]), "value": turn["value"]})
    row = {
        "system": system,
        "turns": json.dumps(clean, ensure_ascii=False),
        "tools": json.dumps(listed) if listed else "",
    }
    return row, problems


def _prepare_qa(records: list[Record], columns: list[str], cfg) -> tuple[list[tuple[int, dict]], list[Issue]]:
    if not columns:
        columns = sorted({k for r in records[:100] if isinstance(r.value, dict) for k in r.value})
    q = pick_column(columns, cfg.question_column, QUESTION_COLUMNS)
    a = pick_column(columns, cfg.answer_column, ANSWER_COLUMNS)
    s = pick_column(columns, cfg.system_column, SYSTEM_COLUMNS)
    missing = [
        (what, chosen, cands)
        for what, col, chosen, cands in (
            ("question", q, cfg.question_column, QUESTION_COLUMNS),
            ("answer", a, cfg.answer_column, ANSWER_COLUMNS),
        )
        if not col
    ]
    if missing:
        return [], [_missing_columns(columns, missing)]
    rows, errors = [], []
    for rec in records:
        if not isinstance(rec.value, dict):
            errors.append(Issue(rec.line, "not_an_object", f"expected a row object, got {short(rec.value)}"))
            continue
        row, problems = {}, []
        for key, col, required in (("question", q, True), ("answer", a, True), ("system", s, False)):
            row[key], found = _field(rec.value, col, required) if col else ("", [])
            problems += found
        errors.extend(
            Issue(rec.line, kind, f"column {msg[6:]}" if msg.startswith("field ") else msg) for kind, msg in problems
        )
        if not problems:
            rows.append((rec.line, row))
    return rows, errors


def _missing_columns(columns: list[str], missing: list[tuple[str, str, tuple[str, ...]]]) -> Issue:
    have = ", ".join(repr(c) for c in columns) or "none"
    parts = []
    for what, chosen, cands in missing:
        tried = repr(chosen) if chosen else "any of " + ", ".join(cands)
        parts.append(f"no {what} column ({tried})")
    flag = "set question_column / answer_column (--question-column / --answer-column) to one of them"
    return Issue(None, "missing_columns", f"{'; '.join(parts)}; the file has columns {have}: {flag}")
