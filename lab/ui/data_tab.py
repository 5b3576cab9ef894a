"""The Data tab: upload a fine-tuning file, see every error with its line, statistics, a histogram and a
chat-template preview with trained tokens highlighted; save it as a named dataset (seeded split); upload
documents as a named corpus for the RAG tab. All work is done by lab.data / lab.corpus; formatting is in
lab.ui.data_view. Every event has an api_name (data_validate, data_preview, data_save, data_save_corpus,
data_list); errors become a status message and a toast, never a traceback.
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from lab.config import DataConfig
from lab.corpus import SUFFIXES, corpus_files, list_corpora, save_corpus
from lab.data import DataError, list_datasets, save_dataset, validate_file
from lab.data.placeholders import parse_fill
from lab.data.stats import histogram_figure, preview_segments, template_default_system
from lab.errors import user_message
from lab.ui import data_view as view
from lab.ui.common import READ_ONLY, View, config_help, fail, fail_with, shows_errors, this_tab

DATA_TYPES = [".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt"]


def _config(fmt, qcol, acol, scol, max_len, split="", fill="", **extra) -> DataConfig:
    return DataConfig(
        format=fmt or "auto",
        question_column=(qcol or "").strip(),
        answer_column=(acol or "").strip(),
        system_column=(scol or "").strip(),
        max_length=int(max_len or DataConfig.max_length),
        split=(split or "").strip() or DataConfig.split,
        fill=parse_fill(fill),
        **extra,
    )


def _source(path, saved) -> str:
    """What to read: a saved dataset folder or hub id when one is given, else the uploaded file."""
    return (saved or "").strip() or path or ""


NO_SOURCE = "upload a fine-tuning file (or give a saved dataset folder or hub dataset id) first"


def _corpus_rows(ws) -> list[list]:
    return [[name, len(corpus_files(ws, name))] for name in list_corpora(ws)]


INTRO = (
    "## Fine-tuning data\nUpload chat JSONL (OpenAI `messages`, with `weight`, `tool_calls`, `tool` role, "
    "content as typed parts), alpaca JSON/JSONL, ShareGPT (with `function_call` / `observation` turns and "
    "`tools`), or CSV/TSV/Parquet with question/answer columns; or name a folder saved by `datasets` or a hub "
    "dataset id. Every line is checked; token counts use the chosen model's tokenizer."
)


@dataclasses.dataclass(frozen=True)
class Checked(View):
    """What Validate shows, in the data_validate API's order; `state` keeps the examples for the preview."""

    status: gr.Markdown
    errors: gr.Dataframe
    stats: gr.Markdown
    plot: gr.Plot
    report: gr.JSON
    preview: gr.HTML
    state: gr.State


def build(demo, ws, cache, settings=None) -> None:
    tab = this_tab()
    gr.Markdown(INTRO)
    source, extra = _build_check(cache)
    datasets = _build_save(ws, cache, source, extra)
    corpora = _build_corpus(ws)
    if tab:  # work saved elsewhere (another page, the command line) is listed when the tab opens
        tab.select(lambda: _lists(ws), None, [datasets, corpora], api_name=False, **READ_ONLY)


def _build_check(cache) -> tuple[list, list]:
    """The file, its reading settings, Validate and what it shows (errors, statistics, preview, report); returns
    (the upload and its reading settings, the fields added last to the API: saved dataset, split, fill)."""
    with gr.Row():
        with gr.Column(scale=1):
            source, extra = _source_controls()
            check = gr.Button("Validate", variant="primary")
        with gr.Column(scale=2):
            status = gr.Markdown("Upload a file and press **Validate**.")
            errors = gr.Dataframe(headers=["line", "kind", "message"], label="Errors", wrap=True, max_height=320,
                                  column_widths=["7%", "25%", "68%"], visible=False)  # fmt: skip
            stats = gr.Markdown()
            plot = gr.Plot(label="Histograms", show_label=False)
    with gr.Accordion("Preview through the chat template", open=True):
        index = gr.Number(1, label="Example #", precision=0, minimum=1)
        preview = gr.HTML()
    with gr.Accordion("Report as JSON", open=False):
        report = gr.JSON()
    checked = Checked(status, errors, stats, plot, report, preview, gr.State({}))
    model = source[5]

    def on_validate(path, fmt_, q, a, s, model_, max_len_, saved_="", split_="", fill_="", progress=gr.Progress()):
        where = {"split": split_, "fill": fill_}
        shown = _validate(cache, _source(path, saved_), fmt_, q, a, s, model_, max_len_, progress, where)
        return checked.updates(**shown)

    check.click(on_validate, [*source, *extra], checked.outputs(), api_name="data_validate")
    index.change(lambda s, i, m: _preview(cache, s, i, m), [checked.state, index, model], preview,
                 api_name="data_preview")  # fmt: skip
    return source, extra


