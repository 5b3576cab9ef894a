"""A rate with its 95% interval and sample size, and the one function that writes it for people.

`Rate` is what a summary's `NAME` / `NAME_ci` pair and its question count mean together; `format_rate` is the
only place a rate becomes text (CLI tables, UI cells, exports, verdict sentences). Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lab.metrics.table import pool_size

Style = Literal["long", "short", "note", "interval"]


@dataclass(frozen=True)
class Rate:
    """A proportion in [0, 1] (`value`), its 95% interval (`lo`, `hi`, both None when unknown) and how many
    questions it rests on (`n`; None when the count is not known)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int | None = None

    @classmethod
    def of(cls, summary: Mapping[str, Any], key: str, n: int | None = None) -> Rate:
        """The rate `key` of a summary dict (`key` and `key_ci`); `n` defaults to the count of the question pool
        the metric is computed over (lab.metrics.table), when the summary holds it."""
        ci = summary.get(f"{key}_ci") or (None, None)
        return cls(summary.get(key), ci[0], ci[1], pool_size(summary, key) if n is None else n)

    @property
    def known(self) -> bool:
        return self.value is not None and self.n != 0

    @property
    def has_interval(self) -> bool:
        return self.lo is not None and self.hi is not None


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def format_rate(rate: Rate, style: Style = "long") -> str:
    """The rate as text, in one of four styles:

    - long: "62% (95% CI 50-73%, n=60)" (a sentence's figure)
    - short: "62% [50-73]" (a table cell)
    - note: "95% CI 50-73%, n=60" (the evidence after a sentence that states the value)
    - interval: "50-73%" (a column of its own)

    Without data (no value, or n=0): "n/a (n=0)" long, "n=0" as a note, "-" otherwise. Without an interval its
    part is left out, without a count the "n=" part."""
    if not rate.known:
        return {"long": f"n/a (n={rate.n or 0})", "note": f"n={rate.n or 0}"}.get(style, "-")
    ci = f"{_pct(rate.lo)}-{_pct(rate.hi)}" if rate.has_interval else ""
    if style == "interval":
        return f"{ci}%" if ci else "-"
    value = f"{_pct(rate.value)}%"
    if style == "short":
        return f"{value} [{ci}]" if ci else value
    note = ", ".join(([f"95% CI {ci}%"] if ci else []) + ([f"n={rate.n}"] if rate.n is not None else []))
    if style == "note":
        return note
    return f"{value} ({note})" if note else value
