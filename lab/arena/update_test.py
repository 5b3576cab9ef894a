"""The update test: change the facts behind k answerable questions in a copy of the documents, re-index the copy
into a temporary index, ask those questions again, and count per contestant the answers that follow the new value,
keep the old one, or neither.

A fact is changeable when a gold answer (or alias) holding a digit is found verbatim in its source document; its new
value keeps the old one's form with every digit redrawn (a number becomes another number, a code another code), so
the test is generic, not tuned to any domain's wording. Seeded. The original corpus and index are never written: the
copy and the temporary index live in the workspace's tmp and indexes and are removed afterwards. Opt-in: the caller
runs it; `card` shows its counts and the time each strategy needs to take a change in (re-index seconds against a
training run's measured time).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.config import GenConfig, RagConfig
from lab.data.evalset import EvalItem
from lab.errors import LabError
from lab.metrics import scoring as sc
from lab.workspace import Workspace

NEW, OLD, NEITHER = "new", "old", "neither"
EDITABLE = (".md", ".markdown", ".txt")  # documents whose text can be changed in place (not PDF or HTML)
_DIGIT = re.compile(r"\d")


class UpdateTestError(LabError):
    """The update test cannot run on these questions or documents; the message says why and what to do."""


@dataclass
class Change:
    id: str  # the question's id
    source: str  # the document changed (its file name)
    old: str  # the value found verbatim in the document
    new: str  # the value written in its place
    old_golds: list[str] = field(default_factory=list)
    new_golds: list[str] = field(default_factory=list)


def _digits(text: str) -> str:
    return "".join(_DIGIT.findall(text))


def redraw(value: str, rng: random.Random) -> str:
    """`value` with every digit redrawn (a leading non-zero digit stays non-zero), differing from `value`."""
    for _ in range(100):
        out, prev = [], ""
        for ch in value:
            if ch.isdigit():
                lead = not prev.isdigit() and ch != "0"
                ch = str(rng.randint(1 if lead else 0, 9))
            out.append(ch)
            prev = ch if ch.isdigit() else (prev if ch in ",." and prev.isdigit() else ch)
        new = "".join(out)
        if new != value:
            return new
    raise UpdateTestError(f"cannot draw a different value for {value!r}")  # only a value with no digit loops


def _pattern(value: str) -> re.Pattern:
    """`value` as whole words: not inside a longer word or number."""
    return re.compile(r"(?<![\w.,])" + re.escape(value) + r"(?![\w]|[.,]\d)")


def findable(item: EvalItem, text: str) -> str | None:
    """The longest gold of an answerable item that holds a digit and appears verbatim (as whole words) in `text`."""
    if not item.answerable:
        return None
    golds = sorted({g.strip() for g in sc.golds(item.answer, item.aliases) if _DIGIT.search(g)}, key=len, reverse=True)
    return next((g for g in golds if _pattern(g).search(text)), None)


def _map_digits(gold: str, old: str, new: str) -> str | None:
    """`gold` with the digits `old` had replaced by `new`'s, in order; None when `gold` carries other digits."""
    if _digits(gold) != _digits(old):
        return None
    digits = iter(_digits(new))
    return "".join(next(digits) if ch.isdigit() else ch for ch in gold)


def _doc_key(name: str | None) -> str:
    return re.split(r"[\\/]", str(name or "").strip())[-1].lower()


