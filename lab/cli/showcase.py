"""`python -m lab showcase`: the Start tab's CLI twin (the work is in lab.arena.showcase).

showcase [--data DATASET --docs CORPUS --qa EVAL.jsonl] [--quick] [--yes]   validate, index, train, evaluate,
verdict; prints each stage's time range on this machine first (stderr), then progress on stderr; prints the verdict
and a table; exits 0 when the comparison completed (1 when cancelled). A stage estimated over ten minutes runs only
with --yes: without it the estimate is printed and the command exits 2 having started nothing.
"""

from __future__ import annotations

import sys
import time


def register(sub) -> None:
    from lab.arena.showcase import QUICK_QUESTIONS, SHOWCASE_TRAIN, Inputs

    d = Inputs()
    p = sub.add_parser("showcase", help="the whole comparison: base vs fine-tuned vs RAG vs both, with a verdict")
    p.add_argument("--data", default=d.dataset, help="saved dataset to fine-tune on (default: sample)")
    p.add_argument("--docs", default=d.corpus, help="saved corpus to index for RAG (default: sample)")
    p.add_argument("--qa", default=d.qa, help="evaluation JSONL (default: sample's; own --data: its held-out rows)")
    p.add_argument("--questions", type=int, default=d.questions, help="stratified subset size, 0 = all questions")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="longest answer in tokens")
    p.add_argument(
        "--epochs",
        type=float,
        default=SHOWCASE_TRAIN["epochs"],
        help="epochs of the plain fine-tuning (training for RAG keeps its preset's)",
    )
    p.add_argument("--max-steps", type=int, default=0, help="training steps (> 0 overrides --epochs)")
    p.add_argument("--bootstrap", type=int, default=d.bootstrap, help="bootstrap resamples for 95%% intervals")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a quick look: {QUICK_QUESTIONS} questions (every group kept), wider intervals; overrides --questions",
    )
    p.add_argument("--yes", action="store_true", help="run even when a stage is estimated over ten minutes")
    p.add_argument(
        "--contestants",
        default="",
        help="comma-separated labels to run, or 'all' (default: all but "
        "'trained for RAG + RAG' on a CPU, all on a GPU), e.g. base,RAG",
    )
    p.set_defaults(func=cmd_showcase)


def _inputs(args):
    from lab.arena.showcase import SHOWCASE_TRAIN, Inputs, quick_look

    train = SHOWCASE_TRAIN | {"epochs": args.epochs, "max_steps": args.max_steps}
    inputs = Inputs(dataset=args.data, corpus=args.docs, qa=args.qa, questions=args.questions,
                    max_new_tokens=args.max_new_tokens, train=train, bootstrap=args.bootstrap,
                    contestants=[c.strip() for c in args.contestants.split(",") if c.strip()])  # fmt: skip
    return quick_look(inputs) if args.quick else inputs


def _confirm(plan, yes: bool) -> None:
    """Print the time ranges (stderr); ShowcaseError (exit 2, nothing started) when a stage is estimated over
    ASK_ABOVE_S and `yes` was not given."""
    from lab.arena.showcase import ShowcaseError
    from lab.estimate import ASK_ABOVE_S

    print(f"Estimate on this machine: {plan.total.says()} ({plan.questions} questions)", file=sys.stderr)
    for line in plan.lines():
        print(f"  {line}", file=sys.stderr)
    long = plan.long_stages(ASK_ABOVE_S)
    if long and not yes:
        names = "; ".join(f"{label} {est.text}" for _, label, est in long)
        raise ShowcaseError(f"{names}: over {ASK_ABOVE_S / 60:.0f} minutes; add --yes to run it (nothing started)")


def _eta(seconds: float | None) -> str:
    return "?" if seconds is None else f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def _printer():
    state = {"stage": None, "last": 0.0}

    def show(u) -> None:
        now = time.time()
        if u.stage == state["stage"] and now - state["last"] < 1.0 and u.fraction < 1.0:
            return
        end = "\n" if u.fraction >= 1.0 else ""
        line = f"[{u.number}/{u.total}] {u.label}: {u.message} (stage ETA {_eta(u.stage_eta_s)}, "
        print(f"\r{line}overall ETA {_eta(u.overall_eta_s)})   ", end=end, file=sys.stderr, flush=True)
        state.update(stage=u.stage, last=now)

    return show


def cmd_showcase(args) -> int:
    from lab.arena.showcase import forecast, run_showcase
    from lab.cache import ModelCache
    from lab.cli.arena import print_table, print_verdict
    from lab.workspace import Workspace

    ws, inputs = Workspace.from_env(), _inputs(args)
    plan = forecast(ws, inputs)
    _confirm(plan, args.yes)
    result = run_showcase(ws, ModelCache(ws.model_cache), inputs, _printer(), machine=plan.machine)
    run = result["run"]
    print(f"{len(run['stages'])} stages in {run['total_s']:.1f} s (estimated {plan.total.text}):", file=sys.stderr)
    for s in run["stages"]:
        print(f"  {s['stage']:<28} {s['seconds']:7.1f} s{'  (reused)' if s.get('reused') else ''}", file=sys.stderr)
    if result.get("systems"):
        print_table(result)
    print_verdict(result)
    for label, spec in result.get("showcase", {}).get("contestants", {}).items():
        print(f"  {label} = {spec}")
    if result.get("id"):
        print(f"saved as evaluation {result['id']}")
    return 0 if run["status"] == "finished" else 1
