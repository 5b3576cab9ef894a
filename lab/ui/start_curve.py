"""The learning curve's opt-in panel (under the Start tab's evidence): its time range on this machine shown before
it starts, a confirm step when that is over ten minutes, one progress view, Cancel between stages, then a line
chart of correct answers on taught facts by share of training data with 95% interval bands against RAG's flat
line, and the curve's sentence. The work is lab.arena.learning_curve.run_curve in a worker thread; the saved curve
also shows as a row of the decision card. Events: curve_estimate (the panel opened, inputs changed), curve_run,
curve_cancel.
"""

from __future__ import annotations

import html
import time

import gradio as gr

from lab.arena import learning_curve as lc
from lab.estimate import ASK_ABOVE_S
from lab.ui.common import BATCH, READ_ONLY, SessionFlags, generation, in_background, shows_errors
from lab.ui.start_view import progress_md

TITLE = "How much data does fine-tuning need? (learning curve, opt-in)"
INTRO = (
    "Fine-tunes the quick preset again on 25% and 50% of the training data (the 100% point is the comparison's "
    "own run, reused when it exists) and asks each model the questions on facts the training data teaches; RAG "
    "answers the same questions as a flat line. A trend is named only when the intervals of the smallest and the "
    "largest share do not overlap."
)
RUN = "Measure the learning curve"


def build(ws, cache, dataset, corpus, qa) -> None:
    """The panel; `dataset`, `corpus` and `qa` are the Start tab's pickers (the curve runs on what they name)."""
    stops = SessionFlags(ws.tmp / "cancel" / "curve")
    with gr.Accordion(TITLE, open=False, elem_id="curve") as panel:
        gr.Markdown(INTRO)
        estimate = gr.Markdown("", elem_id="curve-estimate")
        with gr.Row():
            run = gr.Button(RUN, variant="secondary", scale=3, elem_id="curve-run")
            cancel = gr.Button("Cancel", variant="stop", scale=1, elem_id="curve-cancel")
        progress = gr.Markdown("", elem_id="curve-progress")
        plot = gr.Plot(label="Correct on taught facts by share of training data (95% interval bands)")
        said = gr.Markdown("", elem_id="curve-said")
    armed = gr.State("")
    ins = [dataset, corpus, qa]
    panel.expand(lambda *a: estimate_md(ws, *a), ins, estimate, api_name="curve_estimate", **READ_ONLY)
    panel.expand(lambda d: shown(lc.latest(ws, d or lc.SAMPLE)), dataset, [plot, said], api_name=False, **READ_ONLY)

    outs = (progress, plot, said, run, armed)

    def start(d, c, q, confirmed, request: gr.Request):
        yield from _run(ws, cache, stops, inputs_of(ws, d, c, q), confirmed, request, outs)

    run.click(start, [*ins, armed], list(outs), api_name="curve_run", **generation(BATCH))

    def stop(request: gr.Request):
        stops.cancel(request)
        return "Cancelling: finished points are kept and reused next time..."

    cancel.click(stop, None, progress, api_name="curve_cancel", concurrency_limit=None)


def inputs_of(ws, dataset: str, corpus: str, qa: str) -> lc.CurveInputs:
    """The curve's inputs from the Start tab's pickers; RAG reads the corpus's index when one is built."""
    from lab.rag import list_indexes

    dataset, corpus = dataset or lc.SAMPLE, corpus or lc.SAMPLE
    index = lc.SAMPLE if corpus == lc.SAMPLE else (corpus if corpus in list_indexes(ws) else "")
    return lc.CurveInputs(dataset=dataset, index=index, qa=qa or "")


@shows_errors(lambda message: f"Time estimate unavailable: {html.escape(message)}")
def estimate_md(ws, dataset, corpus, qa) -> str:
    plan = lc.forecast(ws, inputs_of(ws, dataset, corpus, qa))
    lines = "".join(f"\n- {html.escape(line)}" for line in plan.lines())
    return f"**Estimate on this machine: {plan.total.says()}** ({plan.questions} taught-fact questions){lines}"


def _run(ws, cache, stops, inputs, confirmed, request, outs):
    progress, plot, said, button, armed = outs
    plan = _plan(ws, inputs)
    if isinstance(plan, str):
        yield {progress: f"**The learning curve did not start:** {html.escape(plan)}", armed: ""}
        return
    key = repr(inputs)
    if plan.total.seconds > ASK_ABOVE_S and confirmed != key:
        label = f"Run anyway (est. {plan.total.text.removeprefix('about ')})"
        text = f"**Not started: this takes long on this machine** ({plan.total.says()}). Press **{label}** to start."
        yield {progress: text, button: gr.Button(value=label), armed: key}
        return
    flag, box = stops.fresh(request), {"update": None}

    def work():
        return lc.run_curve(ws, cache, inputs, lambda u: box.update(update=u), flag.is_set, plan=plan)

    thread = in_background(work, box, "curve")
    yield {progress: progress_md(None, plan.total), button: gr.Button(value=RUN), armed: ""}
    while thread.is_alive():
        yield {progress: progress_md(box["update"], plan.total)}
        time.sleep(1.0)
    if "error" in box:
        yield {progress: f"**The learning curve stopped:** {html.escape(box['error'])}"}
        return
    result = box["result"]
    if result.get("status") == "cancelled":
        yield {progress: "Cancelled: the finished points are kept and reused next time."}
        return
    figure, sentence = shown(result)
    took = result["curve"]["total_s"]
    yield {progress: f"Done in {took / 60:.1f} min (estimated {plan.total.text}).", plot: figure, said: sentence}


@shows_errors(lambda message: message)
def _plan(ws, inputs):
    return lc.forecast(ws, inputs)


def shown(result: dict | None) -> tuple:
    """(chart, sentence) of a saved curve's evaluation; (None, "") when there is none."""
    if not result or not result.get("curve"):
        return None, ""
    curve = result["curve"]
    return chart(curve), f"{curve.get('sentence') or lc.trend_sentence(curve)} ({curve['questions']} questions)"


def chart(curve: dict):
    """Correct on taught facts (%) by share of training data, a 95% interval band around the line; RAG's rate on
    the same questions as a dashed flat line with its band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [(float(k.rstrip("%")), c) for k, c in curve["cells"].items() if c.get("value") is not None]
    xs = [x for x, _ in cells]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(xs, [100 * c["value"] for _, c in cells], marker="o", color="#1565c0", label="fine-tuned (quick preset)")
    ax.fill_between(xs, [100 * c["lo"] for _, c in cells], [100 * c["hi"] for _, c in cells], color="#1565c0",
                    alpha=0.18)  # fmt: skip
    flat = curve.get("flat")
    if flat and flat.get("value") is not None and xs:
        ends = [min(xs), max(xs)]
        ax.plot(ends, [100 * flat["value"]] * 2, linestyle="--", color="#2e7d32", label="RAG (no training)")
        ax.fill_between(ends, [100 * flat["lo"]] * 2, [100 * flat["hi"]] * 2, color="#2e7d32", alpha=0.12)
    ax.set_xticks(xs, [f"{x:.0f}%" for x in xs])
    ax.set_ylim(-3, 103)  # a point at 0% or 100% stays visible
    ax.set_xlabel("share of the training data")
    ax.set_ylabel("% correct (band: 95% interval)")
    ax.set_title(f"Correct on taught facts, n={curve.get('questions', 0)}", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
