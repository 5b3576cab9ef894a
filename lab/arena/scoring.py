"""Scoring one evaluation: per-question rows for every contestant, and per-contestant summaries.

A question row holds the answer, its category and every per-answer metric; a summary (`lab.arena.summary.Summary`,
saved as a dict) holds rates with seeded bootstrap 95% intervals beside them (`NAME` and `NAME_ci`), latency
percentiles, tokens/s and a breakdown by the evaluation set's `group`; and `idk_curve`, a passage-reading
contestant's correct / hallucination rates re-decided for every abstention threshold from the probabilities its
answers recorded. Pure functions of answers and items (the embedding similarity is passed in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab.arena.summary import Summary
from lab.data.evalset import EvalItem
from lab.generation import Answer, passage_dict
from lab.metrics import scoring as sc
from lab.metrics.stats import bootstrap_ci, mean, percentile

RATES = {  # name: (category, whether the rate is over answerable questions)
    "correct_rate": (sc.CORRECT, True),
    "wrong_rate": (sc.WRONG, True),
    "skipped_rate": (sc.SKIPPED, True),
    "idk_rate": (sc.IDK, False),
    "hallucination_rate": (sc.HALLUCINATION, False),
}
MEANS = ("exact_match", "token_f1", "rouge_l", "similarity", "groundedness", "retrieval_hit", "retrieval_rr")


def question_row(item: EvalItem, answer: Answer, system: str) -> dict[str, Any]:
    refs = sc.golds(item.answer, item.aliases)
    passages = [passage_dict(p) for p in answer.passages]
    rank = sc.retrieval_rank(item.source, [p.get("source") for p in passages]) if passages else None
    return (
        item.to_dict()
        | {
            "system": system,
            "prediction": answer.text,
            "category": sc.category(answer.text, item.answer, item.aliases, item.answerable),
            "exact_match": sc.exact_match(answer.text, refs),
            "token_f1": sc.token_f1(answer.text, refs),
            "rouge_l": sc.rouge_l(answer.text, refs),
            "similarity": None,
            "groundedness": sc.groundedness(answer.text, [p.get("text") or "" for p in passages]),
            "retrieval_hit": None if rank is None else float(rank > 0),
            "retrieval_rr": None if rank is None else (1 / rank if rank else 0.0),
            "latency_s": answer.latency_s,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "passages": passages,
        }
        | _decision(item, answer)
    )


def _decision(item: EvalItem, answer: Answer) -> dict[str, Any]:
    """For an answer whose abstention was decided by probability: that probability and the category the answer
    gets when it does not abstain (its own, or its `alt`'s when it abstained), so `idk_curve` can re-decide."""
    if answer.p_idk is None:
        return {}
    answering = answer.alt or answer.text
    return {
        "p_idk": answer.p_idk,
        "answer_category": sc.category(answering, item.answer, item.aliases, item.answerable),
    }


THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 ... 0.95


def idk_curve(rows: list[dict[str, Any]], thresholds: tuple[float, ...] = THRESHOLDS) -> list[dict[str, Any]]:
    """One contestant's correct and hallucination rates for every abstention threshold, re-decided from each
    row's `p_idk` (abstain when over the threshold, else its `answer_category`); rows without one keep their
    category. Empty when no row has a probability (a contestant that does not read passages)."""
    if not any(r.get("p_idk") is not None for r in rows):
        return []
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]

    def category_at(row: dict[str, Any], t: float) -> str:
        if row.get("p_idk") is None:
            return row["category"]
        if row["p_idk"] > t:
            return sc.SKIPPED if row["answerable"] else sc.IDK
        return row["answer_category"]

    def rate(pool: list[dict[str, Any]], cat: str, t: float) -> float | None:
        return sum(category_at(r, t) == cat for r in pool) / len(pool) if pool else None

    return [
        {"threshold": t, "correct_rate": rate(answerable, sc.CORRECT, t),
         "hallucination_rate": rate(unanswerable, sc.HALLUCINATION, t)}
        for t in thresholds
    ]  # fmt: skip


def add_similarity(rows: list[dict[str, Any]], similarity: Callable[[list[str], list[str]], list[float]]) -> None:
    """Fill `similarity` (embedding cosine of prediction and gold answer) for every row, in one batch."""
    if rows:
        values = similarity([r["prediction"] for r in rows], [r["answer"] for r in rows])
        for row, value in zip(rows, values, strict=True):
            row["similarity"] = float(value)


def _with_ci(values: list[float], n: int, seed: int) -> tuple[float | None, list[float] | None]:
    ci = bootstrap_ci(values, n, seed)
    return mean(values), list(ci) if ci else None


def summary_of(rows: list[dict[str, Any]], bootstrap: int = 1000, seed: int = 0, system: str | None = None) -> Summary:
    """Rates and means with 95% bootstrap intervals, latency p50/p95 and tokens/s for one contestant's rows."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    values: dict[str, float | None] = {}
    intervals: dict[str, list[float] | None] = {}
    for name, (cat, over_answerable) in RATES.items():
        pool = answerable if over_answerable else unanswerable
        values[name], intervals[name] = _with_ci([float(r["category"] == cat) for r in pool], bootstrap, seed)
    for name in MEANS:
        pool = answerable if name != "groundedness" else rows
        values[name], intervals[name] = _with_ci([r[name] for r in pool if r.get(name) is not None], bootstrap, seed)
    latencies = [r["latency_s"] for r in rows]
    total_s = sum(latencies)
    return Summary(
        len(rows),
        len(answerable),
        len(unanswerable),
        values,
        intervals,
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        tokens_per_s=sum(r["completion_tokens"] for r in rows) / total_s if total_s else None,
        system=system,
    )


def summarize(rows: list[dict[str, Any]], bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """`summary_of` in its saved form (a dict)."""
    return summary_of(rows, bootstrap, seed).to_dict()


def summaries(rows: list[dict[str, Any]], systems: list[str], bootstrap: int = 1000, seed: int = 0) -> list[Summary]:
    """One summary per system, each with a `by_group` breakdown when the set has groups."""
    out = []
    for system in systems:
        mine = [r for r in rows if r["system"] == system]
        summary = summary_of(mine, bootstrap, seed, system)
        groups = sorted({r["group"] for r in mine if r.get("group")})
        if groups:
            summary.by_group = {
                g: summary_of([r for r in mine if r.get("group") == g], bootstrap, seed) for g in groups
            }
        out.append(summary)
    return out


def summarize_all(rows: list[dict[str, Any]], systems: list[str], bootstrap: int = 1000, seed: int = 0) -> list:
    """`summaries` in their saved form (what results.json holds under "systems")."""
    return [s.to_dict() for s in summaries(rows, systems, bootstrap, seed)]
