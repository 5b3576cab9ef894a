"""The evaluation set for a user's own data without an evaluation file: the questions held out from the fine-tuning
dataset (taught facts, group "held-out"), questions the chosen generator writes from the documents (verbatim short
golds only, group "documents"), and unanswerable controls written from documents held out of the index (group
"unanswerable"; each names its document in `held_out_doc`, and the comparison leaves those documents out of the
index it builds). Seeded. Used by the Start tab and `python -m lab evalset generate`; no gradio here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import GenConfig
from lab.data.evalset import (
    GENERATED,
    HELD_OUT,
    UNANSWERABLE_GROUP,
    EvalItem,
    generate_questions,
    held_out_documents,
    held_out_questions,
    write_evalset,
)
from lab.errors import LabError
from lab.workspace import Workspace, slugify

EMBEDDED_NOTE = (
    "The embedded model is small: its questions will be rough (odd wording, trivial or unclear questions). Review "
    "and edit them before use, or generate with a larger model."
)
GROUP_ORDER = (HELD_OUT, GENERATED, UNANSWERABLE_GROUP)


class OwnEvalsetError(LabError):
    """Own data that no evaluation set can be built from; the message says what to do."""


@dataclass
class OwnSet:
    """A built set: its questions, the reasons for every generated question dropped, the documents held out of
    the index, and where it was written."""

    items: list[EvalItem]
    dropped: list[str] = field(default_factory=list)
    held_out_docs: tuple[str, ...] = ()
    path: str = ""

    def counts(self) -> dict[str, int]:
        return group_counts(self.items)


def group_counts(items: list[EvalItem]) -> dict[str, int]:
    """Questions per group, GROUP_ORDER first."""
    got = Counter(it.group or "(no group)" for it in items)
    return {g: got[g] for g in (*GROUP_ORDER, *sorted(set(got) - set(GROUP_ORDER))) if got[g]}


def is_embedded(model: str) -> bool:
    """Whether `model` names the embedded generator (its questions are rough: EMBEDDED_NOTE)."""
    from lab.resolve import EMBEDDED_GENERATOR_HUB_ID, EMBEDDED_NAMES

    return model in EMBEDDED_NAMES or model == EMBEDDED_GENERATOR_HUB_ID


def counts_text(counts: dict[str, int]) -> str:
    """ "12 held-out, 8 documents, 3 unanswerable"."""
    return ", ".join(f"{n} {group}" for group, n in counts.items()) or "no questions"


def model_complete(cache, model: str, max_new_tokens: int = 64) -> Callable[[str], str]:
    """`complete(prompt) -> text` on the generator `model` (greedy; the prompt as one user turn)."""
    from lab.generation.engine import generate_batch

    gen = GenConfig(max_new_tokens=max_new_tokens, temperature=0.0, batch_size=1)

    def complete(prompt: str) -> str:
        generator, tok = cache.generator(model), cache.tokenizer(model)
        return generate_batch(generator, tok, [[{"role": "user", "content": prompt}]], gen)[0][0]

    return complete


def build_own_evalset(
    ws: Workspace,
    complete: Callable[[str], str],
    dataset: str,
    corpus: str,
    n: int = 12,
    seed: int = 0,
    held_out_share: float = 0.2,
    progress: Callable[[float, str], None] | None = None,
) -> OwnSet:
    """Held-out questions of `dataset` + up to `n` questions generated from `corpus`'s documents by `complete` +
    about n/4 (at least 2) unanswerable controls from a seeded `held_out_share` of the documents (at least one,
    never all). OwnEvalsetError when neither the dataset nor the documents give a question."""
    from lab.data import load_split
    from lab.rag.chunking import load_documents

    taught = held_out_questions(load_split(ws, dataset, "val"), Path(dataset).stem) if dataset else []
    docs = {d.source: d.text for d in load_documents(ws, corpus).documents}
    if not docs:
        raise OwnEvalsetError(f"corpus {corpus!r} has no readable documents: add Markdown, text or PDF files in Data")
    kept_out = held_out_documents(list(docs), held_out_share, seed)
    controls = max(2, n // 4) if kept_out else 0
    generated, dropped = generate_questions(docs, complete, held_out=kept_out, want=n, controls=controls, seed=seed,
                                            progress=progress)  # fmt: skip
    items = taught + generated
    if not items:
        raise OwnEvalsetError(
            f"no question could be built: dataset {dataset!r} holds no rows out of training and the generator wrote "
            f"no question whose answer is copied from corpus {corpus!r} ({len(dropped)} dropped). Upload an "
            "evaluation JSONL, or generate with a larger model"
        )
    return OwnSet(items, dropped, tuple(d for d in kept_out if any(it.held_out_doc == d for it in items)))


def own_evalset_path(ws: Workspace, dataset: str, corpus: str, seed: int) -> Path:
    """Where the Start tab keeps a generated set (in the workspace's tmp folder)."""
    name = f"own-{slugify(Path(dataset).stem, 'data')}-{slugify(Path(corpus).name, 'docs')}-{seed}.jsonl"
    path = ws.tmp / "evalsets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_own(own: OwnSet, path: str | Path) -> OwnSet:
    """Write the set as the evaluation JSONL (download, edit, re-upload); returns it with its path."""
    own.path = str(write_evalset(own.items, path))
    return own
