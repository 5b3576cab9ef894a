"""Blind means indistinguishable: both battle answers pass through one normaliser (`battles.battle_text`) before the
vote. A RAG answer in Markdown with citations and a plain answer the token limit cut mid-word come out alike: plain
text in one paragraph, no Markdown marks, ending at a full sentence, within the same budget. Edge cases: no sentence
end at all, numbers and abbreviations that are not sentence ends, empty answers, other scripts. The vote stores and
the reveal shows the answers as generated."""

from __future__ import annotations

import re

import pytest

from lab.arena import battles
from lab.config import GenConfig
from lab.generation import Answer
from lab.ui import arena_battle

RAG_MARKDOWN = """According to the passages, the coupling is checked **every 400 hours** [1].

## Steps
1. Stop the *drive* and lock it out [2]
2. Measure the gap with gauge `KX-7` (source: 03-lockout-tagout.md)
- See [the manual](https://example.org/manual.pdf) for the limits
"""
BASE_CUT = "The coupling should be checked regularly by a trained technician. It is important to insp"
MARKS = re.compile(r"\*|#|`|\[|\]|\(source|^\s*(?:[-+]|\d+\.)\s|https?://|\n")


def _structure(text: str) -> dict:
    """What a voter could tell apart without reading the content."""
    return {
        "markdown": bool(MARKS.search(text)),
        "lines": text.count("\n") + 1,
        "ends_a_sentence": text[-1:] in ".!?",
        "within_budget": len(text) <= battles.BLIND_CHARS,
        "starts_upper": text[:1].isupper(),
    }


def test_a_markdown_rag_answer_and_a_base_answer_cut_mid_word_come_out_structurally_alike():
    rag = battles.battle_text(RAG_MARKDOWN, ["docs/03-lockout-tagout.md"], cut=False)
    base = battles.battle_text(BASE_CUT, [], cut=True)
    assert (
        _structure(rag)
        == _structure(base)
        == {
            "markdown": False,
            "lines": 1,
            "ends_a_sentence": True,
            "within_budget": True,
            "starts_upper": True,
        }
    )
    assert base == "The coupling should be checked regularly by a trained technician."  # "insp" is gone
    assert rag == (
        "The coupling is checked every 400 hours. Steps. Stop the drive and lock it out. "
        "Measure the gap with gauge KX-7. See the manual for the limits."
    )  # the words stay, the marks go: bold, header, list numbers, bullets, code, link, citations, source note


def test_both_sides_get_the_same_length_budget_and_are_cut_at_a_full_sentence():
    long_rag = " ".join(f"Step {i} keeps the **valve** closed [1]." for i in range(60))
    long_base = " ".join(f"Point {i} is about safety" + ("." if i % 3 == 2 else ",") for i in range(80))
    for text in (long_rag, long_base):
        shown = battles.battle_text(text, cut=True, limit=300)
        assert len(shown) <= 300 and shown.endswith(".") and shown in battles.plain_text(text).replace(" [1]", "")
        assert len(shown) > 200  # the last full sentence within the budget, not an early one
    assert battles.battle_text("One. Two three four.", limit=12) == "One."  # the same rule under any budget


