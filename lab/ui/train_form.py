"""The Train tab's form: the fields in FIELDS order (to and from a TrainConfig), the model picker over the curated
catalog, the choices of datasets, indexes and parent runs, the "Train for retrieval (RAG) / continue from a run"
accordion and the preview of the rewritten RAG training data. No event handlers beyond the form's own.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from lab import catalog, jobs
from lab.config import TrainConfig
from lab.errors import expected
from lab.training import ADAPTER, CONFIG
from lab.training.plan import TARGET_PRESETS
from lab.workspace import SAMPLE

# Form fields, in the order of the components passed to every event that builds a TrainConfig.
FIELDS = ("base_model", "dataset", "method", "max_steps", "epochs", "name", "rank", "alpha", "dropout",
          "target_modules", "learning_rate", "scheduler", "warmup_ratio", "batch_size", "grad_accum", "max_length",
          "packing", "assistant_only_loss", "seed", "eval_steps", "early_stopping_patience", "merge",
          "rag_index", "distractor_share", "near_miss_share", "from_run")  # fmt: skip
INTS = {"max_steps", "rank", "alpha", "batch_size", "grad_accum", "max_length", "seed", "eval_steps",
        "early_stopping_patience"}  # fmt: skip
FLOATS = ("epochs", "dropout", "learning_rate", "warmup_ratio", "distractor_share", "near_miss_share")
PLAIN = ""  # the index choice meaning "plain fine-tuning" / the run choice meaning "start fresh"


def form_config(*values) -> TrainConfig:
    settings = dict(zip(FIELDS, values, strict=True))
    for key in INTS:
        settings[key] = int(settings[key] or 0)
    for key in FLOATS:
        settings[key] = float(settings[key] or 0)
    for key in ("name", "dataset", "rag_index", "from_run"):
        settings[key] = (settings[key] or "").strip()
    return TrainConfig(**{**TrainConfig().to_dict(), **settings})


def form_values(config: TrainConfig) -> list:
    return [getattr(config, f) for f in FIELDS]


def dataset_choices(ws) -> list[str]:
    from lab.data import list_datasets

    return [d["name"] for d in list_datasets(ws) if "error" not in d]


def runs_with_adapter(ws) -> list[str]:
    """Runs a new run can continue from (their adapter is saved), newest first."""
    return [r["id"] for r in jobs.list_runs(ws) if (Path(r["path"]) / ADAPTER / "adapter_config.json").is_file()]


def index_choices(ws) -> list[str]:
    from lab.rag import list_indexes

    names = list_indexes(ws)
    return [PLAIN, *names, *([] if SAMPLE in names else [SAMPLE])]


def _form(ws) -> tuple[list, list]:
    """(the RAG preview button and its view, the form fields in FIELDS order)."""
    d = TrainConfig()
    with gr.Row():
        base = gr.Dropdown(catalog.choices(d.max_length, d.batch_size), value=d.base_model, label="Base model",
                           allow_custom_value=True, elem_id="train-base",
                           info="a curated model (estimated GPU memory at this length and batch) or any hub id or "
                                "local folder")  # fmt: skip
        names = dataset_choices(ws)
        data = gr.Dropdown(names, value=SAMPLE if SAMPLE in names else None, label="Dataset",
                           allow_custom_value=True, info="a saved dataset or a chat JSONL path")  # fmt: skip
        data.focus(lambda: gr.Dropdown(choices=dataset_choices(ws)), None, data, api_name="train_datasets")
        method = gr.Radio(list(TrainConfig.METHODS), value=d.method, label="Method", info="qlora = 4-bit NF4 base")
    with gr.Row():
        steps = gr.Number(d.max_steps, label="Max steps (0 = use epochs)", precision=0)
        epochs = gr.Number(d.epochs, label="Epochs")
        name = gr.Textbox("", label="Run name", placeholder="auto: run-YYYYmmdd-HHMMSS")
    with gr.Accordion("Advanced settings", open=False):
        with gr.Row():
            rank = gr.Number(d.rank, label="LoRA rank", precision=0)
            alpha = gr.Number(d.alpha, label="LoRA alpha", precision=0)
            dropout = gr.Number(d.dropout, label="LoRA dropout")
            targets = gr.Dropdown(list(TARGET_PRESETS), value=d.target_modules, label="Target modules",
                                  allow_custom_value=True, info="a preset or names like q_proj,v_proj")  # fmt: skip
        with gr.Row():
            lr = gr.Number(d.learning_rate, label="Learning rate")
            sched = gr.Dropdown(list(TrainConfig.SCHEDULERS), value=d.scheduler, label="Schedule")
            warmup = gr.Number(d.warmup_ratio, label="Warmup ratio")
            batch = gr.Number(d.batch_size, label="Batch size", precision=0)
            accum = gr.Number(d.grad_accum, label="Gradient accumulation", precision=0)
            max_len = gr.Number(d.max_length, label="Max length (tokens)", precision=0)
        with gr.Row():
            packing = gr.Checkbox(d.packing, label="Packing")
            only = gr.Checkbox(d.assistant_only_loss, label="Loss on assistant tokens only")
            seed = gr.Number(d.seed, label="Seed", precision=0)
            eval_steps = gr.Number(d.eval_steps, label="Evaluate every N steps (0 = off)", precision=0)
            patience = gr.Number(d.early_stopping_patience, label="Early stopping patience (0 = off)", precision=0)
            merge = gr.Checkbox(d.merge, label="Also save a merged model")
    fit = gr.Markdown(model_note(d.base_model), elem_id="train-model-note")
    base.change(model_note, base, fit, api_name="train_model_note")
    for size in (max_len, batch):
        size.change(model_choices, [max_len, batch, base], base, api_name="train_models")
    rag_index, share, near, from_run, *extras = _rag_and_lineage(ws, d, base)
    fields = [base, data, method, steps, epochs, name, rank, alpha, dropout, targets, lr, sched, warmup, batch, accum,
              max_len, packing, only, seed, eval_steps, patience, merge, rag_index, share, near, from_run]  # fmt: skip
    return extras, fields


def model_choices(max_length, batch_size, current):
    """The picker's curated models with their memory estimates at this length and batch (the value is kept)."""
    length, batch = max(16, int(max_length or 512)), max(1, int(batch_size or 1))
    return gr.Dropdown(choices=catalog.choices(length, batch), value=current)


