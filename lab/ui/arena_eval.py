"""The Arena tab's batch-evaluation sub-tab: run a question set against contestants with a progress bar and a
cancel button, then show the verdict, a grouped bar chart, the summary with intervals, a filterable per-question
table with passages, saved evaluations (load, compare) and CSV/JSON downloads.

Work is in lab.arena.evaluation (run in a worker thread so Cancel can stop it between batches); formatting in
lab.ui.arena_view. Events: arena_eval_run, arena_eval_cancel, arena_eval_filter, arena_eval_detail,
arena_eval_list, arena_eval_load, arena_eval_compare.
"""

from __future__ import annotations

import time

import gradio as gr

from lab.arena import evaluation
from lab.data.evalset import read_evalset, sample_evalset_path
from lab.errors import LabError, user_message
from lab.metrics.scoring import CATEGORIES
from lab.ui import arena_view as view
from lab.ui.common import BATCH, SessionFlags, gen_controls, gen_from, generation, in_background
from lab.ui.spaces import answers_duration, gpu


def build(ws, cache, choices):
    stops = SessionFlags()
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="Evaluation JSONL (empty = the sample domain's held-out set)", type="filepath")
            pick = gr.Dropdown(
                choices,
                value=choices[:4],
                multiselect=True,
                allow_custom_value=True,
                label="Contestants",
                elem_id="arena-eval-pick",
            )
            with gr.Row():
                limit = gr.Number(0, label="Only the first N questions (0 = all)", precision=0, minimum=0)
                batch = gr.Number(8, label="Batch size", precision=0, minimum=1)
            gen = gen_controls()
            with gr.Row():
                run = gr.Button("Run evaluation", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column(scale=1):
            status = gr.Markdown("Choose contestants and press **Run evaluation**.")
            verdict = gr.Markdown()
    chart = gr.Plot(show_label=False, visible=False)  # the figure carries its own title: no label over the axis
    summary = gr.Dataframe(
        label="Summary (rates in %, 95% bootstrap interval in brackets)",
        interactive=False,
        visible=False,
        wrap=True,
        elem_id="arena-eval-summary",
    )
    result = gr.State({})
    _build_questions(result, choices)
    files = _build_saved(ws, result, status, verdict, chart, summary)
    inputs = [upload, pick, limit, batch, *gen]
    outputs = [status, verdict, chart, summary, result, files]

    # The request comes first: gradio passes it positionally, and the generation settings (GEN_FIELDS) follow.
    @gpu(duration=lambda _, upload, pick, limit, *__: answers_duration((int(limit or 0) or 120) * len(pick or [])))
    def start(request: gr.Request, upload, pick, limit, batch, *settings):
        yield from _run(ws, cache, stops, upload, pick, limit, batch, *settings, request=request)

    run.click(start, inputs, outputs, api_name="arena_eval_run", **generation(BATCH))

    def stop(request: gr.Request):
        stops.cancel(request)
        return "Cancelling after the current batch..."

    cancel.click(stop, None, status, api_name="arena_eval_cancel", concurrency_limit=None)
    return pick


def _run(ws, cache, stops, upload, pick, limit, batch, *settings, request: gr.Request | None = None):

    try:
        gen = gen_from(*settings, batch_size=int(batch or 8))
        qa = upload or str(sample_evalset_path(ws))
        systems = list(dict.fromkeys(p for p in pick or [] if p))
        if not systems:
            raise LabError("pick at least one contestant")
        n_items = len(read_evalset(qa))
        n_items = min(n_items, int(limit)) if limit else n_items
    except Exception as exc:
        msg = user_message(exc)
        gr.Warning(msg)
        yield f"**{msg}**", "", *_hidden(), {}, None
        return
    flag = stops.fresh(request)
    total = n_items * len(systems)  # every contestant answers every question
    box: dict = {"progress": (0, total, f"{n_items} questions x {len(systems)} contestants; loading models...")}

    def work():
        tick = lambda d, t, m: box.update(progress=(d, t, m))  # noqa: E731
        return evaluation.evaluate_in_workspace(ws, cache, qa, systems, gen, int(limit or 0), tick, flag.is_set)

    yield from _watch(in_background(work, box, "evaluation"), box)


def _watch(thread, box):
    yield _progress(box), "", *_hidden(), {}, None  # clear the previous results once
    while thread.is_alive():
        time.sleep(1.0)
        yield _progress(box), *[gr.skip()] * 5
    if "error" in box:
        gr.Warning(box["error"])
        yield f"**Evaluation failed:** {box['error']}", "", *_hidden(), {}, None
        return
    yield _show(box["result"])


def _progress(box) -> str:
    done, total, message = box["progress"]
    filled = int(30 * done / max(total, 1))
    return f"Running: {done} of {total} answers {'█' * filled}{'░' * (30 - filled)} {message}"


def _hidden():
    """Chart and summary table stay hidden until there are results (no empty frame, no dummy headers)."""
    return gr.Plot(value=None, visible=False), gr.Dataframe(value=None, visible=False)


def _show(result):
    head, rows = view.summary_rows(result)
    state = "cancelled (partial results)" if result.get("status") == "cancelled" else "finished"
    text = f"Evaluation **{result.get('id', '')}** {state}: {len(result['questions'])} answers."
    table = gr.Dataframe({"headers": head, "data": rows}, visible=True)
    files = [str(p) for p in evaluation.export_paths_for(result)]
    chart = gr.Plot(view.bar_chart(result), visible=True)
    return text, view.verdict_md(result["verdict"]), chart, table, result, files


def _build_questions(result, choices) -> None:
    with gr.Accordion("Per-question results", open=True):
        with gr.Row():
            system = gr.Dropdown([""] + list(choices), value="", allow_custom_value=True, label="Contestant")
            category = gr.Dropdown(["", *CATEGORIES], value="", label="Category (e.g. hallucination)")
            text = gr.Textbox(label="Search text")
        empty = gr.Markdown("No results yet: run or load an evaluation.")
        table = gr.Dataframe(
            headers=view.QUESTION_HEADERS,
            interactive=False,
            wrap=True,
            max_height=480,
            column_widths=view.QUESTION_WIDTHS,
            visible=False,
            elem_id="arena-eval-questions",
        )
        detail = gr.Markdown("Select a row to see the passages behind the answer.", visible=False)

    def filt(res, s, c, t):
        rows = view.question_rows(res or {}, s or "", c or "", t or "")
        has = bool((res or {}).get("questions"))
        return gr.Markdown(visible=not has), gr.Dataframe(rows, visible=has), gr.Markdown(visible=has)

    for comp in (system, category, text):
        comp.change(filt, [result, system, category, text], [empty, table, detail], api_name=False)
    result.change(filt, [result, system, category, text], [empty, table, detail], api_name="arena_eval_filter")

    def select(res, evt: gr.SelectData):
        row = evt.row_value or []
        return view.question_detail(res or {}, row[0], row[1]) if len(row) > 1 else ""

    table.select(select, result, detail, api_name="arena_eval_detail")


def _build_saved(ws, result, status, verdict, chart, summary):
    with gr.Accordion("Saved evaluations: load, compare, download", open=False):
        with gr.Row():
            saved = gr.Dropdown([], multiselect=True, label="Saved evaluations (newest first)", scale=3)
            listing = gr.Button("List", scale=1)
            load = gr.Button("Load first selected", scale=1)
            comp = gr.Button("Compare selected", scale=1)
        compared = gr.Dataframe(label="Comparison (correct and hallucination rates with 95% CI)", interactive=False)
        files = gr.File(label="Download (JSON, CSV)", file_count="multiple", interactive=False)

    def do_list():
        return gr.Dropdown(choices=[r["id"] for r in evaluation.list_evaluations(ws)])

    def do_load(ids):
        if not ids:
            gr.Warning("select a saved evaluation first")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            return _show(evaluation.load_evaluation(ws, ids[0]))
        except Exception as exc:
            msg = user_message(exc)
            gr.Warning(msg)
            return f"**{msg}**", "", *_hidden(), {}, None

    def do_compare(ids):
        try:
            return evaluation.compare(ws, ids or [])
        except Exception as exc:
            gr.Warning(user_message(exc))
            return []

    listing.click(do_list, None, saved, api_name="arena_eval_list")
    load.click(do_load, saved, [status, verdict, chart, summary, result, files], api_name="arena_eval_load")
    comp.click(lambda ids: _compare_table(do_compare(ids)), saved, compared, api_name="arena_eval_compare")
    return files


def _compare_table(rows):
    head = ["evaluation", "system", "correct %", "correct 95% CI", "hallucination %", "hallucination 95% CI"]
    data = []
    for r in rows:
        cells = []
        for key in ("correct_rate", "hallucination_rate"):
            ci = r.get(f"{key}_ci")
            cells += [view.rate_cell({key: r.get(key)}, key), f"{100 * ci[0]:.0f}, {100 * ci[1]:.0f}" if ci else ""]
        data.append([r["evaluation"], r["system"], *cells])
    return {"headers": head, "data": data}
