"""Plumbing shared by the tabs: how generation events are scheduled.

Interactive answers (side by side, battles) share one concurrency group and batch work (evaluations, the Start
tab's comparison) another, each `gen_limit()` wide: on a CPU one generation at a time per group (more only
oversubscribes the cores and slows every event, cheap ones included; measured in README "Reliability"), on CUDA
two. `LAB_GEN_CONCURRENCY` overrides it. Cheap read-only events use `concurrency_limit=None` (never queued).
"""

from __future__ import annotations

import os

from lab.errors import LabError

CONCURRENCY_ENV = "LAB_GEN_CONCURRENCY"
INTERACTIVE = "gen"
BATCH = "batch"


def gen_limit() -> int:
    """How many generation events of one group run at once (LAB_GEN_CONCURRENCY, else 1 on CPU, 2 on CUDA)."""
    value = os.environ.get(CONCURRENCY_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise LabError(f"{CONCURRENCY_ENV}={value!r} must be a positive integer (e.g. 1)")
        return int(value)
    from lab.models import device

    return 2 if device() == "cuda" else 1


def generation(group: str = INTERACTIVE) -> dict:
    """Event keyword arguments for a generation event of `group` (INTERACTIVE or BATCH)."""
    return {"concurrency_id": group, "concurrency_limit": gen_limit()}
