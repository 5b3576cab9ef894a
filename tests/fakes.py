"""Scripted contestants for unit tests: answer from rules, no model."""

from __future__ import annotations

from collections.abc import Callable

from lab.config import GenConfig
from lab.generation import Answer


class RuleResponder:
    """A fake contestant: `rule(question) -> text` answers every question; counts its calls and remembers its id."""

    def __init__(self, name: str, rule: Callable[[str], str]):
        self.name, self.rule, self.calls = name, rule, 0

    def answer(self, question: str, gen: GenConfig) -> Answer:
        return self.answer_many([question], gen)[0]

    def answer_many(self, questions: list[str], gen: GenConfig) -> list[Answer]:
        self.calls += 1
        return [Answer(self.rule(q), [], 0.1, 10, 4, self.name) for q in questions]
