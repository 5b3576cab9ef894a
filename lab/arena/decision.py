"""The decision card: the criteria for choosing between fine-tuning and RAG, measured from an evaluation's rows.

`card(result, ...)` builds one row per criterion (where the knowledge lives, traceability, cost, made-up answers,
and the update test and learning curve when they were run), one cell per contestant with its value and 95%
interval, the row's winner only when the paired interval against the runner-up excludes zero, a plain sentence per
row, a recommendation built only from the rows, and a sample-size note. Pure: every number is recomputed from the
per-question rows and the measured costs passed in (`gather_costs` reads those from the workspace). No gradio here.
"""

from __future__ import annotations

import math
import random
from typing import Any

from lab.arena.scoring import idk_curve
from lab.arena.verdict import MIN_PAIRED, paired_diff
from lab.data.evalset import GENERATED, HELD_OUT
from lab.metrics import scoring as sc
from lab.metrics.stats import bootstrap_ci, interval, percentile

TAUGHT, DOCUMENTS, UNANSWERABLE = "taught", "documents", "unanswerable"
PLACES = {  # place: (row title, what the row means for the choice)
    TAUGHT: ("Correct on facts taught in the training data", "facts the training data holds: fine-tuning can learn"),
    DOCUMENTS: ("Correct on facts only in the documents", "facts only the documents hold: only reading finds them"),
    UNANSWERABLE: ('Says "I don\'t know" when nothing answers', "neither the data nor the documents answer"),
}
KIND_WORDS = {"rag": "RAG", "ft": "fine-tuning", "ft+rag": "fine-tuning + RAG", "base": "the base model"}
SUPPORT_BELOW = 0.5  # the support check's default share, used when the evaluation's settings do not say
DIFFERENCE = 0.10  # the difference the sample-size note sizes for


# --- values with intervals (one place to switch to a shared rate type) --------------------------------------