def pick_changes(items: list[EvalItem], docs: dict[str, str], k: int, seed: int = 0) -> list[Change]:
    """Up to `k` changes, a seeded choice among the answerable items whose gold is found verbatim in their
    source document (`docs`: file name -> text). At most one change per document, so changes do not collide."""
    by_key = {_doc_key(name): name for name in docs}
    candidates = []
    for it in items:
        name = by_key.get(_doc_key(it.source))
        value = findable(it, docs[name]) if name else None
        if value:
            candidates.append((it, name, value))
    rng = random.Random(seed)
    rng.shuffle(candidates)
    out, used = [], set()
    for it, name, value in candidates:
        if len(out) >= k or name in used:
            continue
        new = _fresh(value, docs[name], sc.golds(it.answer, it.aliases), rng)
        old_golds = sc.golds(it.answer, it.aliases)
        new_golds = [new] + [g for g in (_map_digits(a, value, new) for a in old_golds) if g and g != new]
        out.append(Change(it.id, name, value, new, old_golds, list(dict.fromkeys(new_golds))))
        used.add(name)
    return out


def _fresh(value: str, text: str, golds: list[str], rng: random.Random) -> str:
    """A redrawn value found nowhere in the document and sharing no normalised form with the old golds."""
    old = {sc.normalize(g) for g in golds} | {sc.normalize(value)}
    for _ in range(50):
        new = redraw(value, rng)
        if sc.normalize(new) not in old and not _pattern(new).search(text):
            return new
    return new


def apply_changes(docs: dict[str, str], changes: list[Change]) -> dict[str, str]:
    """The documents with each change's old value replaced by its new one (every whole-word occurrence)."""
    out = dict(docs)
    for ch in changes:
        out[ch.source] = _pattern(ch.old).sub(ch.new, out[ch.source])
    return out


def outcome(prediction: str, change: Change) -> str:
    """NEW when the answer holds the new value, OLD when it holds the old one (and not the new), else NEITHER."""
    if any(sc.contains(prediction, g) for g in change.new_golds):
        return NEW
    if any(sc.contains(prediction, g) for g in change.old_golds):
        return OLD
    return NEITHER


def count(outcomes: dict[str, str]) -> dict[str, int]:
    """{"new", "old", "neither"} counts of one contestant's outcomes."""
    return {k: sum(o == k for o in outcomes.values()) for k in (NEW, OLD, NEITHER)}


# --- running it ---------------------------------------------------------------------------------------------


def read_docs(folder: Path) -> dict[str, str]:
    """{file name: text} of the editable documents of a folder (relative names)."""
    return {
        str(p.relative_to(folder)): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in EDITABLE
    }


def with_index(spec: str, index: str) -> str:
    """The contestant id reading `index` instead of its own (a contestant without passages is unchanged)."""
    from lab.arena.contestants import parse

    c = parse(spec)
    if c.kind == "rag":
        return f"rag:{index}"
    if c.kind == "ft+rag":
        return f"ft+rag:{c.run}:{index}"
    return spec


def _corpus_folder(ws: Workspace, corpus: str) -> Path:
    folder = Path(corpus).expanduser()
    if corpus and folder.is_dir():
        return folder
    if not ws.exists("corpora", corpus):
        known = ", ".join(ws.list("corpora")) or "none"
        raise UpdateTestError(f"corpus {corpus!r} does not exist; saved corpora: {known}")
    return ws.dir("corpora", corpus)


