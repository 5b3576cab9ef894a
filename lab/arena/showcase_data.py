"""What the whole comparison (lab.arena.showcase) reads: its questions (`question_set`: the evaluation file given,
the sample's for the sample dataset, else those held out from the chosen dataset, never the sample's) and the
corpus it indexes (the documents an evaluation file's unanswerable controls name, `held_out_docs`, are left out of
it), plus the comparison's error and input hash. No gradio here.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.config import RagConfig
from lab.data.evalset import EvalItem, held_out_questions, read_evalset, sample_evalset_path
from lab.errors import LabError
from lab.workspace import SAMPLE, Workspace, slugify

if TYPE_CHECKING:
    from lab.arena.showcase import Inputs


class ShowcaseError(LabError):
    """An input of the comparison cannot be used; the message names it and says what to do."""


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def check_corpus(ws: Workspace, corpus: str) -> None:
    if not ws.exists("corpora", corpus):
        known = ", ".join(ws.list("corpora")) or "none"
        raise ShowcaseError(f"corpus {corpus!r} does not exist; saved corpora: {known}. Save it in the Data tab")


def question_set(ws: Workspace, inp: Inputs) -> tuple[list[EvalItem], str, str]:
    """(every question, where they come from as saved with the evaluation, a sentence saying which they are).

    The evaluation file when one is given; for the sample dataset the sample's held-out set; for any other dataset
    the questions held out from it (`held_out_questions` on its validation split, which training never sees),
    never the sample's. ShowcaseError when such a dataset holds none out."""
    if inp.qa:
        return read_evalset(inp.qa), inp.qa, f"questions from the evaluation file {os.path.basename(inp.qa)}"
    if inp.dataset == SAMPLE:
        path = str(sample_evalset_path(ws))
        return read_evalset(path), path, "the sample domain's held-out questions"
    from lab.data import load_split

    items = held_out_questions(load_split(ws, inp.dataset, "val"), inp.dataset)
    if not items:
        raise ShowcaseError(
            f"dataset {inp.dataset!r} holds no rows out of training (too few rows, or a validation fraction of 0), so "
            "there are no questions of its own to ask, and the sample's would not measure your data. Give an "
            'evaluation JSONL (one {"question": ..., "answer": ...} per line) under "Your own data", or save the '
            "dataset again in the Data tab with more rows"
        )
    said = (
        f"{len(items)} question/answer pairs held out from dataset {inp.dataset!r} (its validation split, never "
        "trained on: the user turn asked, the assistant turn the reference answer)"
    )
    return items, f"held out from dataset {inp.dataset}", said


def held_out_docs(items: list[EvalItem]) -> tuple[str, ...]:
    """The documents the question set's unanswerable controls come from: the index must not hold them."""
    return tuple(sorted({it.held_out_doc for it in items if it.held_out_doc and not it.answerable}))


def indexed_corpus(ws: Workspace, corpus: str, held_out: tuple[str, ...] = (), create: bool = False) -> str:
    """The corpus the comparison indexes: `corpus` itself, or with `held_out` documents a copy of it without
    them, saved as corpus CORPUS-indexed-KEY (written when `create`; KEY from the names left out and the files)."""
    from lab.corpus import corpus_files, save_corpus

    if not held_out:
        return corpus
    files = corpus_files(ws, corpus)
    missing = sorted(set(held_out) - {p.name for p in files})
    if missing:
        raise ShowcaseError(
            f"the evaluation file holds out {', '.join(missing)}, which corpus {corpus!r} does not have: use the "
            "evaluation file generated for this corpus, or remove those unanswerable questions"
        )
    key = digest([sorted(held_out), [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]])
    name = f"{slugify(Path(corpus).name, 'corpus')[:40]}-indexed-{key[:8]}"
    if create and not ws.exists("corpora", name):
        save_corpus(ws, name, [p for p in files if p.name not in held_out])
    return name


def index_docs(meta: dict) -> list[str]:
    return sorted(d["doc_id"] for d in meta.get("documents", []))


def index_name(ws: Workspace, corpus: str) -> str:
    """The corpus's own name, unless an index of that name was built from another corpus."""
    name = slugify(corpus, "corpus")
    path = ws.dir("indexes", name) / "config.json"
    if path.is_file() and RagConfig.load(path).corpus != corpus:
        return f"start-{name}"[:64]
    return name
