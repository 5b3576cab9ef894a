"""This machine's measured training speed, for lab.training.plan's time estimate: the last finished runs of the
same base model and method, a calibration (a few real training steps timed in a child process, `python -m
lab.training.speed calibrate ...`), and on a CPU a quarter-second speed probe; calibrations and probes are
remembered in runs/.calibration.json. Nothing here imports torch at module level.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lab.config import TrainConfig
from lab.errors import LabError
from lab.training import CONFIG, read_status
from lab.training.plan import (
    QLORA_SLOWDOWN,
    bf16_autocast,
    model_limits,
    numel,
    peak_rss_mb,
    rate_device,
    weight_shapes,
)

CALIBRATION = ".calibration.json"
CALIBRATION_TIMEOUT_S = 600
# On a CPU the last resort is calibrated by a speed probe (`probe_cpu`: a quarter second of matrix products shaped
# like the model's MLP, forward and backward to the input, as a frozen base's LoRA step does them): useful training
# FLOP/s (6 x parameters per token) of real LoRA steps of the quick CPU preset came out at PROBE_EFFICIENCY of the
# probe's FLOP/s, both timed in CPU seconds on one thread (docs/benchmarks.md, "Time estimates").
PROBE_EFFICIENCY = 0.32
PROBE_S = 0.25


def probed_rate(params: int, method: str, probe_flops: float) -> float:
    """Tokens/s on this CPU from a speed probe's FLOP/s (taken back to an idle machine): PROBE_EFFICIENCY of them
    over 6 x parameters, slower for QLoRA."""
    rate = max(probe_flops, 0.0) * PROBE_EFFICIENCY / (6 * max(params, 1))
    return rate * (QLORA_SLOWDOWN if method == "qlora" else 1.0)


def probe_flops(hidden: int, intermediate: int, tokens: int, bf16: bool, seconds: float = PROBE_S) -> float:
    """FLOP/s of `seconds` of (tokens x hidden) @ (hidden x intermediate) products and their backward to the input,
    in bf16 autocast when the run trains in it, on the threads torch uses now."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(max(tokens, 1), max(hidden, 1), generator=gen)
    w = torch.randn(max(intermediate, 1), max(hidden, 1), generator=gen)
    done, elapsed = 0, 0.0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        (F.linear(x, w) @ w).sum()  # warm-up: thread pool, kernels
        started = time.perf_counter()
        while elapsed < seconds:
            (F.linear(x, w) @ w).sum()
            done += 1
            elapsed = time.perf_counter() - started
    return done * 4.0 * x.shape[0] * x.shape[1] * w.shape[0] / max(elapsed, 1e-9)


def probe_cpu(runs_dir: str | Path, config: TrainConfig, model_dir: str | Path, mean_tokens: float,
              machine=None) -> dict:  # fmt: skip
    """{"tokens_per_s", "source"} from a speed probe of this CPU (`probe_flops` with the thread count the load
    leaves, taken back to an idle machine by its load factor), for a run with nothing measured yet. The probe is
    remembered in runs/.calibration.json with the load factor it was read under; one read on a busy CPU is read
    again once the CPU is quiet."""
    from lab.estimate import BUSY_FROM, machine_now, pick_threads

    lim = model_limits(model_dir)
    params = sum(numel(s) for s in weight_shapes(model_dir).values())
    tokens = int(config.batch_size * min(config.max_length, max(mean_tokens, 8)))
    bf16 = bf16_autocast(config)
    key = f"probe|{os.cpu_count()} cpus|{'bf16' if bf16 else 'fp32'}|{lim['hidden']}x{lim['intermediate']}x{tokens}"
    saved = _calibrations(Path(runs_dir)).get(key)
    machine = machine or machine_now()
    if saved and (float(saved.get("factor") or 1.0) < BUSY_FROM or machine.factor >= BUSY_FROM):
        flops = float(saved["flops"])
    else:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(pick_threads(machine.cores, machine.load))
        try:
            flops = probe_flops(lim["hidden"], lim["intermediate"], tokens, bf16) * machine.factor
        finally:
            torch.set_num_threads(before)
        _remember(Path(runs_dir), key, {"flops": flops, "factor": round(machine.factor, 3), "at": time.time()})
    source = "rough guess from the model size and a speed probe of this CPU: no run or calibration measured yet"
    return {"tokens_per_s": probed_rate(params, config.method, flops), "source": source}


