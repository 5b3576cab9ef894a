"""Which questions an evaluation asks when no evaluation file is given: the questions held out from a fine-tuned
contestant's own dataset, the sample's held-out set only for the sample domain, and a clear error otherwise.

Shared by the Arena tab's batch evaluation and `python -m lab eval`, so neither scores own data on the sample's
questions. No gradio here.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.arena import contestants
from lab.config import RagConfig, TrainConfig
from lab.data.evalset import held_out_questions, sample_evalset_path
from lab.errors import LabError
from lab.workspace import SAMPLE, Workspace

UPLOAD_HINT = 'upload an evaluation JSONL (one {"question": ..., "answer": ...} per line; `--qa FILE` in the CLI)'


class QuestionsError(LabError):
    """No question set of its own fits these contestants, and the sample's would not measure them."""


def default_questions(ws: Workspace, systems: list[str]) -> tuple[str, str]:
    """(question file, a sentence saying which questions) when no evaluation file is given.

    A fine-tuned contestant trained on the user's own dataset is asked the questions held out from that dataset (its
    validation split, never trained on), written to a file under the workspace's tmp folder; contestants of the
    sample domain get its held-out set. Never the sample's for own data: a contestant reading an own index with no
    dataset behind it, or a dataset that holds nothing out, raises QuestionsError saying what to do."""
    datasets = [d for d in dict.fromkeys(run_dataset(ws, s) for s in systems) if d and d != SAMPLE]
    if datasets:
        return held_out_file(ws, datasets[0])
    own = [s for s in systems if index_corpus(ws, s) not in ("", SAMPLE)]
    if own:
        raise QuestionsError(
            f"{', '.join(own)} read{'s' if len(own) == 1 else ''} your own documents, and the sample's questions "
            f"would not measure that: {UPLOAD_HINT}"
        )
    return str(sample_evalset_path(ws)), "the sample domain's held-out questions"


def run_dataset(ws: Workspace, spec: str) -> str:
    """The dataset a fine-tuned contestant's run trained on ("" for other contestants or a run not here)."""
    run = contestants.parse(spec).run
    path = ws.dir("runs", run) / "config.json" if run else None
    return TrainConfig.load(path).dataset if path and path.is_file() else ""


def index_corpus(ws: Workspace, spec: str) -> str:
    """The corpus a RAG contestant's index was built from ("" when it reads none or the index is not built)."""
    index = contestants.parse(spec).index
    path = ws.dir("indexes", index) / "config.json" if index else None
    return RagConfig.load(path).corpus if path and path.is_file() else ""


def held_out_file(ws: Workspace, dataset: str) -> tuple[str, str]:
    """(a JSONL of the questions held out from `dataset`, a sentence saying so); QuestionsError when it holds none."""
    from lab.data import load_split

    items = held_out_questions(load_split(ws, dataset, "val"), Path(dataset).stem)
    if not items:
        raise QuestionsError(
            f"dataset {dataset!r} holds no rows out of training (too few rows, or a validation fraction of 0), so "
            f"it has no questions of its own and the sample's would not measure it: {UPLOAD_HINT}, or save "
            "the dataset again in the Data tab with more rows"
        )
    path = ws.tmp / "evalsets" / f"held-out-{Path(dataset).stem}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(it.to_dict()) + "\n" for it in items), encoding="utf-8")
    said = f"{len(items)} questions held out from dataset {dataset!r} (its validation split, never trained on)"
    return str(path), said
