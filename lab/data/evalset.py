"""Evaluation sets: read and validate a JSONL of questions, reporting every bad line with its number.

Format per line: {"id", "question", "answer", "aliases": [...], "source": file name | null, "answerable": bool,
"group": str, "held_out_doc": file name}. Only `question` and `answer` are required: `answerable` defaults to true,
`aliases` to [], `id` to "line-N"; without `group` there is no breakdown, without `source` no retrieval hit rate;
`held_out_doc` (an unanswerable control's document) is kept out of the index a comparison builds. A retrieval
question set (the RAG tab's Measure) is the same format with `answer` optional. The one parser of question files,
and `stratified`, the seeded subset that keeps every (group, answerable) stratum (the Start tab's questions).
`held_out_questions` turns the examples a training never sees into questions (own data without a question file);
`generate_questions` has LlamaIndex's DatasetGenerator, driven by any `complete(prompt) -> text` passed to it as
its LLM, write questions for the documents' chunks, keeping a pair only when its answer is a short span (at most
MAX_GOLD_WORDS words) copied verbatim from its chunk (`verbatim_gold`); questions from documents held out of the
index become unanswerable controls.
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
    held_out_doc: str | None = None  # an unanswerable control's document, kept out of the index

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["held_out_doc"] is None:  # files and question hashes without controls stay as they were
            del out["held_out_doc"]
        return out


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
    for key in ("source", "group", "id", "held_out_doc"):
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
        held_out_doc=str(obj["held_out_doc"]) if obj.get("held_out_doc") else None,
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


GENERATED = "documents"  # the group of questions generated from the documents (facts only in the documents)
UNANSWERABLE_GROUP = "unanswerable"
MAX_GOLD_WORDS = 8
QUESTION_QUERY = (
    "Write {n} short questions, one per line, that the text answers with a name, a number, a code or a short "
    "phrase. Write only the questions."
)
ANSWER_PROMPT = (
    "Text:\n{context_str}\n\nAnswer the question with a few words copied exactly from the text, at most {words} "
    "words.\nQuestion: {query_str}\nAnswer: "
)
_TAG = re.compile(r"^\s*(?:[-*•]\s*|\d+\s*[.):]\s*|q(?:uestion)?\s*\d*\s*[:.)]\s*)+", re.I)


def _collapse(text: str) -> str:
    return " ".join(str(text).split())


def verbatim_gold(answer: str, source: str, max_words: int = MAX_GOLD_WORDS) -> str | None:
    """The answer trimmed of quotes and end punctuation when it has 1..`max_words` words and appears verbatim
    (case and spacing aside) in `source`; None otherwise (the question is dropped)."""
    gold = _collapse(answer).strip(" \"'`*").rstrip(".;,:!").strip()
    if not gold or len(gold.split()) > max_words:
        return None
    return gold if gold.lower() in _collapse(source).lower() else None


def _word(token: str) -> str:
    return token.strip(".,;:!?\"'()").lower()


def trim_to_question(answer: str, question: str) -> str:
    """The answer without a run of two or more words at its start or end that only repeats the question (its
    words, articles and "is / are"): "The head brewer is Marta Olsen" to "What is the name of the head brewer?" ->
    "Marta Olsen", while "pier 3" stays whole. Unchanged when nothing would be left."""
    asked = {_word(t) for t in question.split()} | {"a", "an", "the", "is", "are", "was", "were"}
    words = _collapse(answer).split()
    start, end = 0, len(words)
    while start < end and _word(words[start]) in asked:
        start += 1
    start = start if start >= 2 else 0
    while end > start and _word(words[end - 1]) in asked:
        end -= 1
    end = end if len(words) - end >= 2 else len(words)
    return " ".join(words[start:end]) if start < end else _collapse(answer)


def generated_items(
    pairs: list[tuple[str, str, str, str]], answerable: bool = True, prefix: str = "gen"
) -> tuple[list[EvalItem], list[str]]:
    """Items from (question, answer, source name, chunk text) and the reasons for every pair dropped. An
    answerable item keeps its verbatim short gold; an unanswerable control (its document is held out of the
    index) keeps the question and names its document in `held_out_doc`."""
    items, dropped, seen = [], [], set()
    for question, answer, source, text in pairs:
        question = _collapse(question)
        if not question.endswith("?") or question.lower() in seen:
            dropped.append(f"{question[:60]!r}: not a new question")
            continue
        gold = verbatim_gold(trim_to_question(answer, question), text)
        if gold is None:
            dropped.append(f"{question[:60]!r}: answer {answer[:40]!r} is not a span of at most "
                           f"{MAX_GOLD_WORDS} words copied from {source}")  # fmt: skip
            continue
        seen.add(question.lower())
        n = len(items) + 1
        if answerable:
            items.append(EvalItem(f"{prefix}-{n}", question, gold, [], source, True, GENERATED))
        else:
            items.append(EvalItem(f"{prefix}-u{n}", question, "I don't know", [], None, False, UNANSWERABLE_GROUP,
                                  source))  # fmt: skip
    return items, dropped


def chunks_of(docs: dict[str, str], chunk_size: int = 256) -> list[tuple[str, str]]:
    """(source name, chunk text) of every document, split by LlamaIndex's sentence splitter."""
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=0)
    return [(name, chunk) for name, text in docs.items() for chunk in splitter.split_text(text) if chunk.strip()]


