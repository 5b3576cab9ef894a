"""The Train tab's form: one component per TrainConfig field (FIELDS: all but NOT_IN_FORM, in the dataclass's order;
values typed from its field types, to and from a TrainConfig), the model picker over the curated
catalog, the choices of datasets, indexes and parent runs, the "Train for retrieval (RAG) / continue from a run"
accordion and the preview of the rewritten RAG training data. No event handlers beyond the form's own.
"""

from __future__ import annotations

import dataclasses
import html
import typing
from pathlib import Path

import gradio as gr

from lab import catalog, jobs
from lab.config import TrainConfig
from lab.training import ADAPTER, CONFIG
from lab.training.plan import TARGET_PRESETS
from lab.ui.common import Picker, config_help, shows_errors
from lab.workspace import SAMPLE

# TrainConfig fields the form does not show (set by presets, the CLI or the engine's own defaults).
NOT_IN_FORM = ("logging_steps", "save_steps", "bnb_compute_dtype", "double_quant", "report_to",
               "gradient_checkpointing", "bf16")  # fmt: skip
# The form's fields, in TrainConfig's order: the order of the components passed to every event that builds one.
FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_IN_FORM)
TYPES = {name: kind for name, kind in typing.get_type_hints(TrainConfig).items() if name in FIELDS}
PLAIN = ""  # the index choice meaning "plain fine-tuning" / the run choice meaning "start fresh"


def _help(name: str) -> str:
    """The info line of the control for TrainConfig field `name`: the field's help (lab.config)."""
    return config_help(TrainConfig, name)


def _typed(kind: type, value):
    """A form value as its TrainConfig field's type (an empty number box is 0, text is stripped)."""
    if kind is bool:
        return bool(value)
    if kind in (int, float):
        return kind(value or 0)
    return (value or "").strip()


def form_config(*values) -> TrainConfig:
    settings = {name: _typed(TYPES[name], v) for name, v in zip(FIELDS, values, strict=True)}
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


def _sample_or_none(choices: list[str]) -> str | None:
    return SAMPLE if SAMPLE in choices else None


def live_pickers(form: list) -> dict:
    """The form's pickers that list workspace work ({component: Picker}, for common.follow_workspace): the
    dataset (a typed JSONL path is kept), the index to train for and the run to continue from."""
    at = dict(zip(FIELDS, form, strict=True))
    return {
        at["dataset"]: Picker("datasets", default=_sample_or_none, typed=True),
        at["rag_index"]: Picker("indexes", lead=(PLAIN,), default=lambda _: PLAIN, typed=True),
        at["from_run"]: Picker("adapters", lead=(PLAIN,), default=lambda _: PLAIN),
    }


def _form(ws) -> tuple[list, list]:
    """(the RAG preview button and its view, the form fields in FIELDS order). Each component is keyed by its
    TrainConfig field, so the order of the list comes from FIELDS alone."""
    d, c = TrainConfig(), {}
    with gr.Row():
        c["base_model"] = base = gr.Dropdown(
            catalog.choices(d.max_length, d.batch_size), value=d.base_model, label="Base model",
            allow_custom_value=True, elem_id="train-base", scale=3,
            info=_help("base_model"),
        )  # fmt: skip
        names = dataset_choices(ws)
        c["dataset"] = data = gr.Dropdown(names, value=SAMPLE if SAMPLE in names else None, label="Dataset",
                                          allow_custom_value=True, scale=2,
                                          info=_help("dataset"))  # fmt: skip
        data.focus(lambda: gr.Dropdown(choices=dataset_choices(ws)), None, data, api_name="train_datasets")
        c["method"] = gr.Radio(METHOD_CHOICES, value=d.method, label="Method", scale=1,
                               info=_help("method"))  # fmt: skip
    with gr.Row():
        c["max_steps"] = gr.Number(d.max_steps, label="Max steps (0 = use epochs)", precision=0,
                                   info=_help("max_steps"))  # fmt: skip
        c["epochs"] = gr.Number(d.epochs, label="Epochs", info=_help("epochs"))
        c["name"] = gr.Textbox("", label="Run name", placeholder="auto: run-YYYYmmdd-HHMMSS", info=_help("name"))
    with gr.Accordion("Advanced settings", open=False):
        _advanced(d, c)
    fit = gr.Markdown(model_note(d.base_model), elem_id="train-model-note")
    base.change(model_note, base, fit, api_name="train_model_note")
    for size in (c["max_length"], c["batch_size"]):
        size.change(model_choices, [c["max_length"], c["batch_size"], base], base, api_name="train_models")
    extras = _rag_and_lineage(ws, d, c)
    _preferences(ws, d, c)
    missing, extra = set(FIELDS) - set(c), set(c) - set(FIELDS)
    if missing or extra:
        raise RuntimeError(f"Train form out of step with TrainConfig: missing {missing or '-'}, extra {extra or '-'}")
    return extras, [c[name] for name in FIELDS]


