"""Training data for RAG: rewrite chat examples into the exact prompt the Arena's `ft+rag` contestant sends.

Each example's conversation becomes the Arena's RAG prompt (`lab.generation.arena_rag_messages`: same system
text, passage count, focus and character limits, from the same `GenConfig` defaults) over the passages the index
retrieves for its last user turn. The target is the example's own last assistant answer when the passages in the
prompt support it (the Arena's support check, `lab.generation.supported`), else "I don't know". A share of the
examples is added again over the passages retrieved for an unrelated question (no top source in common) with the
target "I don't know" (the distractor copies of the fine-tuning-for-RAG studies), and a share of the kept examples
is added again over the same question's passages minus those that hold the answer (near-miss copies: on-topic
passages that lack the fact, the hard case of an unanswerable question), also with the target "I don't know".
Deterministic for a seed.
Knows nothing about any domain's wording. Must not train, start processes or touch the database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from lab.config import GenConfig, TrainConfig
from lab.errors import LabError
from lab.generation import IDK, arena_passages, passage_dict, rag_messages, supported
from lab.generation.focus import MemoEmbedder, warm
from lab.metrics.scoring import is_abstention
from lab.workspace import SAMPLE

TRAIN_FILE = "rag_train.jsonl"
VAL_FILE = "rag_val.jsonl"
META_FILE = "rag_meta.json"


class RagDataError(LabError):
    """Training for RAG cannot prepare its data; the message names the index or example and what to do."""


@dataclass
class RagRewrite:
    """What the rewrite produced: the examples, how their targets were chosen, one sample, prompt lengths."""

    examples: list[dict]
    counts: dict[str, int]
    sample: dict = field(default_factory=dict)
    p90_tokens: int = 0
    warning: str = ""


def _last(messages: list[dict], role: str) -> str:
    for msg in reversed(messages):
        if msg.get("role") == role and isinstance(msg.get("content"), str):
            return msg["content"]
    return ""


def _top_source(passages: list[Any]) -> str:
    return str(passage_dict(passages[0]).get("source") or "") if passages else ""


def _sources(passages: list[Any]) -> set[str]:
    return {str(passage_dict(p).get("source") or "") for p in passages}


def _row(question: str, shown: list[dict], target: str, gen: GenConfig, kind: str) -> dict:
    prompt = rag_messages(question, shown, gen.context_chars)  # == arena_rag_messages over the same passages
    return {"messages": [*prompt, {"role": "assistant", "content": target}], "rag": kind}


def _positive(question: str, answer: str, passages: list[Any], gen: GenConfig, embedder) -> dict:
    """The example over its own passages; the answer is kept only when the passages it shows support it."""
    shown = arena_passages(question, passages, gen, embedder)
    if is_abstention(answer):
        kind = "idk_in_data"
    else:
        kind = "kept" if shown and supported(answer, shown, gen) else "unsupported"
    return _row(question, shown, answer if kind == "kept" else f"{IDK}.", gen, kind)


def _distractor(question: str, passages: list[Any], gen: GenConfig, embedder) -> dict:
    return _row(question, arena_passages(question, passages, gen, embedder), f"{IDK}.", gen, "distractor")


def _near_miss(question: str, answer: str, passages: list[Any], gen: GenConfig, embedder) -> dict | None:
    """The example over its own passages minus every passage that supports the answer on its own, target IDK;
    None when no single passage holds the answer, none is left, or what is left still supports it."""
    rest = [p for p in passages if not supported(answer, [passage_dict(p)], gen)]
    if not rest or len(rest) == len(passages):
        return None
    shown = arena_passages(question, rest, gen, embedder)
    if not shown or supported(answer, shown, gen):
        return None
    return _row(question, shown, f"{IDK}.", gen, "near_miss")


def _distractor_for(i: int, retrieved: list[list[Any]], rng: random.Random, tries: int = 50) -> int | None:
    """Another example whose top source is not among example i's sources, and vice versa (None if none)."""
    mine, top = _sources(retrieved[i]), _top_source(retrieved[i])
    for _ in range(tries):
        j = rng.randrange(len(retrieved))
        if j != i and _top_source(retrieved[j]) not in mine and top not in _sources(retrieved[j]):
            return j
    return None


def rewrite(
    examples: list[dict], retriever, gen: GenConfig, share: float, seed: int, near_miss: float = 0.0
) -> list[dict]:
    """Rewritten examples (each with a "rag" kind: kept | unsupported | idk_in_data | distractor | near_miss),
    seeded."""
    questions = [_last(ex["messages"], "user") for ex in examples]
    answers = [_last(ex["messages"], "assistant") for ex in examples]
    usable = [i for i, (q, a) in enumerate(zip(questions, answers, strict=True)) if q.strip() and a.strip()]
    if not usable:
        return []
    retrieved = _retrieve(retriever, [questions[i] for i in usable], gen)
    embedder = getattr(retriever, "embedder", None)
    embedder = MemoEmbedder(embedder) if embedder is not None else None
    if gen.focus_sentences > 0:
        warm(embedder, [questions[i] for i in usable], retrieved)
    out = [_positive(questions[i], answers[i], p, gen, embedder) for i, p in zip(usable, retrieved, strict=True)]
    rng = random.Random(seed)
    for k in sorted(rng.sample(range(len(usable)), round(share * len(usable)))):
        j = _distractor_for(k, retrieved, rng)
        if j is not None:
            out.append(_distractor(questions[usable[k]], retrieved[j], gen, embedder))
    kept = [k for k, row in enumerate(out[: len(usable)]) if row["rag"] == "kept"]
    for k in sorted(rng.sample(kept, round(near_miss * len(kept)))):
        row = _near_miss(questions[usable[k]], answers[usable[k]], retrieved[k], gen, embedder)
        if row is not None:
            out.append(row)
    return out


