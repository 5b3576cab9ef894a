"""Evaluation sets: read and validate a JSONL of questions, reporting every bad line with its number.

Format per line: {"id", "question", "answer", "aliases": [...], "source": file name | null, "answerable": bool,
"group": str}. Only `question` and `answer` are required: `answerable` defaults to true, `aliases` to [],
`id` to "line-N"; without `group` there is no breakdown, without `source` no retrieval hit rate. A retrieval
question set (the RAG tab's Measure) is the same format with `answer` optional. The one parser of question files,
and `stratified`, the seeded subset that keeps every (group, answerable) stratum (the Start tab's questions).
`held_out_questions` turns the examples a training never sees into questions (own data without a question file).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.workspace import SAMPLE


class EvalSetError(LabError):
    """The evaluation file has bad lines; `errors` lists them all as "line N: problem"."""

    def __init__(self, path: str, errors: list[str]):
        self.errors = errors
        shown = "; ".join(errors[:10]) + (f"; ... {len(errors) - 10} more" if len(errors) > 10 else "")
        super().__init__(f"{path}: {len(errors)} bad line(s): {shown}")


@dataclass
class EvalItem:
    id: str
    question: str
    answer: str
    aliases: list[str] = field(default_factory=list)
    source: str | None = None
    answerable: bool = True
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(obj: Any, n: int, require_answer: bool = True) -> tuple[EvalItem | None, list[str]]:
    if not isinstance(obj, dict):
        return None, [f"line {n}: expected a JSON object, got {type(obj).__name__}"]
    errs = []
    if not require_answer and obj.get("answer") is None:
        obj = {**obj, "answer": "-"}  # a retrieval question: only the question and its source matter
    for key in ("question", "answer"):
        if not isinstance(obj.get(key), str) or not obj.get(key, "").strip():
            errs.append(f"line {n}: {key!r} must be a non-empty string, got {obj.get(key)!r}")
    aliases = obj.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        errs.append(f"line {n}: 'aliases' must be a list of strings, got {aliases!r}")
    if not isinstance(obj.get("answerable", True), bool):
        errs.append(f"line {n}: 'answerable' must be true or false, got {obj.get('answerable')!r}")
    for key in ("source", "group", "id"):
        if obj.get(key) is not None and not isinstance(obj.get(key), str | int):
            errs.append(f"line {n}: {key!r} must be a string or null, got {obj.get(key)!r}")
    if errs:
        return None, errs
    item = EvalItem(
        id=str(obj.get("id") or f"line-{n}"),
        question=obj["question"].strip(),
        answer=obj["answer"].strip(),
        aliases=list(aliases),
        source=obj.get("source") or None,
        answerable=obj.get("answerable", True),
        group=obj.get("group") or None,
    )
    return item, []


def parse_evalset(text: str, path: str = "evaluation set", require_answer: bool = True) -> list[EvalItem]:
    """Items of a JSONL text; raises EvalSetError listing every bad line (blank lines are skipped)."""
    items, errors, seen = [], [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {n}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        item, errs = _check(obj, n, require_answer)
        errors += errs
        if item and item.id in seen:
            errors.append(f"line {n}: duplicate id {item.id!r}")
        elif item:
            seen.add(item.id)
            items.append(item)
    if errors:
        raise EvalSetError(path, errors)
    if not items:
        raise EvalSetError(path, ["no questions found: expected one JSON object per line"])
    return items


def read_evalset(path: str | Path, require_answer: bool = True) -> list[EvalItem]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"evaluation file {str(path)!r} does not exist")
    return parse_evalset(path.read_text(encoding="utf-8"), str(path), require_answer)


def sample_evalset_path(ws) -> Path:
    """The sample domain's held-out set (installed into the workspace, else the shipped copy)."""
    from lab.storage import sample_dir

    for candidate in (ws.root / "datasets" / SAMPLE / "eval.jsonl", sample_dir() / "eval.jsonl"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("the sample evaluation set data/eval.jsonl is missing")


def stratified(items: list[EvalItem], n: int, seed: int = 0) -> list[EvalItem]:
    """A seeded subset of about `n` items keeping every (group, answerable) stratum in proportion (>= 1 each)."""
    if not n or n >= len(items):
        return list(items)
    strata: dict[tuple, list[int]] = {}
    for i, it in enumerate(items):
        strata.setdefault((it.group or "", it.answerable), []).append(i)
    quota = {k: max(1, int(n * len(v) / len(items))) for k, v in strata.items()}
    by_remainder = sorted(strata, key=lambda k: -(n * len(strata[k]) / len(items) - quota[k]))
    for k in by_remainder[: max(0, n - sum(quota.values()))]:
        quota[k] += 1
    rng = random.Random(seed)
    keep = {i for k, idx in strata.items() for i in rng.sample(idx, min(len(idx), quota[k]))}
    return [it for i, it in enumerate(items) if i in keep]


HELD_OUT = "held-out"  # the group of questions held out from a fine-tuning dataset


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
    return ""


def held_out_questions(examples: list[dict], dataset: str) -> list[EvalItem]:
    """Questions from chat examples a training never sees (a dataset's validation split): each example's first
    user turn is the question and the assistant turn after it the reference answer; an example without both is
    skipped. Ids are `DATASET-N`, the group HELD_OUT, every question answerable. Pure: a generated question set
    can replace it."""
    items = []
    for n, example in enumerate(examples, 1):
        messages = [m for m in example.get("messages", []) if isinstance(m, dict)]
        users = [i for i, m in enumerate(messages) if m.get("role") == "user" and _text(m.get("content"))]
        if not users:
            continue
        after = messages[users[0] + 1 :]
        turn = after[: next((i for i, m in enumerate(after) if m.get("role") == "user"), len(after))]
        replies = [_text(m.get("content")) for m in turn if m.get("role") == "assistant"]
        question, answer = _text(messages[users[0]].get("content")), next((r for r in replies if r), "")
        if answer:
            items.append(EvalItem(id=f"{dataset}-{n}", question=question, answer=answer, group=HELD_OUT))
    return items
