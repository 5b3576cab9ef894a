"""The comparison shipped with the app, and the example questions shown from any comparison.

`reference()` loads the sample's showcase/reference.json (its `reference` field says how it was measured); the
Start tab shows it, labelled as such, until the workspace has a comparison of its
own. `reference_from` builds it from saved evaluations (data/showcase/build.py). `examples` picks the questions
the Start tab shows answered by every contestant; `headline_examples` picks them to represent the headline's
comparison. No gradio here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lab.arena.showcase import Inputs, ShowcaseError, compose
from lab.storage import sample_dir

REFERENCE = sample_dir() / "showcase" / "reference.json"


def reference(path: Path = REFERENCE) -> dict[str, Any] | None:
    """The comparison shipped with the app (its `reference` field says how it was measured), or None."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if result.get("systems") and result.get("reference") else None


def reference_from(parts: list[tuple[str, str, dict]], inputs: Inputs, note: str) -> dict[str, Any]:
    """A comparison from saved evaluations, `(label, contestant id, evaluation result)` each (an evaluation may
    hold several contestants; only that id's rows are taken), with `note` saying how it was measured. Passage
    texts are dropped (sources and scores kept) so the file stays small."""
    evals = {}
    for label, spec, result in parts:
        rows = [r | {"system": label, "passages": [_slim(p) for p in r.get("passages", [])]}
                for r in result["questions"] if r["system"] == spec]  # fmt: skip
        if not rows:
            raise ShowcaseError(f"the evaluation has no answers of {spec!r}; it holds {_systems(result)}")
        info = (result.get("contestants") or {}).get(spec)
        evals[label] = {"spec": spec, "result": {"questions": rows, "gen": result.get("gen", {})}, "info": info}
    composed = compose(evals, inputs, "finished")
    composed["reference"] = note
    composed["created_at"] = max(r.get("created_at") or 0 for _, _, r in parts) or time.time()
    return composed


def _slim(passage: dict) -> dict:
    return {k: passage[k] for k in ("source", "score") if k in passage}


def _systems(result: dict) -> str:
    return ", ".join(sorted({r["system"] for r in result.get("questions", [])})) or "none"


def examples(result: dict[str, Any], k: int = 3) -> list[dict[str, Any]]:
    """`k` questions answered by every contestant, one per group first, preferring ones where they disagree."""
    systems = [s["system"] for s in result.get("systems", [])]
    by_id: dict[str, dict[str, dict]] = {}
    for r in result.get("questions", []):
        by_id.setdefault(r["id"], {})[r["system"]] = r
    full = [(qid, rows) for qid, rows in by_id.items() if set(systems) <= set(rows)]
    full.sort(key=lambda x: -len({r["category"] for r in x[1].values()}))  # stable: file order among equals
    picked, groups = [], set()
    for qid, rows in full:
        group = next(iter(rows.values())).get("group")
        if group not in groups:
            picked.append(qid)
            groups.add(group)
    picked += [qid for qid, _ in full if qid not in picked]
    out = []
    for qid in picked[:k]:
        rows = by_id[qid]
        first = rows[systems[0]]
        answers = {s: {"prediction": rows[s]["prediction"], "category": rows[s]["category"]} for s in systems}
        out.append({"id": qid, "question": first["question"], "answer": first["answer"], "group": first.get("group"),
                    "answerable": first.get("answerable", True), "answers": answers})  # fmt: skip
    return out


def headline_pair(result: dict[str, Any]) -> tuple[str, str] | None:
    """The two contestants the headline compares first: RAG alone against fine-tuning alone when both ran (the
    lab's question), else the most correct and its runner-up; (winner, loser) by correct rate, or None."""
    systems = [s for s in result.get("systems", []) if s.get("correct_rate") is not None]
    kinds = {(result.get("contestants") or {}).get(s["system"], {}).get("kind"): s for s in systems}
    pair = [kinds["rag"], kinds["ft"]] if "rag" in kinds and "ft" in kinds else systems
    ranked = sorted(pair, key=lambda s: -s["correct_rate"])[:2]
    return (ranked[0]["system"], ranked[1]["system"]) if len(ranked) == 2 else None


def headline_examples(result: dict[str, Any], k: int = 3) -> list[dict[str, Any]]:
    """`k` questions that show the headline's comparison (`headline_pair`): one the winner answers correctly and
    the loser not, one the reverse, one both answer correctly (answerable questions, every contestant answering;
    a kind with no such question is left to the next), then `examples`' choice fills up to `k`."""
    pair, picked = headline_pair(result), examples(result, 10**6)
    if pair is None:
        return picked[:k]
    winner, loser = pair
    right = {"correct"}
    wants = ((True, False), (False, True), (True, True))
    chosen: list[dict[str, Any]] = []
    for want in wants:
        match = next((ex for ex in picked if ex not in chosen and ex.get("answerable", True)
                      and ((ex["answers"][winner]["category"] in right), (ex["answers"][loser]["category"] in right))
                      == want), None)  # fmt: skip
        if match:
            chosen.append(match)
    return (chosen + [ex for ex in picked if ex not in chosen])[:k]
