"""Datasets saved by the `datasets` library: a folder written by `save_to_disk`, a folder of parquet / jsonl /
json / csv shards, or a hub dataset id, read through `datasets` (the hub through its cache when offline).

`read(source, split)` returns records numbered by row (1-based) and the column names, for the same checks as an
uploaded file (lab.data.validate). Problems that stop reading raise SavedDataError naming the source.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lab.data.formats import Record
from lab.errors import LabError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt", ".arrow")
NESTED = ("messages", "conversations")


class SavedDataError(LabError):
    """A saved dataset folder or hub dataset cannot be read; the message names it and says what to do."""


def is_saved(source: str | Path) -> bool:
    """Whether `source` is a folder or looks like a hub dataset id (owner/name, not a missing file's path)."""
    path = Path(str(source)).expanduser()
    if path.is_dir():
        return True
    text = str(source).strip()
    return not path.exists() and bool(HUB_ID.fullmatch(text)) and not text.lower().endswith(FILE_SUFFIXES)


def label(source: str | Path, split: str) -> str:
    """How a report names the source: the folder's name or the hub id, with the split."""
    path = Path(str(source)).expanduser()
    return f"{path.name if path.is_dir() else str(source).strip()} [{split}]"


def _load(source: str, split: str):
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    path = Path(source).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        loaded = load_from_disk(str(path))
    else:
        loaded = load_dataset(str(path) if path.is_dir() else source.strip())
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise SavedDataError(
                f"{label(source, split)}: no split {split!r}; it has {', '.join(loaded) or 'none'}: pass --split"
            )
        loaded = loaded[split]
    if not isinstance(loaded, Dataset):
        raise SavedDataError(f"{source!r} is not a dataset of rows ({type(loaded).__name__})")
    return loaded


def _drop_none(value: Any) -> Any:
    """A row without the None values Arrow gives a record for the keys only other records have."""
    if not isinstance(value, dict):
        return value
    out = {k: v for k, v in value.items() if v is not None}
    for key in NESTED:
        if isinstance(out.get(key), list):
            out[key] = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in out[key]]
    return out


def read(source: str | Path, split: str = "train", max_mb: float | None = None) -> tuple[list[Record], list[str]]:
    """Rows of a saved dataset's split as records (line = row number) and its column names."""
    try:
        ds = _load(str(source), split)
    except SavedDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds: name the source and the reason
        raise SavedDataError(
            f"cannot read {str(source)!r} as a saved dataset or hub dataset ({type(exc).__name__}: {exc}); "
            "give a folder written by datasets (save_to_disk, or parquet / jsonl shards) or an owner/name id "
            "that is reachable or in the datasets cache"
        ) from exc
    if max_mb and ds.data.nbytes > max_mb * 1e6:
        raise SavedDataError(
            f"{label(source, split)} is {ds.data.nbytes / 1e6:.1f} MB, over the {max_mb:g} MB limit "
            "(DataConfig.max_upload_mb)"
        )
    records = [Record(i + 1, _drop_none(row)) for i, row in enumerate(ds.to_list())]
    return records, list(ds.column_names)
