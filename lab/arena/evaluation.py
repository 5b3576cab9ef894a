"""Batch evaluation: run an evaluation set against contestants, score, save, list, compare and export.

Results are saved under `ws.dir("evals", ID)` (results.json, questions.csv, summary.csv) with a row in the
`evaluations` table. Progress goes to a callback and cancellation is checked between batches, so the UI can show
a progress bar and a cancel button; a cancelled run keeps (and saves) what it finished. No gradio here.
"""

from __future__ import annotations

import csv
import io
import json
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
from lab.workspace import Workspace, check_name

Progress = Callable[[int, int, str], None]
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
) -> dict[str, Any]:
    """Answer every item with every responder (batched), score and summarise; stops early when asked."""
    rows, total, done, status = [], len(items) * len(responders), 0, "finished"
    for name, responder in responders.items():
        for start in range(0, len(items), gen.batch_size):
            if should_stop and should_stop():
                status = "cancelled"
                break
            chunk = items[start : start + gen.batch_size]
            answers = responder.answer_many([it.question for it in chunk], gen)
            rows += [question_row(it, a, name) for it, a in zip(chunk, answers, strict=True)]
            done += len(chunk)
            if progress:
                progress(done, total, f"{name}: {start + len(chunk)}/{len(items)}")
        if status == "cancelled":
            break
    if similarity:
        add_similarity(rows, similarity)
    systems = [s for s in responders if any(r["system"] == s for r in rows)]
    result = {"status": status, "gen": gen.to_dict(), "systems": summarize_all(rows, systems, bootstrap, seed)}
    curves = {s: idk_curve([r for r in rows if r["system"] == s]) for s in systems}
    result["idk_curve"] = {s: c for s, c in curves.items() if c}
    result["questions"] = rows
    result["verdict"] = verdict(result)
    return result


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
) -> dict[str, Any]:
    """Read the set, build the contestants (shared cached models), evaluate, and save; returns the result."""
    from lab.arena.contestants import describe, parse_many, responder
    from lab.data.evalset import read_evalset

    items = read_evalset(qa)
    items = items[:limit] if limit else items
    contestants = parse_many(systems)
    responders = {c.id: responder(ws, cache, c) for c in contestants}
    similarity = embedding_similarity(cache.embedder("embedded"))
    result = run_evaluation(items, responders, gen, similarity, progress, should_stop, bootstrap)
    result["contestants"] = {c.id: describe(ws, c.id) for c in contestants}  # which runs were trained for RAG
    result["verdict"] = verdict(result)
    if save:
        save_evaluation(ws, result, str(qa))
    return result
