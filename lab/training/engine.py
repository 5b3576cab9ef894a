"""The training loop of one run: load model and data, wrap with LoRA, train with transformers' Trainer, save.

Speed on small models (see bench/train_throughput.py): length-grouped batches padded only to the batch's
longest example, no gradient checkpointing unless asked, bf16 autocast where the device supports it, and the
output head (vocabulary-sized) computed only at positions that carry a label. Writes progress and status
files (see lab/training/__init__.py); a STOP file makes it save and stop. Must not touch the database or UI.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from pathlib import Path

from lab.config import TrainConfig
from lab.models import load_causal_lm, load_tokenizer, resolve_model
from lab.training import (
    ADAPTER,
    CHECKPOINTS,
    CONFIG,
    STOP,
    append_progress,
    last_checkpoint,
    read_status,
    write_status,
)
from lab.training.lineage import parent_adapter
from lab.training.plan import cpu_has_bf16, linear_modules, peak_rss_mb, target_names, weight_shapes
from lab.training.prep import IGNORE, PadCollator, encode_all, pack
from lab.training.ragdata import run_examples
from lab.workspace import Workspace


def use_bf16(config: TrainConfig) -> bool:
    import torch

    if config.bf16 != "auto":
        return config.bf16 == "on"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return config.method == "lora" and cpu_has_bf16()


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def build_model(config: TrainConfig, model_path: str, parent_adapter: Path | None = None):
    """The base model (float or 4-bit NF4) wrapped with LoRA adapters on the chosen modules, or with the parent
    run's adapter (trainable, its own LoRA settings) when the run continues from another."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    quant = "4bit" if config.method == "qlora" else "none"
    dtype = config.bnb_compute_dtype if quant == "4bit" else "auto"
    model = load_causal_lm(model_path, quant=quant, dtype=dtype, double_quant=config.double_quant)
    if quant == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    if parent_adapter is not None:
        return PeftModel.from_pretrained(model, str(parent_adapter), is_trainable=True)
    targets = target_names(linear_modules(weight_shapes(model_path)), config.target_modules)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def decision_starts(keep):
    """True at the first labelled position of every labelled span (each answer's first token: the place where a
    reader trained for RAG decides between answering and "I don't know"); `keep` is the label mask."""
    start = keep.clone()
    start[:, 1:] &= ~keep[:, :-1]
    return start


def token_loss(logits, targets, keep, decision_weight: float = 1.0):
    """Cross-entropy over the labelled positions (`logits` are theirs only, in order): a plain mean, or with each
    answer's first token weighing `decision_weight` times (a weighted mean). The first token is what the Arena's
    abstention reads (P("I don't know") at that position), while an answer's other tokens outnumber it ten to
    one; weighting it trains that decision harder (measured: README, Train section)."""
    import torch.nn.functional as F

    if decision_weight == 1:
        return F.cross_entropy(logits.float(), targets[keep])
    weights = 1 + (decision_weight - 1) * decision_starts(keep)[keep].float()
    per_token = F.cross_entropy(logits.float(), targets[keep], reduction="none")
    return (per_token * weights).sum() / weights.sum()


def make_trainer_class():
    """A Trainer whose loss runs the vocabulary head only where labels are (and counts trained tokens), with
    each answer's first token weighted by `decision_weight` (see `token_loss`)."""
    import torch
    from peft import PeftModel
    from transformers import Trainer

    class LabTrainer(Trainer):
        def __init__(self, *args, autocast_bf16: bool = False, decision_weight: float = 1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False  # our loss is a per-token mean: let Trainer scale for accum
            self.autocast_bf16 = autocast_bf16
            self.decision_weight = decision_weight
            self.tokens_seen = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.tokens_seen += int(inputs["attention_mask"].sum())
            if not isinstance(model, PeftModel):  # wrapped (DDP/FSDP): plain path, gradient sync, no decision weight
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            lm = model.get_base_model()
            dev = inputs["input_ids"].device.type
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=self.autocast_bf16):
                if "position_ids" in inputs:  # packed: the mask comes from the restarting position ids
                    feed = {"input_ids": inputs["input_ids"], "position_ids": inputs["position_ids"]}
                else:
                    feed = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
                hidden = lm.get_decoder()(**feed).last_hidden_state
                targets = inputs["labels"][:, 1:]
                keep = targets != IGNORE
                logits = lm.get_output_embeddings()(hidden[:, :-1][keep])
            loss = token_loss(logits, targets, keep, self.decision_weight)
            return (loss, {}) if return_outputs else loss  # a dict: Trainer's evaluation takes no logits from it

    return LabTrainer


def make_callbacks(run_dir: Path, trainer_ref: list):
    from transformers import TrainerCallback

    class ProgressWriter(TrainerCallback):
        """One progress line per log; honours the STOP file (save a checkpoint, then stop)."""

        def __init__(self):
            self.last_time = time.time()
            self.last_tokens = 0

        def on_step_end(self, args, state, control, **kwargs):
            if (run_dir / STOP).exists():
                control.should_training_stop = True
                control.should_save = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs and "eval_loss" not in logs:
                return  # the end-of-training summary; the final metrics go to status.json
            now, trainer = time.time(), trainer_ref[0]
            rec = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": now}
            for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
                if logs.get(key) is not None:
                    rec[key] = float(logs[key])
            if "loss" in rec:
                rec["tokens_per_s"] = (trainer.tokens_seen - self.last_tokens) / max(now - self.last_time, 1e-6)
                self.last_time, self.last_tokens = now, trainer.tokens_seen
            rec["memory_mb"] = round(peak_memory_mb(), 1)
            # the log line first: whatever progress.jsonl holds is then in train.log too, even after a SIGKILL
            print(f"step {state.global_step}/{state.max_steps} {rec}", file=sys.stderr, flush=True)
            append_progress(run_dir, rec)
            write_status(run_dir, step=state.global_step, total_steps=state.max_steps)

    return ProgressWriter()


