"""The Start tab: the lab's question, then its answer first (the headline of the latest finished comparison, a
correct / hallucination chart with intervals, three example questions chosen to show the headline, a summary
table), the recipe and jargon folded under "How this was measured"; a **Quick look** (QUICK_QUESTIONS questions,
wider intervals) and **Run the whole comparison**, each with its time range on this machine shown before it starts
(lab.arena.showcase.forecast, scaled by the CPU load now) and a confirm step for any stage estimated over ten
minutes; one progress view whose ETA follows measured progress, and Cancel.

The work is lab.arena.showcase.run_showcase, in a worker thread so Cancel can stop it between steps (finished
stages are kept and reused). On ZeroGPU its trainings run inside a GPU slot (lab.ui.spaces.slot_training, as in the
Train tab), each contestant's answers in slot-sized GPU calls (`slot_answers`), and a comparison that needs more
GPU time than a visitor's quota is refused before it starts, saying what would fit. The latest comparison is read
from disk on page load: a visitor sees it at once.
The dataset and corpus pickers are read again when the tab is selected (common.follow_workspace).
Own data without an evaluation file is never compared on the sample's questions: the run stops and the own-data
questions section (lab.ui.start_own) builds the set for review; the comparison runs once the reviewed, edited or
re-uploaded file is in place.
Events: start_latest (page load), start_estimate (page load, input changes), start_run, start_quick, start_cancel;
the start_own_* events are lab.ui.start_own's.
"""

from __future__ import annotations

import dataclasses
import html
import time

import gradio as gr

from lab.arena import evaluation, reference, showcase
from lab.arena.verdict import headline
from lab.config import GenConfig
from lab.estimate import ASK_ABOVE_S
from lab.metrics.charts import ci_bars, ci_whiskers
from lab.metrics.rate import Rate, format_rate
from lab.ui import spaces, start_curve, start_own, start_update
from lab.ui import zerogpu_budget as budget
from lab.ui.common import (
    BATCH,
    READ_ONLY,
    Picker,
    SessionFlags,
    follow_workspace,
    generation,
    in_background,
    pack_files,
    progress_bar_html,
    shows_errors,
    this_tab,
)
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
PICKERS = (Picker("datasets", lead=(showcase.SAMPLE,), default=lambda _: showcase.SAMPLE),
           Picker("corpora", lead=(showcase.SAMPLE,), default=lambda _: showcase.SAMPLE))  # fmt: skip
LATEST, REFERENCE = "Latest comparison on this workspace", "Shipped reference (all questions, every contestant)"
CATEGORY_NOTE = {
    "correct": "correct",
    "wrong": "wrong",
    "skipped": "said I don't know (the answer was there)",
    "idk": "rightly said I don't know",
    "hallucination": "made up an answer",
}
GOOD = ("correct", "idk")
QA_LABEL = (
    "Evaluation JSONL (empty: the sample's questions for the sample domain; for your own data the lab builds one "
    "below for you to review)"
)


