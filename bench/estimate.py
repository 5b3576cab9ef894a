"""How honest the Start tab's first estimate is: the quick look (and with --full the whole comparison) from a fresh
workspace, once on the machine as it is and once with busy processes spinning beside it; for each, the estimate
shown before the start (lab.arena.showcase.forecast) against the time taken, and their ratio (goal: within 35%).

Usage: .venv/bin/python bench/estimate.py [--busy 2] [--full] [--contestants base,RAG] [--threads]
       (--busy N: how many pure-Python spinning processes run beside the second pass; 0 skips that pass;
       --threads: instead, time 20 greedy decode steps of the embedded model with 1 and with 2 torch threads, with
       0, 1 and --busy spinning processes beside them: the measurement behind lab.estimate.pick_threads)
The model cache is shared between the passes (converting the embedded model happens before the first estimate,
as in a launched app); everything else starts from an empty workspace each time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
GOAL = 0.35
SPIN = "while True: pass"


def _workspace(models: Path):
    from lab.data import ensure_sample_domain
    from lab.workspace import Workspace

    home = Path(tempfile.mkdtemp(prefix="estimate-bench-")) / "home"
    ws = Workspace.open(home)
    (ws.root / "models").rmdir()
    (ws.root / "models").symlink_to(models, target_is_directory=True)
    ensure_sample_domain(ws)
    return ws


def _one(models: Path, inputs, busy: int) -> dict:
    """Estimate, then run, `inputs` on a fresh workspace with `busy` spinning processes beside it."""
    from lab.arena.showcase import forecast, run_showcase
    from lab.cache import ModelCache

    ws = _workspace(models)
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
    try:
        time.sleep(2.0 if busy else 0.0)  # the spinners are running when the estimate is read
        plan = forecast(ws, inputs)
        started = time.time()
        result = run_showcase(ws, ModelCache(ws.model_cache), inputs, machine=plan.machine)
        took = time.time() - started
        import torch

        threads = torch.get_num_threads()  # as run_showcase chose them for the load it read
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    stages = {s["stage"]: (s["seconds"], s.get("estimate_s")) for s in result["run"]["stages"]}
    return {"plan": plan, "took": took, "status": result["run"]["status"], "stages": stages, "threads": threads}


def _row(name: str, busy: int, out: dict) -> str:
    est = out["plan"].total
    ratio = out["took"] / est.seconds if est.seconds else float("nan")
    ok = "yes" if abs(ratio - 1) <= GOAL else "no"
    inside = "yes" if est.lo <= out["took"] <= est.hi else "no"
    return (
        f"| {name} | {busy} | {out['plan'].machine.factor:.2f} | {out['threads']} | {est.seconds:.0f} s "
        f"({est.text}) | {out['took']:.0f} s | {ratio:.2f} | {ok} | {inside} |"
    )


def _decode_s(model, ids, steps: int) -> tuple[float, float]:
    """(wall s, CPU s of this process) of `steps` greedy decode steps after the prompt `ids`."""
    import torch

    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=steps, min_new_tokens=steps, do_sample=False, pad_token_id=0)
    return time.perf_counter() - wall, time.process_time() - cpu


def thread_probe(models: Path, busy: int, steps: int = 20, rounds: int = 3) -> list[str]:
    """Rows of a table: decode time with 1 and 2 torch threads (alternated, `rounds` each, the median kept) with
    0, 1 and `busy` spinning processes beside them."""
    import statistics

    import torch
    from transformers import AutoModelForCausalLM

    from lab.cache import ModelCache
    from lab.estimate import machine_now, pick_threads

    path = ModelCache(models).resolve("embedded").path
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = torch.randint(100, 1000, (1, 64))
    rows = []
    for spin in sorted({0, 1, busy}):
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(spin)]
        try:
            time.sleep(1.0 if spin else 0.0)
            now = machine_now()  # the load the policy would read: the spinners and any other work
            times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
            for _ in range(rounds):
                for n in (1, 2):
                    torch.set_num_threads(n)
                    _decode_s(model, ids, 2)  # warm the thread pool
                    times[n].append(_decode_s(model, ids, steps))
        finally:
            for p in spinners:
                p.kill()
                p.wait()
        wall = {n: statistics.median(w for w, _ in t) for n, t in times.items()}
        cpu = {n: statistics.median(c for _, c in t) for n, t in times.items()}
        rows.append(f"| {spin} | {wall[1]:.2f} s ({cpu[1]:.2f} CPU s) | {wall[2]:.2f} s ({cpu[2]:.2f} CPU s) | "
                    f"{wall[2] / wall[1]:.2f} | {now.load:.1f} | {pick_threads(now.cores, now.load)} |")  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    from lab.arena.showcase import Inputs, quick_look

    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also the whole comparison (about 3 min idle, more)")
    parser.add_argument("--contestants", default="", help="labels (default: the Start tab's default)")
    parser.add_argument("--threads", action="store_true", help="time decode steps with 1 and 2 torch threads")
    args = parser.parse_args()
    if args.threads:
        print(f"machine: {os.cpu_count()} cores; load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        rows = thread_probe(Path(os.environ.get("LAB_BENCH_MODELS") or tempfile.mkdtemp()), args.busy)
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        head = "| spinning processes | 1 thread, 20 steps | 2 threads | 2 / 1 | other runnable | threads picked |"
        print(head + "\n|---|---|---|---|---|---|")
        print("\n".join(rows))
        return 0
    chosen = [c.strip() for c in args.contestants.split(",") if c.strip()]
    looks = [("quick look", quick_look(Inputs(contestants=chosen)))]
    looks += [("whole comparison", Inputs(contestants=chosen))] if args.full else []
    models = Path(tempfile.mkdtemp(prefix="estimate-bench-models-"))
    print(f"machine: {os.cpu_count()} cores; load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows = []
    for name, inputs in looks:
        for busy in sorted({0, args.busy}):
            out = _one(models, inputs, busy)
            rows.append(_row(name, busy, out))
            print(rows[-1], flush=True)
            for stage, (seconds, guess) in out["stages"].items():
                print(f"    {stage:<34} took {seconds:7.1f} s, estimated {guess or 0:7.1f} s", flush=True)
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    head = ("run", "busy processes", "load factor read", "torch threads", "first estimate", "took", "took / estimate",
            "within 35%", "in range")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
