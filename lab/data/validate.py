"""The validator: every record of an upload checked as OpenAI chat, every error kept, nothing raised.

`validate_bytes(raw, filename, cfg, tokenizer=None)` reads any accepted format (lab.data.formats), checks each
example and returns a `Report`: errors (physical line, kind, message naming the bad value) for every bad line,
aggregated warnings, the normalised examples (`{"messages": [...]}` with weight / tool_calls kept) and, when a
tokenizer is given, token statistics (lab.data.stats). It never raises on any input bytes.
Error kinds: invalid_json, not_an_object, missing_messages, empty_messages, message_missing_role,
message_missing_content, unknown_message_key, unknown_role, bad_content, bad_tool_calls, no_assistant_message,
bad_weight, bad_tools, unsupported_part, empty_file, not_jsonl, plus file-level too_large, binary_file, not_utf8,
invalid_csv, invalid_parquet, missing_columns and, for alpaca / sharegpt sources, missing_field. Content given as
typed parts, `loss_weight` and tool lists are read by lab.data.tools; `{{...}}` placeholders by lab.data.placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.config import DataConfig
from lab.data import convert, formats, placeholders, tools
from lab.data.formats import Issue, Record, short

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = (
    "role",
    "content",
    "name",
    "weight",
    "loss_weight",
    "tool_calls",
    "tool_call_id",
    "function_call",
    "reasoning_content",
)
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


def _content(msg: dict, i: int, calls: Any) -> tuple[str | None, tuple[str, str] | None]:
    """Normalised content of message `i` or the (kind, message) of what is wrong with it."""
    has_tools = msg.get("role") == "assistant" and bool(calls)
    if "content" not in msg:
        return ("", None) if has_tools else (None, ("message_missing_content", f"message {i} has no 'content'"))
    value = msg["content"]
    if value is None and has_tools:
        return "", None
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


def _unpart(msg: dict, i: int) -> tuple[dict, dict, tuple[str, str] | None]:
    """A message whose content is a list of typed parts, as one with text content and its tool calls; plus
    the parts' reasoning text. Text-only part lists (OpenAI's `{"type": "text", "text": ...}`) join as before."""
    if not isinstance(msg.get("content"), list) or not msg["content"]:
        return msg, {}, None
    got, kind, why = tools.parts(msg["content"], i)
    if why:
        return msg, {}, (kind, why)
    msg = {**msg, "content": got["text"]}
    if got["tool_calls"] and "tool_calls" not in msg:
        msg["tool_calls"] = got["tool_calls"]
    return msg, {"reasoning": got["reasoning"]} if got["reasoning"] else {}, None


def _loss_weight(msg: dict) -> dict:
    """A per-message `loss_weight` as `weight` on an assistant turn; dropped on other turns (never trained)."""
    if "loss_weight" not in msg:
        return msg
    msg = dict(msg)
    value = msg.pop("loss_weight")
    if msg.get("role") == "assistant" and "weight" not in msg:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1)
        msg["weight"] = int(value) if ok else value
    return msg


def _message(msg: Any, i: int, reasoning_key: str = "") -> tuple[dict | None, list[tuple[str, str]]]:
    """Check one message; return its normalised form (or None) and the problems found."""
    if not isinstance(msg, dict):
        return None, [("bad_content", f"message {i} must be an object with role and content, got {short(msg)}")]
    problems = [
        ("unknown_message_key", f"message {i}: key {k!r} is not one of {', '.join(MESSAGE_KEYS)}")
        for k in msg
        if k not in MESSAGE_KEYS
    ]
    msg, extra, bad = _unpart(_loss_weight(msg), i)
    problems += [bad] if bad else []
    role = msg.get("role")
    if "role" not in msg:
        problems.append(("message_missing_role", f"message {i} has no 'role'"))
    elif role not in ROLES:
        problems.append(("unknown_role", f"message {i}: role {short(role)} is not one of {', '.join(ROLES)}"))
    content, bad = _content(msg, i, msg.get("tool_calls")) if not bad else ("", None)
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
    reasoning = msg.get("reasoning_content") or extra.get("reasoning")
    if reasoning and reasoning_key:
        out[reasoning_key] = reasoning
    if "weight" in msg:
        out["weight"] = int(msg["weight"])
    return out, []


def check_chat(value: Any, reasoning_key: str = "") -> tuple[dict | None, list[tuple[str, str]]]:
    """Check one chat example; return ({"messages": [...]} or None, [(kind, message), ...]).

    Reasoning (parts or `reasoning_content`) is kept under `reasoning_key`, the chat template's field; dropped
    when that is empty."""
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
        out, found = _message(msg, i, reasoning_key)
        problems += found
        normal.append(out)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append(("no_assistant_message", "no assistant message, so there is nothing to train on"))
    listed, why = tools.tools_list(value.get("tools"))
    if why:
        problems.append(("bad_tools", why))
    if problems:
        return None, problems
    example = {"messages": normal}
    if listed:
        example["tools"] = listed
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
    return validate_records(report, fmt, records, columns, errors, cfg, tokenizer)


def validate_records(
    report: Report,
    fmt: str,
    records: list[Record],
    columns: list[str],
    errors: list[Issue],
    cfg: DataConfig,
    tokenizer=None,
) -> Report:
    """Check parsed records (from a file, a saved dataset folder or a hub dataset) into `report`."""
    report.format, report.errors = fmt, list(errors)
    report.records = len(records) + sum(e.kind == "invalid_json" for e in errors)  # bad lines are records too
    if cfg.fill:
        records = [Record(r.line, placeholders.fill(r.value, cfg.fill)) for r in records]
    if fmt != "chat" and records:
        rows, prep_errors = convert.prepare(records, fmt, columns, cfg)
        report.errors += prep_errors
        records = convert.to_chat(rows, fmt)
    _check_examples(records, report, tools.reasoning_field(tokenizer))
    report.errors.sort(key=lambda e: e.line or 0)
    if not report.records and not any(e.kind in FILE_KINDS for e in report.errors):
        report.errors.append(Issue(None, "empty_file", "the file holds no records (it is empty or only blank lines)"))
    _warn(report, cfg, tokenizer)
    return report


def _check_examples(records: list[Record], report: Report, reasoning_key: str = "") -> None:
    dropped = []
    for rec in records:
        example, problems = check_chat(rec.value, reasoning_key)
        if problems:
            report.errors.extend(Issue(rec.line, kind, msg) for kind, msg in problems)
            continue
        report.examples.append(example)
        report.lines.append(rec.line)
        if not reasoning_key and tools.has_reasoning(rec.value):
            dropped.append(rec.line)
    _aggregate(
        report,
        "reasoning_dropped",
        dropped,
        "have reasoning / thinking parts, dropped: the chat template has no reasoning field (or no tokenizer given)",
    )


def _tools_as_text(report: Report, tokenizer) -> None:
    """One warning for the examples whose tool calls or tools the chat template does not render."""
    if tokenizer is None:
        return
    calls, listed = tools.renders(tokenizer, "tool_calls"), tools.renders(tokenizer, "tools")
    lines = [
        line
        for example, line in zip(report.examples, report.lines, strict=True)
        if (not listed and example.get("tools"))
        or (not calls and any(m.get("tool_calls") for m in example["messages"]))
    ]
    what = (
        "have tool calls or tools that this model's chat template does not render; they are written into the "
        "text (<tool_call> JSON in the answer, the tools in the system message)"
    )
    _aggregate(report, "tools_as_text", lines, what)


def _placeholders(report: Report) -> None:
    """One warning naming the `{{...}}` placeholders left in the examples and the first lines holding them."""
    names: dict[str, None] = {}
    lines = []
    for example, line in zip(report.examples, report.lines, strict=True):
        found = placeholders.found(example)
        if found:
            names.update(dict.fromkeys(found))
            lines.append(line)
    shown = ", ".join("{{" + n + "}}" for n in names)
    fill = ", ".join(f"{n}=..." for n in names)
    _aggregate(report, "placeholders", lines, f"contain template placeholders {shown}; fill them in ({fill})")


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
    _placeholders(report)
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
    _tools_as_text(report, tokenizer)
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
