"""`python -m lab ask | eval | leaderboard`: the Arena tab's CLI twin (work is in lab.arena).

ask --system SYSTEM "question"                 one answer with its passages, latency and tokens/s
eval --qa PATH --systems base,rag:INDEX,...    batch evaluation: prints a table, writes JSON (--out), saves it;
                                               without --qa, lab.arena.questions picks the questions
leaderboard                                    Bradley-Terry ratings from the blind votes in the workspace
"""

from __future__ import annotations

import json
import sys

from lab.config import EVAL_GEN_FLAGS, GenConfig, field_help


def register(sub) -> None:
    ask = sub.add_parser("ask", help="ask one contestant a question")
    ask.add_argument("question", help="the question to ask")
    ask.add_argument("--system", default="base", help="base | ft:RUN | rag:INDEX | ft+rag:RUN:INDEX")
    _gen_flags(ask)
    ask.set_defaults(func=cmd_ask)
    ev = sub.add_parser("eval", help="evaluate contestants on a question set (JSONL)")
    ev.add_argument(
        "--qa",
        default="",
        help="evaluation JSONL (default: the questions held out from a fine-tuned contestant's own dataset; the "
        "sample's held-out set only when every contestant is of the sample domain)",
    )
    ev.add_argument(
        "--systems", required=True, help="comma-separated contestant ids: base, ft:RUN, rag:INDEX, ft+rag:RUN:INDEX"
    )
    ev.add_argument("--out", default="", help="write the results JSON here")
    ev.add_argument("--limit", type=int, default=0, help="only the first N questions")
    ev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
    ev.add_argument("--no-save", action="store_true", help="do not save the evaluation in the workspace")
    _gen_flags(ev)
    ev.set_defaults(func=cmd_eval)
    lb = sub.add_parser("leaderboard", help="Bradley-Terry ratings from blind arena votes")
    lb.add_argument("--json", action="store_true", help="print the ratings as JSON")
    lb.set_defaults(func=cmd_leaderboard)


def _gen_flags(parser) -> None:
    defaults = GenConfig()
    for name in EVAL_GEN_FLAGS:
        value = getattr(defaults, name)
        text = f"{field_help(GenConfig, name)}; default {value!r}".replace("%", "%%")
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=type(value), default=value, help=text)


def _gen(args) -> GenConfig:
    return GenConfig(**{n: getattr(args, n) for n in EVAL_GEN_FLAGS})


def _context():
    from lab.cache import ModelCache
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    return ws, ModelCache(ws.model_cache)


def cmd_ask(args) -> int:
    from lab.arena.contestants import responder

    ws, cache = _context()
    answer = responder(ws, cache, args.system).answer(args.question, _gen(args))
    print(answer.text)
    for i, p in enumerate(answer.to_dict()["passages"], 1):
        print(f"  [{i}] {p['source']} (score {p['score']:.3f})", file=sys.stderr)
    rate = f"{answer.tokens_per_s:.1f} tokens/s"
    print(f"  {args.system}: {answer.latency_s:.2f} s, {answer.completion_tokens} tokens, {rate}", file=sys.stderr)
    return 0


def table_lines(result: dict) -> list[str]:
    """The summary as aligned text rows: one per contestant, every metric some contestant has (short labels from
    lab.metrics.table), each rate with its 95% interval, then latency and tokens/s."""
    from lab.arena.summary import Summary
    from lab.metrics.rate import format_rate
    from lab.metrics.table import present

    metrics = present(result["systems"])
    head = ["system", *(m.short for m in metrics), "p50 s", "p95 s", "tok/s"]
    lines = [head]
    for s in map(Summary.from_dict, result["systems"]):
        speed = [f"{s.latency_p50 or 0:.2f}", f"{s.latency_p95 or 0:.2f}", f"{s.tokens_per_s or 0:.1f}"]
        lines.append([s.system or "", *(format_rate(s.rate(m.key), "short") for m in metrics), *speed])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    rows = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines]
    return [*rows, "(95% bootstrap interval in brackets)"]


def print_table(result: dict) -> None:
    print("\n".join(table_lines(result)))


def print_verdict(result: dict) -> None:
    """The verdict's findings as plain text (no Markdown markup)."""
    from lab.arena.verdict import verdict_text

    print(verdict_text(result))


def questions(ws, qa: str, systems: list[str]) -> tuple[str, str]:
    """(question file, which questions in words): `--qa` when given, else lab.arena.questions' choice, which never
    asks own-data contestants the sample's questions (QuestionsError, before any model loads)."""
    from lab.arena.questions import default_questions

    return (qa, f"questions from {qa}") if qa else default_questions(ws, systems)


def cmd_eval(args) -> int:
    from lab.arena.evaluation import evaluate_in_workspace

    ws, cache = _context()
    systems = args.systems.split(",")
    qa, said = questions(ws, args.qa, systems)
    print(f"questions: {said}", file=sys.stderr)

    def progress(done: int, total: int, message: str) -> None:
        print(f"\r{done}/{total} {message}   ", end="", file=sys.stderr, flush=True)

    result = evaluate_in_workspace(
        ws,
        cache,
        qa,
        systems,
        _gen(args),
        args.limit,
        progress,
        bootstrap=args.bootstrap,
        save=not args.no_save,
    )
    print(file=sys.stderr)
    print_table(result)
    print_curves(result)
    print_verdict(result)
    if result.get("id"):
        print(f"saved as evaluation {result['id']} in {ws.dir('evals', result['id'])}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1, default=str)
        print(f"wrote {args.out}")
    return 0


def print_curves(result: dict) -> None:
    """Each passage-reading contestant's correct / hallucination rates at other abstention thresholds."""
    for system, curve in (result.get("idk_curve") or {}).items():
        points = [p for p in curve if round(p["threshold"] * 20) % 2 == 0 or p["threshold"] >= 0.85]
        cells = "  ".join(
            f"{p['threshold']:.2f}: {_pct(p['correct_rate'])}/{_pct(p['hallucination_rate'])}" for p in points
        )
        print(f"{system} by abstention threshold (correct/hallucination): {cells}")


def _pct(rate: float | None) -> str:
    from lab.metrics.rate import Rate, format_rate

    return format_rate(Rate(rate), "short")


def cmd_leaderboard(args) -> int:
    from lab.arena.battles import load_votes
    from lab.arena.leaderboard import leaderboard

    ws, _ = _context()
    board = leaderboard(load_votes(ws.db_path))
    if args.json:
        print(json.dumps(board, indent=1))
        return 0
    if not board["rows"]:
        print("no blind votes yet: vote in the Arena tab's Battle mode")
        return 0
    for r in board["rows"]:
        print(
            f"{r['rank']:>3}  {r['name']:<30} {r['rating']:7.1f}  [{r['ci'][0]:.0f}, {r['ci'][1]:.0f}]  "
            f"{r['votes']} votes"
        )
    print(f"{board['n']} blind votes, tie rate {_pct(board['tie_rate'] or 0)}")
    return 0
