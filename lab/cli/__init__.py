"""`python -m lab` entry point: builds the argument parser from one module per tab and dispatches.

Each submodule owns its subcommands through `register(subparsers)`, which adds parsers whose
`func(args) -> int` does the work. Errors a user can fix (bad data, bad settings, missing models)
(`lab.errors.LabError`) and errors of the machine (OSError) print one line to stderr and exit 2; any other
exception is a bug: its traceback is logged and the exit code is 1 (`--debug` re-raises). Nothing here imports
gradio.
"""

from __future__ import annotations

import argparse
import sys

from lab.cli import arena, curve, data, evalset, index, report, showcase, train, votes
from lab.errors import LabError, setup_logging, user_message

MODULES = (showcase, data, evalset, train, index, arena, report, votes, curve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description="ExpertLab: fine-tune, RAG, or both?")
    parser.add_argument("--debug", action="store_true", help="on an unexpected error, show its traceback")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, (LabError, OSError)) else 1
