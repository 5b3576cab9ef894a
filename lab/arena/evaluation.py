"""Batch evaluation: run an evaluation set against contestants, score, save, list, compare and export.

Results are saved under `ws.dir("evals", ID)` (results.json, questions.csv, summary.csv) with a row in the
`evaluations` table. Progress goes to a callback and cancellation is checked between batches, so the UI can show
a progress bar and a cancel button; a cancelled run keeps (and saves) what it finished. Answers are also appended
batch by batch to a checkpoint in the workspace's tmp (keyed on the questions, contestants and settings), so an
evaluation cut short (cancelled, or its process killed with a ZeroGPU slot) continues from there when run again,
and one can be answered in chunks (`budget`), one GPU slot each. No gradio here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import db
from lab.arena.scoring import add_similarity, idk_curve, question_row, summarize_all
from lab.arena.verdict import verdict
from lab.config import GenConfig
from lab.data.evalset import EvalItem
from lab.errors import LabError
from lab.estimate import FOR_GENERATION, apply_threads
from lab.workspace import Workspace, check_name

Progress = Callable[[int, int, str], None]
CHECKPOINTS = "eval-checkpoints"  # folder under the workspace's tmp: answers saved batch by batch
CSV_FIELDS = (
    "id",
    "system",
    "group",
    "answerable",
    "question",
    "answer",
    "prediction",
    "category",
    "exact_match",
    "token_f1",
    "rouge_l",
    "similarity",
    "groundedness",
    "retrieval_hit",
    "latency_s",
    "completion_tokens",
    "sources",
)


def embedding_similarity(embedder) -> Callable[[list[str], list[str]], list[float]]:
    """Cosine similarity of prediction and gold answer with a sentence-transformers embedder."""

    def similarity(preds: list[str], golds: list[str]) -> list[float]:
        a = embedder.encode(preds, normalize_embeddings=True, batch_size=64)
        b = embedder.encode(golds, normalize_embeddings=True, batch_size=64)
        return [float((x * y).sum()) for x, y in zip(a, b, strict=True)]

    return similarity


def run_evaluation(
    items: list[EvalItem],
    responders: dict[str, Any],
    gen: GenConfig,
    similarity: Callable | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    checkpoint: Path | None = None,
) -> dict[str, Any]:
    """Answer every item with every responder (batched), score and summarise; stops early when asked. With a
    `checkpoint` file, every finished batch is appended to it and answers already there are not asked again."""
    rows, status = answer_items(items, responders, gen, similarity, progress, should_stop, checkpoint)
    return summarize_rows(rows, list(responders), gen, status, bootstrap, seed)


def answer_items(
    items: list[EvalItem],
    responders: dict[str, Any],
    gen: GenConfig,
    similarity: Callable | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint: Path | None = None,
    budget: int | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The scored rows (contestant by contestant, in item order) and the status: "finished", "cancelled"
    (`should_stop` said so between batches) or "partial" (this call answered `budget` answers, more are left).

    With `checkpoint`, rows already saved there for these items, contestants and settings are reused, and each
    new batch is appended (with its similarity) before the next starts: a killed process loses one batch at most."""
    key = checkpoint_key(items, list(responders), gen)
    saved = read_checkpoint(checkpoint, key) if checkpoint else {}
    total, answered, status = len(items) * len(responders), 0, "finished"
    done = len(saved)
    for name, responder in responders.items():
        todo = [it for it in items if (name, it.id) not in saved]
        for start in range(0, len(todo), gen.batch_size):
            if should_stop and should_stop():
                return _in_order(saved, items, responders), "cancelled"
            if budget is not None and answered >= budget:
                return _in_order(saved, items, responders), "partial"
            chunk = todo[start : start + gen.batch_size]
            answers = responder.answer_many([it.question for it in chunk], gen)
            new = [question_row(it, a, name) for it, a in zip(chunk, answers, strict=True)]
            if similarity:
                add_similarity(new, similarity)
            if checkpoint:
                append_checkpoint(checkpoint, key, new)
            saved |= {(name, r["id"]): r for r in new}
            done, answered = done + len(chunk), answered + len(chunk)
            if progress:
                progress(done, total, f"{name}: {sum(k[0] == name for k in saved)}/{len(items)}")
    return _in_order(saved, items, responders), status


def _in_order(saved: dict, items: list[EvalItem], responders: dict[str, Any]) -> list[dict[str, Any]]:
    return [saved[(name, it.id)] for name in responders for it in items if (name, it.id) in saved]


