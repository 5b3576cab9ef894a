"""The Arena's Teacher sub-tab: whether class mode is on (lab.classroom), export every vote as CSV, reset the votes
(after a confirmation), and delete runs, evaluations and indexes. Every handler checks
`ServerSettings.require_teacher` (lab.ui.roles) first (the real guard); the tab is also hidden on page load from
accounts that are not teachers. Events: teacher_export_votes, teacher_reset_votes, teacher_names, teacher_delete.
"""

from __future__ import annotations

import time

import gradio as gr

from lab import classroom, jobs
from lab.arena import battles, evaluation
from lab.rag import delete_index, list_indexes
from lab.ui.common import fail, fail_with, shows_errors
from lab.ui.roles import ServerSettings

KINDS = ("run", "evaluation", "index")


def build(ws, cache, settings: ServerSettings) -> gr.Column:
    """The panel, inside the caller's Teacher tab (whose page-load event hides the tab from non-teachers)."""
    with gr.Column() as panel:
        gr.Markdown(
            "### Teacher controls\nWith a login (`LAB_AUTH`) only teacher accounts (`LAB_TEACHERS`) see this tab and "
            "may use it; without one, the person at this computer is the teacher, and on a lab others can reach "
            "(a Space) nobody is."
        )
        gr.Markdown(class_mode_line(), elem_id="teacher-class-mode")
        with gr.Row():
            export = gr.Button("Export all votes (CSV)")
            csv_file = gr.File(label="votes.csv", interactive=False)
        with gr.Row():
            sure = gr.Checkbox(False, label="Yes, delete every vote and issued battle (cannot be undone)")
            reset = gr.Button("Reset votes", variant="stop")
        status = gr.Markdown("")
        with gr.Row():
            kind = gr.Radio(list(KINDS), value="evaluation", label="Delete a")
            name = gr.Dropdown(_names(ws, "evaluation"), label="Name", allow_custom_value=True)
            delete = gr.Button("Delete", variant="stop")

    def on_export(request: gr.Request):
        return _on_export(ws, settings, request)

    def on_reset(confirmed, request: gr.Request):
        return _on_reset(ws, settings, confirmed, request)

    def on_delete(k, n, request: gr.Request):
        return _on_delete(ws, cache, settings, k, n, request)

    export.click(on_export, None, [csv_file, status], api_name="teacher_export_votes")
    reset.click(on_reset, sure, [status, sure], api_name="teacher_reset_votes")
    kind.change(lambda k: gr.Dropdown(choices=_names(ws, k), value=None), kind, name, api_name="teacher_names")
    delete.click(on_delete, [kind, name], [status, name], api_name="teacher_delete")
    return panel


def class_mode_line() -> str:
    """One line for the start-up log and this panel: what class mode (lab.classroom) changed here, or how to turn
    it on."""
    if not classroom.class_mode():
        return ("Class mode is off. For a class asking at once, start the app with `python app.py --class`: more "
                "answers decode together, and on a CPU with native bf16 they are computed in bfloat16.")  # fmt: skip
    from lab.generation import batcher
    from lab.models import device, serving_dtype

    if not batcher.enabled():
        return "Class mode is on, but answers are not batched here (a ZeroGPU Space, or LAB_BATCH=0)."
    dtype = serving_dtype()
    if dtype == "auto":
        dtype = "float32 (this CPU has no native bf16)" if device() == "cpu" else "the card's half precision"
    return f"Class mode is on: up to {batcher.max_batch()} answers decode together, computed in {dtype}."


def visible_for(settings: ServerSettings, request: gr.Request):
    """Page load: show the Teacher tab (its label too) to teachers only."""
    return gr.Tab(visible=settings.is_teacher(request))


def _names(ws, kind: str) -> list[str]:
    if kind == "run":
        return [r["id"] for r in jobs.list_runs(ws)]
    if kind == "index":
        return list_indexes(ws)
    return [r["id"] for r in evaluation.list_evaluations(ws)]


@shows_errors(lambda message: (None, fail(message)))
def _on_export(ws, settings: ServerSettings, request: gr.Request):
    settings.require_teacher(request, "export the votes")
    text = battles.votes_csv(ws.db_path)
    out = ws.downloads / "votes" / time.strftime("votes-%Y%m%d-%H%M%S.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    staging.replace(out)  # the served folder never holds a half-written export
    return str(out), f"Exported {text.count(chr(10)) - 1} votes."


@shows_errors(fail_with(gr.skip()))
def _on_reset(ws, settings: ServerSettings, sure: bool, request: gr.Request):
    settings.require_teacher(request, "reset the votes")
    if not sure:
        return fail("tick the confirmation first: resetting deletes every vote"), gr.skip()
    n = battles.reset_votes(ws.db_path)
    return f"Deleted {n} votes and every issued battle; the leaderboard starts again.", False


@shows_errors(fail_with(gr.skip()))
def _on_delete(ws, cache, settings: ServerSettings, kind: str, name: str, request: gr.Request):
    settings.require_teacher(request, f"delete a {kind}")
    if not name:
        return fail(f"choose the {kind} to delete"), gr.skip()
    if kind == "run":
        jobs.delete(ws, name)
    elif kind == "index":
        delete_index(ws, name)
    else:
        evaluation.delete_evaluation(ws, name)
    return f"Deleted {kind} `{name}`.", gr.Dropdown(choices=_names(ws, kind), value=None)
