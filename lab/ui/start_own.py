"""The Start tab's own-data questions section: own data without an evaluation file gets one built
(lab.arena.own_evalset, in a worker thread with a progress bar), shown in an editable review table
(lab.ui.evalset_view) with a download, and the reviewed, edited or re-uploaded file set as the comparison's
evaluation file. The Start tab (lab.ui.start_tab) places the section and stops a run that needs it.
Events: start_own_build (also run by Run without a file on own data), start_own_use (the edited table),
start_own_upload.
"""

from __future__ import annotations

import dataclasses
import html
import os
import shutil
import time

import gradio as gr

from lab.arena import own_evalset, showcase
from lab.data.evalset import read_evalset, write_evalset
from lab.errors import LabError, user_message
from lab.ui import evalset_view
from lab.ui.common import BATCH, View, generation, in_background, progress_bar_html

OWN_NOTE = (
    "**No evaluation file for your own data?** The lab builds one: questions held out from your dataset (taught "
    "facts), questions the model writes from your documents (each answer a short span copied from them) and "
    "unanswerable questions written from documents it keeps out of the index. Review and edit them before the "
    "comparison uses them."
)
BUILD, USE = "Build questions from my data", "Use the edited questions"
NEEDS_QUESTIONS = (
    "**Not started: your own data needs its own questions.** The sample's would not measure it. Building them "
    f"from your dataset and documents now (see **{BUILD}** under *Your own data*): review them, then press "
    "**{label}** again."
)


@dataclasses.dataclass(frozen=True)
class OwnView(View):
    """The own-data questions section's outputs: the build progress, the note, the review table, the button that
    takes the edited table, the download and the evaluation-file slot (in the API's order)."""

    progress: gr.HTML
    note: gr.Markdown
    review: gr.Dataframe
    use: gr.Button
    download: gr.File
    qa: gr.File


def section(qa: gr.File) -> tuple[gr.Number, gr.Button, OwnView]:
    """(how many questions to write, the build button, the section's outputs)."""
    gr.Markdown(OWN_NOTE)
    with gr.Row():
        count = gr.Number(12, precision=0, minimum=1, maximum=200, label="Questions to write from the documents",
                          elem_id="start-own-n")  # fmt: skip
        build = gr.Button(BUILD, elem_id="start-own-build")
    progress = gr.HTML("")
    note = gr.Markdown("", elem_id="start-own-note")
    review = gr.Dataframe(headers=list(evalset_view.COLUMNS), datatype=list(evalset_view.DATATYPES), type="array",
                          interactive=True, wrap=True, visible=False, elem_id="start-own-review",
                          label="Questions for review: edit any cell; clear a question to delete it")  # fmt: skip
    with gr.Row():
        use = gr.Button(USE, visible=False, elem_id="start-own-use")
        download = gr.File(label="Download to edit", interactive=False, visible=False)
    return count, build, OwnView(progress, note, review, use, download, qa)


def wire(ws, cache, picker, own: tuple, runs) -> None:
    dataset, corpus, qa = picker[:3]
    count, build_button, view = own
    outputs = view.outputs()

    def on_build(dataset, corpus, count):
        yield from build_own(ws, cache, view, dataset, corpus, count)

    def on_run(dataset, corpus, qa_file, count, contestants):
        if qa_file or not contestants or not is_own(dataset, corpus):
            yield view.updates(progress=gr.skip())  # the comparison itself runs; nothing to build
            return
        yield from build_own(ws, cache, view, dataset, corpus, count)

    build_button.click(on_build, [dataset, corpus, count], outputs, api_name="start_own_build", **generation(BATCH))
    for button in runs:  # Run without a file on own data: the run stops and the questions are built for review
        button.click(on_run, [dataset, corpus, qa, count, picker[4]], outputs, api_name=False, **generation(BATCH))
    view.use.click(lambda rows: use_edited(ws, view, rows), view.review, outputs, api_name="start_own_use")
    qa.upload(lambda path: show_uploaded(view, path), qa, outputs[:-1], api_name="start_own_upload")


def is_own(dataset, corpus) -> bool:
    """Whether the comparison reads the user's own data (a dataset or a corpus other than the sample's)."""
    return (dataset or showcase.SAMPLE) != showcase.SAMPLE or (corpus or showcase.SAMPLE) != showcase.SAMPLE


def own_model() -> str:
    """The model that writes the questions: the comparison's base model."""
    from lab.config import TrainConfig

    return TrainConfig().base_model


def build_own(ws, cache, view: OwnView, dataset, corpus, count):
    """Build the own-data set in a worker thread, showing a progress bar; then the review table, its note, the
    download and the evaluation-file slot set to the new file."""
    model, box = own_model(), {"update": (0.0, "loading the model")}
    taught = "" if (dataset or showcase.SAMPLE) == showcase.SAMPLE else dataset  # never the sample's questions

    def work():
        complete = own_evalset.model_complete(cache, model)
        own = own_evalset.build_own_evalset(ws, complete, taught, corpus or showcase.SAMPLE, int(count or 12),
                                            progress=lambda f, m: box.update(update=(f, m)))  # fmt: skip
        return own_evalset.write_own(own, own_evalset.own_evalset_path(ws, taught or "documents", corpus, 0))

    thread = in_background(work, box, "own-questions")
    while thread.is_alive():
        fraction, message = box["update"]
        yield view.updates(progress=progress_bar_html(fraction, f"writing questions: {message}"))
        time.sleep(1.0)
    if "error" in box:
        gr.Warning(box["error"])
        yield view.updates(progress="", note=f"**No questions built:** {html.escape(box['error'])}")
        return
    own = box["result"]
    note = evalset_view.review_note(own.items, model, len(own.dropped))
    yield view.updates(progress="", note=note, **_review(own.items), **_published(ws, own.path))


def _review(items) -> dict:
    """The review table and use button shown with `items` (OwnView field names)."""
    return {"review": gr.update(value=evalset_view.review_table(items), visible=True), "use": gr.update(visible=True)}


def _published(ws, path: str) -> dict:
    """The download and the evaluation-file slot set to the set at `path` (a copy in the served downloads folder)."""
    target = ws.downloads / "evalsets" / os.path.basename(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return {"download": gr.update(value=str(target), visible=True), "qa": str(target)}


def use_edited(ws, view: OwnView, rows) -> dict:
    """The edited table as the evaluation file the comparison uses (checked like an upload; a bad row is named)."""
    try:
        items = evalset_view.items_from_table(rows)
    except LabError as exc:
        gr.Warning(user_message(exc))
        return view.updates(progress="", note=f"**Not used:** {html.escape(user_message(exc))}")
    path = ws.tmp / "evalsets" / f"edited-{showcase.digest([it.to_dict() for it in items])[:10]}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_evalset(items, path)
    note = evalset_view.review_note(items, fresh=False)
    return view.updates(progress="", note=note, **_review(items), **_published(ws, str(path)))


def show_uploaded(view: OwnView, path) -> dict:
    """An uploaded evaluation file shown in the review table (it is used as uploaded; edits need Use)."""
    if not path:
        return view.updates(progress="", note="", review=gr.update(visible=False), use=gr.update(visible=False))
    try:
        items = read_evalset(path)
    except (LabError, OSError) as exc:
        gr.Warning(user_message(exc))
        return view.updates(progress="", note=f"**This file cannot be used:** {html.escape(user_message(exc))}")
    return view.updates(progress="", note=evalset_view.review_note(items, fresh=False), **_review(items))
