"""Evaluation sets: read and validate a JSONL of questions, reporting every bad line with its number.

Format per line: {"id", "question", "answer", "aliases": [...], "source": file name | null, "answerable": bool,
"group": str}. Only `question` and `answer` are required: `answerable` defaults to true, `aliases` to [],
`id` to "line-N"; without `group` there is no breakdown, without `source` no retrieval hit rate. A retrieval
question set (the RAG tab's Measure) is the same format with `answer` optional. The one parser of question files,
and `stratified`, the seeded subset that keeps every (group, answerable) stratum (the Start tab's questions).
`held_out_questions` turns the examples a training never sees into questions (own data without a question file);
`generate_questions` asks a generator (any `complete(prompt) -> text`) for question / answer pairs over the
documents' chunks, keeping a pair only when its answer is a short span (at most MAX_GOLD_WORDS words) copied verbatim
from its chunk (`verbatim_gold`), and marks the questions from documents held out of the index unanswerable.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
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


GENERATED = "generated"  # the group of questions generated from the documents (facts only in the documents)
UNANSWERABLE_GROUP = "unanswerable"
MAX_GOLD_WORDS = 8
PAIR_PROMPT = (
    "Read the text and write {n} questions it answers. After each question write the answer copied word for word "
    "from the text, at most {words} words. Use exactly this form:\nQ: question\nA: answer\n\nText:\n{text}\n"
)
_PAIR = re.compile(r"^\s*Q\s*[:.)]\s*(.+?)\s*$\n^\s*A\s*[:.)]\s*(.+?)\s*$", re.M | re.I)


def _collapse(text: str) -> str:
    return " ".join(str(text).split())


def verbatim_gold(answer: str, source: str, max_words: int = MAX_GOLD_WORDS) -> str | None:
    """The answer trimmed of quotes and end punctuation when it has 1..`max_words` words and appears verbatim
    (case and spacing aside) in `source`; None otherwise (the question is dropped)."""
    gold = _collapse(answer).strip(" \"'`*").rstrip(".;,:!").strip()
    if not gold or len(gold.split()) > max_words:
        return None
    return gold if gold.lower() in _collapse(source).lower() else None


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of a generator's "Q: ... / A: ..." reply."""
    return [(q.strip(), a.strip()) for q, a in _PAIR.findall(text or "")]


def generated_items(
    pairs: list[tuple[str, str, str, str]], answerable: bool = True, prefix: str = "gen"
) -> tuple[list[EvalItem], list[str]]:
    """Items from (question, answer, source name, chunk text) and the reasons for every pair dropped. An
    answerable item keeps its verbatim short gold; an unanswerable control (its document is held out of the
    index) keeps only the question."""
    items, dropped, seen = [], [], set()
    for question, answer, source, text in pairs:
        question = _collapse(question)
        if not question.endswith("?") or question.lower() in seen:
            dropped.append(f"{question[:60]!r}: not a new question")
            continue
        gold = verbatim_gold(answer, text)
        if gold is None:
            dropped.append(f"{question[:60]!r}: answer {answer[:40]!r} is not a span of at most "
                           f"{MAX_GOLD_WORDS} words copied from {source}")  # fmt: skip
            continue
        seen.add(question.lower())
        n = len(items) + 1
        if answerable:
            items.append(EvalItem(f"{prefix}-{n}", question, gold, [], source, True, GENERATED))
        else:
            items.append(EvalItem(f"{prefix}-u{n}", question, "I don't know", [], None, False, UNANSWERABLE_GROUP))
    return items, dropped


def chunks_of(docs: dict[str, str], chunk_size: int = 256) -> list[tuple[str, str]]:
    """(source name, chunk text) of every document, split by LlamaIndex's sentence splitter."""
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=0)
    return [(name, chunk) for name, text in docs.items() for chunk in splitter.split_text(text) if chunk.strip()]


def generate_questions(
    docs: dict[str, str],
    complete: Callable[[str], str],
    per_chunk: int = 2,
    held_out: tuple[str, ...] = (),
    limit: int = 0,
    seed: int = 0,
) -> tuple[list[EvalItem], list[str]]:
    """An evaluation set for documents without one: `complete` (the chosen generator) writes question / answer
    pairs for a seeded choice of chunks (`limit` of them, 0 = all); pairs whose answer is not a short verbatim span
    are dropped (the reasons are returned). Questions from documents in `held_out` (kept out of the index) become
    unanswerable controls. Review the file before use: a small generator writes rough questions."""
    chunks = chunks_of(docs)
    random.Random(seed).shuffle(chunks)
    chunks = chunks[:limit] if limit else chunks
    kept: dict[bool, list] = {True: [], False: []}
    for name, text in chunks:
        reply = complete(PAIR_PROMPT.format(n=per_chunk, words=MAX_GOLD_WORDS, text=text))
        kept[name not in held_out] += [(q, a, name, text) for q, a in parse_pairs(reply)]
    answerable, dropped = generated_items(kept[True])
    controls, dropped_too = generated_items(kept[False], answerable=False)
    return answerable + controls, dropped + dropped_too


def write_evalset(items: list[EvalItem], path: str | Path) -> Path:
    """Write items as the evaluation JSONL this module reads (for download, editing and re-upload)."""
    path = Path(path)
    path.write_text("".join(json.dumps(it.to_dict(), ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
    return path
