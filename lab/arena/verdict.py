"""A plain-language verdict computed from an evaluation's numbers, stating evidence and uncertainty.

The best contestant on correct answers and the best on hallucination are named, each compared with its
runner-up; when the evaluation carries `contestants` metadata (which fine-tuned runs were trained for RAG), one
sentence says what fine-tuning for RAG changed against plain fine-tuning. Differences between contestants are
paired (same questions) and carry seeded bootstrap 95% intervals; a difference whose interval contains zero is
reported as "cannot be told apart", never as a win. `headline` answers the lab's question for the evaluation in
two to four plain sentences (the Start tab shows it first; `verdict` is the detailed list). No canned
conclusions: every sentence is built from the rates, counts and intervals of this evaluation.
"""

from __future__ import annotations

from typing import Any

from lab.metrics.stats import bootstrap_ci

SMALL_N = 30
MIN_PAIRED = 10  # below this many paired questions a bootstrap interval can collapse to a point: no claim


def _flags(result: dict[str, Any], system: str, answerable: bool, category: str) -> dict[str, float]:
    return {
        r["id"]: float(r["category"] == category)
        for r in result["questions"]
        if r["system"] == system and r["answerable"] == answerable
    }


def paired_diff(a: dict[str, float], b: dict[str, float], n: int = 1000, seed: int = 0) -> tuple | None:
    """Mean of a - b over shared question ids, with a seeded paired bootstrap 95% interval."""
    ids = sorted(set(a) & set(b))
    if not ids:
        return None
    diffs = [a[i] - b[i] for i in ids]
    lo, hi = bootstrap_ci(diffs, n, seed)  # the mean of paired differences, resampled by question
    return sum(diffs) / len(diffs), lo, hi, len(ids)


def _pts(x: float) -> str:
    return f"{100 * x:+.0f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _compare(result, best: str, other: str, answerable: bool, cat: str, more: str, less: str) -> str:
    d = paired_diff(_flags(result, best, answerable, cat), _flags(result, other, answerable, cat))
    if d is None:
        return ""
    diff, lo, hi, n = d
    ci = f"95% CI {_pts(lo)} to {_pts(hi)} points, {n} questions"
    if lo > 0 or hi < 0:
        word = more if diff > 0 else less
        return f"**{best}** {word} **{other}** by {abs(100 * diff):.0f} points ({ci})."
    gap = f"{_pts(diff)} points, {ci}"
    return f"**{other}** and **{best}** cannot be told apart: the difference could be chance ({gap})."


def _section(result, systems, rate: str, answerable: bool, cat: str, lowest: bool, words: tuple) -> list[str]:
    """The best contestant on `rate` with its interval, then how it compares with the runner-up (paired)."""
    scored = sorted((s for s in systems if s.get(rate) is not None), key=lambda s: s[rate], reverse=not lowest)
    if not scored:
        return []
    best = scored[0]
    n = best["n_answerable" if answerable else "n_unanswerable"]
    if len(scored) > 1 and all(s[rate] == best[rate] for s in scored):
        return [f"{words[0].rstrip(':')}: no difference, every contestant is at {_pct(best[rate])} (n={n})."]
    ci = best.get(f"{rate}_ci") or [None, None]
    lead = words[0] if len(scored) > 1 else words[0].replace("Most", "").replace("Fewest", "").strip().capitalize()
    lines = [f"{lead} **{best['system']}**: {_pct(best[rate])} (95% CI {_pct(ci[0])}-{_pct(ci[1])}, n={n})."]
    if len(scored) > 1:
        lines.append(_compare(result, best["system"], scored[1]["system"], answerable, cat, *words[1:]))
    return [line for line in lines if line]


def _rag_training(result: dict[str, Any], systems) -> list[str]:
    """One sentence on what fine-tuning for RAG changed against plain fine-tuning (same index, both present)."""
    info = result.get("contestants") or {}
    ids = [s["system"] for s in systems]
    pairs = [
        (a, b)
        for a in ids
        for b in ids
        if info.get(a, {}).get("rag_trained") and not info.get(b, {}).get("rag_trained")
        and info.get(a, {}).get("kind") == info.get(b, {}).get("kind") == "ft+rag"
        and info[a].get("index") == info[b].get("index")
    ]  # fmt: skip
    if not pairs:
        return []
    a, b = pairs[0]
    parts = []
    for answerable, cat, what in ((True, "correct", "correct answers"), (False, "hallucination", "hallucinations")):
        d = paired_diff(_flags(result, a, answerable, cat), _flags(result, b, answerable, cat))
        if d is not None:
            parts.append(f"{what} {_pts(d[0])} points (95% CI {_pts(d[1])} to {_pts(d[2])})")
    if not parts:
        return []
    return [f"Fine-tuning for RAG (**{a}** against plain fine-tuning **{b}**) changed {' and '.join(parts)}."]


def verdict(result: dict[str, Any]) -> str:
    """Markdown: who answers most answerable questions correctly, who hallucinates least, and how sure we are."""
    systems = result.get("systems") or []
    if not systems:
        return "No answers yet: run an evaluation with at least one contestant."
    lines = _section(
        result,
        systems,
        "correct_rate",
        True,
        "correct",
        False,
        (
            "Most correct answers:",
            "answers more questions correctly than",
            "answers fewer questions correctly than",
        ),
    )
    lines += _section(
        result,
        systems,
        "hallucination_rate",
        False,
        "hallucination",
        True,
        ("Fewest hallucinations on unanswerable questions:", "hallucinates more than", "hallucinates less than"),
    )
    lines += _rag_training(result, systems)
    lines += _groups(systems)
    n = min(s["n"] for s in systems)
    if n < SMALL_N:
        lines.append(f"Only {n} questions per contestant: intervals are wide, treat differences as indicative.")
    if result.get("status") == "cancelled":
        lines.append("The run was cancelled: these numbers cover only the questions answered before that.")
    return "\n".join(f"- {line}" for line in lines)


