"""`python -m lab evalset ...`: the evaluation set for own data without one (the work is in lab.arena.own_evalset).

evalset generate --dataset DATASET --corpus CORPUS [--model M] [--n N] [--seed S] --out FILE
    the questions held out from the dataset, up to N questions the generator writes from the documents (verbatim
    short golds only) and unanswerable controls from documents held out of the index; writes the evaluation
    JSONL, prints the questions per group (stdout) and the dropped ones (stderr). Review and edit it, then pass it
    as `showcase --qa FILE`: that comparison leaves the held-out documents out of its index.
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    from lab.config import TrainConfig

    p = sub.add_parser("evalset", help="build an evaluation set for your own dataset and documents")
    cmds = p.add_subparsers(dest="evalset_command", required=True)
    gen = cmds.add_parser("generate", help="held-out, generated and unanswerable questions as an evaluation JSONL")
    gen.add_argument("--dataset", "--data", dest="dataset", default="", help="saved fine-tuning dataset (its held-out "
                     "rows become the taught questions); empty = documents only")  # fmt: skip
    gen.add_argument("--corpus", "--docs", dest="corpus", required=True, help="saved corpus or folder of documents")
    gen.add_argument("--model", default=TrainConfig().base_model, help="the generator that writes the questions "
                     "(default: the comparison's base model; the embedded one writes rough questions)")  # fmt: skip
    gen.add_argument("--n", type=int, default=12, help="questions to generate from the documents")
    gen.add_argument("--seed", type=int, default=0, help="seed of the chunk order and the held-out documents")
    gen.add_argument("--out", required=True, help="the evaluation JSONL to write")
    gen.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    from lab.arena.own_evalset import (
        EMBEDDED_NOTE,
        build_own_evalset,
        counts_text,
        is_embedded,
        model_complete,
        write_own,
    )
    from lab.cache import ModelCache
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    complete = model_complete(ModelCache(ws.model_cache), args.model)

    def progress(fraction: float, message: str) -> None:
        print(f"\r{100 * fraction:3.0f}% {message}   ", end="", file=sys.stderr, flush=True)

    own = build_own_evalset(ws, complete, args.dataset, args.corpus, args.n, args.seed, progress=progress)
    write_own(own, args.out)
    print("", file=sys.stderr)
    for reason in own.dropped:
        print(f"dropped: {reason}", file=sys.stderr)
    if is_embedded(args.model):
        print(EMBEDDED_NOTE, file=sys.stderr)
    left_out = f"; held out of the index: {', '.join(own.held_out_docs)}" if own.held_out_docs else ""
    print(f"{len(own.items)} questions ({counts_text(own.counts())}){left_out}")
    print(f"written to {own.path}; review it, then: python -m lab showcase --data {args.dataset or 'DATASET'} "
          f"--docs {args.corpus} --qa {own.path}")  # fmt: skip
    return 0