@pytest.mark.parametrize(
    ("generated", "cut", "shown"),
    [
        ("", None, ""),
        ("   \n\n ", True, ""),
        ("**", False, ""),  # only marks
        ("Every 400 hours", False, "Every 400 hours."),  # finished on its own: its words are a sentence
        ("Every 400 hours", None, "Every 400 hours."),
        ("The valve must be inspected every four hund", True, "The valve must be inspected every four\u2026"),
        (
            "It weighs 3.5 kg. The bolt is M12, e.g. a hex bolt. The sec",
            True,
            "It weighs 3.5 kg. The bolt is M12, e.g. a hex bolt.",
        ),  # fmt: skip
        ("J. Smith wrote approx. five pages. He then", True, "J. Smith wrote approx. five pages."),
        ("Version 2.0 is current. Use it", None, "Version 2.0 is current."),  # unknown: drop only after a sentence
        ("Is it safe? Yes! Then", True, "Is it safe? Yes!"),
        ('He said "stop now." Then he', True, 'He said "stop now."'),
        ("The answer is:\n3.", False, "The answer is: 3."),  # a bare number on its own line is the answer's
        (
            "Der Wert ist 3,5 bar. Die Prüfung erfolgt z. B. jährlich. Dan",
            True,
            "Der Wert ist 3,5 bar. Die Prüfung erfolgt z. B. jährlich.",
        ),  # fmt: skip
        ("风机每400小时检查一次。然后检", True, "风机每400小时检查一次。"),  # full-width stops need no space
        ("风机每400小时检查", False, "风机每400小时检查\u3002"),
        (
            "snake_case_name stays, 2 * 3 = 6 stays, **a cut bo",
            True,
            "Snake_case_name stays, 2 * 3 = 6 stays, a cut\u2026",
        ),
    ],
)
def test_edge_cases_keep_something_readable(generated, cut, shown):
    assert battles.battle_text(generated, cut=cut) == shown


def test_no_sentence_end_within_the_budget_keeps_whole_words():
    shown = battles.battle_text("word " * 400, cut=False, limit=100)
    assert shown.endswith("word\u2026") and len(shown) <= 101 and "wor\u2026" not in shown
    assert battles.battle_text("x" * 500, limit=50) == "X" * 1 + "x" * 49 + "\u2026"  # one long token: cut, marked


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("# Title #\nText", "Title\nText"),
        ("> quoted\n> more", "quoted\nmore"),
        ("```python\nx = 1\n```", "\nx = 1\n"),
        ("![a diagram](d.png) and <b>bold</b><br>", "a diagram and  bold  "),
        ("| a | b |\n|---|:-:|\n| 1 | 2 |", "a, b\n\n1, 2"),
        ("- [x] done\n* item\n+ other", "done\nitem\nother"),
        ("Use \\*stars\\* and ~~old~~ new, __under__ _it_", "Use *stars* and old new, under it"),
        ("See <https://example.org> or [ref][1]\n[1]: https://example.org", "See https://example.org or ref\n"),
        ("Text\n---\nMore\n===", "Text\n\nMore\n"),
    ],
)
def test_plain_text_drops_markdown_marks_and_keeps_the_words(markdown, plain):
    assert battles.plain_text(markdown) == plain


class Fake:
    def __init__(self, name: str, text: str, passages: list, tokens: int):
        self.name, self.text, self.passages, self.tokens = name, text, passages, tokens

    def answer(self, question: str, gen: GenConfig) -> Answer:
        return Answer(self.text, self.passages, 1.0, 12, self.tokens, self.name)


def test_a_battle_shows_both_answers_normalised_and_stores_and_reveals_them_as_generated(ws, monkeypatch):
    fakes = {
        "rag:docs": Fake("rag:docs", RAG_MARKDOWN, [{"text": "p", "source": "03-lockout-tagout.md"}], 9),
        "base": Fake("base", BASE_CUT, [], 16),  # used every token allowed: the limit stopped it
    }
    monkeypatch.setattr(arena_battle.contestants, "responder", lambda ws, cache, name: fakes[name])
    last = list(arena_battle._battle(ws, None, list(fakes), "How often is the coupling checked?", 16, 0))[-1]
    shown = last["sides"]
    assert not any(MARKS.search(s) for s in shown) and "insp" not in " ".join(shown)
    assert _structure(shown[0]) == _structure(shown[1])
    row = battles.get_battle(ws.db_path, last["battle_id"])
    assert {row["answer_a"], row["answer_b"]} == {RAG_MARKDOWN, BASE_CUT}  # stored as generated
    reveal = "".join(arena_battle._vote(ws, last["state"], "tie")["infos"])
    assert "**every 400 hours**" in reveal and "It is important to insp" in reveal  # revealed as generated
    (vote,) = battles.load_votes(ws.db_path)
    assert {vote["answer_a"], vote["answer_b"]} == {RAG_MARKDOWN, BASE_CUT}
