"""Everything lab.jobs refuses before a training process starts, and the plan it shows: the data, the model's
limits and target modules, the logger, and the memory and time estimate (lab.training.plan, with this machine's
measured speed from lab.training.speed) as a range under the load now. A DPO run's checks are here too, and the
plan of the steps a resumed run has left. JobError lives here so both modules raise the same error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab.config import TrainConfig
from lab.errors import LabError
from lab.estimate import Machine, estimate, machine_now, user_threads
from lab.models import load_tokenizer
from lab.resolve import resolve_model
from lab.training.plan import TrainPlan, linear_modules, model_limits, rate_device, target_names, weight_shapes
from lab.training.plan import estimate as plan_estimate
from lab.training.prep import load_examples
from lab.training.ragdata import prompt_lengths
from lab.training.speed import measured_throughput, probe_cpu
from lab.workspace import Workspace


class JobError(LabError):
    """A job cannot start or be changed; the message names the run or value and says what to do."""


def check(ws: Workspace, config: TrainConfig, examples: list[dict] | None = None) -> TrainPlan:
    """Everything that can be refused before a process starts; returns the plan (examples, memory, time range).
    `examples` are the rows that will be trained on when they are not the dataset's own (training for RAG)."""
    user_threads()  # a malformed LAB_THREADS is refused before anything starts
    if config.method == "dpo":
        return check_preferences(ws, config)
    if not config.dataset:
        raise JobError("dataset is empty: pick a saved dataset or give a chat JSONL file path")
    train = load_examples(ws, config.dataset, "train")  # validates; raises DataError with the validator's errors
    train = train if examples is None else examples
    val = load_examples(ws, config.dataset, "val")
    model_dir = _checked_model(ws, config)
    if config.report_to != "none" and importlib.util.find_spec(config.report_to) is None:
        raise JobError(f"report_to={config.report_to!r}: that package is not installed; install it or use none")
    lengths = prompt_lengths(load_tokenizer(model_dir), train[:2000]) or [1]  # real chat-template token counts
    mean = sum(lengths) / len(lengths)
    machine = machine_now() if rate_device() == "cpu" else Machine()
    speed = measured_throughput(ws.root / "runs", config) or _probed(ws, config, model_dir, mean, machine)
    longest = min(max(lengths), config.max_length)
    plan = plan_estimate(config, model_dir, len(train), mean, longest, speed.get("tokens_per_s"),
                         speed.get("source", ""))  # fmt: skip
    return _finished(replace(plan, n_train=len(train), n_val=len(val)), machine)


def _finished(plan: TrainPlan, machine: Machine | None = None) -> TrainPlan:
    """The plan with its time range under the load on `machine` (default read now), and its warnings."""
    plan = replace(plan, **time_range(plan, machine))
    return replace(plan, warnings=plan_warnings(plan))


def plan_warnings(plan: TrainPlan, available_mb: float | None = None) -> tuple[str, ...]:
    """What the user should know before starting beyond the plan's figures: a peak memory above the memory
    available now (`available_mb`, default read now) on a CPU."""
    out = []
    if available_mb is None:
        import psutil

        available_mb = psutil.virtual_memory().available / 2**20
    if plan.memory_total_mb > available_mb and not plan.device.startswith(("cuda", "zerogpu")):
        out.append(f"its peak memory (about {plan.memory_total_mb:.0f} MB) is above the {available_mb:.0f} MB "
                   "free now: lower batch_size or max_length, or close other programs")  # fmt: skip
    return tuple(out)


def _probed(ws: Workspace, config: TrainConfig, model_dir: str, mean_tokens: float, machine: Machine) -> dict:
    """With nothing measured on this machine: on a CPU, the model-size guess calibrated by a quarter-second speed
    probe of this CPU (lab.training.speed.probe_cpu, under the load on `machine`); on a GPU {} (the formula for the
    device)."""
    return probe_cpu(ws.root / "runs", config, model_dir, mean_tokens, machine) if rate_device() == "cpu" else {}


def time_range(plan: Mapping[str, Any], machine: Machine | None = None) -> dict:
    """The plan's training time as a range under the load now: `time_range` ("about 2-3 min"), `time_lo_s`,
    `time_hi_s`, and `load_note` ("the CPU is busy: estimate x1.8", or ""). Training on a CPU shares it with other
    work, so its range scales with the load (`machine`, default read now); on a GPU it does not. The range is
    narrower when the time comes from this machine's measured throughput than from the rough formula."""
    on_cpu = str(plan.get("device") or "cpu").split(":", 1)[0] not in ("cuda", "zerogpu")
    measured = TrainPlan.from_dict(plan).measured
    span = estimate(float(plan.get("time_s") or 0.0), (machine or machine_now()) if on_cpu else None, measured)
    return {"time_range": span.text, "time_lo_s": span.lo, "time_hi_s": span.hi, "load_note": span.note}


def check_preferences(ws: Workspace, config: TrainConfig) -> TrainPlan:
    """A DPO run's checks and plan: its preference pairs (a file, or the Arena's votes), the model's limits and
    target modules. Memory and time are a LoRA run's on twice the batch (each pair is two sequences), plus a
    reference forward pass (a third more time)."""
    from lab.training.plan import planned_steps
    from lab.training.prefs import pair_lengths, resolve

    if config.rag_index:
        raise JobError(f"rag_index={config.rag_index!r}: training for RAG is for fine-tuning runs, not dpo; clear it")
    pairs = resolve(ws, config.prefs)
    model_dir = _checked_model(ws, config)
    lengths = pair_lengths(load_tokenizer(model_dir), pairs[:2000]) or [1]
    speed = measured_throughput(ws.root / "runs", config) or {}
    doubled = config.replace(method="lora", batch_size=2 * config.batch_size, assistant_only_loss=False)
    longest, rate = min(max(lengths), config.max_length), speed.get("tokens_per_s")
    plan = plan_estimate(doubled, model_dir, 2 * len(pairs), sum(lengths) / len(lengths), longest, rate,
                    speed.get("source", ""))  # fmt: skip
    if not speed:
        plan = replace(plan, time_s=plan.time_s * 4 / 3, time_s_cpu=plan.time_s * 4 / 3)
    return _finished(replace(plan, n_train=len(pairs), n_val=0, steps=planned_steps(config, len(pairs))))


def remaining_plan(status: dict, checkpoint: Path) -> TrainPlan:
    """The run's saved estimate for the steps after `checkpoint` (checkpoint-STEP): `steps` and `time_s` scaled."""
    saved = status.get("estimate") or {}
    plan = TrainPlan.from_dict(saved)
    total = int(plan.steps or status.get("total_steps") or 0)
    done = int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint.name.rsplit("-", 1)[-1].isdigit() else 0
    left = max(0, total - done)
    if total and saved.get("time_s") is not None:
        plan = replace(plan, time_s=float(plan.time_s) * left / total)
    return replace(plan, steps=left)


def _checked_model(ws, config):
    """The base model's folder, after checking `config.max_length` against its limit and its target modules."""
    model_dir = resolve_model(config.base_model, ws.model_cache).path
    limits = model_limits(model_dir)
    if limits["max_positions"] and config.max_length > limits["max_positions"]:
        raise JobError(
            f"max_length={config.max_length} is above the model's limit of {limits['max_positions']} tokens: lower it"
        )
    target_names(linear_modules(weight_shapes(model_dir)), config.target_modules)
    return model_dir
