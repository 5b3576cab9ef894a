"""`python -m lab curve`: the learning curve's CLI twin (the work is in lab.arena.learning_curve).

curve [--dataset DATASET] [--index INDEX] [--qa EVAL.jsonl] [--questions N] [--yes]   fine-tune the plain quick
preset on 25 / 50 / 100 % of the training data and ask each model the taught-fact questions, RAG over INDEX the
same; prints each stage's time range on this machine first (stderr), then progress, then the curve and its
sentence; exits 0 when it completed (1 when cancelled). A curve estimated over ten minutes runs only with --yes:
without it the estimate is printed and the command exits 2 having started nothing.
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    from lab.arena.learning_curve import CurveInputs

    d = CurveInputs()
    p = sub.add_parser("curve", help="learning curve: fine-tune on 25/50/100%% of the data, correct on taught facts")
    p.add_argument("--dataset", default=d.dataset, help="saved dataset whose training split is shared out")
    p.add_argument("--index", default=d.index, help="index RAG reads for its flat line (default: sample's for sample)")
    p.add_argument("--qa", default=d.qa, help="evaluation JSONL (default: the Start tab's questions for the dataset)")
    p.add_argument("--questions", type=int, default=d.questions, help="taught-fact questions to ask, 0 = all")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="longest answer in tokens")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the subsets and of the questions chosen")
    p.add_argument("--bootstrap", type=int, default=d.bootstrap, help="bootstrap resamples for 95%% intervals")
    p.add_argument("--yes", action="store_true", help="run even when the curve is estimated over ten minutes")
    p.set_defaults(func=cmd_curve)


def confirm(plan, yes: bool) -> None:
    """Print the time ranges (stderr); CurveError (exit 2, nothing started) when the whole curve is estimated over
    ASK_ABOVE_S and `yes` was not given."""
    from lab.arena.learning_curve import CurveError
    from lab.estimate import ASK_ABOVE_S

    print(f"Estimate on this machine: {plan.total.says()} ({plan.questions} taught-fact questions)", file=sys.stderr)
    for line in plan.lines():
        print(f"  {line}", file=sys.stderr)
    if plan.total.seconds > ASK_ABOVE_S and not yes:
        raise CurveError(
            f"the learning curve is estimated at {plan.total.text}: over {ASK_ABOVE_S / 60:.0f} minutes; add --yes to "
            "run it (nothing started)"
        )


def cmd_curve(args) -> int:
    from lab.arena import learning_curve as lc
    from lab.cache import ModelCache
    from lab.cli.showcase import _printer
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    inputs = lc.CurveInputs(dataset=args.dataset, index=args.index, qa=args.qa, questions=args.questions,
                            max_new_tokens=args.max_new_tokens, seed=args.seed, bootstrap=args.bootstrap)  # fmt: skip
    plan = lc.forecast(ws, inputs)
    confirm(plan, args.yes)
    result = lc.run_curve(ws, ModelCache(ws.model_cache), inputs, _printer(), plan=plan)
    if result.get("status") == "cancelled":
        print("cancelled; finished points are reused next time", file=sys.stderr)
        return 1
    curve = result["curve"]
    print(f"{len(curve['stages'])} stages in {curve['total_s']:.1f} s (estimated {plan.total.text}):", file=sys.stderr)
    for s in curve["stages"]:
        print(f"  {s['stage']:<14} {s['seconds']:7.1f} s{'  (reused)' if s.get('reused') else ''}", file=sys.stderr)
    for label, c in [*curve["cells"].items(), *([("RAG", curve["flat"])] if curve.get("flat") else [])]:
        print(f"{label:>5}  correct {100 * c['value']:5.1f}%  95% CI {100 * c['lo']:.0f}-{100 * c['hi']:.0f}%")
    print(curve["sentence"])
    print(f"saved as evaluation {result['id']}")
    return 0
