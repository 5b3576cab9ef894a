"""Template placeholders such as `{{name}}` left in fine-tuning records (identity-style sets ship them to be
filled in): finding them in normalised examples and filling them in source records before they are checked.
Pure functions on parsed values; no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from lab.errors import LabError

PATTERN = re.compile(r"\{\{\s*([A-Za-z_][\w.\-]*)\s*\}\}")


class FillError(LabError, ValueError):
    """A placeholder fill that is not `name=value`; the message names it."""


def parse_fill(text: str | list[str] | dict | None) -> dict[str, str]:
    """`name=ExpertLab, author=Lab team` (or a list of `k=v`, or a dict) as {"name": ..., "author": ...}.

    Raises FillError (a ValueError) naming an item that is not `name=value`."""
    if not text:
        return {}
    if isinstance(text, dict):
        return {str(k).strip(): str(v) for k, v in text.items()}
    items = text if isinstance(text, list) else re.split(r"[,\n]", text)
    out = {}
    for item in items:
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip().strip("{} ")
        if not sep or not PATTERN.fullmatch("{{" + key + "}}"):
            raise FillError(f"placeholder fill {item.strip()!r} is not name=value (e.g. name=ExpertLab)")
        out[key] = value.strip()
    return out


def fill(value: Any, values: dict[str, str]) -> Any:
    """`value` with every `{{key}}` of `values` replaced, in every string inside it (dicts and lists walked)."""
    if not values:
        return value
    if isinstance(value, str):
        return PATTERN.sub(lambda m: values.get(m.group(1), m.group(0)), value) if "{{" in value else value
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    return value


def found(example: dict) -> list[str]:
    """Placeholder names in an example's message contents, in order of first appearance."""
    names: dict[str, None] = {}
    for msg in example.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str) and "{{" in content:
            names.update((m.group(1), None) for m in PATTERN.finditer(content))
    return list(names)
