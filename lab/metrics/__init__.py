"""Scoring: pure functions of (prediction, reference, contexts), plus local `evaluate` modules loaded by path.

Owns: answer normalisation, answer categories (correct / wrong / skipped, I-don't-know / hallucination),
exact match, token F1, ROUGE-L, groundedness in passages, retrieval hit rate and reciprocal rank, percentiles and
seeded bootstrap intervals (`lab.metrics.scoring`, `lab.metrics.stats`). `load(name)` loads one of the
`evaluate` modules shipped in this folder by path (the hub is never contacted). Must not: load models, touch
the disk outside this folder, or import anything above the metrics layer.
"""

from __future__ import annotations

from pathlib import Path

from lab.errors import LabError

HERE = Path(__file__).resolve().parent
MODULES = ("expert_qa",)


def module_path(name: str) -> Path:
    """Path of a local evaluate module script (`lab/metrics/NAME/NAME.py`)."""
    if name not in MODULES:
        raise LabError(f"metric {name!r} is not shipped; use one of {', '.join(MODULES)}")
    return HERE / name / f"{name}.py"


def load(name: str = "expert_qa"):
    """`evaluate.load` of a local metric module by path (works offline)."""
    import evaluate

    return evaluate.load(str(module_path(name)))
