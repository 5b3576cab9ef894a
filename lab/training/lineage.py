"""Continue from a run: a new run starts from an earlier run's adapter; the lineage each run records.

`inherit` makes a config that names `from_run` use the parent's base model and checks the parent has an
adapter; `parent_adapter` is the folder the training child loads with `is_trainable=True`; `lineage` reads what a
run records about where it came from (parent run, RAG index and its fingerprint). Pure file reads; no models.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.config import TrainConfig
from lab.errors import LabError
from lab.training import ADAPTER, CONFIG


class LineageError(LabError):
    """The parent run named by from_run cannot be continued; the message names it and what to do."""


def parent_adapter(ws, from_run: str) -> Path:
    """The parent's adapter folder; a LineageError naming the run when it has none."""
    from lab.workspace import WorkspaceError

    try:
        folder = ws.dir("runs", from_run) / ADAPTER
    except WorkspaceError as exc:
        raise LineageError(str(exc)) from exc
    if not (folder / "adapter_config.json").is_file():
        with_adapter = [r for r in ws.list("runs") if (ws.dir("runs", r) / ADAPTER / "adapter_config.json").is_file()]
        raise LineageError(
            f"from_run={from_run!r} has no adapter (still training, failed or deleted); runs you can continue "
            f"from: {', '.join(with_adapter) or 'none'}"
        )
    return folder


def inherit(ws, config: TrainConfig) -> TrainConfig:
    """`config` with the parent run's base model when it continues from a run (else unchanged)."""
    if not config.from_run:
        return config
    parent_adapter(ws, config.from_run)
    parent = TrainConfig.load(ws.dir("runs", config.from_run) / CONFIG)
    return config.replace(base_model=parent.base_model)


def lineage(ws, run_id: str) -> dict:
    """{"parent", "rag_index", "index_fingerprint"} of a run ("" where it has none)."""
    run_dir = ws.dir("runs", run_id)
    config = TrainConfig.load(run_dir / CONFIG) if (run_dir / CONFIG).is_file() else TrainConfig()
    meta_file = run_dir / "rag_meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    return {
        "parent": config.from_run,
        "rag_index": config.rag_index,
        "index_fingerprint": meta.get("index_fingerprint", ""),
    }
