"""The training loop of one run: load model and data, wrap with LoRA, train with transformers' Trainer, save.

Speed on small models (see bench/train_throughput.py): length-grouped batches padded only to the batch's
longest example, no gradient checkpointing unless asked, bf16 autocast where the device has it natively (fp16 with
loss scaling on fp16-only cards: `lab.catalog.precision`), the output head (vocabulary-sized) computed only at
positions that carry a label, and trained tokens counted by the collator (no device sync per micro-step). Writes
progress and status files (see lab/training/__init__.py); a STOP file makes it save and stop. Must not touch the
database or UI.

Several processes (`torchrun --nproc_per_node N -m lab.training RUN_DIR`, or `accelerate launch`): each rank loads
the model onto its own device (cuda:LOCAL_RANK, or the CPU under gloo), the Trainer wraps it in
DistributedDataParallel and the loss goes through that wrapper (gradients are averaged); only rank 0 writes
status.json, progress.jsonl, the adapter and the card; rank 0's reading of the STOP file is sent to every rank.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from pathlib import Path

from lab.catalog import DeviceFacts, cuda_device, device_facts, precision, weight_dtype
from lab.config import TrainConfig
from lab.models import load_causal_lm, load_tokenizer
from lab.resolve import resolve_model
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
from lab.training.plan import linear_modules, peak_rss_mb, target_names, weight_shapes
from lab.training.prep import IGNORE, PadCollator, encode_all, pack
from lab.training.ragdata import run_examples
from lab.workspace import Workspace


def run_precision(config: TrainConfig, facts: DeviceFacts | None = None) -> str:
    """The precision of this run on this machine: bf16, fp16 or fp32 (see lab.catalog.precision)."""
    return precision(facts or device_facts(), config.bf16, config.method)


def use_bf16(config: TrainConfig, facts: DeviceFacts | None = None) -> bool:
    return run_precision(config, facts) == "bf16"


def autocast_dtype(chosen: str):
    """The torch dtype of the loss's autocast for a precision, or None (float32: no autocast)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(chosen)


def precision_args(chosen: str, facts: DeviceFacts) -> dict:
    """TrainingArguments for a precision. The autocast is LabTrainer's own; on fp16 the Trainer's fp16 mode adds
    loss scaling (a GradScaler: fp16 gradients underflow without it). `use_cpu` on a CPU machine makes the
    Trainer join a gloo world when started by torchrun (without it, each rank would train alone)."""
    return {"bf16": False, "fp16": chosen == "fp16" and facts.cuda, "use_cpu": not facts.cuda}


def rank(env=None) -> int:
    """This process's global rank (0 when not started by torchrun or accelerate)."""
    return int((os.environ if env is None else env).get("RANK") or 0)


def world_size(env=None) -> int:
    return int((os.environ if env is None else env).get("WORLD_SIZE") or 1)


def agree(flag: bool) -> bool:
    """Rank 0's `flag` on every rank (one tiny broadcast when several processes train together)."""
    import torch.distributed as dist

    if world_size() == 1 or not (dist.is_available() and dist.is_initialized()):
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def pin_rank_device() -> None:
    """Under torchrun or `accelerate launch` on CUDA, make this rank's own GPU the current device before anything
    touches CUDA (otherwise every rank would open a context on cuda:0 and the device facts would be cuda:0's)."""
    import torch

    if "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        torch.cuda.set_device(cuda_device(os.environ, torch.cuda.device_count()))


def reset_peak_memory(facts: DeviceFacts, reset=None) -> bool:
    """Start this run's CUDA peak from now (a reused process would otherwise report an earlier run's peak); `reset`
    defaults to torch.cuda.reset_peak_memory_stats. Returns whether there was a CUDA peak to reset."""
    if not facts.cuda:
        return False
    if reset is None:
        import torch

        reset = torch.cuda.reset_peak_memory_stats
    reset()
    return True


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def build_model(config: TrainConfig, model_path: str, parent_adapter: Path | None = None, facts=None):
    """The base model (float or 4-bit NF4) wrapped with LoRA adapters on the chosen modules, or with the parent
    run's adapter (trainable, its own LoRA settings) when the run continues from another. Weights load in the
    run's precision on CUDA (bf16, fp16 or float32), float32 on a CPU."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    facts = facts or device_facts()
    quant = "4bit" if config.method == "qlora" else "none"
    dtype = weight_dtype(facts, run_precision(config, facts))
    if quant == "4bit" and config.bnb_compute_dtype != "auto":
        dtype = config.bnb_compute_dtype
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
    one; weighting it trains that decision harder (docs/experiments/2026-12-04-decision-weight.md)."""
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
        def __init__(self, *args, autocast_dtype=None, decision_weight: float = 1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False  # our loss is a per-token mean: let Trainer scale for accum
            self.autocast_dtype = autocast_dtype
            self.decision_weight = decision_weight
            self.tokens_seen = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            counted = inputs.pop("n_tokens", 0)  # counted by PadCollator on the host: no device sync here
            if model.training:
                self.tokens_seen += int(counted)
            ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
            if not (isinstance(model, PeftModel) or ddp):  # other wrappers: the library's own loss
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            dev = inputs["input_ids"].device.type
            with torch.autocast(
                dev, dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None
            ):
                feed = decoder_inputs(inputs)
                targets = inputs["labels"][:, 1:]
                keep = targets != IGNORE
                if ddp:  # through the wrapper, which averages gradients across ranks; the head at labelled columns
                    cols = keep.any(0).nonzero().squeeze(1)
                    logits = model(**feed, logits_to_keep=cols).logits[keep[:, cols]]
                else:
                    lm = model.get_base_model()
                    hidden = lm.get_decoder()(**feed).last_hidden_state
                    logits = lm.get_output_embeddings()(hidden[:, :-1][keep])
            loss = token_loss(logits, targets, keep, self.decision_weight)
            return (loss, {}) if return_outputs else loss  # a dict: Trainer's evaluation takes no logits from it

    return LabTrainer


def decoder_inputs(inputs: dict) -> dict:
    """What the decoder is called with. `use_cache=False` always: with a cache object (the config's default when
    checkpointing is off) transformers builds no per-example mask from packed position ids, and attention
    would cross example boundaries."""
    if "position_ids" in inputs:  # packed: the mask comes from the restarting position ids
        return {"input_ids": inputs["input_ids"], "position_ids": inputs["position_ids"], "use_cache": False}
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "use_cache": False}