def build(demo, ws, cache, settings=None) -> None:
    stops, tab = SessionFlags(ws.tmp / "cancel" / "start"), this_tab()
    gr.Markdown(QUESTION)
    evidence = gr.Markdown("", elem_id="start-headline")
    heading = gr.Markdown("")
    view = gr.Radio([LATEST, REFERENCE], value=LATEST, show_label=False, visible=False, elem_id="start-view")
    chart = gr.Plot(label="Correct answers and hallucinations (95% interval)", show_label=False, elem_id="start-chart")
    with gr.Row():
        quick = gr.Button(QUICK, variant="secondary", scale=2, elem_id="start-quick")
        run = gr.Button(RUN, variant="primary", scale=3, elem_id="start-run")
        cancel = gr.Button("Cancel", variant="stop", scale=1)
    estimate = gr.Markdown("", elem_id="start-estimate")
    progress = gr.Markdown("")
    armed = gr.State("")  # the inputs a "Run anyway" click confirms
    examples = gr.HTML("")
    with gr.Accordion("How this was measured", open=False, elem_id="start-how"):
        how = gr.Markdown("")
        verdict = gr.Markdown("")
    picker, own = _picker()
    table = gr.Dataframe(label="Summary", interactive=False, wrap=True)
    pack = gr.Button("Evidence pack (HTML + zip)", size="sm", elem_id="start-pack")
    packed = gr.File(label="Evidence pack", file_count="multiple", interactive=False, visible=False)
    pack.click(lambda which: pack_files(ws, _pick(ws, which)), view, packed, api_name="start_pack")
    start_curve.build(ws, cache, *picker[:3])  # the opt-in learning curve on the dataset, corpus and questions picked
    start_update.build(ws, cache)  # the opt-in update test on the latest comparison
    shown = [heading, evidence, verdict, chart, examples, table, how]
    demo.load(lambda: _on_load(ws, shown, view), None, [*shown, view], api_name="start_latest", **READ_ONLY)
    view.input(lambda which: _keyed(shown, _show(_pick(ws, which), ws)), view, shown, api_name="start_view",
               **READ_ONLY)  # fmt: skip
    pickers = dict(zip(picker[:2], PICKERS, strict=True))
    follow_workspace(demo, ws, pickers, [tab.select] if tab else [], "start_pickers")
    ins = list(picker)  # dataset, corpus, evaluation file, questions, contestants
    demo.load(lambda *a: estimate_md(ws, *a), ins, estimate, api_name="start_estimate", **READ_ONLY)
    for comp in ins:
        comp.change(lambda *a: estimate_md(ws, *a), ins, estimate, api_name=False, **READ_ONLY)

    # one contestant's chunk of answers in one ZeroGPU slot, its models resolved in this process first
    @spaces.gpu(duration=slot_seconds_for, prepare=lambda spec, *_: spaces.prefetch(ws, cache, spec))
    def answer_slot(spec, label, items, gen, per, should_stop):
        return evaluation.answer_to_checkpoint(ws, cache, spec, label, items, gen, per, should_stop)

    answer = slot_answers(answer_slot) if spaces.on_zero_gpu() else None

    def on_run(dataset, corpus, qa, questions, contestants, confirmed, request: gr.Request):
        yield from _on_run(ws, cache, stops, dataset, corpus, qa, questions, contestants, request, answer, confirmed,
                        view=RunView(progress, run, armed, shown, view))  # fmt: skip

    def on_quick(dataset, corpus, qa, questions, contestants, confirmed, request: gr.Request):
        yield from _on_run(ws, cache, stops, dataset, corpus, qa, questions, contestants, request, answer, confirmed,
                        quick=True, view=RunView(progress, quick, armed, shown, view))  # fmt: skip

    outputs = [progress, *shown, view]
    run.click(on_run, [*picker, armed], [*outputs, run, armed], api_name="start_run", **generation(BATCH))
    quick.click(on_quick, [*picker, armed], [*outputs, quick, armed], api_name="start_quick", **generation(BATCH))

    def on_cancel(request: gr.Request):
        stops.cancel(request)
        return "Cancelling: finished stages are kept and reused next time..."

    cancel.click(on_cancel, None, progress, api_name="start_cancel", concurrency_limit=None)
    start_own.wire(ws, cache, picker, own, (run, quick))


def _picker():
    with gr.Accordion("Your own data (optional): dataset, documents, evaluation questions", open=False):
        with gr.Row():
            dataset = gr.Dropdown([showcase.SAMPLE], value=showcase.SAMPLE, label="Fine-tuning dataset (Data tab)")
            corpus = gr.Dropdown([showcase.SAMPLE], value=showcase.SAMPLE, label="Documents for RAG (Data tab)")
        with gr.Row():
            qa = gr.File(label=QA_LABEL, type="filepath")
            questions = gr.Number(
                showcase.Inputs.questions,
                precision=0,
                minimum=0,
                label="Questions to ask (a stratified subset that keeps every group; 0 = all)",
            )
        own = start_own.section(qa)
    contestants = gr.CheckboxGroup(
        list(showcase.ALL_CONTESTANTS),
        value=list(showcase.default_contestants()),
        label="Contestants",
        info=showcase.CONTESTANTS_NOTE,
        elem_id="start-contestants",
    )
    return (dataset, corpus, qa, questions, contestants), own


