"""Blind battles: pick two contestants on random sides, and store every vote in SQLite.

A vote row keeps the question, both full answers, both contestant ids, the settings and whether it was blind,
so ratings can be recomputed at any time. Only blind votes are rated (see leaderboard). No gradio here.
"""

from __future__ import annotations

import random
import time
from typing import Any

from lab import db

WINNERS = ("a", "b", "tie", "both_bad")
LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}


def pick_pair(contestants: list[str], rng: random.Random | None = None) -> tuple[str, str]:
    """Two different contestants in random order (side A, side B)."""
    pool = list(dict.fromkeys(c for c in contestants if c))
    if len(pool) < 2:
        raise ValueError(f"a battle needs at least two different contestants; got {pool or 'none'}")
    a, b = (rng or random.Random()).sample(pool, 2)
    return a, b


def record_vote(
    db_path,
    question: str,
    system_a: str,
    system_b: str,
    answer_a: str,
    answer_b: str,
    winner: str,
    blind: bool = True,
    settings: dict[str, Any] | None = None,
) -> int:
    """Store one vote; returns its id. Raises ValueError naming a bad winner or an empty answer."""
    if winner not in WINNERS:
        raise ValueError(f"winner {winner!r} is not one of {', '.join(WINNERS)}")
    if not question.strip() or not system_a or not system_b:
        raise ValueError("a vote needs a question and both contestant ids")
    values = (time.time(), question, system_a, system_b, answer_a, answer_b, winner, int(blind))
    db.init(db_path)
    with db.connect(db_path) as conn:
        cur = conn.execute(
            "INSERT INTO votes (created_at, question, system_a, system_b, answer_a, answer_b, winner, blind, settings)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, db.dumps(settings or {})),
        )
        return int(cur.lastrowid)


def load_votes(db_path, blind_only: bool = True) -> list[dict[str, Any]]:
    """Votes oldest first (blind ones only by default)."""
    db.init(db_path)
    where = "WHERE blind = 1" if blind_only else ""
    return db.rows(db_path, f"SELECT * FROM votes {where} ORDER BY id")
