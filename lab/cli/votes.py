"""`python -m lab votes export`: the Arena's blind votes as training data (work is in lab.arena.votes).

    python -m lab votes export                   into LAB_HOME/downloads/votes/export-YYYYmmdd-HHMMSS/
    python -m lab votes export --out DIR         votes-sft.jsonl (winning answers, chat JSONL),
                                                 votes-prefs.jsonl ({prompt, chosen, rejected}), each with .meta.json

Then `python -m lab data validate DIR/votes-sft.jsonl` and `python -m lab train --data DIR/votes-sft.jsonl`, or
`python -m lab train --method dpo --prefs DIR/votes-prefs.jsonl [--from-run RUN]`.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    votes = sub.add_parser("votes", help="the Arena's blind votes as training data (SFT chat JSONL, DPO pairs)")
    actions = votes.add_subparsers(dest="votes_command", required=True)
    export = actions.add_parser(
        "export",
        help="write the winning answers (chat JSONL) and the preference pairs ({prompt, chosen, rejected}), each "
        "with a metadata file; ties, 'both bad' and votes that were not blind are left out and counted",
    )
    export.add_argument("--out", default="", help="folder to write (replaced whole); default: a new folder under "
                        "LAB_HOME/downloads/votes/")  # fmt: skip
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from lab.arena import votes
    from lab.workspace import Workspace

    done = votes.export(Workspace.from_env(), args.out or None)
    print(done.summary())
    for path in done.files:
        print(path)
    return 0
