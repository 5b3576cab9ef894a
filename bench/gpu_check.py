"""GPU check: on a CUDA machine, train LoRA and QLoRA (4-bit NF4) for a few dozen steps on the embedded model
through the real lab.jobs / lab.training path, then batched generation and a 2-contestant evaluation on CUDA.

Prints, per method: tokens/s, peak CUDA memory beside lab.catalog's GPU estimate, and the bf16 MFU
(6 x parameters x tokens/s / the GPU's peak dense bf16 FLOP/s, from a small table of common GPUs by name;
parameters = the whole base model, the usual convention, although LoRA computes no base-weight gradients).
Exits 0 when every check passed, 1 on any failure (each failure named on its own line), 2 without CUDA.
Under 5 minutes on a recent GPU; a fresh temporary LAB_HOME each time (--keep keeps it).

    .venv/bin/python bench/gpu_check.py [--steps 30] [--questions 16] [--keep]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Peak dense bf16 tensor FLOP/s (no sparsity), from the vendors' data sheets; the first name found in the device
# name wins, so longer names come first. T4 has no bf16: its fp16 peak is used and the line says so.
PEAK_BF16_TFLOPS = (
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("GH200", 989.0),
    ("A100", 312.0), ("A10G", 70.0), ("A10", 125.0), ("L40S", 362.0), ("L4", 121.0), ("T4", 65.0),
    ("RTX 4090", 165.0), ("RTX 3090", 71.0), ("V100", 125.0),
)  # fmt: skip
FP16_ONLY = ("T4", "V100")


def peak_tflops(device_name: str) -> tuple[float | None, str]:
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops, (f"{key}: fp16 peak, no bf16 tensor cores" if key in FP16_ONLY else key)
    return None, "not in the table"


class Checks:
    """Runs named checks, printing PASS/FAIL lines; a failure never stops the later checks."""

    def __init__(self):
        self.failed: list[str] = []

    def run(self, name: str, fn, *args):
        started = time.time()
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next check runs
            traceback.print_exc(file=sys.stderr)
            self.failed.append(name)
            print(f"FAIL {name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
            return None
        print(f"PASS {name} ({time.time() - started:.1f} s)")
        return result


def train(ws, method: str, steps: int, tflops: float | None) -> dict:
    from lab import catalog, jobs
    from lab.config import TrainConfig
    from lab.training import read_status

    config = TrainConfig(
        name=f"gpu-{method}", dataset="sample", method=method, max_steps=steps, batch_size=8, max_length=512,
        logging_steps=5, save_steps=max(steps, 1) * 10, learning_rate=2e-4,
    )  # fmt: skip
    run_id = jobs.start(ws, config)
    info = jobs.wait(ws, run_id, timeout=240)
    status = read_status(ws.dir("runs", run_id))
    if info["state"] != "finished":
        log = (ws.dir("runs", run_id) / "train.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"run {run_id} ended {info['state']}: {status.get('error', '')} | {' | '.join(log)}")
    metrics = status["metrics"]
    if not status.get("bf16"):
        raise RuntimeError(f"run {run_id} did not train under bf16 (status bf16={status.get('bf16')})")
    if not math.isfinite(metrics["train_loss"]) or metrics["steps"] != steps:
        raise RuntimeError(f"run {run_id}: loss {metrics['train_loss']}, {metrics['steps']} of {steps} steps")
    model = catalog.find("embedded")
    est = catalog.memory_mb(model, method, config.max_length, config.batch_size, rank=config.rank)["total"]
    rate = metrics["tokens_per_s"]
    mfu = f"{6 * model.params * rate / (tflops * 1e12):.1%}" if tflops else "n/a (GPU not in the table)"
    print(f"  {method}: {steps} steps in {metrics['runtime_s']} s, {rate:,.0f} tokens/s, train loss "
          f"{metrics['train_loss']:.3f}, peak CUDA memory {metrics['peak_memory_mb']:,.0f} MB (catalog estimate "
          f"{est:,.0f} MB for the worst batch of 8 x 512 tokens), MFU bf16 {mfu}")  # fmt: skip
    return metrics


def generation(ws, cache, n: int) -> None:
    from lab.config import GenConfig
    from lab.generation import plain_messages
    from lab.generation.engine import generate_batch

    model, tok = cache.model("embedded"), cache.tokenizer("embedded")
    if model.device.type != "cuda":
        raise RuntimeError(f"the cached model is on {model.device}, not CUDA")
    questions = [f"In one sentence, what is item number {i} on a wind turbine inspection list?" for i in range(n)]
    convs = [plain_messages(q) for q in questions]
    gen = GenConfig(max_new_tokens=32, batch_size=8)
    generate_batch(model, tok, convs[:2], gen)  # warm-up (CUDA kernels, allocator)
    t0 = time.perf_counter()
    batched = generate_batch(model, tok, convs, gen)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [generate_batch(model, tok, [c], gen.replace(batch_size=1))[0] for c in convs[:4]]
    t_single = (time.perf_counter() - t0) / 4 * n
    empty = [i for i, (text, _, n_out) in enumerate(batched) if not text or n_out == 0]
    if empty:
        raise RuntimeError(f"{len(empty)} of {n} batched answers are empty (first: question {empty[0]})")
    same = sum(a[0] == b[0] for a, b in zip(batched, single, strict=False))
    print(f"  batched: {n} answers in {t_batched:.2f} s ({n / t_batched:.1f}/s) vs one at a time "
          f"~{n / t_single:.1f}/s ({t_single / t_batched:.1f}x); greedy text same as unbatched: {same}/4")  # fmt: skip


def evaluation(ws, cache, n: int) -> None:
    from lab.arena.evaluation import evaluate_in_workspace
    from lab.config import GenConfig
    from lab.data.evalset import sample_evalset_path
    from lab.rag import ensure_sample_index

    ensure_sample_index(ws, cache)
    systems = ["ft:gpu-lora", "rag:sample"]
    gen = GenConfig(max_new_tokens=32, batch_size=8)
    result = evaluate_in_workspace(ws, cache, str(sample_evalset_path(ws)), systems, gen, limit=n, bootstrap=100,
                                   save=False)  # fmt: skip
    rows = {s["system"]: s for s in result["systems"]}
    if result["status"] != "finished" or sorted(rows) != sorted(systems):
        raise RuntimeError(f"evaluation {result['status']}, systems {sorted(rows)}")
    for name in systems:
        s = rows[name]
        if s["n"] != n:
            raise RuntimeError(f"{name} answered {s['n']} of {n} questions")
        print(f"  {name}: correct {s.get('correct_rate') or 0:.0%} of answerable, p50 latency "
              f"{s.get('latency_p50') or 0:.2f} s, {s.get('tokens_per_s') or 0:.0f} tokens/s")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per method")
    parser.add_argument("--questions", type=int, default=16, help="questions for generation and evaluation")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device on this machine (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}): nothing checked")  # fmt: skip
        return 2
    name = torch.cuda.get_device_name(0)
    tflops, source = peak_tflops(name)
    total_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
    print(f"GPU: {name}, {total_gb:.0f} GB, bf16 {torch.cuda.is_bf16_supported()}, peak bf16 "
          f"{tflops or '?'} TFLOP/s ({source}); torch {torch.__version__}, CUDA {torch.version.cuda}")  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix="expertlab-gpu-check-"))
    os.environ["LAB_HOME"] = str(home)
    started = time.time()
    try:
        return run_checks(home, args, tflops, started)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def run_checks(home: Path, args, tflops: float | None, started: float) -> int:
    from lab import db
    from lab.cache import ModelCache
    from lab.data import ensure_sample_domain
    from lab.workspace import Workspace

    ws = Workspace.open(home)
    db.init(ws.db_path)
    checks = Checks()
    checks.run("sample domain and embedded model", lambda: (ensure_sample_domain(ws), ModelCache(ws.model_cache)
                                                            .resolve("embedded")))  # fmt: skip
    for method in ("lora", "qlora"):
        checks.run(f"train {method} on CUDA", train, ws, method, args.steps, tflops)
    cache = ModelCache(ws.model_cache)
    checks.run("batched generation on CUDA", generation, ws, cache, args.questions)
    if "train lora on CUDA" in checks.failed:
        checks.failed.append("2-contestant evaluation (needs the LoRA run)")
        print("FAIL 2-contestant evaluation: skipped, the LoRA run it evaluates failed")
    else:
        checks.run("2-contestant evaluation on CUDA", evaluation, ws, cache, args.questions)
    elapsed = time.time() - started
    if checks.failed:
        print(f"gpu_check: {len(checks.failed)} check(s) failed in {elapsed:.0f} s: {', '.join(checks.failed)}")
        return 1
    print(f"gpu_check: all checks passed in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
