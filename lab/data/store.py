"""Saved fine-tuning datasets: seeded train / validation split, atomic save, loading, hashing, the sample domain.

The source is a file, a folder saved by `datasets` or a hub dataset id (lab.data.saved).
Layout (lab.workspace): `datasets/NAME/train.jsonl`, `val.jsonl` (one normalised `{"messages": [...]}` per
line) and `meta.json` (source file, format, counts, sha256 data hash, split seed and fraction, created time).
A dataset is written all-or-nothing through `Workspace.atomic_dir`; an invalid file is never saved and an
existing dataset survives any failure. `load_split` and `dataset_hash` are what training uses.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

from lab.config import DataConfig
from lab.data import formats, saved, stats
from lab.data.formats import Issue
from lab.data.validate import Report, validate_bytes, validate_records
from lab.errors import LabError
from lab.storage import sample_dir
from lab.workspace import SAMPLE, Workspace, WorkspaceError, check_name

DATA_DIR = sample_dir()
SPLITS = ("train", "val")


class DataError(LabError):
    """A fine-tuning file or dataset cannot be used; the message names it and says what to do."""


def validate_file(path: str | Path, cfg: DataConfig | None = None, tokenizer=None) -> Report:
    """Validate a file on disk, a folder saved by `datasets` or a hub dataset id (split `cfg.split`, through
    lab.data.saved); an oversized file is refused before it is read."""
    cfg = cfg or DataConfig()
    if not Path(str(path)).expanduser().is_file() and saved.is_saved(path):
        return validate_saved(path, cfg, tokenizer)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {str(path)!r}")
    size = path.stat().st_size
    if size > cfg.max_upload_mb * 1e6:
        report = Report(source=path.name)
        msg = f"the file is {size / 1e6:.1f} MB, over the {cfg.max_upload_mb:g} MB limit (DataConfig.max_upload_mb)"
        report.errors.append(Issue(None, "too_large", msg))
        return report
    return validate_bytes(path.read_bytes(), path.name, cfg, tokenizer)


def validate_saved(source: str | Path, cfg: DataConfig, tokenizer=None) -> Report:
    """Validate the `cfg.split` split of a saved dataset folder or hub dataset id; DataError when unreadable."""
    try:
        records, columns = saved.read(source, cfg.split, cfg.max_upload_mb)
    except saved.SavedDataError as exc:
        raise DataError(str(exc)) from exc
    fmt = cfg.format if cfg.format != "auto" else formats.detect(records)
    report = Report(source=saved.label(source, cfg.split))
    return validate_records(report, fmt, records, columns, [], cfg, tokenizer)


def explain(report: Report, limit: int = 5) -> str:
    """One paragraph saying why a report is not valid, with the first errors and their lines."""
    shown = "; ".join(f"line {e.line}: {e.message}" if e.line else e.message for e in report.errors[:limit])
    more = f" (and {len(report.errors) - limit} more errors)" if len(report.errors) > limit else ""
    return f"{report.source} is not valid: {shown or 'no usable examples'}{more}"


def split_examples(examples: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Seeded shuffle then split; identical examples stay on the same side so validation never sees train."""
    groups: dict[str, list[dict]] = {}
    for example in examples:
        groups.setdefault(stats.example_key(example), []).append(example)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    n_val = round(len(keys) * val_fraction)
    if val_fraction > 0 and len(keys) >= 2:
        n_val = min(max(1, n_val), len(keys) - 1)
    val = [e for k in keys[:n_val] for e in groups[k]]
    train = [e for k in keys[n_val:] for e in groups[k]]
    return train, val