def _source_controls() -> tuple[list, list]:
    """The upload and how to read it: ([upload, format, question, answer and system columns, tokenizer model,
    max length], [saved dataset, split, placeholder fill]); the second list's fields came last to the API."""
    upload = gr.File(label="Fine-tuning file", file_types=DATA_TYPES, type="filepath")
    with gr.Row():
        saved = gr.Textbox(
            "",  # an initial value: API callers may leave out the fields added last
            label="…or a saved dataset (folder or hub id)",
            placeholder="a folder written by datasets, or owner/name",
            scale=3,
        )
        split = gr.Textbox(DataConfig.split, label="Split", scale=1, info=config_help(DataConfig, "split"))
    fill = gr.Textbox(
        "",
        label="Fill placeholders",
        placeholder="name=ExpertLab, author=Lab team (replaces {{name}}, {{author}})",
        info=config_help(DataConfig, "fill"),
    )
    fmt = gr.Dropdown(list(DataConfig.FORMATS), value="auto", label="Format", info=config_help(DataConfig, "format"))
    with gr.Accordion("Column mapping (CSV / Parquet / question-answer JSON)", open=False):
        qcol = gr.Textbox(label="Question column", placeholder="auto: question, prompt, input, ...",
                          info=config_help(DataConfig, "question_column"))  # fmt: skip
        acol = gr.Textbox(label="Answer column", placeholder="auto: answer, response, output, ...",
                          info=config_help(DataConfig, "answer_column"))  # fmt: skip
        scol = gr.Textbox(label="System column (optional)", info=config_help(DataConfig, "system_column"))
    with gr.Row():
        model = gr.Textbox("embedded", label="Tokenizer of model")
        max_len = gr.Number(DataConfig.max_length, label="Max length (tokens)", precision=0,
                            info=config_help(DataConfig, "max_length"))  # fmt: skip
    return [upload, fmt, qcol, acol, scol, model, max_len], [saved, split, fill]


def _invalid(message: str) -> dict:
    """The validation outputs for a file that could not be read: the message, nothing else shown."""
    hidden = gr.update(value=None, visible=False)
    return {"status": fail(message), "errors": hidden, "stats": "", "plot": hidden, "report": None, "preview": "",
            "state": {}}  # fmt: skip


@shows_errors(_invalid)
def _validate(cache, path, fmt, qcol, acol, scol, model, max_len, progress, where=None):
    """An invalid file shows its errors (and warnings) only: no statistics, histograms or epoch estimate.
    `where`: the split of a saved dataset and the placeholder fill."""
    if not path:
        return _invalid(NO_SOURCE)
    cfg = _config(fmt, qcol, acol, scol, max_len, **(where or {}))
    progress(0.1, desc="loading the tokenizer")
    tokenizer = cache.tokenizer(model or "embedded")
    progress(0.3, desc="validating every line")
    report = validate_file(path, cfg, tokenizer)
    state = {"examples": report.examples, "lines": report.lines}
    first = _preview(cache, state, 1, model) if report.examples else ""
    out = report.to_dict()
    out["errors"] = out["errors"][: view.MAX_ERROR_ROWS]
    if not report.valid:
        out.pop("stats", None)
        errors = gr.update(value=view.error_rows(report), visible=True)
        no_plot = gr.update(value=None, visible=False)
        return {"status": view.status_markdown(report), "errors": errors, "stats": view.warnings_markdown(report),
                "plot": no_plot, "report": out, "preview": first, "state": state}  # fmt: skip
    figure = histogram_figure(report.series, cfg.max_length) if report.series else None
    errors = gr.update(value=None, visible=False)
    plot = gr.update(value=figure, visible=figure is not None)
    return {"status": view.status_markdown(report), "errors": errors, "stats": view.stats_markdown(report.stats),
            "plot": plot, "report": out, "preview": first, "state": state}  # fmt: skip


@shows_errors(lambda message: f"<p>preview unavailable: {message}</p>")
def _preview(cache, state, index, model) -> str:
    examples = (state or {}).get("examples") or []
    if not examples:
        return ""
    i = min(max(int(index or 1), 1), len(examples)) - 1
    tokenizer = cache.tokenizer(model or "embedded")
    segments = preview_segments(examples[i], tokenizer)
    default_system = template_default_system(examples[i], tokenizer)
    return view.preview_html(segments, i, len(examples), state["lines"][i], default_system)