METHOD_CHOICES = [("lora", "lora"), ("qlora", "qlora"), ("Preferences (DPO)", "dpo")]


def prefs_choices(ws) -> list[str]:
    """The pairs a DPO run can train on: the Arena's votes (exported when the run starts), then the exported pairs
    files, newest first."""
    from lab.training.prefs import VOTES

    files = sorted((ws.downloads / "votes").glob("*/votes-prefs.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [VOTES, *(str(p) for p in files)]


def _preferences(ws, d: TrainConfig, c: dict) -> None:
    """The 'Preferences (DPO)' fields (added to `c`): the pairs to train on and beta."""
    with gr.Accordion("Preferences (DPO)", open=False):
        gr.Markdown(
            "With the method **Preferences (DPO)**, the run trains a LoRA adapter to prefer the *chosen* answer of "
            "each pair over the *rejected* one (TRL's DPO), starting from the base or from **Continue from run**. "
            '`votes` trains on the Arena\'s blind A/B votes (exported when the run starts; ties and "both bad" '
            "left out); or pick or type a JSONL file of `{prompt, chosen, rejected}` lines. The dataset is not used."
        )
        with gr.Row():
            c["prefs"] = gr.Dropdown(prefs_choices(ws), value=d.prefs, label="Preference pairs",
                                     allow_custom_value=True, elem_id="train-prefs", scale=3,
                                     info=_help("prefs"))  # fmt: skip
            c["beta"] = gr.Number(d.beta, label="DPO beta", info=_help("beta"), scale=1)
    c["prefs"].focus(lambda: gr.Dropdown(choices=prefs_choices(ws)), None, c["prefs"], api_name="train_prefs")


def _advanced(d: TrainConfig, c: dict) -> None:
    """The 'Advanced settings' accordion's fields, added to `c` by TrainConfig field name."""
    with gr.Row():
        c["rank"] = gr.Number(d.rank, label="LoRA rank", precision=0, info=_help("rank"))
        c["alpha"] = gr.Number(d.alpha, label="LoRA alpha", precision=0, info=_help("alpha"))
        c["dropout"] = gr.Number(d.dropout, label="LoRA dropout", info=_help("dropout"))
        c["target_modules"] = gr.Dropdown(list(TARGET_PRESETS), value=d.target_modules, label="Target modules",
                                          allow_custom_value=True,
                                          info=_help("target_modules"))  # fmt: skip
    with gr.Row():
        c["learning_rate"] = gr.Number(d.learning_rate, label="Learning rate", info=_help("learning_rate"))
        c["scheduler"] = gr.Dropdown(list(TrainConfig.SCHEDULERS), value=d.scheduler, label="Schedule",
                                     info=_help("scheduler"))  # fmt: skip
        c["warmup_ratio"] = gr.Number(d.warmup_ratio, label="Warmup ratio", info=_help("warmup_ratio"))
        c["batch_size"] = gr.Number(d.batch_size, label="Batch size", precision=0, info=_help("batch_size"))
        c["grad_accum"] = gr.Number(d.grad_accum, label="Gradient accumulation", precision=0,
                                    info=_help("grad_accum"))  # fmt: skip
        c["max_length"] = gr.Number(d.max_length, label="Max length (tokens)", precision=0,
                                    info=_help("max_length"))  # fmt: skip
    with gr.Row():
        c["packing"] = gr.Checkbox(d.packing, label="Packing", info=_help("packing"))
        c["assistant_only_loss"] = gr.Checkbox(d.assistant_only_loss, label="Loss on assistant tokens only",
                                               info=_help("assistant_only_loss"))  # fmt: skip
        c["seed"] = gr.Number(d.seed, label="Seed", precision=0, info=_help("seed"))
        c["eval_steps"] = gr.Number(d.eval_steps, label="Evaluate every N steps (0 = off)", precision=0,
                                    info=_help("eval_steps"))  # fmt: skip
        c["early_stopping_patience"] = gr.Number(d.early_stopping_patience, precision=0,
                                                 label="Early stopping patience (0 = off)",
                                                 info=_help("early_stopping_patience"))  # fmt: skip
        c["merge"] = gr.Checkbox(d.merge, label="Also save a merged model", info=_help("merge"))


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


def _rag_and_lineage(ws, d: TrainConfig, c: dict) -> list:
    """The 'Train for retrieval (RAG)' and 'Continue from run' fields (added to `c`); returns the preview button
    and its view."""
    with gr.Accordion("Train for retrieval (RAG) · continue from a run", open=False):
        gr.Markdown(
            "**Train for retrieval (RAG)**: each example's question is replaced by exactly the prompt the Arena's "
            "`ft+rag` contestant sends (the passages this index retrieves for it); the target stays the answer when "
            'those passages support it, else "I don\'t know". A share of examples is added again over an unrelated '
            "question's passages with the target \"I don't know\". Empty index = plain fine-tuning."
        )
        with gr.Row():
            rag_index = gr.Dropdown(index_choices(ws), value=d.rag_index, label="Train for retrieval (RAG): index",
                                    allow_custom_value=True, info=_help("rag_index"))  # fmt: skip
            share = gr.Slider(0, 1, value=d.distractor_share, step=0.05, label="Distractor share",
                              info=_help("distractor_share"))  # fmt: skip
            near = gr.Slider(0, 1, value=d.near_miss_share, step=0.05, label="Near-miss share",
                             info=_help("near_miss_share"))  # fmt: skip
            weight = gr.Slider(1, 20, value=d.decision_weight, step=1, label="Decision weight",
                               info=_help("decision_weight"))  # fmt: skip
            from_run = gr.Dropdown([PLAIN, *runs_with_adapter(ws)], value=d.from_run, label="Continue from run",
                                   allow_custom_value=True,
                                   info=_help("from_run"))  # fmt: skip
        rag_btn = gr.Button("Preview RAG training data", size="sm")
        rag_view = gr.HTML()
    rag_index.focus(lambda: gr.Dropdown(choices=index_choices(ws)), None, rag_index, api_name="train_indexes")
    from_run.focus(lambda: gr.Dropdown(choices=[PLAIN, *runs_with_adapter(ws)]), None, from_run,
                   api_name="train_parents")  # fmt: skip
    from_run.change(
        lambda r, b: _parent_base(ws, r, b), [from_run, c["base_model"]], c["base_model"], api_name="train_parent_base"
    )
    c.update(rag_index=rag_index, distractor_share=share, near_miss_share=near, decision_weight=weight,
             from_run=from_run)  # fmt: skip
    return [rag_btn, rag_view]


def _parent_base(ws, run_id: str, current: str) -> str:
    """The base model field follows the parent run (a continued run trains on its parent's base)."""
    if not run_id:
        return current
    saved = _saved_base(ws, run_id)
    return current if saved is None else saved


@shows_errors(lambda message: None)  # logged when it is a bug; the field keeps its value
def _saved_base(ws, run_id: str) -> str:
    return TrainConfig.load(ws.dir("runs", run_id) / CONFIG).base_model


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
