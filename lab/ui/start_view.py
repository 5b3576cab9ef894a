"""Pure view formatters for the Start tab: the lab's question and recipe, the shown comparison's heading, headline,
chart, example questions and summary table, the confirm step's wording and the progress and done lines. No gradio
component and no event here; lab/ui/start_tab.py builds the components and wires them to events.
"""

from __future__ import annotations

import html
import time

from lab.arena import reference
from lab.arena.verdict import headline
from lab.estimate import ASK_ABOVE_S
from lab.metrics.charts import ci_bars, ci_whiskers
from lab.metrics.rate import Rate, format_rate
from lab.ui.common import progress_bar_html
from lab.ui.decision_view import card_markdown

QUESTION = """## Fine-tune, RAG, or both?
Which way of making a small model an expert on your documents answers more questions correctly, and which one makes
things up when the documents do not have the answer?"""
RECIPE = """**The four ways.** **Fine-tune** the model (train it on questions and answers from your domain), give it
**RAG** (look up the passages of your documents that match each question and hand them to it), do **both**, or
**fine-tune it for RAG** (train it on the very prompts RAG sends, with "I don't know" as the answer when the
passages lack it). Each bar's black line is its 95% interval (where the true rate probably lies). **Run the whole
comparison** measures it again on this machine, on the sample domain (a fictional wind-turbine maker's service
manual) or on your own data; **Quick look** does the same on fewer questions, so its intervals are wider."""
RUN, QUICK = "Run the whole comparison", "Quick look"
CATEGORY_NOTE = {
    "correct": "correct",
    "wrong": "wrong",
    "skipped": "said I don't know (the answer was there)",
    "idk": "rightly said I don't know",
    "hallucination": "made up an answer",
}
GOOD = ("correct", "idk")


def ask_first(plan, confirmed: str, key: str) -> str:
    """The label of the confirm button ("Run anyway (est. 14-20 min)") when a stage of `plan` is estimated over
    ASK_ABOVE_S and these inputs (`key`) were not confirmed by the click before; "" to start at once."""
    if not plan.long_stages(ASK_ABOVE_S) or confirmed == key:
        return ""
    return f"Run anyway (est. {plan.total.text.removeprefix('about ')})"


def ask_md(plan, label: str) -> str:
    long = "; ".join(f"{name} {est.says()}" for _, name, est in plan.long_stages(ASK_ABOVE_S))
    return (
        f"**Not started: this takes long on this machine.** {html.escape(long)}; everything "
        f"{plan.total.says()}. Press **{html.escape(label)}** to start it, or untick the slow contestant."
    )


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating..."
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_md(u, first=None) -> str:
    """One progress view: the stage (n of N), what it is doing, a bar of the stage, the stage ETA and the overall
    ETA (both follow measured progress), and the estimate given before the start (`first`, an Estimate)."""
    said = f" · estimated at the start: {first.says()}" if first is not None else ""
    if u is None:
        return f"Starting...{said}"
    return (
        f"**Stage {u.number} of {u.total}: {u.label}**: {html.escape(u.message)}\n\n"
        f"{progress_bar_html(u.fraction, f'this stage: {_eta(u.stage_eta_s)} left')}\n\n"
        f"everything: {_eta(u.overall_eta_s)} left{said}"
    )


def done_line(result, shown=None, first=None) -> str:
    """What the run did (with the estimate it started with), and after Cancel which comparison the view shows."""
    run = result.get("run", {})
    stages = run.get("stages", [])
    reused = sum(bool(s.get("reused")) for s in stages)
    state = "finished" if run.get("status") == "finished" else "cancelled (finished stages are kept)"
    said = f" (estimated {first.text})" if first is not None else ""
    line = f"Comparison {state} in {_eta(run.get('total_s'))}{said}: {len(stages)} stages, {reused} reused."
    asked = result.get("showcase", {}).get("question_source")
    line += f" Questions: {html.escape(asked)}." if asked else ""
    if shown is None or shown is result:
        return line + (" Shown below, marked partial." if run.get("status") != "finished" else "")
    which = "the shipped reference" if shown.get("reference") else "the last finished comparison"
    return f"{line} Shown below: {which}."


def show(result, ws=None):
    """(heading, headline, verdict, chart, examples, table, how it was measured) for a comparison, or an
    invitation when there is none; with the workspace, the decision card adds the one-time costs it records."""
    if not result or not result.get("systems"):
        note = f"No comparison on this workspace yet: press **{QUICK}** or **{RUN}** (the time is shown above)."
        return note, "", "", None, "", None, RECIPE
    said = headline(result)
    said = f"### What the evidence says\n\n{said}" if said else ""
    said = f"{said}\n\n{card_markdown(result, ws=ws)}".strip()  # the decision card under the headline
    parts = (heading_md(result), said, result.get("verdict", ""), chart(result), examples_html(result))
    return *parts, summary(result), how_md(result)


