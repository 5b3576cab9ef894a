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
The formatting (headline, chart, examples, summary, progress and confirm wording) is lab.ui.start_view's.
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
from lab.config import GenConfig
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
    shows_errors,
    this_tab,
)
from lab.ui.start_view import QUESTION, QUICK, RUN, ask_first, ask_md, done_line, progress_md, show

PICKERS = (Picker("datasets", lead=(showcase.SAMPLE,), default=lambda _: showcase.SAMPLE),
           Picker("corpora", lead=(showcase.SAMPLE,), default=lambda _: showcase.SAMPLE))  # fmt: skip
LATEST, REFERENCE = "Latest comparison on this workspace", "Shipped reference (all questions, every contestant)"
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
    view.input(lambda which: _keyed(shown, show(_pick(ws, which), ws)), view, shown, api_name="start_view",
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
    parts = _keyed(shown, show(latest or reference.reference(), ws))
    return {**parts, switch: gr.Radio(value=LATEST, visible=latest is not None)}


def _keyed(shown: list, parts: tuple) -> dict:
    """{component: value} for the shown comparison's components and `show`'s parts, in the same order."""
    return dict(zip(shown, parts, strict=True))


def _pick(ws, which: str):
    """The comparison the view switch asks for: the shipped reference, or this workspace's latest (else the
    reference)."""
    return reference.reference() if which == REFERENCE else showcase.latest(ws) or reference.reference()


@dataclasses.dataclass(frozen=True)
class RunView:
    """A run's outputs: while it runs, the progress line, the clicked button (it asks "Run anyway" before a long
    run) and the confirmed inputs; when it ends also the shown comparison (`shown`, the parts `show` returns, in
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
        view.progress: done_line(result, shown, first),
        **_keyed(view.shown, show(shown, ws)),
        view.switch: switch,
    }


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
