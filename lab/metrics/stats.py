"""Summary statistics for scores: means, percentiles and seeded bootstrap 95% intervals.

Pure functions over lists of numbers; a fixed seed makes every interval reproducible. No I/O, no models.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def percentile(values: Sequence[float], q: int) -> float | None:
    """Linear-interpolated percentile (whole q in 0..100), like numpy's default (statistics' inclusive method)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    if len(vals) == 1 or q <= 0 or q >= 100:
        return vals[0] if len(vals) == 1 else (min(vals) if q <= 0 else max(vals))
    return statistics.quantiles(vals, n=100, method="inclusive")[int(q) - 1]


def bootstrap_ci(values: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple | None:
    """Percentile bootstrap interval of the mean: (low, high), or None without data. Seeded, so reproducible."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    if n <= 0 or len(vals) == 1:
        m = sum(vals) / len(vals)
        return (m, m)
    rng = random.Random(seed)
    k = len(vals)
    return interval([sum(rng.choices(vals, k=k)) / k for _ in range(n)], level)


def interval(samples: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap samples (the one rule every interval of the lab uses)."""
    ordered = sorted(samples)
    tail = (1 - level) / 2
    return (ordered[int(tail * (len(ordered) - 1))], ordered[int(round((1 - tail) * (len(ordered) - 1)))])


def rate_with_ci(flags: Sequence[bool], n: int = 1000, seed: int = 0) -> dict:
    """{"rate", "ci": [low, high], "n"} for a list of yes/no outcomes."""
    vals = [1.0 if f else 0.0 for f in flags]
    ci = bootstrap_ci(vals, n, seed)
    return {"rate": mean(vals), "ci": list(ci) if ci else None, "n": len(vals)}
