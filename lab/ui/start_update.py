"""The update test's opt-in panel (under the Start tab's evidence): its time estimate on this machine shown before it
starts, one progress view, Cancel between stages, then each contestant's counts and the row's sentence. The work is
lab.arena.update_test.update_for on the latest comparison in a worker thread; the result is saved beside that
comparison, so its decision card shows the row from then on. Events: update_estimate (the panel opened),
update_run, update_cancel.
"""

from __future__ import annotations

import html
import time
from types import SimpleNamespace

import gradio as gr

from lab.arena import showcase
from lab.arena import update_test as ut
from lab.ui.common import BATCH, READ_ONLY, SessionFlags, generation, in_background, progress_bar_html, shows_errors

TITLE = "Do the answers follow the documents when they change? (update test, opt-in)"
INTRO = (
    "Copies the documents, changes the facts behind a few answerable questions (a number by another number, a code "
    "by another code), re-indexes the copy and asks those questions again. Counts, per contestant, the answers that "
    "follow the new value, keep the old one, or neither. The original documents are never touched."
)
RUN = "Run the update test"
K = 5


def build(ws, cache) -> None:
    """The panel; it runs on the latest comparison of the workspace (the one the card shows)."""
    stops = SessionFlags(ws.tmp / "cancel" / "update")
    with gr.Accordion(TITLE, open=False, elem_id="update") as panel:
        gr.Markdown(INTRO)
        estimate = gr.Markdown("", elem_id="update-estimate")
        with gr.Row():
            run = gr.Button(RUN, variant="secondary", scale=3, elem_id="update-run")
            cancel = gr.Button("Cancel", variant="stop", scale=1, elem_id="update-cancel")
        progress = gr.HTML("", elem_id="update-progress")
        said = gr.Markdown("", elem_id="update-said")

    def on_estimate():
        result = showcase.latest(ws)
        return estimate_md(ws, result), shown(ut.saved(ws, result) if result else None)

    panel.expand(on_estimate, None, [estimate, said], api_name="update_estimate", **READ_ONLY)

    def on_run(request: gr.Request):
        flag = stops.fresh(request)
        yield from _on_run(ws, cache, showcase.latest(ws), flag.is_set)

    run.click(on_run, None, [progress, said], api_name="update_run", **generation(BATCH))

    def on_cancel(request: gr.Request):
        stops.cancel(request)
        return "Cancelling after the current stage..."

    cancel.click(on_cancel, None, progress, api_name="update_cancel", concurrency_limit=None)


@shows_errors(lambda message: f"Time estimate unavailable: {html.escape(message)}")
def estimate_md(ws, result, k: int = K) -> str:
    """The update test's estimate on this machine: re-index seconds (the index's saved build time) plus answering
    (k answers per contestant at its measured median latency)."""
    if not result:
        return "Run a comparison first: the update test asks its contestants again."
    reindex, answering = ut.forecast_s(ws, result, k)
    if reindex is None and answering is None:
        return "No saved build or answer times to estimate from."
    parts = [f"re-index about {reindex:.0f} s" if reindex is not None else "re-index time unknown",
             f"answering about {answering:.0f} s" if answering is not None else "answering time unknown"]  # fmt: skip
    total = (reindex or 0.0) + (answering or 0.0)
    return f"**Estimate on this machine: about {total:.0f} s** ({', '.join(parts)}; {k} facts changed)"


def _on_run(ws, cache, result, stopped, k: int = K, **hooks):
    """Run the update test on `result` in a worker thread, yielding (progress, said); saves it beside `result`.
    `hooks`: update_for's `build` and `responder` (tests)."""
    if not result:
        yield "**The update test did not start:** run a comparison first.", gr.update()
        return
    box = {"stage": None}

    def stage(label, number, total):
        box["stage"] = SimpleNamespace(label=label, number=number, total=total)

    def work():
        update = ut.update_for(ws, cache, result, k, 0, stage=stage, stopped=stopped, **hooks)
        ut.save(ws, result, update)
        return update

    thread = in_background(work, box, "update-test")
    yield progress_html(None), gr.update()
    while thread.is_alive():
        yield progress_html(box["stage"]), gr.update()
        time.sleep(0.5)
    if "error" in box:
        yield f"<b>The update test stopped:</b> {html.escape(box['error'])}", gr.update()
        return
    yield "Done: saved beside the comparison; the decision card shows the row.", shown(box["result"])


def progress_html(stage) -> str:
    """The stage (n of N) and a bar of the stages finished."""
    if stage is None:
        return "Starting..."
    bar = progress_bar_html((stage.number - 1) / stage.total, f"stage {stage.number} of {stage.total}")
    return f"<b>{html.escape(stage.label)}</b>{bar}"


def shown(update: dict | None) -> str:
    """Each contestant's counts and the card row's sentence; "" when the test was not run."""
    if not update:
        return ""
    from lab.arena.decision import update_row

    lines = ["| contestant | follows the new value | keeps the old | neither |", "|---|---|---|---|"]
    for label, c in (update.get("counts") or {}).items():
        lines.append(f"| {label} | {c['new']} | {c['old']} | {c['neither']} |")
    row = update_row(update, 200)
    return f"{row.get('sentence', '')}\n\n" + "\n".join(lines)