def summarize_rows(
    rows: list[dict[str, Any]], names: list[str], gen: GenConfig, status: str, bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The result of an evaluation from its scored rows: summaries with intervals, abstention curves, verdict."""
    systems = [s for s in names if any(r["system"] == s for r in rows)]
    result = {"status": status, "gen": gen.to_dict(), "systems": summarize_all(rows, systems, bootstrap, seed)}
    curves = {s: idk_curve([r for r in rows if r["system"] == s]) for s in systems}
    result["idk_curve"] = {s: c for s, c in curves.items() if c}
    result["questions"] = rows
    result["verdict"] = verdict(result)
    return result


# --- per-batch checkpoints ------------------------------------------------------------------------------------


def checkpoint_key(items: list[EvalItem], systems: list[str], gen: GenConfig) -> str:
    """What a checkpoint's answers depend on: the questions, the contestants and the generation settings."""
    data = [[it.to_dict() for it in items], list(systems), gen.to_dict()]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def checkpoint_path(ws: Workspace, items: list[EvalItem], systems: list[str], gen: GenConfig) -> Path:
    """Where the answers of this evaluation are saved batch by batch until it finishes (in the workspace's tmp)."""
    return ws.tmp / CHECKPOINTS / f"{checkpoint_key(items, systems, gen)[:24]}.jsonl"


def read_checkpoint(path: Path, key: str) -> dict[tuple[str, str], dict[str, Any]]:
    """{(contestant, item id): row} saved under `key`; an unreadable last line (the process was killed while
    writing it) is dropped, and a file saved under another key is started over."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if not path.is_file():
        return rows
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        if json.loads(lines[0]).get("key") != key:
            lines = []
    except (IndexError, ValueError, AttributeError):
        lines = []
    clean = True
    for line in lines[1:]:
        try:
            row = json.loads(line)
            rows[(row["system"], row["id"])] = row
        except (ValueError, KeyError, TypeError):
            clean = False
    if not clean or not lines:
        _rewrite_checkpoint(path, key, list(rows.values()))
    return rows


def append_checkpoint(path: Path, key: str, rows: list[dict[str, Any]]) -> None:
    """Append one batch's rows (the header line first on a new file), flushed to disk before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "" if path.is_file() and path.stat().st_size else json.dumps({"key": key}) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(head + "".join(json.dumps(r, default=str) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())


def _rewrite_checkpoint(path: Path, key: str, rows: list[dict[str, Any]]) -> None:
    staging = path.with_suffix(".rewrite")
    staging.write_text("".join(json.dumps(x, default=str) + "\n" for x in [{"key": key}, *rows]), encoding="utf-8")
    staging.replace(path)


def new_eval_id(label: str = "eval") -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{uuid.uuid4().hex[:4]}"


def save_evaluation(ws: Workspace, result: dict[str, Any], qa: str, eval_id: str | None = None) -> str:
    """Write results.json, questions.csv and summary.csv under evals/ID and record the run; returns ID."""
    eval_id = eval_id or new_eval_id()
    path = str(ws.dir("evals", eval_id))
    result.update(id=eval_id, qa=qa, path=path, created_at=result.get("created_at") or time.time())
    with ws.atomic_dir("evals", eval_id, overwrite=True) as folder:
        (folder / "results.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        (folder / "questions.csv").write_text(questions_csv(result), encoding="utf-8")
        (folder / "summary.csv").write_text(summary_csv(result), encoding="utf-8")
    systems = [s["system"] for s in result["systems"]]
    summary = {s["system"]: {k: s.get(k) for k in ("correct_rate", "hallucination_rate")} for s in result["systems"]}
    db.init(ws.db_path)
    with db.connect(ws.db_path) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO evaluations (id, created_at, qa, systems, status, summary, path)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (eval_id, result["created_at"], qa, db.dumps(systems), result["status"], db.dumps(summary), path),
        )
    return eval_id


def questions_csv(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in result["questions"]:
        sources = "; ".join(f"{p.get('source')} ({p.get('score', 0) or 0:.2f})" for p in row.get("passages", []))
        writer.writerow(row | {"sources": sources})
    return buf.getvalue()


def summary_csv(result: dict[str, Any]) -> str:
    keys = [k for k in result["systems"][0] if k != "by_group"] if result["systems"] else ["system"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for s in result["systems"]:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in s.items() if k in keys})
    return buf.getvalue()


def list_evaluations(ws: Workspace) -> list[dict[str, Any]]:
    db.init(ws.db_path)
    return db.rows(ws.db_path, "SELECT id, created_at, qa, systems, status, summary FROM evaluations ORDER BY id DESC")


def load_evaluation(ws: Workspace, eval_id: str) -> dict[str, Any]:
    path = ws.dir("evals", eval_id) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"evaluation {eval_id!r} has no saved results (deleted?); pick another one")
    return json.loads(path.read_text(encoding="utf-8"))


def delete_evaluation(ws: Workspace, eval_id: str) -> None:
    """Remove a saved evaluation's folder and record; a LabError when there is no such evaluation."""
    eval_id = check_name(eval_id or "", "evaluation")
    known = {r["id"] for r in list_evaluations(ws)}
    if eval_id not in known and not ws.exists("evals", eval_id):
        raise LabError(f"evaluation {eval_id!r} does not exist; pick one from the list")
    if ws.exists("evals", eval_id):
        ws.delete("evals", eval_id)
    with db.connect(ws.db_path) as conn:
        conn.execute("DELETE FROM evaluations WHERE id=?", (eval_id,))


