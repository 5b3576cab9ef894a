"""`python -m lab report EVAL`: the evidence pack of a saved evaluation (or of a results JSON file).

Writes report.html (self-contained: the decision card, charts, verdict, every question) and evidence.zip (results,
configs, hashes, library versions, the commands that reproduce it) into --out, by default the workspace's
downloads/reports/EVAL. `python -m lab update-test EVAL`: the opt-in update test of a saved evaluation, saved beside
it so every decision card of it shows the row. The work is lab.arena.report's and lab.arena.update_test's.
"""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("report", help="write the evidence pack (HTML report + zip) of an evaluation")
    p.add_argument("eval", help="a saved evaluation id (python -m lab eval / showcase) or a results JSON file")
    p.add_argument("--out", default="", help="folder to write into (default: the workspace's downloads/reports/ID)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the card's 95%% intervals")
    p.add_argument(
        "--update-test",
        type=int,
        default=0,
        metavar="K",
        help="also run the update test: change K facts in a copy of the documents and ask again (opt-in)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the update test's choice of facts and new values")
    p.set_defaults(func=cmd_report)
    u = sub.add_parser("update-test", help="change K facts in a copy of an evaluation's documents and ask again")
    u.add_argument("eval", help="a saved evaluation id whose contestants include one that reads an index")
    u.add_argument("--k", type=int, default=5, help="how many facts to change (at most one per document)")
    u.add_argument("--seed", type=int, default=0, help="seed of the choice of facts and new values")
    u.set_defaults(func=cmd_update_test)


def load(ws, ref: str) -> dict:
    """A saved evaluation by id, else a results JSON file by path; a LabError naming `ref` otherwise."""
    from lab.arena.evaluation import list_evaluations, load_evaluation
    from lab.errors import LabError

    path = Path(ref).expanduser()
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise LabError(f"{ref!r} is not a results JSON file ({exc}); give a saved evaluation id") from None
    known = [r["id"] for r in list_evaluations(ws)]
    if ref not in known:
        raise LabError(f"no evaluation or results file {ref!r}; saved evaluations: {', '.join(known[:10]) or 'none'}")
    return load_evaluation(ws, ref)


def cmd_report(args) -> int:
    from lab.arena.costs import card_for
    from lab.arena.report import pack_for_download, write_pack
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    result = load(ws, args.eval)
    update = None
    if args.update_test:
        from lab.arena.update_test import update_for
        from lab.cache import ModelCache

        update = update_for(ws, ModelCache(ws.model_cache), result, args.update_test, args.seed)
        _saved(ws, result, update)
    card = card_for(ws, result, update=update, bootstrap=args.bootstrap)
    paths = write_pack(ws, result, Path(args.out), card) if args.out else pack_for_download(ws, result, card)
    for sentence in card["recommendation"]:
        print(sentence.replace("**", ""))
    print(f"report: {paths['html']}\nevidence: {paths['zip']}")
    return 0


def _saved(ws, result: dict, update: dict) -> None:
    from lab.arena.update_test import save

    path = save(ws, result, update)
    print(f"update test saved: {path}" if path else "update test not saved: a results file, not a saved evaluation")


def cmd_update_test(args) -> int:
    from lab.arena.update_test import update_for
    from lab.cache import ModelCache
    from lab.errors import LabError
    from lab.workspace import Workspace

    if args.k < 1:
        raise LabError(f"--k {args.k}: give at least 1 fact to change (e.g. --k 5)")
    ws = Workspace.from_env()
    result = load(ws, args.eval)
    update = update_for(ws, ModelCache(ws.model_cache), result, args.k, args.seed)
    for label, c in update["counts"].items():
        print(f"{label}: follows the new value {c['new']}, keeps the old {c['old']}, neither {c['neither']}")
    print(f"re-index: {update['reindex_s']:.1f} s")
    _saved(ws, result, update)
    return 0