def run_update_test(
    ws: Workspace,
    items: list[EvalItem],
    corpus: str,
    index_config: RagConfig,
    contestants: dict[str, str],
    gen: GenConfig,
    k: int = 5,
    seed: int = 0,
    *,
    cache=None,
    build: Callable[[RagConfig], Any] | None = None,
    responder: Callable[[str], Any] | None = None,
    training_s: dict[str, float] | None = None,
    stage: Callable[[str, int, int], None] | None = None,
    stopped: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Change k facts in a copy of `corpus`, index the copy with `index_config`'s settings under a temporary
    name, and ask the changed questions of every contestant ({label: id}; ids reading an index read the
    temporary one). `build(config)` and `responder(spec)` default to the real index build and contestant (over
    the shared model `cache`);
    `training_s` gives each label's measured training time. `stage(label, number, total)` hears each stage start
    (re-index, then one per contestant); `stopped()` true between stages cancels (Cancelled). Everything
    temporary is removed afterwards."""
    source = _corpus_folder(ws, corpus)
    changes = pick_changes(items, read_docs(source), k, seed)
    if not changes:
        raise UpdateTestError(
            f"no answerable question of these {len(items)} has a gold answer with a digit found verbatim in its "
            "source document (a Markdown or text file of the corpus): the update test has no fact to change"
        )
    token = uuid.uuid4().hex[:8]
    copy, name = ws.tmp / "update-test" / token, f"update-test-{token}"
    try:
        shutil.copytree(source, copy)
        for rel, text in apply_changes(read_docs(copy), changes).items():
            (copy / rel).write_text(text, encoding="utf-8")
        config = index_config.replace(name=name, corpus=str(copy), store_url="")
        steps = _Steps(len(contestants) + 1, stage, stopped)
        steps.next("re-index the changed copy")
        t0 = time.perf_counter()
        (build or _builder(ws, cache))(config)
        reindex_s = time.perf_counter() - t0
        outcomes, answers = _ask(items, changes, contestants, name, gen, responder or _responder(ws, cache), steps)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
        _drop_index(ws, name)
    return {
        "k": len(changes),
        "seed": seed,
        "changes": [asdict(c) for c in changes],
        "outcomes": outcomes,
        "counts": {label: count(o) for label, o in outcomes.items()},
        "answers": answers,
        "reindex_s": round(reindex_s, 2),
        "training_s": training_s or {},
    }


def _drop_index(ws: Workspace, name: str) -> None:
    """Remove the temporary index (its vector store too); a half-written one is removed as a folder."""
    if not ws.exists("indexes", name):
        return
    from lab.rag import delete_index

    try:
        delete_index(ws, name)
    except (OSError, ValueError, KeyError, LabError):
        ws.delete("indexes", name)


class Cancelled(UpdateTestError):
    """The update test was cancelled between stages; nothing of it is kept."""


@dataclass
class _Steps:
    total: int
    stage: Callable[[str, int, int], None] | None = None
    stopped: Callable[[], bool] | None = None
    done: int = 0

    def next(self, label: str) -> None:
        if self.stopped and self.stopped():
            raise Cancelled("the update test was cancelled; nothing was saved")
        self.done += 1
        if self.stage:
            self.stage(label, self.done, self.total)


def _ask(items, changes, contestants, index, gen, responder, steps=None) -> tuple[dict, dict]:
    by_id = {it.id: it for it in items}
    questions = [by_id[c.id].question for c in changes]
    outcomes, answers = {}, {}
    for label, spec in contestants.items():
        if steps:
            steps.next(f"ask {label}")
        replies = responder(with_index(spec, index)).answer_many(questions, gen)
        texts = {c.id: a.text for c, a in zip(changes, replies, strict=True)}
        answers[label] = texts
        outcomes[label] = {c.id: outcome(texts[c.id], c) for c in changes}
    return outcomes, answers


def _builder(ws: Workspace, cache=None) -> Callable[[RagConfig], Any]:
    def build(config: RagConfig):
        from lab.rag import build_index

        return build_index(ws, config, cache)

    return build


def _responder(ws: Workspace, cache=None) -> Callable[[str], Any]:
    def make(spec: str):
        from lab.arena.contestants import responder

        return responder(ws, cache, spec)

    return make


def items_of(result: dict[str, Any]) -> list[EvalItem]:
    """The evaluation's questions, rebuilt from its per-question rows (first contestant's, in order)."""
    seen: dict[str, EvalItem] = {}
    for r in result.get("questions", []):
        if r["id"] not in seen:
            seen[r["id"]] = EvalItem(r["id"], r["question"], r["answer"], list(r.get("aliases") or []),
                                     r.get("source"), bool(r["answerable"]), r.get("group"))  # fmt: skip
    return list(seen.values())


def specs_of(result: dict[str, Any]) -> dict[str, str]:
    """{label: contestant id}: a comparison's mapping, or a batch evaluation's ids (its labels)."""
    mapping = (result.get("showcase") or {}).get("contestants")
    return dict(mapping) if mapping else {s["system"]: s["system"] for s in result.get("systems", [])}


def update_for(ws: Workspace, cache, result: dict[str, Any], k: int = 5, seed: int = 0, **hooks) -> dict[str, Any]:
    """The update test for a saved evaluation: its questions, contestants and settings, the corpus of the first
    index a contestant reads, and each fine-tuned contestant's measured training time (`hooks`: run_update_test's
    `build` and `responder`)."""
    from lab.arena.contestants import parse
    from lab.arena.costs import run_costs

    specs = specs_of(result)
    parsed = {label: parse(spec) for label, spec in specs.items()}
    index = next((c.index for c in parsed.values() if c.index), "")
    if not index or not (ws.dir("indexes", index) / "config.json").is_file():
        raise UpdateTestError(
            f"the update test needs a contestant that reads an index of this workspace; this evaluation's are "
            f"{', '.join(specs.values())}. Add a RAG contestant and evaluate again"
        )
    config = RagConfig.load(ws.dir("indexes", index) / "config.json")
    times = {label: run_costs(ws, c.run).get("train_s") for label, c in parsed.items() if c.run}
    gen = GenConfig.from_dict(result.get("gen") or {})
    return run_update_test(ws, items_of(result), config.corpus, config, specs, gen, k, seed, cache=cache,
                           training_s={label: s for label, s in times.items() if s is not None}, **hooks)  # fmt: skip


# --- saved beside its evaluation -----------------------------------------------------------------------------

FILE = "update-test.json"  # evals/ID/update-test.json: the latest update test of that evaluation


def _eval_folder(ws: Workspace, result: dict[str, Any]) -> Path | None:
    """The saved evaluation's folder of `result` (by its id); None for a result file or an unsaved result."""
    eval_id = str(result.get("id") or "")
    try:
        folder = ws.dir("evals", eval_id) if eval_id else None
    except LabError:  # a name that cannot be a folder of this workspace
        return None
    return folder if folder is not None and (folder / "results.json").is_file() else None


