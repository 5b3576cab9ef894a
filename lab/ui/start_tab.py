"""The Start tab: the lab's question in plain words, the latest finished comparison on this workspace (verdict,
a correct / hallucination chart with intervals, three example questions answered by every contestant side by
side, a summary table), and one button that runs the whole comparison with one progress view and Cancel.

The work is lab.arena.showcase.run_showcase, in a worker thread so Cancel can stop it between steps (finished
stages are kept and reused). On ZeroGPU its trainings run inside a GPU slot (lab.ui.spaces.slot_training, as in the
Train tab), each contestant's answers in slot-sized GPU calls (`slot_answers`), and a comparison that needs more
GPU time than a visitor's quota is refused before it starts, saying what would fit. The latest comparison is read
from disk on page load: a visitor sees it at once.
Events: start_latest (page load), start_run, start_cancel.
"""

from __future__ import annotations

import html
import time

import gradio as gr

from lab.arena import evaluation, reference, showcase
from lab.arena.verdict import headline
from lab.config import GenConfig
from lab.errors import user_message
from lab.metrics.rate import Rate, format_rate
from lab.ui import spaces
from lab.ui import zerogpu_budget as budget
from lab.ui.common import BATCH, READ_ONLY, SessionFlags, generation, in_background, progress_bar_html
from lab.ui.decision_view import card_markdown

QUESTION = """## Fine-tune, RAG, or both?
To make a small language model an expert on your documents you can **fine-tune** it (train it on questions and
answers from your domain), give it **RAG** (look up the passages of your documents that match each question and
hand them to it), do **both**, or **fine-tune it for RAG** (train it on the very prompts RAG sends, with "I don't
know" as the answer when the passages lack it). Which one answers more questions correctly, and which one makes
things up when the documents do not have the answer? Below is what the evidence says; each bar's black line is its
95% interval (where the true rate probably lies). **Run the whole comparison** measures it again on this machine,
on the sample domain (a fictional wind-turbine maker's service manual) or on your own data."""
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
    "Evaluation JSONL (empty: the sample's questions for the sample dataset; for your own dataset, its rows held "
    "out of training)"
)


def build(ws, cache) -> None:
    stops = SessionFlags(ws.tmp / "cancel" / "start")
    gr.Markdown(QUESTION)
    heading = gr.Markdown("")
    view = gr.Radio([LATEST, REFERENCE], value=LATEST, show_label=False, visible=False, elem_id="start-view")
    evidence = gr.Markdown("", elem_id="start-headline")
    chart = gr.Plot(label="Correct answers and hallucinations (95% interval)", show_label=False, elem_id="start-chart")
    with gr.Row():
        run = gr.Button("Run the whole comparison", variant="primary", scale=3)
        cancel = gr.Button("Cancel", variant="stop", scale=1)
    progress = gr.Markdown("")
    picker = _picker()
    examples = gr.HTML("")
    with gr.Accordion("Every comparison, with its 95% interval", open=False):
        verdict = gr.Markdown("")
    table = gr.Dataframe(label="Summary", interactive=False, wrap=True)
    shown = [heading, evidence, verdict, chart, examples, table]
    load = gr.context.Context.root_block.load
    load(lambda: _on_load(ws), None, [*shown, view, *picker[:2]], api_name="start_latest", **READ_ONLY)
    view.input(lambda which: _show(_pick(ws, which)), view, shown, api_name="start_view", **READ_ONLY)

    # one contestant's chunk of answers in one ZeroGPU slot, its models resolved in this process first
    @spaces.gpu(duration=slot_seconds_for, prepare=lambda spec, *_: spaces.prefetch(ws, cache, spec))
    def answer_slot(spec, label, items, gen, per, should_stop):
        return evaluation.answer_to_checkpoint(ws, cache, spec, label, items, gen, per, should_stop)

    answer = slot_answers(answer_slot) if spaces.on_zero_gpu() else None

    def start(dataset, corpus, qa, questions, contestants, request: gr.Request):
        yield from _run(ws, cache, stops, dataset, corpus, qa, questions, contestants, request, answer)

    run.click(start, list(picker), [progress, *shown, view], api_name="start_run", **generation(BATCH))

    def stop(request: gr.Request):
        stops.cancel(request)
        return "Cancelling: finished stages are kept and reused next time..."

    cancel.click(stop, None, progress, api_name="start_cancel", concurrency_limit=None)


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
    contestants = gr.CheckboxGroup(
        list(showcase.ALL_CONTESTANTS),
        value=list(showcase.default_contestants()),
        label="Contestants",
        info=showcase.CONTESTANTS_NOTE,
        elem_id="start-contestants",
    )
    return dataset, corpus, qa, questions, contestants


def _on_load(ws):
    datasets = ws.list("datasets") or [showcase.SAMPLE]
    corpora = ws.list("corpora") or [showcase.SAMPLE]
    latest = showcase.latest(ws)
    view = gr.Radio(value=LATEST, visible=latest is not None)
    return (*_show(latest or reference.reference()), view, gr.Dropdown(choices=datasets), gr.Dropdown(choices=corpora))


def _pick(ws, which: str):
    """The comparison the view switch asks for: the shipped reference, or this workspace's latest (else the
    reference)."""
    return reference.reference() if which == REFERENCE else showcase.latest(ws) or reference.reference()


