"""The learning curve: correct answers on taught facts after fine-tuning on shares of the training data.

`subset(examples, share, seed)` is the seeded share of a dataset a curve point trains on; `curve(points, flat)`
turns each point's per-question correct flags into rates with 95% intervals, and `trend_sentence` names a trend
only when the smallest and the largest share's intervals do not overlap ("no trend detectable with these questions"
otherwise). Training and answering are the caller's; these functions are pure.
"""

from __future__ import annotations

import random
from typing import Any

from lab.metrics.stats import bootstrap_ci

SHARES = (0.25, 0.5, 1.0)
NO_TREND = "no trend detectable with these questions"


def subset(examples: list[Any], share: float, seed: int = 0) -> list[Any]:
    """A seeded `share` of `examples` (at least one), in their original order; nested: a smaller share of the
    same seed is a subset of a larger one."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    keep = set(order[: max(1, round(share * len(examples)))]) if examples else set()
    return [e for i, e in enumerate(examples) if i in keep]


def _rate(flags: list[float], bootstrap: int, seed: int) -> dict[str, Any]:
    ci = bootstrap_ci(flags, bootstrap, seed)
    if not flags:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    return {"value": sum(flags) / len(flags), "lo": ci[0], "hi": ci[1], "n": len(flags)}


def curve(points: dict[float, list[float]], flat: list[float] | None = None, bootstrap: int = 1000, seed: int = 0):
    """{"cells": {"25%": rate, ...}, "flat": RAG's rate on the same questions or None, "shares": [...]} from
    {share: per-question correct flags on taught facts}."""
    shares = sorted(points)
    cells = {f"{s:.0%}": _rate([float(f) for f in points[s]], bootstrap, seed) for s in shares}
    flat_rate = _rate([float(f) for f in flat], bootstrap, seed) if flat else None
    return {"cells": cells, "flat": flat_rate, "shares": shares}


def trend(result: dict[str, Any]) -> str:
    """ "up", "down" or "none": up / down only when the smallest and the largest share's intervals are apart."""
    cells = list(result.get("cells", {}).values())
    if len(cells) < 2 or any(c["value"] is None for c in (cells[0], cells[-1])):
        return "none"
    small, large = cells[0], cells[-1]
    if large["lo"] > small["hi"]:
        return "up"
    if large["hi"] < small["lo"]:
        return "down"
    return "none"


def trend_sentence(result: dict[str, Any]) -> str:
    """One plain sentence: the rates by share, and a trend only where the intervals allow one."""
    cells = result.get("cells", {})
    shown = ", ".join(f"{k} of the data {100 * c['value']:.0f}%" for k, c in cells.items() if c["value"] is not None)
    flat = result.get("flat")
    against = (
        f"; RAG answers {100 * flat['value']:.0f}% of the same questions" if flat and flat["value"] is not None else ""
    )
    words = {"up": "more data helps: the largest share is ahead of the smallest beyond chance",
             "down": "the largest share is behind the smallest beyond chance", "none": NO_TREND}  # fmt: skip
    lead = "Correct on taught facts by share of training data"
    return f"{lead}: {shown or 'not measured'}{against}: {words[trend(result)]}."