def _lists(ws) -> tuple[list, list]:
    """The saved datasets' and corpora's tables."""
    return view.dataset_rows(list_datasets(ws)), _corpus_rows(ws)


def _build_save(ws, cache, source: list, extra: list) -> gr.Dataframe:
    """The Save as a dataset section; returns its table of saved datasets. `source`: the upload and its reading
    settings; `extra`: the saved-dataset field, its split and the placeholder fill (last in the API)."""
    gr.Markdown("### Save as a dataset\nA seeded train / validation split, saved in the workspace for the Train tab.")
    with gr.Row():
        name = gr.Textbox(label="Dataset name", placeholder="e.g. my-support-data")
        val_fraction = gr.Slider(0, 0.5, value=DataConfig.val_fraction, step=0.05, label="Validation fraction",
                                 info=config_help(DataConfig, "val_fraction"))  # fmt: skip
        seed = gr.Number(DataConfig.seed, label="Split seed", precision=0, info=config_help(DataConfig, "seed"))
        overwrite = gr.Checkbox(False, label="Overwrite if it exists")
    save = gr.Button("Save dataset")
    saved = gr.Markdown()
    table = gr.Dataframe(
        value=lambda: view.dataset_rows(list_datasets(ws)),
        headers=["name", "train", "val", "format", "source", "created"],
        label="Saved datasets",
        interactive=False,
    )

    @shows_errors(fail_with(gr.skip()))
    def on_save(path, fmt_, q, a, s, model_, max_len_, name_, frac, seed_, over, saved_="", split_="", fill_=""):
        path = _source(path, saved_)
        if not path:
            return fail(NO_SOURCE), gr.skip()
        cfg = None
        try:
            where = {"split": split_, "fill": fill_}
            cfg = _config(fmt_, q, a, s, max_len_, val_fraction=float(frac), seed=int(seed_ or 0), **where)
            meta = save_dataset(
                ws, (name_ or "").strip(), path, cfg, bool(over), cache.tokenizer(model_ or "embedded")
            )
        except DataError as exc:
            return (_refused(path, cfg, exc) if cfg else fail(user_message(exc))), gr.skip()
        c = meta["counts"]
        msg = f"### ✓ dataset `{meta['name']}` saved: {c['train']} train / {c['val']} validation examples"
        msg += f" (seed {meta['seed']})"
        return msg, view.dataset_rows(list_datasets(ws))

    inputs = [*source, name, val_fraction, seed, overwrite, *extra]
    save.click(on_save, inputs, [saved, table], api_name="data_save")
    refresh = gr.Button("Refresh lists", size="sm")
    refresh.click(lambda: view.dataset_rows(list_datasets(ws)), None, table, api_name="data_list", **READ_ONLY)
    return table


def _refused(path, cfg, exc) -> str:
    """The save-refused message: the file's errors as a list (a structural re-check, no tokenizer: fast)."""
    report = shows_errors(lambda message: None)(validate_file)(path, cfg)  # a bug is logged; the fallback stands
    if report is None or report.valid:
        return fail(user_message(exc))
    gr.Warning(f"{report.source} is not valid: not saved")
    return view.refused_markdown(report)


def _build_corpus(ws) -> gr.Dataframe:
    """The Documents for RAG section; returns its table of saved corpora."""
    gr.Markdown("## Documents for RAG\nUpload md, txt, pdf or html files; they are saved as a named corpus.")
    with gr.Row():
        files = gr.File(label="Documents", file_count="multiple", file_types=list(SUFFIXES), type="filepath")
        with gr.Column():
            name = gr.Textbox(label="Corpus name", placeholder="e.g. manuals")
            overwrite = gr.Checkbox(False, label="Overwrite if it exists")
            save = gr.Button("Save corpus")
    status = gr.Markdown()
    table = gr.Dataframe(
        value=lambda: _corpus_rows(ws), headers=["corpus", "documents"], label="Saved corpora", interactive=False
    )

    @shows_errors(fail_with(gr.skip()))
    def on_save_corpus(paths, name_, over):
        if not paths:
            return fail("upload at least one document first"), gr.skip()
        report = save_corpus(ws, (name_ or "").strip(), paths, overwrite=bool(over))
        return view.corpus_markdown(report), _corpus_rows(ws)

    save.click(on_save_corpus, [files, name, overwrite], [status, table], api_name="data_save_corpus")
    return table
