"""Votes as training data: the Arena's blind votes written out as chat JSONL of the winning answers (for a
fine-tuning run) and as preference pairs `{prompt, chosen, rejected}` (for a DPO run), each with a metadata file.

Only blind A/B votes give data: ties, "both bad", votes that were not blind and answers that are identical or empty
are left out and counted; exact repeats are written once. Answers go through `battles.blind_text` (the RAG prompt's
citations and source notes point at passages the exported question does not carry). The export folder is written
whole under a temporary name, then renamed. No gradio here.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from lab.arena import battles
from lab.training import prefs
from lab.workspace import Workspace

SFT_FILE = "votes-sft.jsonl"
PREFS_FILE = "votes-prefs.jsonl"


@dataclass
class Export:
    """The files of one export and what they hold."""

    folder: Path
    sft: Path
    pairs: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return [self.sft, self.pairs, meta_path(self.sft), meta_path(self.pairs)]

    def summary(self) -> str:
        c = self.counts
        left = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items() if k.startswith("left_") and v)
        left = left.replace("left ", "")
        return (
            f"{_n(c['votes'], 'vote')}: {_n(c['pairs'], 'preference pair')}, {_n(c['sft'], 'winning answer')}"
            + (f"; left out: {left}" if left else "")
            + f" -> {self.folder}"
        )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def meta_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")


def _unique(rows: list[dict], keys: tuple[str, ...]) -> tuple[list[dict], int]:
    """`rows` without exact repeats of `keys` (the first kept); and how many were dropped."""
    seen, out = set(), []
    for row in rows:
        key = tuple(row[k] for k in keys)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out, len(rows) - len(out)


def _meta(kind: str, file: Path, rows: list[dict], votes: list[dict], left: dict, repeats: int, now: float) -> dict:
    wins: dict[str, int] = {}
    for row in rows:
        wins[row["chosen_by"]] = wins.get(row["chosen_by"], 0) + 1
    blind = [v for v in votes if v.get("blind", 1)]
    return {
        "kind": kind,
        "file": file.name,
        "records": len(rows),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "votes": len(votes),
        "blind_votes": len(blind),
        "left_out": {**left, "repeats": repeats},
        "contestants": sorted({v[k] for v in blind for k in ("system_a", "system_b")}),
        "wins": dict(sorted(wins.items())),
        "question_set": sorted({r["prompt"] for r in rows}),
    }


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def export(ws: Workspace, out: str | Path | None = None, now: float | None = None) -> Export:
    """Write the votes' SFT and preference files (and their .meta.json) into `out` (default: a new folder under
    the workspace's downloads/votes/); returns the Export. An existing `out` is replaced whole."""
    now = time.time() if now is None else now
    folder = Path(out) if out else ws.downloads / "votes" / time.strftime("export-%Y%m%d-%H%M%S", time.gmtime(now))
    votes = battles.load_votes(ws.db_path, blind_only=False)
    pairs, left = prefs.vote_pairs(votes, battles.blind_text)
    pairs, pair_repeats = _unique(pairs, prefs.KEYS)
    winners, sft_repeats = _unique(pairs, ("prompt", "chosen"))
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir(parents=True)
    try:
        sft_rows = [{"messages": [{"role": "user", "content": p["prompt"]},
                                  {"role": "assistant", "content": p["chosen"]}]} for p in winners]  # fmt: skip
        _write(staging / SFT_FILE, sft_rows)
        _write(staging / PREFS_FILE, [{k: p[k] for k in prefs.KEYS} for p in pairs])
        for name, kind, rows, repeats in ((SFT_FILE, "sft", winners, sft_repeats),
                                          (PREFS_FILE, "preferences", pairs, pair_repeats)):  # fmt: skip
            meta = _meta(kind, Path(name), rows, votes, left, repeats, now)
            meta_path(staging / name).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    counts = {"votes": len(votes), "pairs": len(pairs), "sft": len(winners),
              **{f"left_{k}": v for k, v in left.items()}, "left_repeats": pair_repeats}  # fmt: skip
    return Export(folder, folder / SFT_FILE, folder / PREFS_FILE, counts)


def for_training(ws: Workspace, config):
    """A DPO TrainConfig whose prefs name the Arena's votes (prefs.VOTES) with its prefs set to a fresh export's
    pairs file (the run records a file that stays); any other config unchanged."""
    if config.method != "dpo" or (config.prefs or "").strip() != prefs.VOTES:
        return config
    done = export(ws)
    if not done.counts["pairs"]:
        raise prefs.PrefsError(f"the Arena's votes give no preference pairs ({done.summary()}): vote A or B in a "
                               "few blind battles first")  # fmt: skip
    return config.replace(prefs=str(done.pairs))
