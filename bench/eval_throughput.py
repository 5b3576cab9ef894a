"""Batched vs one-at-a-time greedy generation on the embedded model: answers/s for both, the ratio (goal >= 3x),
and whether the texts are identical. Usage: .venv/bin/python bench/eval_throughput.py [N_QUESTIONS] [BATCH]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = [
    "What is the capital of France?",
    "Name one primary colour.",
    "Why is the sky blue?",
    "What does a wind turbine gearbox do?",
    "How many legs does a spider have?",
    "What is photosynthesis?",
    "Who wrote Hamlet?",
    "What is the boiling point of water?",
    "Explain what a transformer is in electrical engineering.",
    "What is 12 times 12?",
    "Name a mammal that can fly.",
    "What is the largest ocean on Earth?",
    "What does CPU stand for?",
    "Give one use of a torque wrench.",
    "What is the speed of light?",
    "Why do leaves change colour in autumn?",
]


def main() -> int:
    from lab.cache import ModelCache
    from lab.config import GenConfig
    from lab.generation import ModelResponder
    from lab.workspace import Workspace

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    questions = (QUESTIONS * (n // len(QUESTIONS) + 1))[:n]
    ws = Workspace.from_env()
    cache = ModelCache(ws.model_cache)
    base = ModelResponder("base", cache.model("embedded"), cache.tokenizer("embedded"))
    gen = GenConfig(max_new_tokens=32, batch_size=batch)
    base.answer(questions[0], gen)  # warm-up
    t0 = time.perf_counter()
    one = [base.answer(q, gen) for q in questions]
    t1 = time.perf_counter()
    many = base.answer_many(questions, gen)
    t2 = time.perf_counter()
    seq, bat = n / (t1 - t0), n / (t2 - t1)
    same = sum(a.text == b.text for a, b in zip(one, many, strict=True))
    print(f"one at a time: {seq:.2f} answers/s ({t1 - t0:.1f} s for {n})")
    print(f"batched ({batch}):  {bat:.2f} answers/s ({t2 - t1:.1f} s for {n})")
    print(f"ratio batched/sequential: {bat / seq:.2f}x (goal >= 3x); identical greedy texts: {same}/{n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