def _remember(runs_dir: Path, key: str, value: dict) -> None:
    """Keep `value` under `key` in runs/.calibration.json."""
    saved = _calibrations(runs_dir)
    saved[key] = value
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / CALIBRATION).write_text(json.dumps(saved, indent=2), encoding="utf-8")


def _run_rate(run_dir: Path, config: TrainConfig, dev: str = "cpu") -> tuple[float, float, str] | None:
    """(ended, tokens/s in the estimate's token units, run id) of a finished run of the same model and method that
    trained on `dev` (runs recorded without a device trained on a CPU)."""
    status = read_status(run_dir)
    metrics = status.get("metrics") or {}
    if status.get("state") != "finished" or not metrics.get("runtime_s"):
        return None
    if (status.get("estimate") or {}).get("device", "cpu") != dev:
        return None
    try:
        other = TrainConfig.load(run_dir / CONFIG)
    except (OSError, ValueError):
        return None
    if other.base_model != config.base_model or other.method != config.method:
        return None
    est = status.get("estimate") or {}
    if est.get("tokens_total") and est.get("steps") and metrics.get("steps"):
        rate = est["tokens_total"] * metrics["steps"] / est["steps"] / metrics["runtime_s"]
    else:
        rate = metrics.get("tokens_per_s") or 0.0
    rate *= float(status.get("load_factor") or 1.0) if dev == "cpu" else 1.0  # as on an idle CPU
    return (float(status.get("ended") or 0), float(rate), run_dir.name) if rate > 0 else None


def measured_throughput(
    runs_dir: str | Path, config: TrainConfig, last: int = 3, device: str | None = None
) -> dict | None:
    """{"tokens_per_s", "source"}: the median of the last finished runs of the same base model and method on this
    machine's training device (`device`, default `rate_device()`), else a calibration remembered for that device,
    else None."""
    runs_dir, dev = Path(runs_dir), device or rate_device()
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")] if runs_dir.is_dir() else []
    found = sorted(filter(None, (_run_rate(p, config, dev) for p in folders)), reverse=True)[:last]
    if found:
        names = ", ".join(name for _, _, name in found)
        rate = statistics.median(r for _, r, _ in found)
        return {"tokens_per_s": rate, "source": f"measured speed of the last finished run(s) of this model: {names}"}
    saved = _calibrations(runs_dir).get(_calibration_key(config, dev))
    if saved:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved["at"]))
        return {"tokens_per_s": saved["tokens_per_s"], "source": f"calibrated on this machine ({when})"}
    return None


def _calibration_key(config: TrainConfig, dev: str = "cpu") -> str:
    """The remembered calibration's key: model and method, and the device unless it is the CPU."""
    key = f"{config.base_model}|{config.method}"
    return key if dev == "cpu" else f"{key}|{dev}"


def calibration_device(env=None) -> str:
    """Where `calibrate`'s child process trains: a CUDA card when it has one; on ZeroGPU the CPU (a plain child
    process never gets the slot's card)."""
    from lab.models import on_zero_gpu

    return "cpu" if on_zero_gpu(env) else rate_device(env)