def model_note(spec: str) -> str:
    """One line under the picker: a curated model's licence, note and suggested preset, else what is accepted."""
    model = catalog.find(spec or "")
    if model is None:
        return f"`{spec}`: not in the curated list; any hub id (needs the hub) or local model folder works."
    note = f" {model.note}." if model.note else ""
    return f"**{model.name}**: {model.licence}.{note} Suggested preset: *{model.preset}*."


def _rag_and_lineage(ws, d: TrainConfig, base):
    """The 'Train for retrieval (RAG)' and 'Continue from run' settings (a preview button is added by build)."""
    with gr.Accordion("Train for retrieval (RAG) · continue from a run", open=False):
        gr.Markdown(
            "**Train for retrieval (RAG)**: each example's question is replaced by exactly the prompt the Arena's "
            "`ft+rag` contestant sends (the passages this index retrieves for it); the target stays the answer when "
            'those passages support it, else "I don\'t know". A share of examples is added again over an unrelated '
            "question's passages with the target \"I don't know\". Empty index = plain fine-tuning."
        )
        with gr.Row():
            rag_index = gr.Dropdown(index_choices(ws), value=d.rag_index, label="Train for retrieval (RAG): index",
                                    allow_custom_value=True, info="empty = plain fine-tuning")  # fmt: skip
            share = gr.Slider(0, 1, value=d.distractor_share, step=0.05, label="Distractor share",
                              info="extra copies over unrelated passages, target \"I don't know\"")  # fmt: skip
            near = gr.Slider(0, 1, value=d.near_miss_share, step=0.05, label="Near-miss share",
                             info="kept examples again without the passages holding the answer, "
                                  "target \"I don't know\"")  # fmt: skip
            from_run = gr.Dropdown([PLAIN, *runs_with_adapter(ws)], value=d.from_run, label="Continue from run",
                                   allow_custom_value=True,
                                   info="start from this run's adapter; its base model is used")  # fmt: skip
        rag_btn = gr.Button("Preview RAG training data", size="sm")
        rag_view = gr.HTML()
    rag_index.focus(lambda: gr.Dropdown(choices=index_choices(ws)), None, rag_index, api_name="train_indexes")
    from_run.focus(lambda: gr.Dropdown(choices=[PLAIN, *runs_with_adapter(ws)]), None, from_run,
                   api_name="train_parents")  # fmt: skip
    from_run.change(lambda r, b: _parent_base(ws, r, b), [from_run, base], base, api_name="train_parent_base")
    return rag_index, share, near, from_run, rag_btn, rag_view


def _parent_base(ws, run_id: str, current: str) -> str:
    """The base model field follows the parent run (a continued run trains on its parent's base)."""
    if not run_id:
        return current
    try:
        return TrainConfig.load(ws.dir("runs", run_id) / CONFIG).base_model
    except Exception as exc:
        expected(exc)  # logged when it is a bug; the fallback below stands
        return current


def rag_preview_html(rewrite, tokenizer) -> str:
    """Counts of the rewrite, its max-length warning and one rewritten example through the chat template with
    the trained tokens highlighted (the Data tab's preview renderer)."""
    from lab.data.stats import preview_segments
    from lab.ui import data_view

    c = rewrite.counts
    rows = [
        ("answer kept (the passages support it)", c.get("kept", 0)),
        ('"I don\'t know": the passages lack the answer', c.get("unsupported", 0)),
        ('"I don\'t know" already in the data', c.get("idk_in_data", 0)),
        ('distractor copies (unrelated passages, "I don\'t know")', c.get("distractors", 0)),
        ('near-miss copies (answer-holding passages removed, "I don\'t know")', c.get("near_misses", 0)),
        ("total training examples", c.get("total", len(rewrite.examples))),
    ]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:right'><b>{v}</b></td></tr>" for k, v in rows)
    warning = f"<p class='rag-warning'>⚠ {html.escape(rewrite.warning)}</p>" if rewrite.warning else ""
    length = f"<p>RAG prompts: p90 {rewrite.p90_tokens} tokens.</p>" if rewrite.p90_tokens else ""
    sample = ""
    if rewrite.sample:
        segments = preview_segments({"messages": rewrite.sample["messages"]}, tokenizer)
        sample = data_view.preview_html(segments, 0, 1, None).replace("Example 1 of 1", "A rewritten example", 1)
    return f"<div class='rag-preview'><table>{table}</table>{warning}{length}{sample}</div>"
