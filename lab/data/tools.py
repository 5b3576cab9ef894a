"""Tool calls, tool lists and content parts as other fine-tuning tools write them, read into the chat form.

Parses ShareGPT `function_call` values, top-level `tools` (a list or a JSON string of one) and message content
given as a list of typed parts; finds the chat template's reasoning field; prepares messages for a chat template.
Each parser returns its result or a message naming the bad value; nothing here raises on user data.
"""

from __future__ import annotations

import json
from typing import Any

from lab.data.formats import short

TEXT_PARTS = ("text",)
REASONING_PARTS = ("reasoning", "thinking")
CALL_PARTS = ("tool_call", "function_call")
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
TEMPLATE_DROP = ("weight",)


def _json(value: Any) -> tuple[Any, str]:
    """`value` itself when not a string, else the JSON it holds; (None, why) when it is not JSON."""
    if not isinstance(value, str):
        return value, ""
    try:
        return json.loads(value), ""
    except (ValueError, RecursionError) as exc:
        return None, f"not JSON ({exc.__class__.__name__}: {getattr(exc, 'msg', exc)})"


def arguments(value: Any) -> tuple[dict | None, str]:
    """A call's arguments as a dict: an object, a JSON string of one, or nothing ({})."""
    if value is None or value == "":
        return {}, ""
    parsed, why = _json(value)
    if why:
        return None, f"arguments {short(value)} are {why}"
    if not isinstance(parsed, dict):
        return None, f"arguments {short(value)} must be a JSON object"
    return parsed, ""


def call(value: Any) -> tuple[dict | None, str]:
    """One call, `{"name", "arguments"}` or OpenAI's `{"function": {...}}`, as an OpenAI tool call."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"].strip():
        return None, f"a call needs a 'name' and 'arguments', got {short(value)}"
    args, why = arguments(value.get("arguments", value.get("parameters")))
    if why:
        return None, f"call {value['name']!r}: {why}"
    return {"type": "function", "function": {"name": value["name"], "arguments": args}}, ""


def calls(value: Any) -> tuple[list[dict] | None, str]:
    """A `function_call` value (JSON text of one call or a list of calls) as a non-empty list of tool calls."""
    parsed, why = _json(value)
    if why:
        return None, f"the call {short(value)} is {why}"
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        return None, "the call list is empty"
    out = []
    for item in items:
        one, why = call(item)
        if why:
            return None, why
        out.append(one)
    return out, ""


def tools_list(value: Any) -> tuple[list | None, str]:
    """A record's `tools`: a list of tool schemas, or a JSON string of one; None when absent or empty."""
    if value is None or value == "" or value == []:
        return None, ""
    parsed, why = _json(value)
    if why:
        return None, f"'tools' {short(value)} is {why}"
    if not isinstance(parsed, list) or not all(isinstance(t, dict) for t in parsed):
        return None, f"'tools' must be a list of tool schemas (objects), got {short(value)}"
    return parsed or None, ""


def parts(value: list, i: int) -> tuple[dict, str, str]:
    """Content given as typed parts: ({"text", "reasoning", "tool_calls"}, "", "") or ({}, error kind, message
    naming the bad part)."""
    texts, reasoning, found = [], [], []
    for j, part in enumerate(value, 1):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str):
            return {}, "bad_content", f"message {i}: part {j} must be an object with a 'type', got {short(part)}"
        body = part.get("text", part.get("value", part.get(kind)))
        if kind in TEXT_PARTS + REASONING_PARTS:
            if not isinstance(body, str):
                why = f"message {i}: {kind} part {j} needs its text under 'text' or 'value', got {short(part)}"
                return {}, "bad_content", why
            (texts if kind in TEXT_PARTS else reasoning).append(body)
        elif kind in CALL_PARTS:
            got, why = calls(body if body is not None else part)
            if why:
                return {}, "bad_tool_calls", f"message {i}: {kind} part {j}: {why}"
            found += got
        else:
            known = ", ".join(TEXT_PARTS + REASONING_PARTS + CALL_PARTS)
            why = f"message {i}: part {j} has type {kind!r}, which is not supported (only {known}); remove it"
            return {}, "unsupported_part", why
    return {"text": "".join(texts), "reasoning": "\n".join(reasoning), "tool_calls": found}, "", ""


def has_reasoning(value: Any) -> bool:
    """Whether a chat record has reasoning / thinking parts in any message."""
    messages = value.get("messages") if isinstance(value, dict) else None
    return isinstance(messages, list) and any(
        isinstance(m, dict)
        and isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") in REASONING_PARTS for p in m["content"])
        for m in messages
    )


def reasoning_field(tokenizer) -> str:
    """The message field the tokenizer's chat template reads reasoning from ('' when it reads none)."""
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if isinstance(template, dict):
        template = " ".join(str(t) for t in template.values())
    if not isinstance(template, str):
        return ""
    return next((f for f in REASONING_FIELDS if f"message.{f}" in template or f"['{f}']" in template), "")


def for_template(messages: list[dict]) -> list[dict]:
    """Messages as chat templates expect them: no training-only keys, content text, call arguments as objects."""
    out = []
    for msg in messages:
        clean = {k: v for k, v in msg.items() if k not in TEMPLATE_DROP}
        clean["content"] = msg.get("content") or ""
        if msg.get("tool_calls"):
            clean["tool_calls"] = [_template_call(c) for c in msg["tool_calls"]]
        out.append(clean)
    return out


def _template_call(tool_call: Any) -> Any:
    fn = tool_call.get("function") if isinstance(tool_call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
        return tool_call
    args, why = arguments(fn["arguments"])
    return tool_call if why else {**tool_call, "function": {**fn, "arguments": args}}
