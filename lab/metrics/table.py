"""The metrics an evaluation summary reports: key, label, whether higher is better, and the question pool each
is computed over. The CLI table, the UI's summary and chart, and exports take labels and order from here.
Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Pool = Literal["answerable", "unanswerable", "all"]


@dataclass(frozen=True)
class Metric:
    key: str  # the summary's key (its interval is `key_ci`)
    label: str  # for people: table headers, chart ticks, exports
    short: str  # for a narrow terminal column
    higher_is_better: bool
    pool: Pool  # the questions the metric is computed over
    chart: bool = False  # drawn in the Arena's metrics chart


METRICS: tuple[Metric, ...] = (
    Metric("correct_rate", "correct", "correct", True, "answerable", chart=True),
    Metric("wrong_rate", "wrong", "wrong", False, "answerable"),
    Metric("skipped_rate", "skipped", "skipped", False, "answerable"),
    Metric("idk_rate", "I don't know", "idk", True, "unanswerable"),
    Metric("hallucination_rate", "hallucination", "halluc.", False, "unanswerable", chart=True),
    Metric("exact_match", "exact match", "EM", True, "answerable", chart=True),
    Metric("token_f1", "token F1", "F1", True, "answerable", chart=True),
    Metric("rouge_l", "ROUGE-L", "ROUGE-L", True, "answerable", chart=True),
    Metric("similarity", "similarity", "sim", True, "answerable", chart=True),
    Metric("groundedness", "grounded", "grounded", True, "all"),
    Metric("retrieval_hit", "retrieval hit", "hit", True, "answerable"),
)
BY_KEY = {m.key: m for m in METRICS}
CHART_KEYS = tuple(m.key for m in METRICS if m.chart)
_POOL_COUNT = {"answerable": "n_answerable", "unanswerable": "n_unanswerable", "all": "n"}


def metric(key: str) -> Metric:
    """The metric named `key`; a KeyError naming the known keys otherwise."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise KeyError(f"no metric {key!r}; known: {', '.join(BY_KEY)}") from None


def label(key: str) -> str:
    return metric(key).label


def pool_size(summary: Mapping[str, Any], key: str) -> int | None:
    """How many questions of a summary a metric is computed over (None when unknown or not a metric)."""
    m = BY_KEY.get(key)
    return summary.get(_POOL_COUNT[m.pool]) if m else summary.get("n")


def present(systems: list[Mapping[str, Any]], keys: tuple[str, ...] | None = None) -> tuple[Metric, ...]:
    """The metrics (in table order, or only `keys`) that at least one summary has a value for."""
    chosen = METRICS if keys is None else tuple(metric(k) for k in keys)
    return tuple(m for m in chosen if any(s.get(m.key) is not None for s in systems))