def _on_load(ws, shown: list, switch: gr.Radio) -> dict:
    """The page's first view: this workspace's latest comparison (else the shipped reference) in `shown`, and the
    switch between the two, offered when there is a latest one."""
    latest = showcase.latest(ws)
    parts = _keyed(shown, _show(latest or reference.reference(), ws))
    return {**parts, switch: gr.Radio(value=LATEST, visible=latest is not None)}


def _keyed(shown: list, parts: tuple) -> dict:
    """{component: value} for the shown comparison's components and `_show`'s parts, in the same order."""
    return dict(zip(shown, parts, strict=True))


def _pick(ws, which: str):
    """The comparison the view switch asks for: the shipped reference, or this workspace's latest (else the
    reference)."""
    return reference.reference() if which == REFERENCE else showcase.latest(ws) or reference.reference()


@dataclasses.dataclass(frozen=True)
class RunView:
    """A run's outputs: while it runs, the progress line, the clicked button (it asks "Run anyway" before a long
    run) and the confirmed inputs; when it ends also the shown comparison (`shown`, the parts `_show` returns, in
    its order) and the switch between latest and reference."""

    progress: gr.Markdown
    button: gr.Button
    armed: gr.State
    shown: list
    switch: gr.Radio


def _on_run(ws, cache, stops, dataset, corpus, qa, questions, contestants, request, answer=None, confirmed="",
         quick=False, *, view: RunView):  # fmt: skip
    """The run handler: yields {component: value} updates of `view`'s outputs; when the run ends, the progress
    line, the shown comparison and the switch."""
    label = QUICK if quick else RUN
    if not contestants:
        gr.Warning("Tick at least one contestant.")
        yield {view.progress: "**Nothing to compare:** tick at least one contestant.", view.armed: ""}
        return
    if start_own.is_own(dataset, corpus) and not qa:
        yield {view.progress: start_own.NEEDS_QUESTIONS.replace("{label}", label), view.armed: ""}
        return
    inputs = _inputs(dataset, corpus, qa, questions, contestants, quick)
    plan = _plan(ws, inputs)
    if isinstance(plan, str):
        gr.Warning(plan)
        yield {view.progress: f"**The comparison did not start:** {html.escape(plan)}", view.armed: ""}
        return
    key = showcase.digest(dataclasses.asdict(inputs))
    ask = ask_first(plan, confirmed, key)
    if ask:
        yield {view.progress: ask_md(plan, ask), view.button: gr.Button(value=ask), view.armed: key}
        return
    yield from _work(ws, cache, stops, inputs, request, answer, plan, label, view)


@shows_errors(lambda message: message)
def _plan(ws, inputs):
    """The comparison's plan (showcase.forecast), or why it cannot start (a str: over a ZeroGPU visitor's quota,
    an input that cannot be read)."""
    refuse_over_quota(ws, inputs)
    return showcase.forecast(ws, inputs)


def _inputs(dataset, corpus, qa, questions, contestants, quick: bool) -> showcase.Inputs:
    inputs = showcase.Inputs(dataset=dataset or showcase.SAMPLE, corpus=corpus or showcase.SAMPLE, qa=qa or "",
                             questions=int(questions or 0), contestants=list(contestants or []))  # fmt: skip
    return showcase.quick_look(inputs) if quick else inputs


