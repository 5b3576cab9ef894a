"""`Summary`: one contestant's scores over an evaluation, typed; `to_dict()` is the form results.json saves.

Boundary: holds and converts what lab/arena/scoring.py computes (counts, each metric's value and 95% interval,
latency, tokens/s, a breakdown by group); computing it is scoring's business, and turning a rate into text is
`lab.metrics.rate.format_rate`'s. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.metrics.rate import Rate
from lab.metrics.table import pool_size

COUNTS = ("n", "n_answerable", "n_unanswerable")
SPEED = ("latency_p50", "latency_p95", "tokens_per_s")


@dataclass
class Summary:
    """Counts, every metric's value (`values`, in the saved order) with its 95% interval (`intervals`: [lo, hi] or
    None), latency percentiles and tokens/s; `system` names the contestant (None inside `by_group`)."""

    n: int
    n_answerable: int
    n_unanswerable: int
    values: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, list[float] | None] = field(default_factory=dict)
    latency_p50: float | None = None
    latency_p95: float | None = None
    tokens_per_s: float | None = None
    system: str | None = None
    by_group: dict[str, Summary] | None = None

    def rate(self, key: str) -> Rate:
        """The metric `key` with its interval and the size of the question pool it is computed over."""
        lo, hi = self.intervals.get(key) or (None, None)
        return Rate(self.values.get(key), lo, hi, pool_size(self.counts(), key))

    def counts(self) -> dict[str, int]:
        return {"n": self.n, "n_answerable": self.n_answerable, "n_unanswerable": self.n_unanswerable}

    def to_dict(self) -> dict[str, Any]:
        """The saved form: system, counts, each metric as `KEY` and `KEY_ci`, latency and speed, then by_group."""
        out: dict[str, Any] = {} if self.system is None else {"system": self.system}
        out |= self.counts()
        for key, value in self.values.items():
            out |= {key: value, f"{key}_ci": self.intervals.get(key)}
        out |= {key: getattr(self, key) for key in SPEED}
        if self.by_group is not None:
            out["by_group"] = {group: s.to_dict() for group, s in self.by_group.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """A summary read back from its saved form (every `KEY` with a `KEY_ci` beside it is a metric)."""
        metrics = [k for k in data if f"{k}_ci" in data]
        groups = data.get("by_group")
        return cls(
            **{key: data.get(key, 0) for key in COUNTS},
            values={k: data[k] for k in metrics},
            intervals={k: data[f"{k}_ci"] for k in metrics},
            **{key: data.get(key) for key in SPEED},
            system=data.get("system"),
            by_group=None if groups is None else {g: cls.from_dict(s) for g, s in groups.items()},
        )
