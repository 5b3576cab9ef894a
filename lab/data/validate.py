"""The validator: every record of an upload checked as OpenAI chat, every error kept, nothing raised.

`validate_bytes(raw, filename, cfg, tokenizer=None)` reads any accepted format (lab.data.formats), checks each
example and returns a `Report`: errors (physical line, kind, message naming the bad value) for every bad line,
aggregated warnings, the normalised examples (`{"messages": [...]}` with weight / tool_calls kept) and, when a
tokenizer is given, token statistics (lab.data.stats). It never raises on any input bytes.
Error kinds: invalid_json, not_an_object, missing_messages, empty_messages, message_missing_role,
message_missing_content, unknown_message_key, unknown_role, bad_content, bad_tool_calls, no_assistant_message,
bad_weight, empty_file, not_jsonl, plus file-level too_large, binary_file, not_utf8, invalid_csv, invalid_parquet,
missing_columns and, for alpaca / sharegpt sources, missing_field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.config import DataConfig
from lab.data import convert, formats
from lab.data.formats import Issue, Record, short

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call")
MIN_EXAMPLES = 10
FILE_KINDS = ("binary_file", "not_utf8", "not_jsonl", "invalid_csv", "invalid_parquet", "too_large", "invalid_json")


@dataclass
class Report:
    source: str
    format: str = ""
    records: int = 0
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)  # normalised, valid ones only
    lines: list[int] = field(default_factory=list)  # physical line of each example
    series: dict[str, list[int]] = field(default_factory=dict)  # per-example counts for plots

    @property
    def valid(self) -> bool:
        return not self.errors and bool(self.examples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "source": self.source,
            "format": self.format,
            "records": self.records,
            "errors": [e.to_dict() for e in self.errors],
            "warnings": [w.to_dict() for w in self.warnings],
            "stats": self.stats,
        }

    def error_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for err in self.errors:
            counts[err.kind] = counts.get(err.kind, 0) + 1
        return counts


def _content(msg: dict, i: int) -> tuple[str | None, tuple[str, str] | None]:
    """Normalised content of message `i` or the (kind, message) of what is wrong with it."""
    has_tools = msg.get("role") == "assistant" and msg.get("tool_calls")
    if "content" not in msg:
        return ("", None) if has_tools else (None, ("message_missing_content", f"message {i} has no 'content'"))
    value = msg["content"]
    if value is None and has_tools:
        return "", None
    if isinstance(value, list) and value and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        texts = [p.get("text") for p in value]
        value = "".join(texts) if all(isinstance(t, str) for t in texts) else None
    if not isinstance(value, str):
        return None, ("bad_content", f"message {i}: content must be text, got {short(msg['content'])}")
    if not value.strip() and not has_tools:
        return None, ("bad_content", f"message {i} ({msg.get('role')}): content is empty")
    return value, None


def _tool_calls(calls: Any, i: int) -> tuple[str, str] | None:
    if not isinstance(calls, list) or not calls:
        return "bad_tool_calls", f"message {i}: tool_calls must be a non-empty list, got {short(calls)}"
    for j, call in enumerate(calls, 1):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            return "bad_tool_calls", f"message {i}: tool call {j} needs a 'function' with a 'name', got {short(call)}"
        if not isinstance(fn.get("arguments", "{}"), str | dict):
            return "bad_tool_calls", f"message {i}: tool call {j} arguments must be a JSON string or object"
    return None


def _message(msg: Any, i: int) -> tuple[dict | None, list[tuple[str, str]]]:
    """Check one message; return its normalised form (or None) and the problems found."""
    if not isinstance(msg, dict):
        return None, [("bad_content", f"message {i} must be an object with role and content, got {short(msg)}")]
    problems = [
        ("unknown_message_key", f"message {i}: key {k!r} is not one of {', '.join(MESSAGE_KEYS)}")
        for k in msg
        if k not in MESSAGE_KEYS
    ]
    role = msg.get("role")
    if "role" not in msg:
        problems.append(("message_missing_role", f"message {i} has no 'role'"))
    elif role not in ROLES:
        problems.append(("unknown_role", f"message {i}: role {short(role)} is not one of {', '.join(ROLES)}"))
    content, bad = _content(msg, i)
    problems += [bad] if bad else []
    if "weight" in msg and (msg["weight"] not in (0, 1) or isinstance(msg["weight"], bool) or role != "assistant"):
        where = "" if role == "assistant" else f" (only assistant messages carry a weight, this is {short(role)})"
        problems.append(("bad_weight", f"message {i}: weight {short(msg['weight'])} must be 0 or 1{where}"))
    if "tool_calls" in msg:
        bad = (
            _tool_calls(msg["tool_calls"], i)
            if role == "assistant"
            else ("bad_tool_calls", f"message {i}: only assistant messages carry tool_calls, this is {short(role)}")
        )
        problems += [bad] if bad else []
    if problems:
        return None, problems
    out = {"role": role, "content": content}
    out.update({k: msg[k] for k in ("name", "tool_calls", "tool_call_id", "function_call") if k in msg})
    if "weight" in msg:
        out["weight"] = int(msg["weight"])
    return out, []


def check_chat(value: Any) -> tuple[dict | None, list[tuple[str, str]]]:
    """Check one chat example; return ({"messages": [...]} or None, [(kind, message), ...])."""
    if not isinstance(value, dict):
        return None, [("not_an_object", f"expected a JSON object with 'messages', got {short(value)}")]
    if "messages" not in value:
        return None, [("missing_messages", f"no 'messages' key (keys: {short(sorted(value)[:8])})")]
    messages = value["messages"]
    if not isinstance(messages, list):
        return None, [("missing_messages", f"'messages' must be a list, got {short(messages)}")]
    if not messages:
        return None, [("empty_messages", "'messages' is an empty list")]
    normal, problems = [], []
    for i, msg in enumerate(messages, 1):
        out, found = _message(msg, i)
        problems += found
        normal.append(out)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append(("no_assistant_message", "no assistant message, so there is nothing to train on"))
    if problems:
        return None, problems
    example = {"messages": normal}
    if isinstance(value.get("tools"), list):
        example["tools"] = value["tools"]
    return example, []


def read_records(raw: bytes, filename: str, cfg: DataConfig) -> tuple[str, list[Record], list[str], list[Issue]]:
    """Decode and parse an upload: (format, records, tabular columns, file/line errors)."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".parquet":
        columns, records, errors = formats.parquet_rows(raw)
        return "csv", records, columns, errors
    text, problem = formats.decode(raw)
    if problem:
        return cfg.format, [], [], [problem]
    if not text.strip():
        return cfg.format, [], [], []
    looks_json = text.lstrip()[:1] in ("{", "[")
    if suffix in (".csv", ".tsv") or (cfg.format == "csv" and not looks_json):
        columns, records, errors = formats.csv_rows(text, tab=suffix == ".tsv")
        return "csv", records, columns, errors
    records, errors = formats.json_records(text, jsonl=suffix != ".json")
    fmt = cfg.format if cfg.format != "auto" else formats.detect(records)
    return fmt, records, [], errors


