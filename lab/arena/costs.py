"""What the decision card reads from the workspace: measured one-time costs, the texts that place questions,
file hashes, library versions and the machine's name.

Training time and peak memory come from a run's status.json, index build time from the index's meta.json and its
size from its folder; nothing is estimated. `card_for` builds an evaluation's decision card with them. Reads only;
no gradio here.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from lab.arena.decision import card
from lab.errors import LabError
from lab.workspace import Workspace, WorkspaceError

LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "llama-index-core",
             "sentence-transformers", "qdrant-edge-py", "gradio", "numpy")  # fmt: skip


def machine() -> str:
    """The CPU (model name where the system says it), its core count and the OS, in words."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions of the libraries that decide the numbers (without importing them)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _folder(ws: Workspace, kind: str, name: str) -> Path | None:
    if not name:
        return None
    try:
        folder = ws.dir(kind, name)
    except WorkspaceError:
        return None
    return folder if folder.is_dir() else None


def run_costs(ws: Workspace, run: str) -> dict[str, float]:
    """{"train_s", "peak_mb"} of a finished run, from its status.json (empty when the run is not here)."""
    folder = _folder(ws, "runs", run)
    if folder is None:
        return {}
    from lab.training import read_status

    metrics = read_status(folder).get("metrics") or {}
    out = {"train_s": metrics.get("runtime_s"), "peak_mb": metrics.get("peak_memory_mb")}
    return {k: float(v) for k, v in out.items() if v is not None}


def index_costs(ws: Workspace, index: str) -> dict[str, float]:
    """{"index_s", "index_mb"} of an index: its recorded build seconds and its folder's size on disk."""
    folder = _folder(ws, "indexes", index)
    if folder is None or not (folder / "meta.json").is_file():
        return {}
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    out = {"index_mb": round(size / 1e6, 2)}
    if (meta.get("stats") or {}).get("build_seconds") is not None:
        out["index_s"] = float(meta["stats"]["build_seconds"])
    return out


def gather_costs(ws: Workspace, result: dict[str, Any]) -> dict[str, dict]:
    """{contestant: one-time costs} from the runs and indexes its `contestants` metadata names, plus "_machine"."""
    out: dict[str, Any] = {"_machine": machine()}
    for label, info in (result.get("contestants") or {}).items():
        info = info or {}
        out[label] = run_costs(ws, info.get("run", "")) | index_costs(ws, info.get("index", ""))
    return out


def _dataset_text(ws: Workspace, dataset: str) -> str:
    from lab.data import load_split

    try:
        return json.dumps(load_split(ws, dataset, "train"), ensure_ascii=False)
    except (OSError, ValueError, KeyError, LabError):  # a dataset that is not here: no text to look answers up in
        return ""


def _corpus_text(ws: Workspace, corpus: str) -> str:
    from lab.corpus import read_document
    from lab.rag.chunking import corpus_paths

    try:
        paths = corpus_paths(ws, corpus)
    except (OSError, LabError):  # a corpus that is not here: no text to look answers up in
        return ""
    texts = []
    for p in paths:
        try:
            texts.append(read_document(p))
        except (OSError, LabError):  # an unreadable file holds no answers
            continue
    return "\n".join(texts)


def knowledge_texts(ws: Workspace, result: dict[str, Any]) -> tuple[str, str]:
    """(training data text, documents text) of a comparison (its inputs), or of the runs and indexes its
    contestants name; empty strings for what is not in this workspace."""
    inputs = (result.get("showcase") or {}).get("inputs") or {}
    dataset, corpus = inputs.get("dataset", ""), inputs.get("corpus", "")
    for info in (result.get("contestants") or {}).values():
        info = info or {}
        run = _folder(ws, "runs", info.get("run", ""))
        if not dataset and run and (run / "config.json").is_file():
            dataset = json.loads((run / "config.json").read_text(encoding="utf-8")).get("dataset", "")
        index = _folder(ws, "indexes", info.get("index", ""))
        if not corpus and index and (index / "config.json").is_file():
            corpus = json.loads((index / "config.json").read_text(encoding="utf-8")).get("corpus", "")
    return (_dataset_text(ws, dataset) if dataset else "", _corpus_text(ws, corpus) if corpus else "")


def card_for(ws: Workspace | None, result: dict[str, Any], update=None, curve=None, bootstrap: int = 1000) -> dict:
    """The decision card of `result` with the costs, texts, learning curve and update test this workspace holds
    (none without a workspace)."""
    if ws is None:
        return card(result, update=update, curve=curve, bootstrap=bootstrap)
    if curve is None:  # the newest learning curve saved for this dataset (opt-in, run apart)
        from lab.arena.learning_curve import for_result

        curve = for_result(ws, result)
    if update is None:  # the update test saved beside this evaluation (opt-in, run apart)
        from lab.arena.update_test import saved

        update = saved(ws, result)
    texts = ("", "") if _has_places(result) else knowledge_texts(ws, result)
    return card(result, gather_costs(ws, result), texts, update, curve, bootstrap)


def _has_places(result: dict[str, Any]) -> bool:
    from lab.arena.decision import place_of_group

    rows = [r for r in result.get("questions", []) if r["answerable"]]
    return bool(rows) and all(place_of_group(r.get("group"), True) for r in rows)
