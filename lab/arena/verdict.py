"""A plain-language verdict computed from an evaluation's numbers, stating evidence and uncertainty.

The best contestant on correct answers and the best on hallucination are named, each compared with its
runner-up; when the evaluation carries `contestants` metadata (which fine-tuned runs were trained for RAG), one
sentence says what fine-tuning for RAG changed against plain fine-tuning. Differences between contestants are
paired (same questions) and carry seeded bootstrap 95% intervals; a difference whose interval contains zero is
reported as "cannot be told apart", never as a win. `findings` is the detailed list and `headline_findings`
answers the lab's question in two to four sentences (the Start tab shows it first); each is a list of `Finding`s
that render as plain text (CLI) or Markdown (UI), and `verdict` / `headline` are their Markdown renderings. No
canned conclusions: every sentence is built from the rates, counts and intervals of this evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.metrics.rate import Rate, format_rate
from lab.metrics.stats import bootstrap_ci

SMALL_N = 30
MIN_PAIRED = 10  # below this many paired questions a bootstrap interval can collapse to a point: no claim


@dataclass(frozen=True)
class Finding:
    """One sentence of a verdict. `parts` alternate text and contestant names (text, name, text, ...; names are
    bold in Markdown); `note` is the evidence written after the sentence in brackets (an interval and a count);
    `rate` the rate the sentence states, `diff` the paired difference it rests on (mean, low, high, questions)."""

    kind: str
    parts: tuple[str, ...]
    note: str = ""
    rate: Rate | None = None
    diff: tuple[float, float, float, int] | None = None

    def sentence(self, markdown: bool = False) -> str:
        """The sentence without its note and final full stop."""
        return "".join(f"**{p}**" if i % 2 and markdown else p for i, p in enumerate(self.parts))

    def render(self, markdown: bool = False) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{self.sentence(markdown)}{note}."

    @property
    def text(self) -> str:
        return self.render(markdown=False)

    @property
    def markdown(self) -> str:
        return self.render(markdown=True)


def _finding(kind: str, *parts: str, note: str = "", rate: Rate | None = None, diff=None) -> Finding:
    return Finding(kind, tuple(parts), note, rate, diff)


def render_list(findings: list[Finding], markdown: bool = False, small_notes: bool = False) -> str:
    """One "- " line per finding; plain text has no markup. `small_notes` (Markdown): the note on a small second
    line under its sentence."""
    if small_notes and markdown:
        return "\n".join(
            f"- {f.sentence(True)}.  \n  <small>{f.note}</small>" if f.note else f"- {f.markdown}" for f in findings
        )
    return "\n".join(f"- {f.render(markdown)}" for f in findings)


def render_paragraphs(findings: list[Finding], markdown: bool = False) -> str:
    """The findings as paragraphs separated by a blank line (the headline's form)."""
    return "\n\n".join(f.render(markdown) for f in findings)


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
    return "n/a" if x is None else format_rate(Rate(x), "short")


def _compare(result, best: str, other: str, answerable: bool, cat: str, more: str, less: str) -> list[Finding]:
    d = paired_diff(_flags(result, best, answerable, cat), _flags(result, other, answerable, cat))
    if d is None:
        return []
    diff, lo, hi, n = d
    ci = f"95% CI {_pts(lo)} to {_pts(hi)} points, {n} questions"
    if lo > 0 or hi < 0:
        word = more if diff > 0 else less
        return [_finding("difference", "", best, f" {word} ", other, f" by {abs(100 * diff):.0f} points", note=ci,
                         diff=d)]  # fmt: skip
    gap = f"{_pts(diff)} points, {ci}"
    return [
        _finding("tie", "", other, " and ", best, " cannot be told apart: the difference could be chance", note=gap,
                 diff=d)
    ]  # fmt: skip


def _section(result, systems, rate: str, answerable: bool, cat: str, lowest: bool, words: tuple) -> list[Finding]:
    """The best contestant on `rate` with its interval, then how it compares with the runner-up (paired)."""
    scored = sorted((s for s in systems if s.get(rate) is not None), key=lambda s: s[rate], reverse=not lowest)
    if not scored:
        return []
    best = scored[0]
    n = best["n_answerable" if answerable else "n_unanswerable"]
    if len(scored) > 1 and all(s[rate] == best[rate] for s in scored):
        same = f"{words[0].rstrip(':')}: no difference, every contestant is at {_pct(best[rate])}"
        return [_finding(rate, same, note=f"n={n}", rate=Rate.of(best, rate, n))]
    found = Rate.of(best, rate, n)
    lead = words[0] if len(scored) > 1 else words[0].replace("Most", "").replace("Fewest", "").strip().capitalize()
    lines = [_finding(rate, f"{lead} ", best["system"], f": {_pct(found.value)}", note=format_rate(found, "note"),
                      rate=found)]  # fmt: skip
    if len(scored) > 1:
        lines += _compare(result, best["system"], scored[1]["system"], answerable, cat, *words[1:])
    return lines


def _rag_training(result: dict[str, Any], systems) -> list[Finding]:
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
    changed = f") changed {' and '.join(parts)}"
    return [_finding("rag_training", "Fine-tuning for RAG (", a, " against plain fine-tuning ", b, changed)]


def findings(result: dict[str, Any]) -> list[Finding]:
    """Who answers most answerable questions correctly, who hallucinates least, and how sure we are."""
    systems = result.get("systems") or []
    if not systems:
        return [_finding("empty", "No answers yet: run an evaluation with at least one contestant")]
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
        lines.append(
            _finding("small_sample", f"Only {n} questions per contestant: intervals are wide, treat differences "
                     "as indicative")
        )  # fmt: skip
    if result.get("status") == "cancelled":
        lines.append(_cancelled())
    return lines


def _cancelled() -> Finding:
    return _finding("cancelled", "The run was cancelled: these numbers cover only the questions answered before that")


def verdict(result: dict[str, Any]) -> str:
    """`findings` as a Markdown list (stored with every result as its `verdict`)."""
    found = findings(result)
    if found and found[0].kind == "empty":
        return found[0].text
    return render_list(found, markdown=True)


def verdict_text(result: dict[str, Any]) -> str:
    """`findings` as plain text, one "- " line each (the CLI's form)."""
    found = findings(result)
    return found[0].text if found and found[0].kind == "empty" else render_list(found)


def _groups(systems) -> list[Finding]:
    out = []
    for s in systems:
        groups = {g: v.get("correct_rate") for g, v in (s.get("by_group") or {}).items()}
        shown = ", ".join(f"{g} {_pct(r)}" for g, r in groups.items() if r is not None)
        if shown:
            out.append(_finding("groups", "", s["system"], f" answered correctly by question group: {shown}"))
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


def _lead(result, scored: list[dict], key: tuple[str, bool, str], words: tuple[str, str, str]) -> Finding:
    """The best contestant on a rate, and whether the paired evidence separates it from the runner-up; a lone
    contestant gets its rate alone. `words`: (what the best did, what a lone one did, the gap's preposition)."""
    (rate, answerable, cat), (what, alone, than) = key, words
    best, pool = scored[0], "answerable" if answerable else "unanswerable"
    found = Rate.of(best, rate, best["n_" + pool])
    share = f"{_pct(best[rate])} of {best['n_' + pool]} {pool} questions"
    if len(scored) == 1:
        return _finding(rate, "", best["system"], f" {alone} {share}", rate=found)
    d = _paired(result, best["system"], scored[1]["system"], answerable, cat)
    if d is None:
        return _finding(rate, "", best["system"], f" {what} ({share})", rate=found)
    diff, lo, hi, n = d
    other = (scored[1]["system"], f" ({_pct(scored[1][rate])})")
    if round(100 * diff) == 0:
        return _finding(rate, "", best["system"], f" {what} ({share}), level with ", other[0],
                        f"{other[1]} (95% CI {_pts(lo)} to {_pts(hi)})", rate=found, diff=d)  # fmt: skip
    gap = f"{abs(100 * diff):.0f} points {than} "
    return _finding(rate, "", best["system"], f" {what} ({share}), {gap}", other[0], f"{other[1]}: {_sure(lo, hi, n)}",
                    rate=found, diff=d)  # fmt: skip


def _ft_vs_rag(result, systems) -> list[Finding]:
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
        return [_finding("ft_vs_rag", "Fine-tune or RAG? ", rag["system"], " and ", ft["system"],
                         f" answered as many questions correctly {rates} (95% CI {_pts(lo)} to {_pts(hi)})",
                         diff=d)]  # fmt: skip
    first, second = (rag, ft) if diff > 0 else (ft, rag)
    said = f" ({_pct(first['correct_rate'])} against {_pct(second['correct_rate'])}), {_sure(lo, hi, n)}"
    return [_finding("ft_vs_rag", "Fine-tune or RAG? ", first["system"],
                     f" answered {abs(100 * diff):.0f} points more questions correctly than ", second["system"], said,
                     diff=d)]  # fmt: skip


def headline_findings(result: dict[str, Any]) -> list[Finding]:
    """The lab's question answered for this evaluation: fine-tuning alone against RAG alone, who answers most
    questions correctly and whether that beats the next best beyond chance, who makes up fewest answers when the
    documents lack one, and what fine-tuning for RAG changed (when both kinds are present)."""
    systems = result.get("systems") or []
    correct = sorted((s for s in systems if s.get("correct_rate") is not None), key=lambda s: -s["correct_rate"])
    if not correct:
        return []
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
        lines.append(_cancelled())
    return lines


def headline(result: dict[str, Any]) -> str:
    """`headline_findings` as Markdown paragraphs (the Start tab's first answer)."""
    return render_paragraphs(headline_findings(result), markdown=True)