LOGGED = {k: k for k in ("loss", "eval_loss", "learning_rate", "grad_norm")}  # Trainer log key -> progress key


def make_callbacks(run_dir: Path, trainer_ref: list, logged: dict[str, str] | None = None):
    """The progress writer; `logged` maps the Trainer's log keys to progress.jsonl keys (default LOGGED)."""
    from transformers import TrainerCallback

    logged = logged or LOGGED

    class ProgressWriter(TrainerCallback):
        """One progress line per log, written by rank 0 only; honours the STOP file (save a checkpoint, then
        stop), read by rank 0 and sent to every rank so that all stop at the same step."""

        def __init__(self):
            self.last_time = time.time()
            self.last_tokens = 0

        def on_step_end(self, args, state, control, **kwargs):
            if agree((run_dir / STOP).exists() if state.is_world_process_zero else False):
                control.should_training_stop = True
                control.should_save = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if not state.is_world_process_zero or ("loss" not in logs and "eval_loss" not in logs):
                return  # another rank, or the end-of-training summary (the final metrics go to status.json)
            now, trainer = time.time(), trainer_ref[0]
            rec = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": now}
            for key, name in logged.items():
                if logs.get(key) is not None:
                    rec[name] = float(logs[key])
            if "loss" in rec:
                seen = (trainer.tokens_seen - self.last_tokens) * world_size()  # every rank trains a share alike
                rec["tokens_per_s"] = seen / max(now - self.last_time, 1e-6)
                self.last_time, self.last_tokens = now, trainer.tokens_seen
            rec["memory_mb"] = round(peak_memory_mb(), 1)
            # the log line first: whatever progress.jsonl holds is then in train.log too, even after a SIGKILL
            print(f"step {state.global_step}/{state.max_steps}: {log_line(rec)}", file=sys.stderr, flush=True)
            append_progress(run_dir, rec)
            write_status(run_dir, step=state.global_step, total_steps=state.max_steps)

    return ProgressWriter()


def scheduler_kwargs(config: TrainConfig) -> dict:
    """cosine_with_restarts runs one cosine cycle per (whole) epoch; the other schedules take no arguments."""
    if config.scheduler != "cosine_with_restarts":
        return {}
    return {"num_cycles": max(1, math.ceil(config.epochs))}


def training_args(
    config: TrainConfig, run_dir: Path, has_eval: bool, bf16: bool = False, facts=None, chosen: str = ""
):
    """The Trainer's arguments; the precision is `chosen` ("bf16", "fp16", "fp32"), else bf16 or float32."""
    from transformers import TrainingArguments

    facts = facts or device_facts()
    chosen = chosen or ("bf16" if bf16 else "fp32")

    evaluate = has_eval and config.eval_steps > 0
    early = evaluate and config.early_stopping_patience > 0
    return TrainingArguments(**shared_args(config, run_dir, facts, chosen) | dict(
        per_device_eval_batch_size=config.batch_size,
        save_steps=config.eval_steps if early else config.save_steps,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=config.eval_steps if evaluate else None,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        remove_unused_columns=False,
        prediction_loss_only=True,
    ))  # fmt: skip