def _groups(systems) -> list[str]:
    out = []
    for s in systems:
        groups = {g: v.get("correct_rate") for g, v in (s.get("by_group") or {}).items()}
        shown = ", ".join(f"{g} {_pct(r)}" for g, r in groups.items() if r is not None)
        if shown:
            out.append(f"**{s['system']}** answered correctly by question group: {shown}.")
    return out


def _paired(result, a: str, b: str, answerable: bool, cat: str) -> tuple | None:
    return paired_diff(_flags(result, a, answerable, cat), _flags(result, b, answerable, cat))


def _sure(lo: float, hi: float, n: int) -> str:
    """How sure a paired difference is: real only when its interval excludes zero and it rests on MIN_PAIRED or
    more questions. On fewer, a bootstrap interval can collapse to a point, so none is printed beside "too few"."""
    ci = f"95% CI {_pts(lo)} to {_pts(hi)}"
    if n < MIN_PAIRED:
        return f"too few questions ({n}) to tell (at least {MIN_PAIRED} are needed for a reliable interval)"
    return f"a real difference ({ci})" if lo > 0 or hi < 0 else f"possibly chance ({ci})"


def _lead(result, scored: list[dict], key: tuple[str, bool, str], words: tuple[str, str, str]) -> str:
    """The best contestant on a rate, and whether the paired evidence separates it from the runner-up; a lone
    contestant gets its rate alone. `words`: (what the best did, what a lone one did, the gap's preposition)."""
    (rate, answerable, cat), (what, alone, than) = key, words
    best, pool = scored[0], "answerable" if answerable else "unanswerable"
    share = f"{_pct(best[rate])} of {best['n_' + pool]} {pool} questions"
    if len(scored) == 1:
        return f"**{best['system']}** {alone} {share}."
    d = _paired(result, best["system"], scored[1]["system"], answerable, cat)
    if d is None:
        return f"**{best['system']}** {what} ({share})."
    diff, lo, hi, n = d
    other = f"**{scored[1]['system']}** ({_pct(scored[1][rate])})"
    if round(100 * diff) == 0:
        return f"**{best['system']}** {what} ({share}), level with {other} (95% CI {_pts(lo)} to {_pts(hi)})."
    gap = f"{abs(100 * diff):.0f} points {than} {other}"
    return f"**{best['system']}** {what} ({share}), {gap}: {_sure(lo, hi, n)}."


def _ft_vs_rag(result, systems) -> list[str]:
    """Fine-tuning alone against RAG alone (the lab's first question), when both are in the evaluation."""
    info = result.get("contestants") or {}
    by_kind = {info.get(s["system"], {}).get("kind"): s for s in systems if s.get("correct_rate") is not None}
    ft, rag = by_kind.get("ft"), by_kind.get("rag")
    d = _paired(result, rag["system"], ft["system"], True, "correct") if ft and rag else None
    if d is None:
        return []
    diff, lo, hi, n = d
    rates = f"({_pct(rag['correct_rate'])} against {_pct(ft['correct_rate'])})"
    if round(100 * diff) == 0:
        return [f"Fine-tune or RAG? **{rag['system']}** and **{ft['system']}** answered as many questions correctly "
                f"{rates} (95% CI {_pts(lo)} to {_pts(hi)})."]  # fmt: skip
    first, second = (rag, ft) if diff > 0 else (ft, rag)
    return [
        f"Fine-tune or RAG? **{first['system']}** answered {abs(100 * diff):.0f} points more questions correctly "
        f"than **{second['system']}** ({_pct(first['correct_rate'])} against {_pct(second['correct_rate'])}), "
        f"{_sure(lo, hi, n)}."
    ]


def headline(result: dict[str, Any]) -> str:
    """The lab's question answered for this evaluation in plain sentences: fine-tuning alone against RAG alone,
    who answers most questions correctly and whether that beats the next best beyond chance, who makes up fewest
    answers when the documents lack one, and what fine-tuning for RAG changed (when both kinds are present)."""
    systems = result.get("systems") or []
    correct = sorted((s for s in systems if s.get("correct_rate") is not None), key=lambda s: -s["correct_rate"])
    if not correct:
        return ""
    lines = _ft_vs_rag(result, systems)
    words = ("answered the most correctly", "answered correctly", "ahead of")
    lines.append(_lead(result, correct, ("correct_rate", True, "correct"), words))
    made_up = sorted((s for s in systems if s.get("hallucination_rate") is not None),
                     key=lambda s: s["hallucination_rate"])  # fmt: skip
    if made_up:
        words = ("made up the fewest answers when the documents do not hold one", "made up an answer to", "fewer than")
        lines.append(_lead(result, made_up, ("hallucination_rate", False, "hallucination"), words))
    lines += _rag_training(result, systems)
    if result.get("status") == "cancelled":
        lines.append("The run was cancelled: these numbers cover only the questions answered before that.")
    return "\n\n".join(lines)