def heading_md(result) -> str:
    """Which comparison the view shows, in one line: shipped or this workspace's, its size; a quick look says its
    intervals are wide. The recipe is `how_md`'s."""
    sc = result.get("showcase", {})
    n, inputs = sc.get("questions") or 0, sc.get("inputs", {})
    if result.get("reference"):
        return (
            f"### Reference comparison, shipped with ExpertLab\n{n} questions, {len(result['systems'])} "
            f"contestants, measured when this version was made. **{RUN}** measures it on this machine; this reference "
            "stays one click away."
        )
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(result.get("created_at") or time.time()))
    total = sc.get("total_s")  # the run that computed it, not a reusing one
    took = f", took {_eta(total)}" if total else ""
    state = "" if result.get("status") == "finished" else " (**cancelled: partial**)"
    kind = f"{QUICK}: " if inputs.get("quick") else ""
    wide = " Few questions, so the intervals are wide: run the whole comparison to narrow them." if kind else ""
    return (
        f"### Latest comparison{state}\n{kind}{when}, {n} questions, {len(result['systems'])} contestants{took}.{wide}"
    )


def how_md(result) -> str:
    """The recipe behind the view (folded): how the shipped reference was measured, or this workspace's data,
    question subset and where the questions came from; then what the contestants are."""
    sc = result.get("showcase", {})
    inputs, n = sc.get("inputs", {}), sc.get("questions") or 0
    if result.get("reference"):
        return f"{result['reference']}\n\n{RECIPE}"
    subset = (
        f"{n} questions (a stratified subset keeping every group)" if inputs.get("questions") else f"{n} questions"
    )
    data = f"Dataset `{inputs.get('dataset')}`, documents `{inputs.get('corpus')}`, {subset}."
    asked = f" Questions: {sc['question_source']}." if sc.get("question_source") else ""
    return f"{data}{asked}\n\n{RECIPE}"


def _ci(s: dict, key: str) -> str:
    value = s.get(key)
    if value is None:
        return "-"
    return format_rate(Rate.of(s, key), "short")


def summary(result) -> dict:
    """One row per contestant: correct and made-up rates with their intervals, and its Arena / CLI name."""
    specs = result.get("showcase", {}).get("contestants", {})
    n_ans = max((s.get("n_answerable") or 0) for s in result["systems"])
    n_un = max((s.get("n_unanswerable") or 0) for s in result["systems"])
    head = ["contestant", f"correct, of {n_ans} answerable [95% interval]",
            f"made up an answer, of {n_un} unanswerable [95% interval]", "name in the Arena and CLI"]  # fmt: skip
    rows = [[s["system"], _ci(s, "correct_rate"), _ci(s, "hallucination_rate"), specs.get(s["system"], "")]
            for s in result["systems"]]  # fmt: skip
    return {"headers": head, "data": rows}


def chart(result):
    """Two panels, one bar per contestant with its 95% interval: correct answers, and hallucinations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = result["systems"]
    names = [s["system"] for s in systems]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.9 + 0.45 * len(names)), sharey=True)
    panels = (("correct_rate", "n_answerable", "Correct answers", "#2e7d32"),
              ("hallucination_rate", "n_unanswerable", "Hallucinations (lower is better)", "#c62828"))  # fmt: skip
    for ax, (key, n_key, title, colour) in zip(axes, panels, strict=True):
        rates = [Rate.of(s, key) for s in systems]
        ci_bars(ax, range(len(names)), rates, horizontal=True, color=colour, alpha=0.8)
        for y, (r, above) in enumerate(zip(rates, ci_whiskers(rates)[1], strict=True)):
            v = 100 * (r.value or 0)
            hi = v + above  # the whisker's right end
            inside = hi > 86  # no room right of the whisker: write the number at the bar's start
            ax.text(1.5 if inside else hi + 1.5, y - (0.28 if inside else 0), f"{v:.0f}%", va="center", fontsize=9,
                    fontweight="bold")  # fmt: skip
        n = max((s.get(n_key) or 0) for s in systems)
        ax.set_title(f"{title}, n={n}", fontsize=10)
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of questions (black line: 95% interval)")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig


def examples_html(result) -> str:
    """Three questions answered by every contestant, one column each, with the gold answer and a verdict."""
    picked = reference.headline_examples(result, 3)
    if not picked:
        return ""
    systems = [s["system"] for s in result["systems"]]
    head = "".join(f"<th>{html.escape(s)}</th>" for s in systems)
    rows = []
    for ex in picked:
        cells = "".join(_cell(ex["answers"][s]) for s in systems)
        gold = html.escape(ex["answer"])
        rows.append(
            f"<tr><td><b>{html.escape(ex['question'])}</b><br><small>expected: {gold}</small></td>{cells}</tr>"
        )
    style = ("<style>.start-ex{border-collapse:collapse;width:100%;table-layout:fixed}.start-ex td,.start-ex th"
             "{border:1px solid #ddd;padding:6px;vertical-align:top;font-size:0.9em;overflow-wrap:anywhere}"
             ".start-ex .good{color:#2e7d32}.start-ex .bad{color:#c62828}</style>")  # fmt: skip
    title = "<h3>Three example questions, answered by every contestant</h3>"
    return f"{style}{title}<table class='start-ex'><tr><th>question</th>{head}</tr>{''.join(rows)}</table>"


def _cell(answer: dict) -> str:
    cat = answer.get("category", "")
    mark = "good" if cat in GOOD else "bad"
    note = CATEGORY_NOTE.get(cat, cat)
    return f"<td>{html.escape(answer.get('prediction') or '')}<br><small class='{mark}'>{note}</small></td>"
