"""Contestants: parse a contestant id into a Responder over models shared through the ModelCache.

Ids: `base` (the embedded model) or `base:MODEL`; `ft:RUN` (a trained adapter over its run's base model);
`rag:INDEX` (the base model reading passages retrieved from INDEX); `ft+rag:RUN:INDEX`. Every contestant on
one base model shares that model's weights (`ModelCache.generator`): a run's adapter is loaded into the base's
one PEFT model under its own name, each answer names its adapter per row ("__base__" for the base), and
`release` unloads the adapter. In class mode (lab.classroom), the first use of an index starts embedding its
passage sentences ahead, in the background (`warm_ahead`). Errors name the id and what to do.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from lab.config import EMBEDDED, TrainConfig
from lab.errors import LabError
from lab.generation.engine import ModelResponder
from lab.training import ADAPTER, CONFIG
from lab.workspace import SAMPLE, Workspace, WorkspaceError

log = logging.getLogger(__name__)
_warmed: weakref.WeakSet = weakref.WeakSet()  # index handles whose sentences were embedded ahead (class mode)
_warmed_lock = threading.Lock()

KINDS = ("base", "ft", "rag", "ft+rag")


class ContestantError(LabError):
    """A contestant id is malformed or names a run/index that does not exist."""


@dataclass(frozen=True)
class Contestant:
    id: str
    kind: str
    model: str = EMBEDDED
    run: str = ""
    index: str = ""


def parse(spec: str) -> Contestant:
    """`base`, `base:MODEL`, `ft:RUN`, `rag:INDEX` or `ft+rag:RUN:INDEX` -> Contestant (no disk access)."""
    spec = (spec or "").strip()
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    if kind == "base" and len(parts) <= 1:
        return Contestant(spec, "base", model=(rest or EMBEDDED))
    if kind == "ft" and len(parts) == 1 and parts[0]:
        return Contestant(spec, "ft", run=parts[0])
    if kind == "rag" and len(parts) == 1 and parts[0]:
        return Contestant(spec, "rag", index=parts[0])
    if kind == "ft+rag" and len(parts) == 2 and all(parts):
        return Contestant(spec, "ft+rag", run=parts[0], index=parts[1])
    raise ContestantError(
        f"contestant {spec!r} is not understood: use base, base:MODEL, ft:RUN, rag:INDEX or ft+rag:RUN:INDEX"
    )


def parse_many(text: str | list[str]) -> list[Contestant]:
    items = text.split(",") if isinstance(text, str) else list(text)
    specs = [s.strip() for s in items if s and s.strip()]
    if not specs:
        raise ContestantError("no contestants given: name at least one, e.g. base,rag:sample")
    return [parse(s) for s in specs]


def available(ws: Workspace) -> list[str]:
    """Contestant ids that can be built from this workspace (finished runs with an adapter, built indexes).

    A run trained for RAG is offered with the index it was trained on first (the matching pair)."""
    runs = [r for r in ws.list("runs") if (ws.dir("runs", r) / ADAPTER).is_dir()]
    indexes = _indexes(ws, buildable=True)
    trained = {r: _trained_index(ws, r) for r in runs}
    pairs = [f"ft+rag:{r}:{i}" for r in runs for i in sorted(indexes, key=lambda i: i != trained[r])]
    pairs.sort(key=lambda spec: not describe(ws, spec)["index_matches"])
    return ["base"] + [f"ft:{r}" for r in runs] + [f"rag:{i}" for i in indexes] + pairs


def _trained_index(ws: Workspace, run: str) -> str:
    from lab.training.lineage import lineage

    try:
        return lineage(ws, run)["rag_index"]
    except (OSError, ValueError):
        return ""


def describe(ws: Workspace, spec: str) -> dict:
    """What a contestant is: kind, run, index, whether its run was trained for RAG and on which index."""
    c = parse(spec)
    trained = _trained_index(ws, c.run) if c.run else ""
    matches = (trained == c.index) if (trained and c.index) else None
    return {"kind": c.kind, "run": c.run, "index": c.index, "rag_trained": bool(trained), "trained_index": trained,
            "index_matches": matches}  # fmt: skip


def marks(ws: Workspace, specs: list[str]) -> list[str]:
    """`label` of every contestant that is more than its id (runs trained for RAG, mismatched indexes)."""
    return [text for text in (label(ws, s) for s in specs if s.startswith("ft")) if "(" in text]


def label(ws: Workspace, spec: str) -> str:
    """The id as a picker shows it, marking an ft+rag pair whose index differs from the run's training index."""
    d = describe(ws, spec)
    if d["index_matches"] is False:
        return f"{spec} (trained for RAG on {d['trained_index']}, not on this index)"
    if d["rag_trained"]:
        return f"{spec} (trained for RAG)"
    return spec


