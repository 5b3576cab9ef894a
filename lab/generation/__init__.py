"""The Responder interface (what the arena knows about a contestant) and the RAG prompt.

Owns: `Answer`, the `Responder` protocol, `rag_messages` (the prompt that asks a model to answer only from
numbered passages), `arena_rag_messages` (that prompt over focused passages: the one place both the Arena and
training for RAG build it), the support check (`supported`), and re-exports the model-backed implementation
(`ModelResponder`) and the batched generation engine. Must not: import gradio, know about votes or scoring, or
import heavy libraries at module top.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from lab.config import GenConfig

IDK = "I don't know"

RAG_SYSTEM = (
    "You answer questions using only the numbered passages the user gives you. "
    "Reply with a short answer (a few words or one sentence) and cite the passage number in brackets, like [1]. "
    f'If the passages do not contain the answer, reply exactly "{IDK}" and nothing else.'
)


@dataclass
class Answer:
    """One contestant's answer to one question, with the evidence and the cost of producing it."""

    text: str
    passages: list[Any] = field(default_factory=list)  # lab.rag.Passage objects (text, source, score, ...)
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    system: str = ""
    done: bool = True  # False while an answer is still streaming in
    draft: str = ""  # the generated text when the support check replaced it with "I don't know"
    p_idk: float | None = None  # the model's probability of abstaining (a passage-reading batch answer only)
    alt: str = ""  # when it abstained by that probability: what it answers with abstaining ruled out (checked)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.latency_s if self.latency_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self) | {"passages": [passage_dict(p) for p in self.passages]}
        data["tokens_per_s"] = round(self.tokens_per_s, 3)
        return data


def passage_dict(p: Any) -> dict[str, Any]:
    """A passage (dataclass or dict) as a plain dict with text, source, score, chunk_id, doc_id."""
    if isinstance(p, dict):
        return dict(p)
    keys = ("text", "source", "score", "chunk_id", "doc_id")
    return {k: getattr(p, k, None) for k in keys}


@runtime_checkable
class Responder(Protocol):
    """A contestant: base model, fine-tuned adapter, RAG, fine-tuned + RAG, or a scripted fake in tests."""

    name: str

    def answer(self, question: str, gen: GenConfig) -> Answer: ...

    def answer_many(self, questions: list[str], gen: GenConfig) -> list[Answer]: ...


def stream_answer(responder: Responder, question: str, gen: GenConfig) -> Iterator[Answer]:
    """Partial answers as they are generated (done=False), then the final one; falls back to `answer`."""
    stream = getattr(responder, "stream", None)
    if stream is None:
        yield responder.answer(question, gen)
        return
    yield from stream(question, gen)


def format_passages(passages: list[Any], max_chars: int = 1200) -> str:
    """Number the passages [1], [2], ... with their source, each cut to `max_chars` characters."""
    blocks = []
    for i, p in enumerate(passages, 1):
        d = passage_dict(p)
        text = " ".join(str(d.get("text") or "").split())[:max_chars]
        source = f" (source: {d['source']})" if d.get("source") else ""
        blocks.append(f"[{i}]{source} {text}")
    return "\n\n".join(blocks)


def rag_messages(question: str, passages: list[Any], max_chars: int = 1200) -> list[dict[str, str]]:
    """Chat messages asking the model to answer `question` only from the numbered `passages` and cite them."""
    user = f"Passages:\n\n{format_passages(passages, max_chars)}\n\nQuestion: {question.strip()}"
    return [{"role": "system", "content": RAG_SYSTEM}, {"role": "user", "content": user}]


def arena_passages(question: str, passages: list[Any], gen: GenConfig, embedder=None) -> list[dict[str, Any]]:
    """The passages as a RAG contestant shows them: focused on the question's closest sentences (when
    `gen.focus_sentences` and an embedder are given), each cut to `gen.context_chars` characters."""
    if gen.focus_sentences > 0 and embedder is not None:
        from lab.generation.focus import focus_passages

        passages = focus_passages(question, passages, embedder, gen.focus_sentences)
    cut = (passage_dict(p) for p in passages)
    return [d | {"text": " ".join(str(d.get("text") or "").split())[: gen.context_chars]} for d in cut]


def arena_rag_messages(question: str, passages: list[Any], gen: GenConfig, embedder=None) -> list[dict[str, str]]:
    """The exact prompt a RAG contestant sends (over `arena_passages`). The Arena and training for RAG both call
    this, so the two cannot drift."""
    return rag_messages(question, arena_passages(question, passages, gen, embedder), gen.context_chars)


def passage_texts(messages_or_passages: list[Any]) -> list[str]:
    """The passage texts of a list of passages (dataclasses or dicts)."""
    return [str(passage_dict(p).get("text") or "") for p in messages_or_passages]


def supported(text: str, passages: list[Any], gen: GenConfig) -> bool:
    """The support check: True unless less than `gen.support_below` of the answer's content words are in the
    passages (abstentions and answers without content words count as supported; 0 turns the check off)."""
    if gen.support_below <= 0 or not passages:
        return True
    from lab.metrics.scoring import groundedness

    share = groundedness(text, passage_texts(passages))
    return share is None or share >= gen.support_below


def plain_messages(question: str) -> list[dict[str, str]]:
    """Chat messages for a contestant without retrieval: the question alone."""
    return [{"role": "user", "content": question.strip()}]


def __getattr__(name: str):  # lazy re-exports keep `import lab.generation` light
    if name in ("ModelResponder", "generate_batch", "stream_generate"):
        from lab.generation import engine

        return getattr(engine, name)
    raise AttributeError(name)