def _calibrations(runs_dir: Path) -> dict:
    try:
        return json.loads((Path(runs_dir) / CALIBRATION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def calibrate(runs_dir: str | Path, config: TrainConfig, model_dir: str | Path, mean_tokens: float) -> dict:
    """Time a few real training steps of `config` on a batch shaped like its data, in a child process; remember
    the throughput in runs/.calibration.json. Returns {"tokens_per_s", "source", "peak_mb"}."""
    seq = int(min(config.max_length, max(mean_tokens, 8)))
    job = {"config": config.to_dict(), "model_dir": str(model_dir), "seq": seq}
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    root = str(Path(__file__).resolve().parent.parent.parent)  # `-m` puts the folder holding `lab` on sys.path
    cmd = [sys.executable, "-m", "lab.training.speed", "calibrate", json.dumps(job)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=CALIBRATION_TIMEOUT_S, env=env, cwd=root)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"calibration of {config.base_model!r} took over {CALIBRATION_TIMEOUT_S} s") from exc
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"calibration of {config.base_model!r} failed: {tail[0]}")
    result = json.loads(lines[-1])
    result["tokens_per_s"] = result["tokens_per_s"] * float(result.get("load_factor") or 1.0)  # as on an idle CPU
    _remember(Path(runs_dir), _calibration_key(config, calibration_device()), {**result, "at": time.time()})
    return {**result, "source": "calibrated just now on this machine"}


def _calibration_child(job: dict, steps: int = 3, facts=None) -> dict:
    """Run in the child: one warm-up and `steps` timed LoRA steps on random tokens of the data's shape, in the
    run's own precision (fp16 steps with loss scaling). On CUDA the clock is read after a device synchronise (kernels
    run asynchronously: without it the launches are timed, not the work) and the peak is CUDA memory allocated
    from the first timed step on; on a CPU it is the process's resident memory."""
    import torch
    import torch.nn.functional as F

    from lab.catalog import device_facts
    from lab.training.engine import autocast_dtype, build_model, reset_peak_memory, run_precision

    config = TrainConfig(**job["config"])
    facts = facts or device_facts()
    torch.manual_seed(0)
    model = build_model(config, job["model_dir"], facts=facts).train()
    lm, chosen = model.get_base_model(), run_precision(config, facts)
    half = autocast_dtype(chosen)
    scaler = torch.amp.GradScaler("cuda", enabled=chosen == "fp16" and facts.cuda)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    shape = (config.batch_size, job["seq"])
    keep = max(1, int(job["seq"] * 0.3)) if config.assistant_only_loss else job["seq"]
    elapsed = 0.0
    for step in range(steps + 1):
        ids = torch.randint(0, lm.config.vocab_size, shape, device=lm.device)
        if step == 1:
            reset_peak_memory(facts)
        started = _clock(facts)
        with torch.autocast(lm.device.type, dtype=half or torch.bfloat16, enabled=half is not None):
            feed = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "use_cache": False}
            hidden = lm.get_decoder()(**feed).last_hidden_state
            logits = lm.get_output_embeddings()(hidden[:, -keep - 1 : -1].reshape(-1, hidden.shape[-1]))
        scaler.scale(F.cross_entropy(logits.float(), ids[:, -keep:].reshape(-1))).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        elapsed += (_clock(facts) - started) if step else 0.0
    peak = torch.cuda.max_memory_allocated() / 2**20 if facts.cuda else peak_rss_mb()
    return {"tokens_per_s": steps * shape[0] * shape[1] / max(elapsed, 1e-9), "peak_mb": round(peak), "steps": steps,
            "precision": chosen, "memory": "CUDA allocated" if facts.cuda else "resident"}  # fmt: skip


def _clock(facts, synchronize=None) -> float:
    """perf_counter after the device's queued work is done (CUDA runs kernels asynchronously); `synchronize`
    defaults to torch.cuda.synchronize."""
    if facts.cuda:
        if synchronize is None:
            import torch

            synchronize = torch.cuda.synchronize
        synchronize()
    return time.perf_counter()


if __name__ == "__main__":  # python -m lab.training.speed calibrate JOB_JSON (started by `calibrate`)
    if len(sys.argv) != 3 or sys.argv[1] != "calibrate":
        sys.exit("usage: python -m lab.training.speed calibrate JOB_JSON")
    from lab.estimate import apply_threads, machine_now

    now = machine_now()
    chosen = apply_threads(now)  # the steps run on the threads a training started now would use
    factor = now.factor if chosen.source == "load" and calibration_device() == "cpu" else 1.0
    print(json.dumps({**_calibration_child(json.loads(sys.argv[2])), "load_factor": factor}), flush=True)