def _indexes(ws: Workspace, buildable: bool = False) -> list[str]:
    """Built indexes; with `buildable`, also `sample` when the sample corpus is installed (built on first use)."""
    from lab.rag import list_indexes

    names = list(list_indexes(ws))
    if buildable and SAMPLE not in names and ws.exists("corpora", SAMPLE):
        names.append(SAMPLE)
    return names


def _adapter(ws: Workspace, run: str) -> tuple[Path, str]:
    """(adapter folder, base model spec) of a run; a clear error when the run or its adapter is gone."""
    try:
        run_dir = ws.dir("runs", run)
    except WorkspaceError as exc:
        raise ContestantError(str(exc)) from exc
    adapter = run_dir / ADAPTER
    if not (adapter / "adapter_config.json").is_file():
        existing = ", ".join(r for r in ws.list("runs") if (ws.dir("runs", r) / ADAPTER).is_dir()) or "none"
        raise ContestantError(
            f"run {run!r} has no adapter (deleted, failed or still training); runs with adapters: {existing}"
        )
    config = run_dir / CONFIG
    base = TrainConfig.load(config).base_model if config.is_file() else EMBEDDED
    return adapter, base


def _index(ws: Workspace, cache, name: str):
    from lab.rag import open_index

    if name not in _indexes(ws) and name != SAMPLE:
        existing = ", ".join(_indexes(ws)) or "none"
        raise ContestantError(f"index {name!r} does not exist (deleted or never built); existing indexes: {existing}")
    try:
        return open_index(ws, name, cache)
    except Exception as exc:  # the vector store raises bare Exceptions (e.g. locked by another process)
        busy = "WAL" in str(exc)
        hint = "it may be open in another process (close it there)" if busy else "rebuild it in the RAG tab"
        raise ContestantError(f"index {name!r} cannot be opened: {exc}; {hint}") from exc


def responder(ws: Workspace, cache, spec: str | Contestant) -> ModelResponder:
    """A ready Responder for a contestant id; models come from (and stay in) the shared cache."""
    c = parse(spec) if isinstance(spec, str) else spec
    adapter, base = _adapter(ws, c.run) if c.run else (None, c.model)  # cheap checks first: fail fast
    retriever = _index(ws, cache, c.index) if c.index else None
    if retriever is not None:
        warm_ahead(retriever)
    model = cache.generator(base, adapter)  # one base in memory: adapters are named inside it
    tok = cache.tokenizer(base)
    return ModelResponder(c.id, model, tok, retriever)


def warm_ahead(index) -> threading.Thread | None:
    """In class mode, embed the sentences of `index`'s passages once, in the background, the first time a
    contestant uses it (lab.generation.focus.warm_index): a class's RAG answers then only encode their question.
    Returns the thread started, None when nothing starts (class mode off, or this index handle already done)."""
    from lab.classroom import class_mode
    from lab.generation.focus import warm_index

    with _warmed_lock:
        if not class_mode() or index in _warmed:
            return None
        _warmed.add(index)

    def run() -> None:
        try:
            count = warm_index(index.embedder, index.chunks)
            log.info("index %s: %d passage sentences embedded ahead", index.name, count)
        except Exception:  # a warm-up only saves time later: the answers still work without it
            log.exception("index %s: embedding its sentences ahead failed", index.name)

    thread = threading.Thread(target=run, name=f"warm-{index.name}", daemon=True)
    thread.start()
    return thread


def release(ws: Workspace, cache, spec: str, still_used: list[str] = ()) -> int:
    """Drop the adapter model of a contestant nobody else uses; returns how many cache entries were freed."""
    c = parse(spec)
    if not c.run or any(parse(o).run == c.run for o in still_used if o != spec):
        return 0
    return cache.release(("adapter", str(ws.dir("runs", c.run) / ADAPTER)))
