"""The class of bench/load.py in one process, without the web server and without the 30 clients: each session is a
thread that asks its question through the Arena's own `live.stream_many` (the `base` and `rag:sample` contestants,
the model cache, the shared batcher), sessions starting evenly over --spread seconds. What the generation path
alone gives on this machine, to set beside bench/load.py's figures through the server. Settings such as
LAB_SERVE_DTYPE and LAB_BATCH_SIZE are read from the environment as the app reads them.

    .venv/bin/python bench/class_inprocess.py --home /tmp/lab-cpu
    LAB_SERVE_DTYPE=bfloat16 LAB_BATCH_SIZE=32 .venv/bin/python bench/class_inprocess.py --home /tmp/lab-cpu
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", required=True, help="LAB_HOME (the model is converted and the sample index built there)")
    p.add_argument("--sessions", type=int, default=30)
    p.add_argument("--spread", type=float, default=30, help="the questions start within this many seconds")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="which class questions")
    args = p.parse_args()
    os.environ["LAB_HOME"] = args.home

    from load import PAIR, class_questions, pct  # the same class as bench/load.py

    from lab.arena import contestants, live
    from lab.cache import ModelCache
    from lab.config import GenConfig
    from lab.workspace import Workspace

    ws = Workspace.open(Path(args.home))
    cache = ModelCache(ws.root / "models")
    gen = GenConfig(max_new_tokens=args.max_new_tokens)

    def ask(question: str, session: str, g: GenConfig) -> list[str]:
        makers = [lambda s=s: contestants.responder(ws, cache, s) for s in PAIR]
        *_, (_, errors) = live.stream_many(makers, question, g, 0.25, cache, session)
        return [e for e in errors if e]

    ask("A warm-up question?", "warm-up", GenConfig(max_new_tokens=4))  # loads the models, builds the index
    questions = class_questions(args.sessions, seed=args.seed)
    times: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()

    def session(i: int) -> None:
        time.sleep(args.spread * i / args.sessions)
        t0 = time.perf_counter()
        errors.extend(ask(questions[i], f"s{i}", gen))
        times.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(args.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - start
    per_minute = 2 * args.sessions / total * 60
    print(f"{args.sessions} sessions within {args.spread:g} s, {args.max_new_tokens} new tokens, {' and '.join(PAIR)}")
    print(f"end-to-end answer time p50 {pct(times, 0.5):.1f} s, p95 {pct(times, 0.95):.1f} s (bench/load.py's pct)")
    print(f"answers a minute {per_minute:.1f} (over the time from the first question to the last answer)")
    print(f"{len(errors)} errors" + (f": {errors[0]}" if errors else ""))


if __name__ == "__main__":
    main()
