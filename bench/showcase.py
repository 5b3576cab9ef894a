"""The whole comparison (the Start tab's button) end to end, from a workspace with nothing but the sample.

Prints the first estimate (the range the Start tab shows before the start, under the load then), every stage's
time, the total, the CPU seconds it used, the load average before and after (the machine may be shared, so CPU
seconds are the comparable number), the correct / hallucination rates per contestant, then runs it again to show
that every stage is reused. bench/estimate.py measures the estimate's honesty idle and under load.
Usage: .venv/bin/python bench/showcase.py [--home DIR] [--questions 40] [--max-new-tokens 32] [--epochs 1]
       [--max-steps 0] [--contestants all]
       (--home reuses a workspace, e.g. to measure one changed setting; default: a fresh one)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (the training processes)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _rates(result: dict) -> None:
    for s in result.get("systems", []):
        c, h = s.get("correct_rate"), s.get("hallucination_rate")
        ci = s.get("correct_rate_ci") or [0, 0]
        spec = result.get("showcase", {}).get("contestants", {}).get(s["system"], "")
        correct = f"correct {100 * (c or 0):3.0f}% [{100 * ci[0]:.0f}-{100 * ci[1]:.0f}] (n={s['n_answerable']})"
        print(f"  {s['system']:<24} {correct}  hallucination {100 * (h or 0):3.0f}% (n={s['n_unanswerable']})  {spec}")


def main() -> int:
    from lab.arena.showcase import SHOWCASE_TRAIN, Inputs, forecast, run_showcase

    parser = argparse.ArgumentParser()
    d = Inputs()
    parser.add_argument("--home", default="")
    parser.add_argument("--questions", type=int, default=d.questions)
    parser.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    parser.add_argument("--epochs", type=float, default=SHOWCASE_TRAIN["epochs"])
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--contestants", default="", help="labels, or 'all' (default: the Start tab's default)")
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="showcase-bench-")
    os.environ["LAB_HOME"] = home
    from lab.cache import ModelCache
    from lab.data import ensure_sample_domain
    from lab.workspace import Workspace

    ws = Workspace.open(home)
    ensure_sample_domain(ws)
    train = SHOWCASE_TRAIN | {"epochs": args.epochs, "max_steps": args.max_steps}
    chosen = [c.strip() for c in args.contestants.split(",") if c.strip()]
    inputs = Inputs(questions=args.questions, max_new_tokens=args.max_new_tokens, train=train, contestants=chosen)
    print(f"workspace {home}; settings {inputs}; load average {_load()} (1, 5, 15 min)")
    plan = forecast(ws, inputs)
    print(f"first estimate {plan.total.seconds:.0f} s: {plan.total.says()}")
    started, cpu = time.time(), _cpu()
    result = run_showcase(ws, ModelCache(ws.model_cache), inputs, machine=plan.machine)
    total, cpu = time.time() - started, _cpu() - cpu
    for s in result["run"]["stages"]:
        stage_cpu = f"{s['cpu_s']:7.1f} CPU s" if "cpu_s" in s else ""
        print(f"  {s['stage']:<28} {s['seconds']:7.1f} s {stage_cpu}{'  (reused)' if s.get('reused') else ''}")
    print(f"TOTAL {total:.1f} s ({total / 60:.2f} min), status {result['run']['status']}; load average {_load()}")
    print(f"took / first estimate: {total / max(plan.total.seconds, 1e-9):.2f}")
    print(f"CPU time {cpu:.0f} s (this process + training children; on an idle 2-core machine wall >= CPU / 2)")
    _rates(result)
    again = time.time()
    second = run_showcase(ws, ModelCache(ws.model_cache), inputs)
    reused = sum(bool(s.get("reused")) for s in second["run"]["stages"])
    print(f"second run: {time.time() - again:.2f} s, {reused}/{len(second['run']['stages'])} stages reused")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
