"""A DPO run: LoRA trained on preference pairs with TRL's DPOTrainer, in the training child process.

It keeps a fine-tuning run's contract (lab/training/engine.py, whose pieces it reuses): the same run folder, a
standard PEFT adapter, progress.jsonl lines (with the rewards: margin, chosen, rejected, accuracy), the STOP file
and resuming from the last checkpoint. The pairs are RUN_DIR/prefs.jsonl (written by lab.jobs when the run starts).
Only one model is loaded: from the base, the reference is the base with the adapter disabled; from a parent run,
TRL keeps a frozen copy of the parent's adapter as the reference. Must not touch the database or UI.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

from lab.catalog import device_facts
from lab.config import TrainConfig
from lab.models import load_tokenizer
from lab.resolve import resolve_model
from lab.training import CONFIG, STOP, last_checkpoint, read_progress, write_status
from lab.training.engine import (
    LOGGED,
    build_model,
    finish,
    make_callbacks,
    name_base_model,
    pin_rank_device,
    rank,
    reset_peak_memory,
    run_precision,
    shared_args,
    world_size,
)
from lab.training.lineage import parent_adapter
from lab.training.prefs import RUN_FILE, read_pairs
from lab.workspace import Workspace

# TRL's log keys -> progress.jsonl keys (the Train tab charts the rewards)
REWARDS = {
    "rewards/margins": "reward_margin",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "rewards/accuracies": "reward_accuracy",
}
REF_ADAPTER = "ref"  # the name TRL gives its frozen copy of a parent's adapter


def dpo_args(config: TrainConfig, run_dir: Path, facts, chosen: str):
    """DPOConfig from the run's settings: the fine-tuning run's schedule, precision and checkpoints, plus `beta`."""
    from trl import DPOConfig

    return DPOConfig(
        **shared_args(config, run_dir, facts, chosen),
        eval_strategy="no",
        beta=config.beta,
        max_length=config.max_length,
    )


def policy(config: TrainConfig, model_path: str, parent: Path | None, facts):
    """(model, peft_config) for DPOTrainer. From a parent run: its adapter, trainable (TRL adds the frozen copy that
    is the reference). From the base: the bare base model and the run's LoRA config (the one `build_model` makes),
    so TRL adds the adapter and the reference is the base with the adapter disabled."""
    model = build_model(config, model_path, parent, facts)
    if parent is not None:
        return model, None
    lora = copy.deepcopy(model.peft_config["default"])
    return model.unload(), lora


def make_trainer_class():
    """DPOTrainer that reports the tokens it trained as `tokens_seen` (what the progress writer reads)."""
    from trl import DPOTrainer

    class LabDPOTrainer(DPOTrainer):
        @property
        def tokens_seen(self) -> int:
            return int(self._total_train_tokens) // world_size()  # TRL counts every rank's tokens

    return LabDPOTrainer


def train(run_dir: str | Path) -> dict:
    """Train the DPO run in `run_dir` (resuming from its last checkpoint if any); return the final status."""
    from datasets import Dataset
    from transformers import set_seed

    run_dir = Path(run_dir).resolve()
    config = TrainConfig.load(run_dir / CONFIG)
    ws = Workspace.open(run_dir.parent.parent)
    lead = rank() == 0
    if lead:
        (run_dir / STOP).unlink(missing_ok=True)
    pin_rank_device()
    facts = device_facts()
    reset_peak_memory(facts)
    set_seed(config.seed)
    resolved = resolve_model(config.base_model, ws.model_cache)
    tok = load_tokenizer(resolved.path)
    pairs = read_pairs(run_dir / RUN_FILE)
    parent = parent_adapter(ws, config.from_run) if config.from_run else None
    model, lora = policy(config, resolved.path, parent, facts)
    chosen = run_precision(config, facts)
    ref: list = []
    trainer = make_trainer_class()(
        model=model,
        ref_model=None,
        args=dpo_args(config, run_dir, facts, chosen),
        train_dataset=Dataset.from_list(pairs),
        processing_class=tok,
        peft_config=lora,
        callbacks=[make_callbacks(run_dir, ref, {**LOGGED, **REWARDS})],
    )
    ref.append(trainer)
    name_base_model(trainer.model, resolved)
    resume = last_checkpoint(run_dir)
    where = next(trainer.model.parameters()).device
    print(f"DPO rank {rank()} of {world_size()} on {where}, precision {chosen}", file=sys.stderr, flush=True)
    if lead:
        write_status(run_dir, state="running", pid=os.getpid(), bf16=chosen == "bf16", precision=chosen,
                     resumed_from=str(resume or ""), n_train=len(pairs), n_val=0, world_size=world_size(),
                     device=str(where))  # fmt: skip
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if REF_ADAPTER in trainer.model.peft_config:  # the frozen reference copy is not part of the result
        trainer.model.delete_adapter(REF_ADAPTER)
    status = finish(trainer, config, run_dir, resolved.path, tok, result, time.time() - started, False)
    return with_rewards(run_dir, config, status) if lead else status


def with_rewards(run_dir: Path, config: TrainConfig, status: dict) -> dict:
    """The final status with the last logged rewards among its metrics (and the run card written again)."""
    last = next((r for r in reversed(read_progress(run_dir)) if "reward_margin" in r), {})
    rewards = {k: round(last[k], 4) for k in REWARDS.values() if k in last}
    if not rewards:
        return status
    status = write_status(run_dir, metrics={**status.get("metrics", {}), **rewards})
    from lab.training.card import write_card

    write_card(run_dir, config, status)
    return status