def validate_bytes(raw: bytes, filename: str, cfg: DataConfig | None = None, tokenizer=None) -> Report:
    """Validate an upload's bytes; never raises on bad data (see module docstring)."""
    cfg = cfg or DataConfig()
    report = Report(source=Path(filename).name)
    if len(raw) > cfg.max_upload_mb * 1e6:
        msg = (
            f"the file is {len(raw) / 1e6:.1f} MB, over the {cfg.max_upload_mb:g} MB limit (DataConfig.max_upload_mb)"
        )
        report.errors.append(Issue(None, "too_large", msg))
        return report
    fmt, records, columns, errors = read_records(raw, filename, cfg)
    report.format, report.errors = fmt, list(errors)
    report.records = len(records) + sum(e.kind == "invalid_json" for e in errors)  # bad lines are records too
    if fmt != "chat" and records:
        rows, prep_errors = convert.prepare(records, fmt, columns, cfg)
        report.errors += prep_errors
        records = convert.to_chat(rows, fmt)
    _check_examples(records, report)
    report.errors.sort(key=lambda e: e.line or 0)
    if not report.records and not any(e.kind in FILE_KINDS for e in report.errors):
        report.errors.append(Issue(None, "empty_file", "the file holds no records (it is empty or only blank lines)"))
    _warn(report, cfg, tokenizer)
    return report


def _check_examples(records: list[Record], report: Report) -> None:
    for rec in records:
        example, problems = check_chat(rec.value)
        if problems:
            report.errors.extend(Issue(rec.line, kind, msg) for kind, msg in problems)
        else:
            report.examples.append(example)
            report.lines.append(rec.line)


def _lines(lines: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


def _aggregate(report: Report, kind: str, lines: list[int], what: str) -> None:
    if lines:
        msg = f"{len(lines)} example(s) {what} ({'line' if len(lines) == 1 else 'lines'} {_lines(lines)})"
        report.warnings.append(Issue(lines[0], kind, msg))


def _warn(report: Report, cfg: DataConfig, tokenizer) -> None:
    from lab.data import stats

    ex, lines = report.examples, report.lines
    roles = [{m["role"] for m in e["messages"]} for e in ex]
    _aggregate(
        report,
        "no_system_message",
        [n for n, r in zip(lines, roles, strict=True) if "system" not in r],
        "have no system message",
    )
    _aggregate(
        report,
        "no_user_message",
        [n for n, r in zip(lines, roles, strict=True) if "user" not in r],
        "have no user message",
    )
    untrained = [n for n, e in zip(lines, ex, strict=True) if not stats.trained_turns(e)]
    _aggregate(report, "nothing_trained", untrained, "have weight 0 on every assistant message, so teach nothing")
    if ex and len(ex) < MIN_EXAMPLES:
        report.warnings.append(Issue(None, "few_examples", f"only {len(ex)} examples; use at least {MIN_EXAMPLES}"))
    dups = stats.duplicate_lines(ex, lines)
    _aggregate(report, "duplicates", dups, "repeat an earlier example exactly")
    if not ex:
        return
    report.stats, report.series = stats.compute(ex, cfg, tokenizer)
    report.stats["duplicates"] = len(dups)
    if "tokens" in report.series:
        too_long = [n for n, t in zip(lines, report.series["tokens"], strict=True) if t > cfg.max_length]
        _aggregate(
            report, "too_long", too_long, f"are longer than max_length={cfg.max_length} tokens and will be truncated"
        )
