"""CPU seconds per Arena answer, phase by phase, in one process (no web server): for each of a class's questions
(bench/load.py's generator), a `base` and a `rag:sample` contestant are built as the Arena builds them (one
responder per answer), retrieve, build their prompts (focused passages), and all answers are generated in one
shared batch (`generate_rows`); then the support check and the blind normaliser. CPU time (time.process_time, all
threads) does not depend on what else the machine runs, unlike wall time, except for threads spinning while they
wait. Writes the answers' texts to --out, so two runs (before and after a change) can be compared line by line.

    .venv/bin/python bench/answer_cpu.py --home /tmp/lab-cpu --questions 12 --threads 1 --out /tmp/answers.txt
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
PAIR = ("base", "rag:sample")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", required=True, help="LAB_HOME (the model is converted and the sample index built there)")
    p.add_argument("--questions", type=int, default=12, help="class questions (two answers each)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0, help="which class questions")
    p.add_argument("--out", default="", help="write the answers' texts here, one block per answer")
    args = p.parse_args()
    os.environ["LAB_HOME"] = args.home

    import torch
    from load import class_questions

    from lab.cache import ModelCache
    from lab.config import GenConfig
    from lab.workspace import Workspace

    if args.threads:
        torch.set_num_threads(args.threads)
    ws = Workspace.open(Path(args.home))
    cache = ModelCache(ws.root / "models")
    gen = GenConfig(max_new_tokens=args.max_new_tokens)
    cost: dict[str, float] = {}
    run(ws, cache, gen, class_questions(3, seed=99), cost)  # loads the models, builds the sample index
    cost.clear()
    start = time.process_time()
    texts = run(ws, cache, gen, class_questions(args.questions, seed=args.seed), cost)
    total, answers = time.process_time() - start, len(texts)
    print(f"torch threads {torch.get_num_threads()}, {answers} answers, {args.max_new_tokens} new tokens")
    for name, seconds in sorted(cost.items(), key=lambda kv: -kv[1]):
        print(f"{name:16s} {seconds:8.2f} CPU s  {seconds / answers:7.3f} per answer")
    print(f"{'total':16s} {total:8.2f} CPU s  {total / answers:7.3f} per answer")
    if args.out:
        Path(args.out).write_text("\n---\n".join(texts))


def run(ws, cache, gen, questions: list[str], cost: dict[str, float]) -> list[str]:
    from lab.arena import battles, contestants
    from lab.generation import Answer
    from lab.generation.engine import Row, generate_rows

    def clock(name, fn, *args):
        t0 = time.process_time()
        out = fn(*args)
        cost[name] = cost.get(name, 0.0) + time.process_time() - t0
        return out

    rows, made = [], []
    for question in questions:
        for spec in PAIR:
            r = clock("responder", contestants.responder, ws, cache, spec)
            passages = clock("retrieve", r._retrieve, [question], gen)[0]
            messages = clock("prompt (focus)", r._messages, question, passages, gen)
            rows.append(Row(r.model, r.tok, messages, gen, r.retriever is not None))
            made.append((r, passages))
    outs = clock("generate", generate_rows, rows)
    texts = []
    for (r, passages), (text, n_in, n_out) in zip(made, outs, strict=True):
        answer = clock("support check", r._supported, Answer(text, passages, 0, n_in, n_out, r.name), gen)
        sources = [getattr(x, "source", "") for x in passages]
        clock("blind text", battles.battle_text, answer.text, sources, n_out >= gen.max_new_tokens)
        texts.append(answer.text)
    return texts


if __name__ == "__main__":
    main()
