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
    template = _template_text(tokenizer)
    return next((f for f in REASONING_FIELDS if f"message.{f}" in template or f"['{f}']" in template), "")


def _template_text(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if isinstance(template, dict):
        return " ".join(str(t) for t in template.values())
    return template if isinstance(template, str) else ""


def renders(tokenizer, what: str) -> bool:
    """Whether the tokenizer's chat template reads `what` ("tool_calls" of a message, or the "tools" list).
    No tokenizer (a plain render): True, nothing is rewritten."""
    return tokenizer is None or what in _template_text(tokenizer)


def for_template(messages: list[dict], tools: list | None = None, tokenizer=None) -> tuple[list[dict], list | None]:
    """Messages (and tools) as the tokenizer's chat template takes them: no training-only keys, content text,
    call arguments as objects. A template that does not render tool calls gets them in the content as
    `<tool_call>` JSON; one that takes no tools list gets the tools in the system message (so neither is lost
    from training); the returned tools are None then."""
    calls_as_text = not renders(tokenizer, "tool_calls")
    out = []
    for msg in messages:
        clean = {k: v for k, v in msg.items() if k not in TEMPLATE_DROP}
        clean["content"] = msg.get("content") or ""
        if msg.get("tool_calls"):
            calls = [_template_call(c) for c in msg["tool_calls"]]
            if calls_as_text:
                clean.pop("tool_calls")
                clean["content"] = "\n".join(
                    [clean["content"]] * bool(clean["content"]) + [call_text(c) for c in calls]
                )
            else:
                clean["tool_calls"] = calls
        out.append(clean)
    if not tools or renders(tokenizer, "tools"):
        return out, tools or None
    listing = "# Tools\n<tools>\n" + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools) + "\n</tools>"
    if out and out[0]["role"] == "system":
        out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{listing}"}
    else:
        out.insert(0, {"role": "system", "content": listing})
    return out, None


def call_text(tool_call: Any) -> str:
    """A tool call written as text: `<tool_call>` JSON of its name and arguments (the Hermes / Qwen form)."""
    fn = tool_call.get("function", tool_call) if isinstance(tool_call, dict) else tool_call
    body = {"name": fn.get("name"), "arguments": fn.get("arguments", {})} if isinstance(fn, dict) else fn
    return "<tool_call>\n" + json.dumps(body, ensure_ascii=False) + "\n</tool_call>"


def _template_call(tool_call: Any) -> Any:
    fn = tool_call.get("function") if isinstance(tool_call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
        return tool_call
    args, why = arguments(fn["arguments"])
    return tool_call if why else {**tool_call, "function": {**fn, "arguments": args}}