def _run(ws, cache, stops, dataset, corpus, qa, questions, contestants, request, answer=None):
    if not contestants:
        gr.Warning("Tick at least one contestant.")
        yield "**Nothing to compare:** tick at least one contestant.", *[gr.skip()] * 7
        return
    inputs = showcase.Inputs(dataset=dataset or showcase.SAMPLE, corpus=corpus or showcase.SAMPLE, qa=qa or "",
                             questions=int(questions or 0), contestants=list(contestants))  # fmt: skip
    try:
        refuse_over_quota(ws, inputs)
    except Exception as exc:
        message = user_message(exc)
        gr.Warning(message)
        yield f"**The comparison did not start:** {html.escape(message)}", *[gr.skip()] * 7
        return
    flag = stops.fresh(request)
    box: dict = {"update": None}
    hooks = training_hooks()

    def work():
        return showcase.run_showcase(ws, cache, inputs, lambda u: box.update(update=u), flag.is_set, hooks, answer)

    thread = in_background(work, box, "showcase")
    skip = [gr.skip()] * 7
    while thread.is_alive():
        yield progress_md(box["update"]), *skip
        time.sleep(1.0)
    if "error" in box:
        gr.Warning(box["error"])
        yield f"**The comparison stopped:** {html.escape(box['error'])}", *skip
        return
    result = box["result"]
    shown = after_run(ws, result)
    yield _done_line(result, shown), *_show(shown), gr.Radio(value=LATEST, visible=not shown.get("reference"))


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


def progress_md(u) -> str:
    """One progress view: the stage (n of N), what it is doing, a bar, the stage ETA and the overall ETA."""
    if u is None:
        return "Starting..."
    return (
        f"**Stage {u.number} of {u.total}: {u.label}**: {html.escape(u.message)}\n\n"
        f"{progress_bar_html(u.fraction, f'this stage: {_eta(u.stage_eta_s)} left')}\n\n"
        f"everything: {_eta(u.overall_eta_s)} left"
    )


def _done_line(result, shown=None) -> str:
    """What the run did, and after Cancel which comparison the view shows instead."""
    run = result.get("run", {})
    stages = run.get("stages", [])
    reused = sum(bool(s.get("reused")) for s in stages)
    state = "finished" if run.get("status") == "finished" else "cancelled (finished stages are kept)"
    line = f"Comparison {state} in {_eta(run.get('total_s'))}: {len(stages)} stages, {reused} reused."
    if shown is None or shown is result:
        return line + (" Shown below, marked partial." if run.get("status") != "finished" else "")
    which = "the shipped reference" if shown.get("reference") else "the last finished comparison"
    return f"{line} Shown below: {which}."


def _show(result):
    """(heading, headline, verdict, chart, examples, table) for a comparison, or an invitation when there is none."""
    if not result or not result.get("systems"):
        note = "No comparison on this workspace yet: press **Run the whole comparison** (about 5 minutes)."
        return note, "", "", None, "", None
    said = headline(result)
    said = f"### What the evidence says\n\n{said}" if said else ""
    said = f"{said}\n\n{card_markdown(result)}".strip()  # the decision card under the headline
    return heading_md(result), said, result.get("verdict", ""), chart(result), examples_html(result), summary(result)


def heading_md(result) -> str:
    if result.get("reference"):
        n = result.get("showcase", {}).get("questions") or 0
        return (
            f"### Reference comparison, shipped with ExpertLab\n{result['reference']} {n} questions, "
            f"{len(result['systems'])} contestants. **Run the whole comparison** measures it on this machine; this "
            "reference stays one click away."
        )
    sc = result.get("showcase", {})
    inputs = sc.get("inputs", {})
    n, total = sc.get("questions") or 0, sc.get("total_s")  # the run that computed it, not a reusing one
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(result.get("created_at") or time.time()))
    subset = (
        f"{n} questions (a stratified subset keeping every group)" if inputs.get("questions") else f"{n} questions"
    )
    took = f", took {_eta(total)}" if total else ""
    state = "" if result.get("status") == "finished" else " (**cancelled: partial**)"
    data = f"dataset `{inputs.get('dataset')}`, documents `{inputs.get('corpus')}`"
    asked = f"  \nQuestions: {sc['question_source']}." if sc.get("question_source") else ""
    return (
        f"### Latest comparison{state}\n{when}: {data}, {subset}, {len(result['systems'])} contestants{took}.{asked}"
    )


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
        vals = [100 * (s.get(key) or 0) for s in systems]
        err = [[v - 100 * (s.get(f"{key}_ci") or [0, 0])[0] for v, s in zip(vals, systems, strict=True)],
               [100 * (s.get(f"{key}_ci") or [0, 0])[1] - v for v, s in zip(vals, systems, strict=True)]]  # fmt: skip
        ax.barh(range(len(names)), vals, xerr=[[max(0, e) for e in err[0]], [max(0, e) for e in err[1]]],
                color=colour, alpha=0.8, capsize=3)  # fmt: skip
        for y, (v, hi) in enumerate(zip(vals, [v + e for v, e in zip(vals, err[1], strict=True)], strict=True)):
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
    picked = reference.examples(result, 3)
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
