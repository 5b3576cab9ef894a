"""ZeroGPU budgets for batch work: how an evaluation splits into chunks that each fit one GPU slot, and whether a
whole comparison (the Start tab) fits a visitor's quota. Arithmetic only, over lab.ui.spaces's slot length and
per-answer rate: no gradio, no models, no workspace.

A visitor's ZeroGPU time is limited (a free Hugging Face account gets about 5 minutes a day, PRO about 25), and the
Space cannot read what is left, so the quota assumed here is LAB_ZEROGPU_QUOTA_S (default DEFAULT_QUOTA_S). Off
ZeroGPU nothing is split or refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from lab.ui.spaces import LOAD_OVERHEAD_S, ZeroGpuError, answers_duration, clamp_duration, on_zero_gpu, slot_seconds

log = logging.getLogger(__name__)

QUOTA_ENV = "LAB_ZEROGPU_QUOTA_S"
DEFAULT_QUOTA_S = 300  # a free account's daily ZeroGPU quota (about 5 minutes); PRO accounts have about 1500 s


def quota_seconds(env: Mapping[str, str] | None = None) -> int:
    """The GPU seconds one visitor may use (LAB_ZEROGPU_QUOTA_S, else DEFAULT_QUOTA_S)."""
    env = os.environ if env is None else env
    raw = (env.get(QUOTA_ENV) or "").strip()
    try:
        return max(1, int(float(raw))) if raw else DEFAULT_QUOTA_S
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %d", QUOTA_ENV, raw, DEFAULT_QUOTA_S)
        return DEFAULT_QUOTA_S


def answers_per_slot(batch_size: int, env: Mapping[str, str] | None = None) -> int:
    """How many answers (whole batches) one slot holds after loading the model; ZeroGpuError when not one batch."""
    rate = answers_duration(1) - answers_duration(0)
    room = int((slot_seconds(env) - answers_duration(0)) / rate) if rate > 0 else 0
    fits = room // max(1, batch_size) * max(1, batch_size)
    if room < 1:
        raise ZeroGpuError(
            f"not one answer fits a ZeroGPU slot of {slot_seconds(env)} s (loading the model takes about "
            f"{answers_duration(0):.0f} s): set LAB_ZEROGPU_SLOT_S higher"
        )
    if fits < 1:
        raise ZeroGpuError(
            f"a batch of {batch_size} answers does not fit one ZeroGPU slot of {slot_seconds(env)} s: "
            f"set the batch size to {max(1, room)} or less"
        )
    return fits


def answer_chunks(n_answers: int, batch_size: int, env: Mapping[str, str] | None = None) -> list[int]:
    """The answers each GPU call gives: on ZeroGPU, slot-sized chunks (the last one shorter); elsewhere one
    chunk with everything."""
    if n_answers <= 0:
        return []
    if not on_zero_gpu(env):
        return [n_answers]
    per = answers_per_slot(batch_size, env)
    return [per] * (n_answers // per) + ([n_answers % per] if n_answers % per else [])


def chunks_seconds(chunks: list[int], env: Mapping[str, str] | None = None) -> int:
    """GPU seconds those chunks request (each one slot, loading included)."""
    return sum(clamp_duration(answers_duration(n), env) for n in chunks)


def refuse_long_evaluation(
    n_questions: int, n_contestants: int, batch_size: int, saved: int = 0, env: Mapping[str, str] | None = None
) -> list[int]:
    """The chunks of an evaluation of `n_questions` x `n_contestants` answers (`saved` of them already answered);
    on ZeroGPU, ZeroGpuError when they need more GPU time than the quota, naming how many questions fit."""
    left = max(0, n_questions * n_contestants - saved)
    chunks = answer_chunks(left, batch_size, env)
    if not on_zero_gpu(env):
        return chunks
    need, quota = chunks_seconds(chunks, env), quota_seconds(env)
    if need <= quota:
        return chunks
    fits = _questions_that_fit(n_contestants, batch_size, quota, env)
    advice = (
        f"at most {fits} questions fit: set 'Only the first N questions' to {fits}"
        if fits
        else "not one question fits: pick fewer contestants"
    )
    raise ZeroGpuError(
        f"{n_questions} questions x {n_contestants} contestants ({left} answers to give) need about {need} s of "
        f"ZeroGPU time in {len(chunks)} slot(s), more than a visitor's quota of {quota} s ({QUOTA_ENV}): {advice}, "
        "or run it on a Space with a dedicated GPU or on your own machine"
    )


def _questions_that_fit(n_contestants: int, batch_size: int, quota: int, env) -> int:
    lo, hi = 0, 100_000  # the largest question count whose chunks fit the quota (cost grows with the count)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if chunks_seconds(answer_chunks(mid * n_contestants, batch_size, env), env) <= quota:
            lo = mid
        else:
            hi = mid - 1
    return lo


def comparison_seconds(
    training_s: Mapping[str, float], n_questions: int, n_contestants: int, batch_size: int, env=None
) -> int:
    """GPU seconds of a whole comparison: each training (its estimate plus loading, in one slot) and each
    contestant's evaluation (its chunks)."""
    train = sum(clamp_duration(s + LOAD_OVERHEAD_S, env) for s in training_s.values())
    return train + n_contestants * chunks_seconds(answer_chunks(n_questions, batch_size, env), env)


def refuse_long_comparison(
    training_s: Mapping[str, float],
    n_questions: int,
    n_contestants: int,
    batch_size: int,
    n_untrained: int = 0,
    env: Mapping[str, str] | None = None,
) -> None:
    """On ZeroGPU, ZeroGpuError before a whole comparison starts when its trainings (`training_s`: estimated
    seconds per training still to run) and answers need more than the quota; the message says what would fit
    (fewer questions, or only the `n_untrained` contestants that need no training). Elsewhere, or when it fits,
    nothing."""
    if not on_zero_gpu(env):
        return
    quota = quota_seconds(env)
    need = comparison_seconds(training_s, n_questions, n_contestants, batch_size, env)
    if need <= quota:
        return
    fits = [q for q in range(n_questions, 0, -1)
            if comparison_seconds(training_s, q, n_contestants, batch_size, env) <= quota]  # fmt: skip
    advice = [f"ask {fits[0]} questions or fewer"] if fits else []
    untrained = [q for q in range(n_questions, 0, -1) if comparison_seconds({}, q, n_untrained, batch_size, env)
                 <= quota] if training_s and n_untrained else []  # fmt: skip
    if untrained:
        advice.append(f"skip the contestants that need training ({untrained[0]} questions fit then)")
    advice = advice or ["pick fewer contestants"]
    trained = ", ".join(f"{k} ~{v:.0f} s" for k, v in training_s.items()) or "none"
    raise ZeroGpuError(
        f"this comparison needs about {need} s of ZeroGPU time (training: {trained}; {n_questions} questions x "
        f"{n_contestants} contestants), more than a visitor's quota of {quota} s ({QUOTA_ENV}): "
        f"{' or '.join(advice)}, or run it on a Space with a dedicated GPU or on your own machine"
    )