def completion_llm(complete: Callable[[str], str]):
    """A LlamaIndex LLM whose every completion is `complete(prompt)`: how the lab's generator is passed to
    LlamaIndex explicitly (never through its global Settings)."""
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback
    from pydantic import PrivateAttr

    class CompletionLLM(CustomLLM):
        _complete: Callable[[str], str] = PrivateAttr()

        def __init__(self, fn: Callable[[str], str]) -> None:
            super().__init__()
            self._complete = fn

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=4096, num_output=128, model_name="expertlab-generator")

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text=self._complete(prompt))

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
            text = self._complete(prompt)

            def one():
                yield CompletionResponse(text=text, delta=text)

            return one()

    return CompletionLLM(complete)


def chunk_pairs(text: str, llm, per_chunk: int = 2) -> list[tuple[str, str]]:
    """(question, answer) pairs for one chunk: LlamaIndex's DatasetGenerator writes the questions (at most
    `per_chunk` kept), then `llm` answers each over the same chunk with ANSWER_PROMPT."""
    import warnings

    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.evaluation import DatasetGenerator
    from llama_index.core.prompts import PromptTemplate
    from llama_index.core.schema import TextNode

    # Recorded, not shown: its "deprecated for RagDatasetGenerator" warning (a class this llama-index lacks).
    with warnings.catch_warnings(record=True):
        writer = DatasetGenerator([TextNode(text=text)], llm=llm, callback_manager=CallbackManager([]),
                                  num_questions_per_chunk=per_chunk,
                                  question_gen_query=QUESTION_QUERY.format(n=per_chunk))  # fmt: skip
        lines = writer.generate_questions_from_nodes()
    questions = [q for q in (_collapse(_TAG.sub("", line)) for line in lines) if q.endswith("?")][:per_chunk]
    answer = PromptTemplate(ANSWER_PROMPT)
    return [(q, llm.complete(answer.format(context_str=text, query_str=q, words=MAX_GOLD_WORDS)).text)
            for q in questions]  # fmt: skip


def generate_questions(
    docs: dict[str, str],
    complete: Callable[[str], str],
    per_chunk: int = 2,
    held_out: tuple[str, ...] = (),
    want: int = 0,
    controls: int = 0,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[list[EvalItem], list[str]]:
    """An evaluation set for documents without one: the chosen generator (`complete`, passed to LlamaIndex's
    question generation as its LLM) writes question / answer pairs over a seeded order of chunks until `want`
    answerable questions (0 = every chunk) and `controls` unanswerable ones (0 = every held-out chunk) are kept;
    pairs whose answer is not a short verbatim span are dropped (the reasons are returned). Questions from
    documents in `held_out` (kept out of the index) become unanswerable controls. Review the file before use: a
    small generator writes rough questions."""
    chunks = chunks_of(docs)
    random.Random(seed).shuffle(chunks)
    llm = completion_llm(complete)
    raw: dict[bool, list] = {True: [], False: []}
    quota = {True: want, False: controls}

    def kept(side: bool) -> list[EvalItem]:
        return generated_items(raw[side], answerable=side)[0]

    for done, (name, text) in enumerate(chunks, 1):
        side = name not in held_out
        if quota[side] and len(kept(side)) >= quota[side]:
            continue
        raw[side] += [(q, a, name, text) for q, a in chunk_pairs(text, llm, per_chunk)]
        if progress:
            progress(done / len(chunks), f"chunk {done} of {len(chunks)}: {len(kept(True))} questions kept")
        if all(quota.values()) and all(len(kept(s)) >= quota[s] for s in quota):
            break
    answerable, dropped = generated_items(raw[True])
    unanswerable, dropped_too = generated_items(raw[False], answerable=False)
    return answerable[: want or None] + unanswerable[: controls or None], dropped + dropped_too


def held_out_documents(names: list[str], share: float = 0.2, seed: int = 0) -> tuple[str, ...]:
    """A seeded choice of documents to keep out of the index (their questions become unanswerable controls):
    `share` of them, at least one, never all; none when there is a single document."""
    names = sorted(names)
    if len(names) < 2:
        return ()
    k = min(len(names) - 1, max(1, round(share * len(names))))
    return tuple(sorted(random.Random(seed).sample(names, k)))


def write_evalset(items: list[EvalItem], path: str | Path) -> Path:
    """Write items as the evaluation JSONL this module reads (for download, editing and re-upload)."""
    path = Path(path)
    path.write_text("".join(json.dumps(it.to_dict(), ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
    return path