def export_paths_for(result: dict[str, Any]) -> list[Path]:
    """Download copies of a saved result's files, in the workspace's downloads folder (the only one the app
    serves); empty for an unsaved one. The result's folder is LAB_HOME/evals/ID, which names the workspace."""
    if not result.get("path"):
        return []
    folder = Path(result["path"])
    files = [folder / n for n in ("results.json", "questions.csv", "summary.csv") if (folder / n).is_file()]
    return Workspace(folder.parent.parent).publish(files, "evals", folder.name) if files else []


def compare(ws: Workspace, eval_ids: list[str], keys: tuple[str, ...] = ("correct_rate", "hallucination_rate")):
    """One row per (evaluation, system) with the chosen rates and their intervals, for a comparison table."""
    out = []
    for eval_id in eval_ids:
        for s in load_evaluation(ws, eval_id)["systems"]:
            out.append(
                {"evaluation": eval_id, "system": s["system"]}
                | {k: s.get(k) for k in keys}
                | {f"{k}_ci": s.get(f"{k}_ci") for k in keys}
            )
    return out


def evaluate_in_workspace(
    ws: Workspace,
    cache,
    qa: str,
    systems: list[str],
    gen: GenConfig,
    limit: int = 0,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    bootstrap: int = 1000,
    save: bool = True,
    budget: int | None = None,
) -> dict[str, Any]:
    """Read the set, build the contestants (shared cached models), evaluate, and save; returns the result.

    Answers are saved batch by batch in the workspace (`checkpoint_path`), so a run that was cancelled or killed
    continues where it stopped when started again with the same set, contestants and settings. With `budget`, at
    most that many answers (whole batches) are given in this call: while answers are left the return is only
    {"status": "partial", "done": N, "total": M} (a ZeroGPU slot answers one such chunk; the next call goes on)."""
    from lab.arena.contestants import describe, parse_many, responder

    apply_threads(names=FOR_GENERATION)  # torch's CPU threads for the load now
    items = read_items(qa, limit)
    contestants = parse_many(systems)
    names = [c.id for c in contestants]
    checkpoint = checkpoint_path(ws, items, names, gen)
    responders = {c.id: responder(ws, cache, c) for c in contestants}
    similarity = embedding_similarity(cache.embedder("embedded"))
    rows, status = answer_items(items, responders, gen, similarity, progress, should_stop, checkpoint, budget)
    if status == "partial":
        return {"status": status, "done": len(rows), "total": len(items) * len(names)}
    result = summarize_rows(rows, names, gen, status, bootstrap)
    result["contestants"] = {c.id: describe(ws, c.id) for c in contestants}  # which runs were trained for RAG
    result["verdict"] = verdict(result)
    if save:
        save_evaluation(ws, result, str(qa))
    if status == "finished":
        checkpoint.unlink(missing_ok=True)
    return result


def saved_answers(ws: Workspace, items: list[EvalItem], systems: list[str], gen: GenConfig) -> int:
    """How many answers of this evaluation (items x contestant ids x settings) are saved from an earlier run."""
    from lab.arena.contestants import parse_many

    names = [c.id for c in parse_many(systems)]
    return len(read_checkpoint(checkpoint_path(ws, items, names, gen), checkpoint_key(items, names, gen)))


def answer_to_checkpoint(
    ws: Workspace,
    cache,
    spec: str,
    label: str,
    items: list[EvalItem],
    gen: GenConfig,
    budget: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> str:
    """Answer `items` as contestant `spec` (its rows named `label`) into its checkpoint (`checkpoint_path(ws,
    items, [label], gen)`), at most `budget` answers in this call; returns answer_items' status. Everything
    crosses a process boundary by value (a ZeroGPU slot runs it); the rows are read back with `saved_rows`."""
    from lab.arena.contestants import responder

    responders = {label: responder(ws, cache, spec)}
    similarity = embedding_similarity(cache.embedder("embedded"))
    path = checkpoint_path(ws, items, [label], gen)
    return answer_items(items, responders, gen, similarity, progress, should_stop, path, budget)[1]


def saved_rows(ws: Workspace, items: list[EvalItem], names: list[str], gen: GenConfig) -> list[dict[str, Any]]:
    """The rows of this evaluation saved in its checkpoint, contestant by contestant in item order."""
    path, key = checkpoint_path(ws, items, names, gen), checkpoint_key(items, names, gen)
    return _in_order(read_checkpoint(path, key), items, dict.fromkeys(names))


def read_items(qa: str, limit: int = 0) -> list[EvalItem]:
    """The evaluation set's items, the first `limit` of them when it is set (0 = all)."""
    from lab.data.evalset import read_evalset

    items = read_evalset(qa)
    return items[:limit] if limit else items
