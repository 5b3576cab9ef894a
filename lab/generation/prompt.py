"""The exact prompt a RAG contestant sends, as text: what the RAG tab shows and `python -m lab index prompt` prints.

Boundary: builds nothing of its own; it runs the steps the Arena's responder runs (its retrieval, then
`arena_rag_messages`, then the generator's chat template), so the view and the Arena cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from lab.config import GenConfig
from lab.generation import arena_rag_messages


def template_text(tokenizer, messages: list[dict[str, str]]) -> str:
    """The messages rendered with the tokenizer's chat template, ending with the assistant's turn opened."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def arena_prompt(index, question: str, gen: GenConfig, tokenizer) -> tuple[list[Any], str]:
    """The passages and the exact prompt text the Arena's `rag:INDEX` contestant sends for `question`.

    Same steps as `lab.generation.engine.ModelResponder`: `retrieve_many` with `gen.top_k` in the index's own mode
    (no cutoff), `arena_rag_messages` (sentence focus with the index's embedder, the character limit), then the
    generator's chat template (`tokenizer`) with the generation prompt."""
    passages = list(index.retrieve_many([question], top_k=gen.top_k or None)[0])
    messages = arena_rag_messages(question, passages, gen, getattr(index, "embedder", None))
    return passages, template_text(tokenizer, messages)