def save(ws: Workspace, result: dict[str, Any], update: dict[str, Any]) -> Path | None:
    """Write `update` beside the saved evaluation `result` (replacing an earlier one); None when `result` is not a
    saved evaluation of this workspace (nothing is written)."""
    folder = _eval_folder(ws, result)
    if folder is None:
        return None
    path = folder / FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(update, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def saved(ws: Workspace, result: dict[str, Any]) -> dict[str, Any] | None:
    """The update test saved beside `result`, or None (never run, or unreadable)."""
    folder = _eval_folder(ws, result)
    path = folder / FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("outcomes") is not None else None


def forecast_s(ws: Workspace, result: dict[str, Any], k: int = 5) -> tuple[float | None, float | None]:
    """(re-index seconds, answering seconds) the update test of `result` should take: the index's saved build time,
    and k answers per contestant at that contestant's median measured latency in `result`; None where unknown."""
    from lab.arena.contestants import parse

    index = next((c.index for c in (parse(s) for s in specs_of(result).values()) if c.index), "")
    reindex = None
    try:
        meta = ws.dir("indexes", index) / "meta.json" if index else None
    except LabError:
        meta = None
    if meta is not None and meta.is_file():
        try:
            reindex = json.loads(meta.read_text(encoding="utf-8")).get("stats", {}).get("build_seconds")
        except (OSError, ValueError):
            reindex = None
    per: dict[str, list[float]] = {}
    for r in result.get("questions", []):
        if isinstance(r.get("latency_s"), int | float):
            per.setdefault(r.get("system", ""), []).append(float(r["latency_s"]))
    answering = sum(k * statistics.median(v) for v in per.values()) if per else None
    return (float(reindex) if reindex is not None else None), answering
