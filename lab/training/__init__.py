"""Fine-tuning (LoRA / QLoRA) in its own process, and the files a run folder holds.

`python -m lab.training RUN_DIR` trains from `RUN_DIR/config.json` (see `engine.py`). The child talks to the
rest of the app only through files in the run folder, read and written by the helpers here:

    config.json      the TrainConfig                    progress.jsonl  one JSON line per log/eval step
    status.json      state, pid, step, metrics, error   train.log       the child's stdout and stderr
    STOP             created to ask for a graceful stop  checkpoints/    Trainer checkpoints (for resume)
    adapter/         PEFT save_pretrained output         README.md       the run card;  merged/ (optional)

This package never imports gradio; heavy libraries are imported inside functions.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

CONFIG = "config.json"
PROGRESS = "progress.jsonl"
STATUS = "status.json"
LOG = "train.log"
STOP = "STOP"
ADAPTER = "adapter"
CHECKPOINTS = "checkpoints"
FINAL_STATES = ("finished", "stopped", "failed", "cancelled")


def read_status(run_dir: str | Path) -> dict:
    path = Path(run_dir) / STATUS
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_status(run_dir: str | Path, **changes) -> dict:
    """Merge `changes` into status.json atomically (write a temp file, then rename)."""
    status = {**read_status(run_dir), **changes, "updated": time.time()}
    path = Path(run_dir) / STATUS
    tmp = path.with_name(f".{STATUS}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    return status


def read_progress(run_dir: str | Path) -> list[dict]:
    """All complete progress lines (a half-written last line is skipped)."""
    path = Path(run_dir) / PROGRESS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def append_progress(run_dir: str | Path, record: dict) -> None:
    with (Path(run_dir) / PROGRESS).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


def log_tail(run_dir: str | Path, lines: int = 30) -> str:
    path = Path(run_dir) / LOG
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 16384))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (one a kill interrupted mid-save has no trainer_state.json yet)."""
    folder = Path(run_dir) / CHECKPOINTS
    found = [
        p
        for p in folder.glob("checkpoint-*")
        if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()
    ]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None