def _work(ws, cache, stops, inputs, request, answer, plan, label, view: RunView):
    flag = stops.fresh(request)
    box: dict = {"update": None}
    hooks, first = training_hooks(), plan.total

    def work():
        return showcase.run_showcase(ws, cache, inputs, lambda u: box.update(update=u), flag.is_set, hooks, answer,
                                     plan.machine)  # fmt: skip

    thread = in_background(work, box, "showcase")
    yield {view.progress: progress_md(None, first), view.button: gr.Button(value=label), view.armed: ""}
    while thread.is_alive():
        yield {view.progress: progress_md(box["update"], first)}
        time.sleep(1.0)
    if "error" in box:
        gr.Warning(box["error"])
        yield {view.progress: f"**The comparison stopped:** {html.escape(box['error'])}"}
        return
    result = box["result"]
    shown = after_run(ws, result)
    switch = gr.Radio(value=LATEST, visible=not shown.get("reference"))
    yield {
        view.progress: _done_line(result, shown, first),
        **_keyed(view.shown, _show(shown, ws)),
        view.switch: switch,
    }


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


@shows_errors(lambda message: f"Time estimate unavailable: {html.escape(message)}")
def estimate_md(ws, dataset, corpus, qa, questions, contestants) -> str:
    """The quick look's and the whole comparison's time ranges on this machine now, before either starts."""
    if not contestants:
        return ""
    full = showcase.forecast(ws, _inputs(dataset, corpus, qa, questions, contestants, False))
    fast = showcase.forecast(ws, _inputs(dataset, corpus, qa, 0, contestants, True), full.machine)
    note = f" ({full.total.note})" if full.total.note else ""
    return (
        f"**Time on this machine{note}:** {QUICK.lower()} ({fast.questions} questions, wide intervals) "
        f"{fast.total.text}; the whole comparison ({full.questions} questions) {full.total.text}."
    )


def after_run(ws, result: dict) -> dict:
    """The comparison the view shows when a run ends: the run's own when it finished; after Cancel the last
    finished comparison on this workspace, else the cancelled run's partial one (its heading says partial), else
    the shipped reference. Never nothing: an empty view would hide evidence that exists."""
    if result.get("systems") and result.get("status") == "finished":
        return result
    return showcase.latest(ws) or (result if result.get("systems") else None) or reference.reference()


def training_hooks(env=None):
    """On ZeroGPU, the comparison's trainings run inside a GPU slot (`slot_training`, a fresh set per training),
    as the Train tab's do; elsewhere None (a background training process)."""
    return (lambda: spaces.slot_training(env)) if spaces.on_zero_gpu(env) else None


def slot_seconds_for(spec, label, items, gen, per, should_stop) -> float:
    """The GPU seconds one chunk of a contestant's answers asks for (`per` answers), from the call's arguments."""
    return spaces.answers_duration(per or len(items))


def slot_answers(answer_slot, env=None):
    """The comparison's `answer` hook on ZeroGPU: a contestant's questions in slot-sized chunks, each one call of
    `answer_slot(spec, label, items, gen, per, should_stop)` (a GPU slot that appends to the checkpoint), until
    they are all answered or Cancel is pressed; progress is reported per chunk."""

    def answer(spec, label, items, gen, should_stop, progress) -> str:
        chunks = budget.answer_chunks(len(items), gen.batch_size, env)
        per, status, done = (chunks[0] if chunks else None), "partial", 0
        for size in [*chunks, 0]:  # one more call: a resumed checkpoint may need one chunk fewer or none
            status = answer_slot(spec, label, items, gen, per, should_stop)
            if status != "partial":
                return status
            done = min(len(items), done + size)
            progress(done, len(items), "")
        return status

    return answer


def refuse_over_quota(ws, inputs, env=None) -> None:
    """On ZeroGPU, refuse before anything starts a comparison whose trainings and answers need more GPU time than
    a visitor's quota (lab.ui.zerogpu_budget); the message says what would fit. Elsewhere nothing is read."""
    if not spaces.on_zero_gpu(env):
        return
    plan = showcase.work_plan(ws, inputs)
    budget.refuse_long_comparison(plan["training_s"], plan["questions"], plan["contestants"], GenConfig().batch_size,
                                  plan["untrained"], env)  # fmt: skip


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


def _done_line(result, shown=None, first=None) -> str:
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


def _show(result, ws=None):
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