def examples_hash(*splits: list[dict]) -> str:
    """sha256 over the canonical JSON of every example, split after split."""
    digest = hashlib.sha256()
    for i, split in enumerate(splits):
        digest.update(f"--split {i}--\n".encode())
        for example in split:
            digest.update(json.dumps(example, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def _write_jsonl(path: Path, examples: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for example in examples:
            fh.write(json.dumps(example, ensure_ascii=False) + "\n")


def save_dataset(
    ws: Workspace, name: str, path: str | Path, cfg: DataConfig | None = None, overwrite: bool = False, tokenizer=None
) -> dict:
    """Validate `path`, split it (cfg.val_fraction, cfg.seed) and save it as dataset `name`; return meta.json.

    Raises DataError (invalid file) or WorkspaceError (bad name, exists) before anything is written."""
    cfg = cfg or DataConfig()
    check_name(name, "dataset name")
    if ws.exists("datasets", name) and not overwrite:
        raise WorkspaceError(f"dataset {name!r} already exists; pick another name or tick overwrite")
    report = validate_file(path, cfg, tokenizer)
    if not report.valid:
        raise DataError(explain(report))
    train, val = split_examples(report.examples, cfg.val_fraction, cfg.seed)
    meta = {
        "name": name,
        "source": report.source,
        "format": report.format,
        "records": report.records,
        "counts": {"train": len(train), "val": len(val)},
        "data_hash": examples_hash(train, val),
        "seed": cfg.seed,
        "val_fraction": cfg.val_fraction,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stats": report.stats,
        "warnings": [w.to_dict() for w in report.warnings],
    }
    with ws.atomic_dir("datasets", name, overwrite=overwrite) as staging:
        _write_jsonl(staging / "train.jsonl", train)
        _write_jsonl(staging / "val.jsonl", val)
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return meta


def _dataset_dir(ws: Workspace, name: str) -> Path:
    if name == SAMPLE and not ws.exists("datasets", SAMPLE):
        ensure_sample_domain(ws)  # the shipped sample installs on first use, from the CLI as from the app
    try:
        folder = ws.dir("datasets", name)
    except WorkspaceError:
        folder = None
    if folder is None or not (folder / "meta.json").is_file():
        known = ", ".join(ws.list("datasets")) or "none"
        raise DataError(f"no dataset named {name!r} and no such file; saved datasets: {known}")
    return folder


def load_split(ws: Workspace, name_or_path: str | Path, split: str = "train") -> list[dict]:
    """Examples of a saved dataset's split, or of a chat JSONL file (validated; all of it is 'train',
    its 'val' is empty). Raises DataError naming the problem."""
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    path = Path(str(name_or_path)).expanduser()
    if path.is_file():
        report = validate_file(path)
        if not report.valid:
            raise DataError(explain(report))
        return report.examples if split == "train" else []
    folder = _dataset_dir(ws, str(name_or_path))
    text = (folder / f"{split}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def dataset_hash(ws: Workspace, name_or_path: str | Path) -> str:
    """The sha256 data hash of a saved dataset (train then val) or of a file's normalised examples."""
    path = Path(str(name_or_path)).expanduser()
    if path.is_file():
        return examples_hash(load_split(ws, path), [])
    return examples_hash(load_split(ws, name_or_path, "train"), load_split(ws, name_or_path, "val"))


def dataset_meta(ws: Workspace, name: str) -> dict:
    return json.loads((_dataset_dir(ws, name) / "meta.json").read_text(encoding="utf-8"))


def list_datasets(ws: Workspace) -> list[dict]:
    """meta.json of every saved dataset (unreadable ones are listed with an error)."""
    out = []
    for name in ws.list("datasets"):
        try:
            out.append(dataset_meta(ws, name))
        except (OSError, ValueError) as exc:
            out.append({"name": name, "error": str(exc)})
    return out


def ensure_sample_domain(ws: Workspace) -> None:
    """Install dataset and corpus 'sample' from the repo's data/ folder if missing (idempotent)."""
    from lab.corpus import save_corpus

    train = DATA_DIR / "train.jsonl"
    if train.is_file() and not ws.exists("datasets", SAMPLE):
        try:
            save_dataset(ws, SAMPLE, train)
        except WorkspaceError:  # another process saved it first
            pass
    docs = sorted((DATA_DIR / "docs").glob("*")) if (DATA_DIR / "docs").is_dir() else []
    if docs and not ws.exists("corpora", SAMPLE):
        try:
            save_corpus(ws, SAMPLE, docs)
        except WorkspaceError:
            pass
