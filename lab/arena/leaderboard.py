"""Leaderboard from stored votes: Bradley-Terry ratings, seeded bootstrap 95% intervals, ranks, win rates.

Bradley-Terry is fitted as a logistic regression on the base-10 scale (P(i beats j) = 1 / (1 + 10^(t_j - t_i))),
ties and "both are bad" counting half a win for each side; ratings are 400 * t + 1000 with mean 1000. A tiny
L2 penalty keeps ratings finite for a contestant that never lost or never won. Rank = 1 + the number of
contestants whose lower bound is above this one's upper bound. Pure numpy; no database access here.
"""

from __future__ import annotations

import math
import random
from typing import Any

from lab.metrics.stats import interval

SCALE, BASE_RATING, L2 = 400.0, 1000.0, 1e-3


def _rows(votes: list[dict[str, Any]], names: list[str]) -> list[tuple[int, int, float]]:
    """(index of A, index of B, score of A: 1, 0 or 0.5)."""
    pos = {n: i for i, n in enumerate(names)}
    score = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
    return [(pos[v["system_a"]], pos[v["system_b"]], score[v["winner"]]) for v in votes]


def fit_bt(rows: list[tuple[int, int, float]], n: int, iters: int = 50):
    """Newton's method on the penalised logistic log-likelihood; returns centred strengths (base-10 scale)."""
    import numpy as np

    theta = np.zeros(n)
    if not rows:
        return theta
    ia, ib, y = (np.array(col) for col in zip(*rows, strict=True))
    ln10 = math.log(10)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-ln10 * (theta[ia] - theta[ib])))
        r = ln10 * (y - p)
        grad = np.bincount(ia, r, n) - np.bincount(ib, r, n) - L2 * theta
        w = ln10**2 * p * (1 - p)
        hess = np.zeros((n, n))
        np.add.at(hess, (ia, ia), w)
        np.add.at(hess, (ib, ib), w)
        np.add.at(hess, (ia, ib), -w)
        np.add.at(hess, (ib, ia), -w)
        step = np.linalg.solve(hess + L2 * np.eye(n), grad)
        theta = theta + step
        if np.abs(step).max() < 1e-9:
            break
    return theta - theta.mean()


def _win_matrix(rows, names: list[str]) -> list[list[float | None]]:
    n = len(names)
    won = [[0.0] * n for _ in range(n)]
    games = [[0] * n for _ in range(n)]
    for a, b, s in rows:
        won[a][b] += s
        won[b][a] += 1 - s
        games[a][b] += 1
        games[b][a] += 1
    return [[won[i][j] / games[i][j] if games[i][j] else None for j in range(n)] for i in range(n)]


def leaderboard(votes: list[dict[str, Any]], bootstrap: int = 100, seed: int = 0) -> dict[str, Any]:
    """{"rows": [{name, rating, ci, rank, votes, wins, ties}...] best first, "names", "win_rate", "tie_rate", "n"}."""
    names = sorted({v["system_a"] for v in votes} | {v["system_b"] for v in votes})
    rows = _rows(votes, names)
    theta = fit_bt(rows, len(names))
    rng = random.Random(seed)
    samples = [fit_bt(rng.choices(rows, k=len(rows)), len(names)) for _ in range(bootstrap if rows else 0)]
    out = []
    for i, name in enumerate(names):
        lo, hi = interval([float(s[i]) for s in samples] or [float(theta[i])])
        out.append({"name": name, "rating": _elo(theta[i]), "ci": [_elo(lo), _elo(hi)]} | _counts(rows, i))
    for row in out:
        row["rank"] = 1 + sum(other["ci"][0] > row["ci"][1] for other in out)
    out.sort(key=lambda r: (r["rank"], -r["rating"]))
    ties = sum(s == 0.5 for _, _, s in rows)
    order = [names.index(r["name"]) for r in out]
    matrix = _win_matrix(rows, names)
    return {
        "rows": out,
        "names": [names[i] for i in order],
        "win_rate": [[matrix[i][j] for j in order] for i in order],
        "tie_rate": ties / len(rows) if rows else None,
        "n": len(rows),
    }


def _elo(t: float) -> float:
    return round(SCALE * float(t) + BASE_RATING, 1)


def _counts(rows, i: int) -> dict[str, float]:
    mine = [(a, s) for a, b, s in rows if i in (a, b)]
    wins = sum(s if a == i else 1 - s for a, s in mine if s != 0.5)
    return {"votes": len(mine), "wins": wins, "ties": sum(s == 0.5 for _, s in mine)}