def _retrieve(retriever, questions: list[str], gen: GenConfig) -> list[list[Any]]:
    top_k = gen.top_k or None
    many = getattr(retriever, "retrieve_many", None)
    if many is not None:
        return [list(p) for p in many(questions, top_k=top_k)]
    return [list(retriever.retrieve(q, top_k=top_k)) for q in questions]


KINDS = {"kept": "kept", "unsupported": "unsupported", "idk_in_data": "idk_in_data", "distractors": "distractor",
         "near_misses": "near_miss"}  # fmt: skip


def counts(rows: list[dict]) -> dict[str, int]:
    """How many rewritten examples of each kind (kept answer, unsupported -> IDK, IDK in the data, distractor)."""
    return {key: sum(r.get("rag") == kind for r in rows) for key, kind in KINDS.items()} | {"total": len(rows)}


def prompt_lengths(tok, rows: list[dict]) -> list[int]:
    """Token length of each rewritten example rendered through the chat template (answer included)."""
    clean = ([{"role": m["role"], "content": m.get("content") or ""} for m in r["messages"]] for r in rows)
    texts = [tok.apply_chat_template(messages, tokenize=False) for messages in clean]
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []


def length_warning(lengths: list[int], max_length: int) -> tuple[int, str]:
    """(p90 length, a warning naming how many examples max_length cuts, or "")."""
    if not lengths:
        return 0, ""
    ordered = sorted(lengths)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    cut = sum(n > max_length for n in lengths)
    if not cut:
        return p90, ""
    return p90, (
        f"max_length={max_length} cuts {cut} of {len(lengths)} RAG training examples (p90 {p90} tokens, "
        f"longest {ordered[-1]}): raise max_length to at least {ordered[-1]} or the answers of cut examples are lost"
    )


def open_retriever(ws, cache, index: str):
    """The index as the Arena opens it; a RagDataError naming the index when it does not exist."""
    from lab.rag import list_indexes, open_index

    if index not in list_indexes(ws) and index != SAMPLE:
        existing = ", ".join(list_indexes(ws)) or "none"
        raise RagDataError(f"index {index!r} does not exist; build it in the RAG tab first (existing: {existing})")
    return open_index(ws, index, cache)


def prepare(ws, cache, config: TrainConfig, split: str = "train", limit: int | None = None) -> RagRewrite:
    """Rewrite a split of `config.dataset` over `config.rag_index`, with counts, a sample and prompt lengths."""
    from lab.training.prep import load_examples

    examples = load_examples(ws, config.dataset, split)[:limit]
    retriever = open_retriever(ws, cache, config.rag_index)
    rows = rewrite(examples, retriever, GenConfig(), config.distractor_share, config.seed, config.near_miss_share)
    p90, warning = length_warning(prompt_lengths(cache.tokenizer(config.base_model), rows), config.max_length)
    sample = next((r for r in rows if r["rag"] == "kept"), rows[0] if rows else {})
    return RagRewrite(rows, counts(rows), sample, p90, warning)


def preview(ws, cache, config: TrainConfig, limit: int | None = None) -> RagRewrite:
    """What training for RAG will train on (the Train tab's preview); same code path as the run itself."""
    if not config.rag_index:
        raise RagDataError("choose an index to train for RAG (rag_index is empty)")
    return prepare(ws, cache, config, "train", limit)


def index_fingerprint(ws, index: str) -> str:
    """A short content hash of an index: its chunking/embedding settings and its documents' content ids."""
    import hashlib
    import json

    from lab.rag import index_info

    meta = index_info(ws, index)
    docs = sorted(str(d.get("doc_id")) for d in meta.get("documents", []))
    blob = json.dumps([meta.get("fingerprint", {}), docs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def prepare_run(ws, cache, config: TrainConfig) -> dict:
    """Everything a run trained for RAG needs, computed before its folder exists (so a failure leaves nothing)."""
    train = prepare(ws, cache, config, "train")
    if not train.examples:
        raise RagDataError(f"dataset {config.dataset!r} has no example with a user question and an answer")
    val = prepare(ws, cache, config, "val")
    meta = {
        "rag_index": config.rag_index,
        "index_fingerprint": index_fingerprint(ws, config.rag_index),
        "counts": train.counts,
        "val_counts": val.counts,
        "p90_tokens": train.p90_tokens,
        "warning": train.warning,
        "gen": GenConfig().to_dict(),
    }
    return {"train": train.examples, "val": val.examples, "meta": meta}


def write_run_files(run_dir, prepared: dict) -> dict:
    """Write rag_train.jsonl, rag_val.jsonl and rag_meta.json into the run folder; returns the meta."""
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    for name, rows in ((TRAIN_FILE, prepared["train"]), (VAL_FILE, prepared["val"])):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (run_dir / name).write_text(text, encoding="utf-8")
    (run_dir / META_FILE).write_text(json.dumps(prepared["meta"], indent=2), encoding="utf-8")
    return prepared["meta"]


def run_examples(ws, config: TrainConfig, run_dir, split: str) -> list[dict]:
    """The examples a run trains on: its rewritten RAG files when it has them, else the dataset's split."""
    import json
    from pathlib import Path

    path = Path(run_dir) / (TRAIN_FILE if split == "train" else VAL_FILE)
    if config.rag_index and path.is_file():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    from lab.training.prep import load_examples

    return load_examples(ws, config.dataset, split)