def scheduler_kwargs(config: TrainConfig) -> dict:
    """cosine_with_restarts runs one cosine cycle per (whole) epoch; the other schedules take no arguments."""
    if config.scheduler != "cosine_with_restarts":
        return {}
    return {"num_cycles": max(1, math.ceil(config.epochs))}


def training_args(config: TrainConfig, run_dir: Path, has_eval: bool, bf16: bool):
    import torch
    from transformers import TrainingArguments

    evaluate = has_eval and config.eval_steps > 0
    early = evaluate and config.early_stopping_patience > 0
    return TrainingArguments(
        output_dir=str(run_dir / CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        lr_scheduler_kwargs=scheduler_kwargs(config),
        warmup_steps=config.warmup_ratio,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        logging_steps=config.logging_steps,
        save_steps=config.eval_steps if early else config.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=config.eval_steps if evaluate else None,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        bf16=False,  # autocast is applied inside LabTrainer.compute_loss
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        report_to=[] if config.report_to == "none" else [config.report_to],
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        remove_unused_columns=False,
        prediction_loss_only=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=True,
    )


def _dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows) if rows else None


def train(run_dir: str | Path) -> dict:
    """Train the run in `run_dir` (resuming from its last checkpoint if any); return the final status."""
    from transformers import EarlyStoppingCallback, set_seed

    run_dir = Path(run_dir).resolve()
    config = TrainConfig.load(run_dir / CONFIG)
    ws = Workspace.open(run_dir.parent.parent)
    (run_dir / STOP).unlink(missing_ok=True)
    set_seed(config.seed)
    model_path = resolve_model(config.base_model, ws.model_cache).path
    tok = load_tokenizer(model_path)
    only = config.assistant_only_loss
    train_rows = encode_all(tok, run_examples(ws, config, run_dir, "train"), config.max_length, only)
    val_examples = run_examples(ws, config, run_dir, "val")
    val_rows = encode_all(tok, val_examples, config.max_length, only) if val_examples else []
    if config.packing:
        train_rows = pack(train_rows, config.max_length)
    model = build_model(config, model_path, parent_adapter(ws, config.from_run) if config.from_run else None)
    bf16 = use_bf16(config)
    ref: list = []
    callbacks = [make_callbacks(run_dir, ref)]
    if config.early_stopping_patience and val_rows and config.eval_steps:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = make_trainer_class()(
        model=model,
        args=training_args(config, run_dir, bool(val_rows), bf16),
        train_dataset=_dataset(train_rows),
        eval_dataset=_dataset(val_rows),
        data_collator=PadCollator(tok.pad_token_id),
        processing_class=tok,
        callbacks=callbacks,
        autocast_bf16=bf16,
        decision_weight=config.decision_weight,
    )
    ref.append(trainer)
    resume = last_checkpoint(run_dir)
    write_status(run_dir, state="running", pid=os.getpid(), bf16=bf16, resumed_from=str(resume or ""),
                 n_train=len(train_rows), n_val=len(val_rows))  # fmt: skip
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return finish(trainer, config, run_dir, model_path, tok, result, time.time() - started, bool(val_rows))


def finish(trainer, config, run_dir: Path, model_path: str, tok, result, runtime: float, has_val: bool) -> dict:
    stopped = (run_dir / STOP).exists()
    trainer.model.save_pretrained(run_dir / ADAPTER)
    tok.save_pretrained(run_dir / ADAPTER)
    metrics = {"train_loss": result.training_loss, "runtime_s": round(runtime, 1), "steps": trainer.state.global_step}
    if has_val:
        metrics["eval_loss"] = trainer.evaluate()["eval_loss"]
    metrics["tokens_per_s"] = round(trainer.tokens_seen / max(runtime, 1e-6), 1)
    metrics["peak_memory_mb"] = round(peak_memory_mb(), 1)
    if config.merge and not stopped:
        merge_adapter(model_path, run_dir)
    state = "stopped" if stopped else "finished"
    status = write_status(run_dir, state=state, step=trainer.state.global_step, metrics=metrics, ended=time.time())
    from lab.training.card import write_card

    write_card(run_dir, config, status)
    return status


def merge_adapter(model_path: str, run_dir: Path) -> Path:
    """A full float model with the adapter merged in, saved as safetensors in RUN_DIR/merged."""
    from peft import PeftModel

    base = load_causal_lm(model_path, quant="none")
    merged = PeftModel.from_pretrained(base, str(run_dir / ADAPTER)).merge_and_unload()
    merged.save_pretrained(run_dir / "merged", safe_serialization=True)
    load_tokenizer(model_path).save_pretrained(run_dir / "merged")
    return run_dir / "merged"


def advice(exc: BaseException, config: TrainConfig | None) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        settings = f"batch_size={config.batch_size}, max_length={config.max_length}" if config else ""
        return (
            f"out of memory ({settings}): try method=qlora, a smaller batch_size (raise grad_accum to keep the "
            "effective batch), or a shorter max_length"
        )
    return text.splitlines()[0][:500] if text else type(exc).__name__


def main(run_dir: str | Path) -> int:
    run_dir = Path(run_dir)
    write_status(run_dir, state="running", pid=os.getpid(), started=read_status(run_dir).get("started") or time.time())
    try:
        train(run_dir)
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure must reach status.json
        traceback.print_exc()
        try:
            config = TrainConfig.load(run_dir / CONFIG)
        except Exception:  # noqa: BLE001
            config = None
        write_status(run_dir, state="failed", error=advice(exc, config), ended=time.time())
        return 1
