"""Reading uploads: bytes -> records with physical line numbers, and format detection.

Accepted: chat JSONL (OpenAI `messages`), alpaca JSON / JSONL (`instruction`, `input`, `output`), ShareGPT
(`conversations` of `from` / `value`), CSV / TSV / Parquet with question / answer columns (mapped by name).
Checking and converting the non-chat formats is lab.data.convert; the chat checks live in lab.data.validate.
File-level problems (binary, not UTF-8, empty, bad CSV) come back as Issues, never raised.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

QUESTION_COLUMNS = ("question", "prompt", "query", "instruction", "input", "user", "q")
ANSWER_COLUMNS = ("answer", "response", "output", "completion", "target", "assistant", "a")
SYSTEM_COLUMNS = ("system", "system_prompt")


@dataclass
class Issue:
    line: int | None
    kind: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "kind": self.kind, "message": self.message}


@dataclass
class Record:
    line: int
    value: Any


def short(value: Any, limit: int = 60) -> str:
    """A repr of `value` cut to `limit` characters, for error messages."""
    try:
        text = repr(value)
    except Exception:  # pragma: no cover - exotic objects
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode(raw: bytes) -> tuple[str | None, Issue | None]:
    """UTF-8 text (a BOM is dropped) or an Issue saying the bytes are binary or in another encoding."""
    head = raw[:65536]
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if b"\x00" in head or controls > max(8, len(head) // 100):
        return None, Issue(None, "binary_file", "the file looks binary (control bytes), not text: upload JSONL or CSV")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        msg = f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}; re-save the file as UTF-8"
        return None, Issue(line, "not_utf8", msg)


def _json_error(exc: Exception, text: str) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at column {exc.colno}): {short(text)}"
    return f"not valid JSON ({type(exc).__name__}): {short(text)}"


def jsonl_records(text: str) -> tuple[list[Record], list[Issue]]:
    """One record per non-blank physical line; CRLF and blank lines are fine; every bad line is reported."""
    records, errors = [], []
    loads = json.loads
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            records.append(Record(number, loads(stripped)))
        except (ValueError, RecursionError) as exc:
            errors.append(Issue(number, "invalid_json", _json_error(exc, stripped)))
    if not records and errors:
        first = errors[0]
        msg = f"no line is JSON, so this is not a JSONL file (line {first.line}: {first.message})"
        return [], [Issue(first.line, "not_jsonl", msg)]
    return records, errors


def json_array_records(text: str) -> tuple[list[Record], list[Issue]]:
    """Elements of a top-level JSON array, each with the physical line where it starts."""
    decoder, pos, line, records = json.JSONDecoder(), text.index("[") + 1, 1, []
    line += text.count("\n", 0, pos)
    while True:
        nxt = _skip_ws(text, pos)
        line += text.count("\n", pos, nxt)
        pos = nxt
        if pos >= len(text):
            return records, [Issue(line, "invalid_json", "the JSON array is not closed with ']'")]
        if text[pos] == "]":
            return records, []
        try:
            value, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            return records, [Issue(line, "invalid_json", _json_error(exc, text[pos : pos + 60]) + "; reading stopped")]
        records.append(Record(line, value))
        line += text.count("\n", pos, end)
        pos = _skip_ws(text, end)
        line += text.count("\n", end, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] != "]":
            return records, [
                Issue(line, "invalid_json", f"expected ',' or ']' but found {text[pos]!r}; reading stopped")
            ]


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def json_records(text: str, jsonl: bool = False) -> tuple[list[Record], list[Issue]]:
    """A top-level array, one object (maybe wrapping a list under 'data'), or JSONL. For a .jsonl file
    (`jsonl`), only a pretty-printed array spread over several lines is read as an array."""
    stripped = text.lstrip()
    if stripped.startswith("[") and (not jsonl or _multiline_array(text)):
        return json_array_records(text)
    if stripped.startswith("{") and not jsonl:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return jsonl_records(text)
        start = text.count("\n", 0, len(text) - len(stripped)) + 1
        for key in ("data", "examples", "train", "rows"):
            if isinstance(value, dict) and isinstance(value.get(key), list):
                return [Record(start, v) for v in value[key]], []
        return [Record(start, value)], []
    return jsonl_records(text)


def _multiline_array(text: str) -> bool:
    if sum(1 for line in text.split("\n") if line.strip()) < 2:
        return False
    try:
        return isinstance(json.loads(text), list)
    except (ValueError, RecursionError):
        return False


def csv_rows(text: str, tab: bool = False) -> tuple[list[str], list[Record], list[Issue]]:
    """Header and rows (dicts of str) of a CSV/TSV text, each row with the physical line where it ends."""
    sample = text[:8192]
    try:
        dialect = csv.excel_tab if tab else csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows: list[Record] = []
    try:
        header = [h.strip() for h in next(reader, [])]
        end = reader.line_num
        for row in reader:
            start, end = end + 1, reader.line_num  # a quoted cell may span lines: report where the row starts
            if any(cell.strip() for cell in row):
                rows.append(Record(start, dict(zip(header, row, strict=False))))
    except csv.Error as exc:
        return [], [], [Issue(reader.line_num, "invalid_csv", f"not readable as CSV: {exc}")]
    return header, rows, []


def parquet_rows(raw: bytes) -> tuple[list[str], list[Record], list[Issue]]:
    """Columns and rows of a Parquet file; the 'line' of a row is its 1-based row number."""
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:
        return [], [], [Issue(None, "invalid_parquet", f"not readable as Parquet ({type(exc).__name__}: {exc})")]
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    records = [Record(i + 1, row) for i, row in enumerate(frame.to_dict("records"))]
    return columns, records, []


def detect(records: list[Record]) -> str:
    """chat | sharegpt | alpaca | csv (question/answer fields), by a vote over the first 100 objects."""
    votes = {"chat": 0, "sharegpt": 0, "alpaca": 0, "csv": 0}
    for rec in records[:100]:
        if not isinstance(rec.value, dict):
            continue
        keys = set(rec.value)
        if "messages" in keys:
            votes["chat"] += 1
        elif "conversations" in keys:
            votes["sharegpt"] += 1
        elif "instruction" in keys and "output" in keys:
            votes["alpaca"] += 1
        elif pick_column(list(keys), "", QUESTION_COLUMNS) and pick_column(list(keys), "", ANSWER_COLUMNS):
            votes["csv"] += 1
    best = max(votes, key=lambda k: votes[k])
    return best if votes[best] else "chat"


def pick_column(columns: list[str], chosen: str, candidates: tuple[str, ...]) -> str:
    """The column to use: the chosen one if given, else the first candidate present (case-insensitive)."""
    if chosen:
        return chosen if chosen in columns else ""
    lower = {c.lower().strip(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), "")
