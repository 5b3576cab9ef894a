"""The Arena tab's batch-evaluation sub-tab: run a question set against contestants with a progress bar and a
cancel button, then show the verdict, a grouped bar chart, the summary with intervals, a filterable per-question
table with passages, saved evaluations (load, compare), CSV/JSON downloads and the evidence pack (lab.arena.report).
Without an uploaded file the questions are lab.arena.questions' choice.

Work is in lab.arena.evaluation (run in a worker thread so Cancel can stop it between batches, through a flag file
that also reaches a forked ZeroGPU worker); answers are saved per batch, and on ZeroGPU the evaluation is split into
chunks of one GPU slot each, or refused up front when it needs more than a visitor's quota (lab.ui.zerogpu_budget).
Formatting in lab.ui.arena_view. Events: arena_eval_run, arena_eval_cancel, arena_eval_filter, arena_eval_detail,
arena_eval_list, arena_eval_load, arena_eval_compare, arena_eval_pack.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr

from lab.arena import evaluation
from lab.arena.questions import default_questions
from lab.arena.verdict import findings, render_list
from lab.config import GenConfig
from lab.errors import LabError
from lab.metrics.rate import Rate, format_rate
from lab.metrics.scoring import CATEGORIES
from lab.ui import arena_view as view
from lab.ui import zerogpu_budget as budget
from lab.ui.common import (
    BATCH,
    FileFlag,
    SessionFlags,
    View,
    config_help,
    contestant_names,
    gen_controls,
    gen_from,
    generation,
    in_background,
    pack_files,
    progress_bar_html,
    shows_errors,
)
from lab.ui.decision_view import card_markdown
from lab.ui.spaces import answers_duration, gpu, prefetch


def build(ws, cache, choices):
    stops = SessionFlags(ws.tmp / "cancel" / "arena-eval")
    with gr.Row():
        with gr.Column(scale=1):
            inputs, run, cancel = _run_controls(choices)
        with gr.Column(scale=1):
            status = gr.Markdown("Choose contestants and press **Run evaluation**.")
            verdict = gr.Markdown()
            pack, packed = _pack_controls()
    chart = gr.Plot(show_label=False, visible=False)  # the figure carries its own title: no label over the axis
    summary = gr.Dataframe(
        label="Summary (rates in %, 95% bootstrap interval in brackets)",
        interactive=False,
        visible=False,
        wrap=True,
        elem_id="arena-eval-summary",
    )
    result = gr.State({})
    _build_questions(ws, result, choices)
    shown = _build_saved(ws, status, verdict, chart, summary, result)
    pack.click(lambda res: pack_files(ws, res), result, packed, api_name="arena_eval_pack")

    # On ZeroGPU each chunk of answers is its own GPU call, sized to one slot (zerogpu_budget.answer_chunks); the
    # handler itself runs in the app's process, where Cancel's flag file and the checkpoint are read.
    @gpu(duration=chunk_seconds, prepare=lambda qa, systems, *_: prefetch(ws, cache, systems))
    def chunk(qa, systems, limit, gen, per, flag):
        yield from _chunk(ws, cache, qa, systems, limit, gen, per, FileFlag(flag))

    def on_run(request: gr.Request, upload, pick, limit, batch, *settings):
        for outputs in _on_run(ws, stops, chunk, upload, pick, limit, batch, *settings, request=request):
            yield shown.updates(**outputs)

    run.click(on_run, inputs, shown.outputs(), api_name="arena_eval_run", **generation(BATCH))

    def on_cancel(request: gr.Request):
        stops.cancel(request)
        return "Cancelling after the current batch..."

    cancel.click(on_cancel, None, status, api_name="arena_eval_cancel", concurrency_limit=None)
    return inputs[1]


def _run_controls(choices) -> tuple[list, gr.Button, gr.Button]:
    """What an evaluation runs on: ([questions file, contestants, question limit, batch size, generation
    settings...], Run, Cancel)."""
    upload = gr.File(
        label="Evaluation JSONL (empty = the questions held out from the contestants' own dataset, or the "
        "sample's for the sample domain)",
        type="filepath",
    )
    pick = gr.Dropdown(choices, value=choices[:4], multiselect=True, allow_custom_value=True, label="Contestants",
                       elem_id="arena-eval-pick")  # fmt: skip
    with gr.Row():
        limit = gr.Number(0, label="Only the first N questions (0 = all)", precision=0, minimum=0)
        batch = gr.Number(GenConfig().batch_size, label="Batch size", precision=0, minimum=1,
                          info=config_help(GenConfig, "batch_size"))  # fmt: skip
    gen = gen_controls()
    with gr.Row():
        run = gr.Button("Run evaluation", variant="primary")
        cancel = gr.Button("Cancel", variant="stop")
    return [upload, pick, limit, batch, *gen], run, cancel


@dataclasses.dataclass(frozen=True)
class Evaluated(View):
    """An evaluation's outputs, in the arena_eval_run and arena_eval_load APIs' order: the status line, the decision
    card with the verdict, the chart, the summary table, the result (state) and its export files."""

    status: gr.Markdown
    verdict: gr.Markdown
    chart: gr.Plot
    summary: gr.Dataframe
    result: gr.State
    files: gr.File


def _cleared(status: str) -> dict:
    """Every output by name (Evaluated's fields): `status`, and no results (chart and table hidden)."""
    chart, summary = _hidden()
    return {"status": status, "verdict": "", "chart": chart, "summary": summary, "result": {}, "files": None}


def _failed(message: str) -> dict:
    """The outputs of an evaluation that could not start or be loaded: the message as a toast and the status."""
    gr.Warning(message)
    return _cleared(f"**{message}**")


@shows_errors(lambda message: ("error", f"{message} (the answers so far are saved: run it again to continue)"))
def _steps(chunk, *args):
    """One chunk's ("progress" | "result" | "error", value) steps; a failure (e.g. the GPU slot was refused or ran
    out) ends them with an "error" step."""
    yield from chunk(*args)


@shows_errors(_failed)
def _on_run(ws, stops, chunk, upload, pick, limit, batch, *settings, request: gr.Request | None = None):
    """Check the inputs, refuse on ZeroGPU what cannot fit the quota, then answer chunk by chunk (one chunk off
    ZeroGPU) until the evaluation is finished or cancelled; answers are saved per batch, so a run stopped by a
    killed slot continues where it stopped when started again. Yields the outputs by name (Evaluated's fields)."""
    gen = gen_from(*settings, batch_size=int(batch or 8))
    systems = list(dict.fromkeys(p for p in pick or [] if p))
    if not systems:
        raise LabError("pick at least one contestant")
    qa, said = (upload, f"questions from {Path(upload).name}") if upload else default_questions(ws, systems)
    items = evaluation.read_items(qa, int(limit or 0))  # an upload is costed by its own question count
    saved = evaluation.saved_answers(ws, items, systems, gen)
    chunks = budget.refuse_long_evaluation(len(items), len(systems), gen.batch_size, saved)
    flag = stops.fresh(request)
    total = len(items) * len(systems)  # every contestant answers every question
    box: dict = {"progress": (saved, total, f"{len(items)} questions x {len(systems)} contestants; loading...")}
    gr.Info(f"Evaluating on {said}")
    yield _cleared(_progress(box))  # clear the previous results once
    per = chunks[0] if len(chunks) > 1 else None  # None: everything in one call
    for _ in range(len(chunks) + 1):
        for kind, value in _steps(chunk, qa, systems, int(limit or 0), gen, per, str(flag.path)):
            box[kind] = value
            if kind == "progress":
                yield {"status": _progress(box)}  # the other outputs stay as they are
        if "error" in box:
            gr.Warning(box["error"])
            yield _cleared(f"**Evaluation failed:** {box['error']}")
            return
        if box.get("result", {}).get("status") != "partial":
            break
    if box.get("result", {}).get("status") in (None, "partial"):  # the chunks ran out before the last answer
        message = "the evaluation stopped before its last answer (the answers so far are saved: run it again)"
        gr.Warning(message)
        yield _cleared(f"**Evaluation failed:** {message}")
        return
    yield _show(ws, box["result"], said)


def chunk_seconds(qa, systems, limit, gen, per, flag) -> float:
    """The GPU seconds a chunk asks for, from the chunk's own arguments (`per` answers; None only off ZeroGPU)."""
    return answers_duration(per or 0)


def _chunk(ws, cache, qa, systems, limit, gen, per, flag):
    """Answer up to `per` answers (None = all) in a worker thread, yielding ("progress", (done, total, message))
    every second, then ("result", the result) or ("error", a message)."""
    box: dict = {}

    def work():
        tick = lambda d, t, m: box.update(progress=(d, t, m))  # noqa: E731
        return evaluation.evaluate_in_workspace(ws, cache, qa, systems, gen, limit, tick, flag.is_set, budget=per)

    thread = in_background(work, box, "evaluation")
    while thread.is_alive():
        thread.join(1.0)
        if "progress" in box:
            yield "progress", box["progress"]
    yield ("error", box["error"]) if "error" in box else ("result", box["result"])


def _progress(box) -> str:
    done, total, message = box["progress"]
    return f"Running: {done} of {total} answers\n\n{progress_bar_html(done / max(total, 1), message)}"


def _hidden():
    """Chart and summary table stay hidden until there are results (no empty frame, no dummy headers)."""
    return gr.Plot(value=None, visible=False), gr.Dataframe(value=None, visible=False)


def _show(ws, result, said: str = "") -> dict:
    """A finished (or cancelled) evaluation's outputs by name (Evaluated's fields), the decision card first."""
    names = contestant_names(ws, [s["system"] for s in result.get("systems", [])])
    head, rows = view.summary_rows(result, names)
    state = "cancelled (partial results)" if result.get("status") == "cancelled" else "finished"
    text = f"Evaluation **{result.get('id', '')}** {state}: {len(result['questions'])} answers."
    if said:
        text += f" Questions: {said}."
    table = gr.Dataframe({"headers": head, "data": rows}, column_widths=view.summary_widths(head), visible=True)
    files = [str(p) for p in evaluation.export_paths_for(result)]
    chart = gr.Plot(view.bar_chart(result, names), visible=True)
    verdict = f"{card_markdown(result, ws=ws)}\n\n{render_list(findings(result), markdown=True, small_notes=True)}"
    return {"status": text, "verdict": verdict, "chart": chart, "summary": table, "result": result, "files": files}


def _build_questions(ws, result, choices) -> None:
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

    def on_filter(res, s, c, t):
        names = contestant_names(ws, [x["system"] for x in (res or {}).get("systems", [])])
        rows = view.question_rows(res or {}, s or "", c or "", t or "", names)
        has = bool((res or {}).get("questions"))
        return gr.Markdown(visible=not has), gr.Dataframe(rows, visible=has), gr.Markdown(visible=has)

    def on_filters(res, s, c):
        """The filters of a new result: its own contestants (by friendly name) and categories; a pick it lacks is
        cleared."""
        return filter_updates(res or {}, s or "", c or "", contestant_names(ws, _systems(res)))

    for comp in (system, category, text):
        comp.change(on_filter, [result, system, category, text], [empty, table, detail], api_name=False)
    result.change(on_filter, [result, system, category, text], [empty, table, detail], api_name="arena_eval_filter")
    result.change(on_filters, [result, system, category], [system, category], api_name=False, queue=False)

    def on_select(res, evt: gr.SelectData):
        row = evt.row_value or []
        names = contestant_names(ws, _systems(res))
        return view.question_detail(res or {}, row[0], row[1], names) if len(row) > 1 else ""

    table.select(on_select, result, detail, api_name="arena_eval_detail")


def _systems(result) -> list[str]:
    return [s["system"] for s in (result or {}).get("systems", [])]


def filter_updates(result: dict, system: str, category: str, names: dict[str, str]) -> tuple[dict, dict]:
    """gr.update for the contestant and category filters after a new result: the contestants it has (friendly
    name shown, id as the value) and the categories its answers fall in; a pick the result lacks becomes "" (all)."""
    systems = _systems(result)
    cats = [c for c in CATEGORIES if any(q.get("category") == c for q in result.get("questions", []))]
    people = [("(all contestants)", ""), *((view.name_text(s, names), s) for s in systems)]
    return (
        gr.update(choices=people, value=system if system in systems else ""),
        gr.update(
            choices=[("(all categories)", ""), *((c, c) for c in cats)], value=category if category in cats else ""
        ),
    )


def _build_saved(ws, status, verdict, chart, summary, result) -> Evaluated:
    """The saved evaluations: list, load (into the evaluation's outputs), compare and download; returns the
    evaluation's outputs with this section's download files."""
    with gr.Accordion("Saved evaluations: load, compare, download", open=False):
        with gr.Row():
            saved = gr.Dropdown([], multiselect=True, label="Saved evaluations (newest first)", scale=3)
            listing = gr.Button("List", scale=1)
            load = gr.Button("Load first selected", scale=1)
            comp = gr.Button("Compare selected", scale=1)
        compared = gr.Dataframe(label="Comparison (correct and hallucination rates with 95% CI)", interactive=False)
        files = gr.File(label="Download (JSON, CSV)", file_count="multiple", interactive=False)

    shown = Evaluated(status, verdict, chart, summary, result, files)

    def on_list():
        return gr.Dropdown(choices=[r["id"] for r in evaluation.list_evaluations(ws)])

    def on_load(ids):
        if not ids:
            gr.Warning("select a saved evaluation first")
            return gr.skip()  # every output stays as it is
        return shown.updates(**_loaded(ws, ids[0]))

    listing.click(on_list, None, saved, api_name="arena_eval_list")
    load.click(on_load, saved, shown.outputs(), api_name="arena_eval_load")
    comp.click(lambda ids: _compare_table(_compared(ws, ids)), saved, compared, api_name="arena_eval_compare")
    return shown


@shows_errors(_failed)
def _loaded(ws, eval_id: str) -> dict:
    """A saved evaluation's outputs by name (Evaluated's fields)."""
    return _show(ws, evaluation.load_evaluation(ws, eval_id))


@shows_errors(lambda message: gr.Warning(message) or [])
def _compared(ws, ids) -> list:
    return evaluation.compare(ws, ids or [])


def _compare_table(rows):
    head = ["evaluation", "system", "correct %", "correct 95% CI", "hallucination %", "hallucination 95% CI"]
    data = []
    for r in rows:
        cells = []
        for key in ("correct_rate", "hallucination_rate"):
            cells += [view.rate_cell({key: r.get(key)}, key), format_rate(Rate.of(r, key), "interval")]
        data.append([r["evaluation"], r["system"], *cells])
    return {"headers": head, "data": data}


def _pack_controls():
    """The evidence pack's button and its download box (hidden until a pack is written)."""
    button = gr.Button("Evidence pack (HTML + zip)", size="sm", elem_id="arena-eval-pack")
    files = gr.File(
        label="Evidence pack", file_count="multiple", interactive=False, visible=False, elem_id="arena-eval-pack-files"
    )
    return button, files