def rate(flags: list[float], bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """{"value", "lo", "hi", "n"}: the mean of 0/1 flags with its seeded bootstrap 95% interval."""
    vals = [float(f) for f in flags]
    ci = bootstrap_ci(vals, bootstrap, seed)
    if not vals:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    return {"value": sum(vals) / len(vals), "lo": ci[0], "hi": ci[1], "n": len(vals)}


def median(values: list[float], bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """{"value", "lo", "hi", "n"}: the median with a seeded bootstrap 95% interval of the median."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    rng = random.Random(seed)
    samples = [percentile(rng.choices(vals, k=len(vals)), 50) for _ in range(max(bootstrap, 1))]
    lo, hi = interval(samples) if bootstrap > 0 else (percentile(vals, 50),) * 2
    return {"value": percentile(vals, 50), "lo": lo, "hi": hi, "n": len(vals)}


# --- where a question's fact lives ----------------------------------------------------------------------------


def place_of_group(group: str | None, answerable: bool) -> str | None:
    """The place a question's group names (taught / documents / unanswerable), None when the name says none."""
    if not answerable:
        return UNANSWERABLE
    g = (group or "").lower()
    if "doc" in g or "retriev" in g or "corpus" in g or g in (GENERATED, "generated"):  # "generated": older files
        return DOCUMENTS
    if "taught" in g or "train" in g or g in (HELD_OUT, "both"):
        return TAUGHT
    return None


def assign_places(items: list[dict], train_text: str = "", doc_text: str = "") -> tuple[dict[str, str | None], str]:
    """{question id: place} and a sentence saying how. The evaluation file's groups when they name places; else
    each gold answer (or an alias) is looked for in the training data (taught), else in the documents (documents
    only); an unanswerable question is unanswerable; a question whose gold is in neither gets no place."""
    named = {it["id"]: place_of_group(it.get("group"), it["answerable"]) for it in items}
    answerable = [it for it in items if it["answerable"]]
    if answerable and all(named[it["id"]] for it in answerable):
        return named, "the evaluation file's groups"
    if not (train_text or doc_text):
        return named, "the evaluation file's groups (questions without a place-naming group are left out)"
    train_n, docs_n = f" {sc.normalize(train_text)} ", f" {sc.normalize(doc_text)} "
    out = {}
    for it in items:
        golds = [sc.normalize(g) for g in sc.golds(it["answer"], it.get("aliases"))]
        if not it["answerable"]:
            out[it["id"]] = UNANSWERABLE
        elif any(f" {g} " in train_n for g in golds):
            out[it["id"]] = TAUGHT
        elif any(f" {g} " in docs_n for g in golds):
            out[it["id"]] = DOCUMENTS
        else:
            out[it["id"]] = None
    how = (
        "each gold answer looked up in the training data (found: taught) and else in the documents (found: "
        "documents only); questions whose answer is in neither are left out"
    )
    return out, how


# --- rows ---------------------------------------------------------------------------------------------------


def _by_system(result: dict[str, Any]) -> dict[str, list[dict]]:
    names = [s["system"] for s in result.get("systems") or []]
    names = names or list(dict.fromkeys(r["system"] for r in result.get("questions", [])))
    return {s: [r for r in result.get("questions", []) if r["system"] == s] for s in names}


def _winner(cells: dict[str, dict], flags: dict[str, dict[str, float]], higher: bool, bootstrap: int) -> dict:
    """The best contestant on the row and its paired difference with the runner-up; `winner` is set only when
    that interval excludes zero on MIN_PAIRED or more shared questions."""
    scored = sorted((s for s, c in cells.items() if c.get("value") is not None), key=lambda s: cells[s]["value"],
                    reverse=higher)  # fmt: skip
    out: dict[str, Any] = {"winner": None, "best": scored[0] if scored else None, "runner_up": None, "diff": None}
    if len(scored) < 2:
        return out
    best, second = scored[0], scored[1]
    out["runner_up"] = second
    d = paired_diff(flags.get(best, {}), flags.get(second, {}), bootstrap)
    if d is None:
        return out
    diff, lo, hi, n = d
    out["diff"] = {"value": diff, "lo": lo, "hi": hi, "n": n}
    if n >= MIN_PAIRED and (lo > 0 or hi < 0):
        out["winner"] = best
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _pts(x: float) -> str:
    return f"{100 * x:+.0f}"


def _sentence(title: str, meaning: str, cells: dict, w: dict, higher: bool) -> str:
    """One plain sentence: who leads, by how much, and whether that is beyond chance."""
    best, second, d = w["best"], w["runner_up"], w["diff"]
    if best is None:
        return f"{title}: no contestant has data for this row."
    head = f"{title} ({meaning})"
    if second is None or d is None:
        return f"{head}: only **{best}** was measured ({_pct(cells[best]['value'])})."
    ci = f"95% CI {_pts(d['lo'])} to {_pts(d['hi'])} points, {d['n']} questions"
    if w["winner"]:
        word = "ahead of" if higher else "below"
        return f"{head}: **{best}** is {abs(100 * d['value']):.0f} points {word} **{second}** ({ci}), beyond chance."
    return f"{head}: **{best}** and **{second}** cannot be told apart ({_pts(d['value'])} points, {ci})."


def _flag_row(key: str, title: str, meaning: str, pools: dict[str, list[dict]], flag, higher: bool, boot: int):
    flags = {s: {r["id"]: float(flag(r)) for r in rows} for s, rows in pools.items()}
    cells = {s: rate(list(f.values()), boot) for s, f in flags.items()}
    w = _winner(cells, flags, higher, boot)
    return {"key": key, "criterion": title, "meaning": meaning, "higher_is_better": higher, "cells": cells,
            "sentence": _sentence(title, meaning, cells, w, higher)} | w  # fmt: skip


def knowledge_rows(by: dict[str, list[dict]], places: dict[str, str | None], boot: int) -> list[dict]:
    rows = []
    for place, (title, meaning) in PLACES.items():
        pools = {s: [r for r in rows_ if places.get(r["id"]) == place] for s, rows_ in by.items()}
        if not any(pools.values()):
            continue
        ok = sc.IDK if place == UNANSWERABLE else sc.CORRECT
        rows.append(_flag_row(place, title, meaning, pools, lambda r, ok=ok: r["category"] == ok, True, boot))
    return rows


def _reads_passages(rows: list[dict]) -> bool:
    return any(r.get("passages") or r.get("retrieval_hit") is not None for r in rows)


def grounded(row: dict, support_below: float) -> bool:
    """A correct answer the passages shown support: at least `support_below` of its content words are in them."""
    return row.get("groundedness") is not None and row["groundedness"] >= support_below


def traceability_row(by: dict[str, list[dict]], support_below: float, boot: int) -> dict:
    """Share of correct answers grounded in the passages shown (contestants reading passages); the others show
    "no sources". Correct answers differ between contestants, so a winner needs intervals that do not overlap."""
    title = "Correct answers a user can trace to the passages shown"
    meaning = f"at least {support_below:.0%} of the answer's words are in its passages"
    cells = {}
    for s, rows in by.items():
        if not _reads_passages(rows):
            cells[s] = {"value": None, "lo": None, "hi": None, "n": 0, "text": "no sources"}
            continue
        correct = [r for r in rows if r["answerable"] and r["category"] == sc.CORRECT]
        cells[s] = rate([float(grounded(r, support_below)) for r in correct], boot)
    scored = sorted((s for s, c in cells.items() if c["value"] is not None), key=lambda s: -cells[s]["value"])
    winner = None
    if len(scored) >= 2 and cells[scored[0]]["n"] >= MIN_PAIRED and cells[scored[0]]["lo"] > cells[scored[1]]["hi"]:
        winner = scored[0]
    if not scored:
        sentence = f"{title}: no contestant reads passages, so no answer can be traced to a source."
    elif winner:
        sentence = (f"{title} ({meaning}): **{winner}** {_pct(cells[winner]['value'])} against **{scored[1]}** "
                    f"{_pct(cells[scored[1]]['value'])}, intervals apart.")  # fmt: skip
    else:
        shown = ", ".join(f"**{s}** {_pct(cells[s]['value'])}" for s in scored)
        sentence = f"{title} ({meaning}): {shown}; no contestant is ahead beyond chance."
    none = [s for s, c in cells.items() if c.get("text") == "no sources"]
    if none:
        sentence += f" {', '.join(f'**{s}**' for s in none)}: no sources to check an answer against."
    return {"key": "traceability", "criterion": title, "meaning": meaning, "higher_is_better": True, "cells": cells,
            "winner": winner, "best": scored[0] if scored else None, "runner_up": scored[1] if len(scored) > 1
            else None, "diff": None, "sentence": sentence}  # fmt: skip


def answer_in_passages(row: dict) -> bool | None:
    """Whether a gold answer is in the passages shown; None when the passages' texts were not kept."""
    texts = [p.get("text") for p in row.get("passages") or []]
    if not texts or any(t is None for t in texts):
        return None
    joined = " ".join(texts)
    return any(sc.contains(joined, g) for g in sc.golds(row["answer"], row.get("aliases")))


def retrieval_table(by: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """For each contestant reading passages: counts of answerable questions by (right source retrieved, answer in
    the passages) against correct / wrong / abstained. Says whether errors come from retrieval or the reader."""
    out = {}
    for s, rows in by.items():
        if not _reads_passages(rows):
            continue
        cells: dict[tuple, dict[str, int]] = {}
        for r in rows:
            if not r["answerable"]:
                continue
            hit = r.get("retrieval_hit")
            key = (None if hit is None else bool(hit), answer_in_passages(r))
            counts = cells.setdefault(key, {sc.CORRECT: 0, sc.WRONG: 0, sc.SKIPPED: 0})
            counts[r["category"]] = counts.get(r["category"], 0) + 1
        order = sorted(cells, key=lambda k: tuple(-1 if v is None else -int(v) for v in k))
        out[s] = [{"source_retrieved": k[0], "answer_in_passages": k[1]} | cells[k] for k in order]
    return out


def cost_rows(by: dict[str, list[dict]], costs: dict[str, dict], boot: int) -> list[dict]:
    """Per-answer cost (median latency, prompt and answer tokens, from the rows) and one-time cost (training time
    and peak memory, index build time and size, as measured and passed in `costs`)."""
    rows = []
    for key, title, field, unit in (
        ("latency", "Seconds per answer (median)", "latency_s", "s"),
        ("prompt_tokens", "Prompt tokens per answer (median)", "prompt_tokens", "tokens"),
        ("answer_tokens", "Answer tokens per answer (median)", "completion_tokens", "tokens"),
    ):
        cells = {s: median([r.get(field) for r in rs], boot) | {"unit": unit} for s, rs in by.items()}
        vals = {s: {r["id"]: float(r.get(field) or 0.0) for r in rs} for s, rs in by.items()}
        w = (
            _winner(cells, vals, False, boot)
            if key == "latency"
            else {"winner": None, "best": None, "runner_up": None, "diff": None}
        )
        sentence = f"{title}: " + ", ".join(f"**{s}** {_num(c['value'])} {unit}" for s, c in cells.items()) + "."
        if key == "latency":
            sentence += _latency_words(w)
        rows.append({"key": key, "criterion": title, "meaning": "per answer, on the machine that ran the evaluation",
                     "higher_is_better": False, "cells": cells, "sentence": sentence} | w)  # fmt: skip
    one_time = (("train_s", "Training time (one-time)", "s"), ("peak_mb", "Training peak memory", "MB"),
                ("index_s", "Index build time (one-time)", "s"), ("index_mb", "Index size on disk", "MB"))  # fmt: skip
    for key, title, unit in one_time:
        cells = {s: {"value": (costs.get(s) or {}).get(key), "unit": unit} for s in by}
        if all(c["value"] is None for c in cells.values()):
            continue
        shown = ", ".join(f"**{s}** {_num(c['value'])} {unit}" for s, c in cells.items() if c["value"] is not None)
        sentence = f"{title}: {shown} (contestants without it need none)."
        rows.append(_plain_row(key, title, "measured once, no interval", False, cells, sentence))
    return rows


def _plain_row(key: str, title: str, meaning: str, higher: bool, cells: dict, sentence: str) -> dict:
    """A row that names no winner (measured once, or not comparable question by question)."""
    return {"key": key, "criterion": title, "meaning": meaning, "higher_is_better": higher, "cells": cells,
            "winner": None, "best": None, "runner_up": None, "diff": None, "sentence": sentence}  # fmt: skip


def _latency_words(w: dict) -> str:
    d = w.get("diff")
    if not d:
        return ""
    if w["winner"]:
        return f" **{w['winner']}** answers faster than **{w['runner_up']}** beyond chance."
    return f" **{w['best']}** and **{w['runner_up']}** cannot be told apart on speed."


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.0f}"


def made_up_row(by: dict[str, list[dict]], boot: int) -> dict:
    unanswerable = {s: [r for r in rs if not r["answerable"]] for s, rs in by.items()}
    row = _flag_row("made_up", "Made-up answers on questions nothing answers",
                    "lower is better: an answer where the honest one is \"I don't know\"", unanswerable,
                    lambda r: r["category"] == sc.HALLUCINATION, False, boot)  # fmt: skip
    row["curves"] = {s: c for s, rs in by.items() if (c := idk_curve(rs))}
    return row


def update_row(update: dict[str, Any], boot: int) -> dict:
    """The update test's row: share of changed facts each contestant's answer follows (see lab.arena.update_test)."""
    per = update.get("outcomes") or {}
    pools = {s: [{"id": qid, "outcome": o} for qid, o in rows.items()] for s, rows in per.items()}
    row = _flag_row("update", "Follows the documents after they change",
                    f"{update.get('k', 0)} facts changed in a copy of the documents and re-indexed", pools,
                    lambda r: r["outcome"] == "new", True, boot)  # fmt: skip
    row["counts"] = {s: _count(rows.values()) for s, rows in per.items()}
    row["times"] = {"reindex_s": update.get("reindex_s"), "training_s": update.get("training_s") or {}}
    counts = "; ".join(
        f"**{s}** new {c['new']}, old {c['old']}, neither {c['neither']}" for s, c in row["counts"].items()
    )
    row["sentence"] += f" Answers following the new value / keeping the old / neither: {counts}."
    row["sentence"] += _update_times(row["times"])
    return row


def _update_times(times: dict[str, Any]) -> str:
    """Time to take a change in: re-indexing against each fine-tuned contestant's measured training time."""
    parts = []
    if times.get("reindex_s") is not None:
        parts.append(f"re-indexing the changed documents took {times['reindex_s']:.1f} s")
    parts += [f"training **{s}** took {t:.0f} s" for s, t in (times.get("training_s") or {}).items()]
    return f" To take a change in: {'; '.join(parts)}." if parts else ""


def _count(outcomes) -> dict[str, int]:
    out = {"new": 0, "old": 0, "neither": 0}
    for o in outcomes:
        out[o] += 1
    return out


def curve_row(curve: dict[str, Any], systems: list[str] = (), info: dict[str, dict] | None = None) -> dict:
    """The learning-curve row (lab.arena.learning_curve's result): a slope only when the intervals allow. Its cells
    are keyed by share (a curve's own evaluation); a fine-tuned contestant's column shows every share's rate with
    its interval, a RAG contestant's the flat line."""
    from lab.arena.learning_curve import trend_sentence

    cells = dict(curve.get("cells", {}))
    points = " · ".join(f"{k}: {_ci_text(c)}" for k, c in curve.get("cells", {}).items())
    for s in systems:
        kind = ((info or {}).get(s) or {}).get("kind")
        if s not in cells and kind == "ft":
            cells[s] = {"value": None, "lo": None, "hi": None, "n": 0, "text": points}
        elif s not in cells and kind == "rag" and curve.get("flat"):
            cells[s] = curve["flat"]
    meaning = "fine-tuning on shares of the training data"
    return _plain_row("learning_curve", "Correct on taught facts by share of training data", meaning, True, cells,
                      trend_sentence(curve))  # fmt: skip


def _ci_text(cell: dict[str, Any]) -> str:
    if cell.get("value") is None:
        return "n/a"
    ci = f" ({_pct(cell['lo'])}-{_pct(cell['hi'])})" if cell.get("lo") is not None else ""
    return f"{_pct(cell['value'])}{ci}"


# --- sample size and recommendation ---------------------------------------------------------------------------


def questions_needed(p: float, difference: float = DIFFERENCE, z_alpha: float = 1.959964, z_beta: float = 0.841621):
    """Questions per contestant to tell `p` from `p - difference` (two-sided 95%, power 80%, two proportions;
    paired questions often need fewer). `p` is clipped so both rates lie in [0, 1]."""
    p1 = min(max(p, difference), 1.0)
    p2 = p1 - difference
    pbar = (p1 + p2) / 2
    top = z_alpha * math.sqrt(2 * pbar * (1 - pbar)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(top**2 / difference**2)


def sample_size_note(rate_now: float | None, n_have: int, difference: float = DIFFERENCE) -> str:
    """How many questions a difference of `difference` needs near `rate_now`, against how many there are."""
    p = 0.5 if rate_now is None else rate_now
    need = questions_needed(p, difference)
    return (
        f"To tell apart a {100 * difference:.0f}-point difference at rates near {p:.0%}, about {need} answerable "
        f"questions are needed (95% confidence, 80% power); this evaluation has {n_have}. "
        + ("Smaller differences than that can be chance here." if n_have < need else "It has enough for that.")
    )


def _kind(info: dict, system: str) -> str:
    return KIND_WORDS.get((info.get(system) or {}).get("kind", ""), "")


def recommendation(rows: list[dict], info: dict[str, dict]) -> list[str]:
    """Sentences built only from the rows that have a winner; none of them claims more than its row's interval."""
    by = {r["key"]: r for r in rows}
    out = []

    def said(key: str, lead: str) -> None:
        row = by.get(key)
        if not row or not row.get("winner"):
            return
        w, d = row["winner"], row.get("diff")
        kind = _kind(info, w)
        gap = ""
        if d:
            lo, hi = (d["lo"], d["hi"]) if row["higher_is_better"] else (-d["hi"], -d["lo"])
            more = "more" if row["higher_is_better"] else "fewer"
            gap = f", {abs(100 * d['value']):.0f} points {more} (95% CI {100 * lo:.0f} to {100 * hi:.0f} points)"
        out.append(f"{lead}: **{w}**{f' ({kind})' if kind else ''} against **{row['runner_up']}**{gap}.")

    said(DOCUMENTS, "Your questions on facts only in the documents are best answered by")
    said(TAUGHT, "Your questions on facts the training data teaches are best answered by")
    said("update", "When the documents change, the answers that follow them best come from")
    said("made_up", "Fewest made-up answers when nothing answers")
    if not by.get("made_up", {}).get("winner"):
        said(UNANSWERABLE, 'Says "I don\'t know" most often when nothing answers')
    said("traceability", "Most correct answers traceable to sources")
    if not out:
        out.append(
            "No contestant is ahead beyond chance on any criterion measured here: these questions cannot separate "
            "them. Choose on cost and traceability, or ask more questions (see the sample-size note)."
        )
    return out


# --- the card -----------------------------------------------------------------------------------------------


def card(
    result: dict[str, Any],
    costs: dict[str, dict] | None = None,
    texts: tuple[str, str] = ("", ""),
    update: dict[str, Any] | None = None,
    curve: dict[str, Any] | None = None,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """The decision card of an evaluation result. `costs`: {contestant: {train_s, peak_mb, index_s, index_mb}};
    `texts`: (training data text, documents text) to place questions whose file has no place-naming groups;
    `update` and `curve`: the opt-in update test's and learning curve's results."""
    by = _by_system(result)
    first = next(iter(by.values()), [])
    places, how = assign_places(first, *texts)
    gen = result.get("gen") or {}
    support = gen.get("support_below") or SUPPORT_BELOW
    rows = knowledge_rows(by, places, bootstrap)
    if update:
        rows.append(update_row(update, bootstrap))
    if curve:
        rows.append(curve_row(curve, list(by), result.get("contestants") or {}))
    rows.append(traceability_row(by, support, bootstrap))
    rows.append(made_up_row(by, bootstrap))
    rows += cost_rows(by, costs or {}, bootstrap)
    answerable = [r for r in first if r["answerable"]]
    correct = [sum(r["category"] == sc.CORRECT for r in rs if r["answerable"]) / len(answerable)
               for rs in by.values() if answerable]  # fmt: skip
    best = max(correct, default=None)
    info = result.get("contestants") or {}
    return {
        "systems": list(by),
        "kinds": {s: _kind(info, s) for s in by},
        "rows": rows,
        "places_how": how,
        "places": {p: sum(v == p for v in places.values()) for p in PLACES},
        "retrieval": retrieval_table(by),
        "recommendation": recommendation(rows, info),
        "sample_size": sample_size_note(best, len(answerable)),
        "machine": (costs or {}).get("_machine", ""),
        "update": update,
    }
