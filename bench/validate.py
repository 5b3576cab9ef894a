"""Validation throughput on a generated 50,000-example chat JSONL file (goal: under 30 s on 2 CPU cores).

Prints examples/s and total seconds for: a baseline (json.loads of every line, the floor any validator pays),
the structural validation alone, and the full validation with token statistics from the embedded model's
tokenizer, plus each one's ratio to the baseline. Usage: `.venv/bin/python bench/validate.py [N]`.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.cache import ModelCache  # noqa: E402
from lab.data import validate_file  # noqa: E402
from lab.workspace import Workspace  # noqa: E402

WORDS = (
    "pitch yaw gearbox bearing torque sensor alarm blade inspect replace interval limit code value the a of".split()
)


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(n):
            messages = [{"role": "system", "content": "You answer questions about turbines."}]
            for _ in range(rng.choice((1, 1, 2))):
                messages.append({"role": "user", "content": sentence(rng, rng.randint(5, 30))})
                messages.append({"role": "assistant", "content": sentence(rng, rng.randint(3, 60))})
            fh.write(json.dumps({"messages": messages}) + "\n")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    ws = Workspace.from_env()
    tokenizer = ModelCache(ws.model_cache).tokenizer("embedded")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        generate(path, n)
        base = timed(lambda: [json.loads(line) for line in path.read_text().splitlines()])
        results = {"json.loads baseline": base}
        results["structural validation"] = timed(lambda: validate_file(path))
        report = None

        def full():
            nonlocal report
            report = validate_file(path, tokenizer=tokenizer)

        results["full validation + tokens"] = timed(full)
    assert report is not None and report.valid and len(report.examples) == n
    print(f"{n} examples")
    for name, secs in results.items():
        print(f"{name:28s} {secs:7.2f} s  {n / secs:10.0f} examples/s  {secs / base:6.1f}x baseline")
    goal = "met" if results["full validation + tokens"] < 30 else "NOT met"
    print(f"goal < 30 s for the full validation: {goal}")


if __name__ == "__main__":
    main()
