"""The blind battle's default pool: a spread of at most five contestants that follows the newest work.

`default_pool` is pure (facts in, ids out): base, the newest RAG index, the newest fine-tuned run, that run reading
that index (ft+rag), and the newest run trained for RAG reading the index it was trained on. `read_facts` gathers
those facts from a workspace (every contestant `contestants.available` offers, with the time its adapter or index
was written; the shipped sample index counts as the oldest, since it is nobody's new work), and `battle_pool` puts
the two together. The UI calls `battle_pool` when the page or the Blind battle tab opens, so work finished after the
app started enters the pool. No gradio here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lab.arena import contestants
from lab.workspace import SAMPLE, Workspace

MAX_POOL = 5


@dataclass(frozen=True)
class RunFact:
    """A fine-tuned run with an adapter: its id, when its adapter was written, the index it was trained for ("")."""

    id: str
    at: float
    rag_index: str = ""


@dataclass(frozen=True)
class IndexFact:
    """A RAG index a contestant can read: its name and when it was built."""

    name: str
    at: float


def _newest(items: Iterable, key: str):
    """The item written last (ties broken by name, so the pick is stable); None for none."""
    return max(items, key=lambda x: (x.at, getattr(x, key)), default=None)


def default_pool(runs: Iterable[RunFact], indexes: Iterable[IndexFact], size: int = MAX_POOL) -> list[str]:
    """At most `size` contestant ids, one of each kind of newest work: `base`; `rag:` the newest index; `ft:` the
    newest run not trained for RAG (the newest of all runs when every run was); `ft+rag:` that run with that index;
    `ft+rag:` the newest run trained for RAG with its own index (the newest index when its own is gone). Ids that
    coincide appear once."""
    runs, indexes = list(runs), list(indexes)
    index = _newest(indexes, "name")
    plain = _newest([r for r in runs if not r.rag_index] or runs, "id")
    for_rag = _newest([r for r in runs if r.rag_index], "id")
    pool = ["base"]
    if index:
        pool.append(f"rag:{index.name}")
    if plain:
        pool += [f"ft:{plain.id}"] + ([f"ft+rag:{plain.id}:{index.name}"] if index else [])
    if for_rag:
        own = for_rag.rag_index if for_rag.rag_index in {i.name for i in indexes} else index.name if index else ""
        pool.append(f"ft+rag:{for_rag.id}:{own}" if own else f"ft:{for_rag.id}")
    return list(dict.fromkeys(pool))[: max(size, 0)]


def read_facts(ws: Workspace, ids: Iterable[str]) -> tuple[list[RunFact], list[IndexFact]]:
    """The runs and indexes behind the contestant `ids` (as `contestants.available` lists them), with their times."""
    from lab.training import ADAPTER

    parsed = [contestants.parse(i) for i in ids]
    runs = [
        RunFact(c.run, _mtime(ws.dir("runs", c.run) / ADAPTER), contestants.describe(ws, c.id)["trained_index"])
        for c in parsed
        if c.kind == "ft"
    ]
    indexes = [IndexFact(c.index, _index_time(ws, c.index)) for c in parsed if c.kind == "rag"]
    return runs, indexes


def _index_time(ws: Workspace, name: str) -> float:
    """When an index was built; the shipped sample counts as older than any index a user builds."""
    return -1.0 if name == SAMPLE else _mtime(ws.dir("indexes", name) / "meta.json")


def _mtime(path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def battle_pool(ws: Workspace, ids: list[str] | None = None) -> list[str]:
    """The default battle pool of this workspace now (`ids`: the available contestants, read when not given)."""
    ids = contestants.available(ws) if ids is None else ids
    pool = default_pool(*read_facts(ws, ids))
    return [p for p in pool if p in ids]