def shared_args(config: TrainConfig, run_dir: Path, facts, chosen: str) -> dict:
    """The trainer arguments every run takes from its settings (fine-tuning and DPO alike): schedule, batch,
    checkpoints, precision, seed and reporting."""
    return dict(
        output_dir=str(run_dir / CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        lr_scheduler_kwargs=scheduler_kwargs(config),
        warmup_steps=config.warmup_ratio,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,
        **precision_args(chosen, facts),  # autocast is applied inside LabTrainer.compute_loss
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        report_to=[] if config.report_to == "none" else [config.report_to],
        dataloader_num_workers=0,
        dataloader_pin_memory=facts.cuda,
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
    if config.method == "dpo":  # preference pairs: lab/training/dpo.py
        from lab.training.dpo import train as train_preferences

        return train_preferences(run_dir)
    ws = Workspace.open(run_dir.parent.parent)
    lead = rank() == 0
    if lead:
        (run_dir / STOP).unlink(missing_ok=True)
    pin_rank_device()
    facts = device_facts()
    reset_peak_memory(facts)
    set_seed(config.seed)
    resolved = resolve_model(config.base_model, ws.model_cache)
    model_path = resolved.path
    tok = load_tokenizer(model_path)
    only = config.assistant_only_loss
    train_rows = encode_all(tok, run_examples(ws, config, run_dir, "train"), config.max_length, only)
    val_examples = run_examples(ws, config, run_dir, "val")
    val_rows = encode_all(tok, val_examples, config.max_length, only) if val_examples else []
    if config.packing:
        train_rows = pack(train_rows, config.max_length)
    model = build_model(config, model_path, parent_adapter(ws, config.from_run) if config.from_run else None)
    name_base_model(model, resolved)
    chosen = run_precision(config, facts)
    ref: list = []
    callbacks = [make_callbacks(run_dir, ref)]
    if config.early_stopping_patience and val_rows and config.eval_steps:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    args = training_args(config, run_dir, bool(val_rows), facts=facts, chosen=chosen)
    if args.n_gpu > 1:  # one process seeing several GPUs: nn.DataParallel would bypass LabTrainer's loss
        args._n_gpu = 1
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=_dataset(train_rows),
        eval_dataset=_dataset(val_rows),
        data_collator=PadCollator(tok.pad_token_id),
        processing_class=tok,
        callbacks=callbacks,
        autocast_dtype=autocast_dtype(chosen),
        decision_weight=config.decision_weight,
    )
    ref.append(trainer)
    resume = last_checkpoint(run_dir)
    where = next(model.parameters()).device
    print(f"rank {rank()} of {world_size()} on {where}, precision {chosen}", file=sys.stderr, flush=True)
    if lead:
        write_status(run_dir, state="running", pid=os.getpid(), bf16=chosen == "bf16", precision=chosen,
                     resumed_from=str(resume or ""), n_train=len(train_rows), n_val=len(val_rows),
                     world_size=world_size(), device=str(where))  # fmt: skip
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return finish(trainer, config, run_dir, model_path, tok, result, time.time() - started, bool(val_rows))


def name_base_model(model, resolved) -> None:
    """A hub model's adapter names its base by hub id (what PEFT's `from_pretrained` finds anywhere), not by the
    snapshot folder of this machine's Hugging Face cache."""
    if resolved.source == "hub":
        for peft_config in model.peft_config.values():
            peft_config.base_model_name_or_path = resolved.spec


LOG_FIELDS = (("epoch", "epoch", ".2f"), ("loss", "loss", ".4f"), ("eval_loss", "eval loss", ".4f"),
              ("learning_rate", "lr", ".2e"), ("grad_norm", "grad norm", ".3f"), ("tokens_per_s", "tokens/s", ".0f"),
              ("memory_mb", "peak MB", ".0f"))  # fmt: skip


def log_line(rec: dict) -> str:
    """A progress record as one readable log line (the record itself, with its Unix time, is in progress.jsonl)."""
    return ", ".join(f"{label} {rec[key]:{fmt}}" for key, label, fmt in LOG_FIELDS if rec.get(key) is not None)


def all_tokens(trainer) -> int:
    """Tokens trained by every rank together (this rank's count when it trains alone)."""
    if world_size() == 1:
        return trainer.tokens_seen
    import torch

    count = torch.tensor([trainer.tokens_seen], device=trainer.args.device)
    return int(trainer.accelerator.reduce(count, reduction="sum").item())


def finish(trainer, config, run_dir: Path, model_path: str, tok, result, runtime: float, has_val: bool) -> dict:
    """Evaluate (every rank takes part), then rank 0 alone saves the adapter, the metrics and the card. A run
    stopped by the user skips the final evaluation (rank 0's reading of the STOP file, shared by every rank)."""
    stopped = agree((run_dir / STOP).exists() if trainer.is_world_process_zero() else False)
    metrics = {"train_loss": result.training_loss, "runtime_s": round(runtime, 1), "steps": trainer.state.global_step}
    if has_val and not stopped:
        metrics["eval_loss"] = trainer.evaluate()["eval_loss"]
    metrics["tokens_per_s"] = round(all_tokens(trainer) / max(runtime, 1e-6), 1)
    metrics["peak_memory_mb"] = round(peak_memory_mb(), 1)
    if not trainer.is_world_process_zero():
        return read_status(run_dir)
    trainer.model.save_pretrained(run_dir / ADAPTER)
    tok.save_pretrained(run_dir / ADAPTER)
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
    """Train; every failure reaches status.json (written by rank 0, or by whichever rank failed)."""
    run_dir = Path(run_dir)
    if rank() == 0:
        started = read_status(run_dir).get("started") or time.time()
        write_status(run_dir, state="running", pid=os.getpid(), started=started)
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
