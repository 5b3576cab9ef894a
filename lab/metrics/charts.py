"""Bars with 95% interval whiskers, the one drawing rule for rate charts (the Start tab, the Arena evaluation, the
evidence pack's images).

Draws onto a matplotlib Axes it is given (the caller imports matplotlib and owns the figure); values are `Rate`s
drawn in percent. No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.metrics.rate import Rate


def ci_whiskers(rates: Sequence[Rate]) -> list[list[float]]:
    """[below, above]: each rate's distance in percentage points from its value to its interval's ends (0 where
    there is no interval or no value, never negative), in matplotlib's `xerr` / `yerr` layout."""
    below, above = [], []
    for r in rates:
        ok = r.value is not None and r.has_interval
        below.append(100 * max(0.0, r.value - r.lo) if ok else 0.0)
        above.append(100 * max(0.0, r.hi - r.value) if ok else 0.0)
    return [below, above]


def ci_bars(ax, positions: Sequence[float], rates: Sequence[Rate], *, horizontal: bool = False, width: float = 0.8,
            **style):  # fmt: skip
    """One bar per rate at `positions`, height (or length, `horizontal`) in percent, with its interval as a
    whisker; a rate without a value draws as 0. `style` goes to matplotlib (color, label, alpha, ...). Returns
    the BarContainer."""
    values = [100 * (r.value or 0) for r in rates]
    whiskers = ci_whiskers(rates)
    if horizontal:
        return ax.barh(positions, values, height=width, xerr=whiskers, capsize=3, **style)
    return ax.bar(positions, values, width, yerr=whiskers, capsize=2, **style)
