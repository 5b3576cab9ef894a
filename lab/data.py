"""Fine-tuning data: read, validate, normalise, split (placeholder until its issue lands)."""

from __future__ import annotations


def ensure_sample_domain(ws) -> None:
    pass
