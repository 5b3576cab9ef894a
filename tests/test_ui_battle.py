"""A blind battle is really blind: before the vote nothing tells a RAG contestant from a plain one (no passages,
no names, no speed, no citation marks, the same placeholder, both answers shown at once with the same markup, no
setting that acts on one side only); after the one vote the names and the full passages appear, and a vote on
answers an earlier reveal already named is kept but not rated. Checked on the event functions with fake contestants
and in a real browser (base vs rag:sample), plus the side-by-side view with one column per contestant and full
passages.
Screenshots: test-artifacts/arena-battle-prevote.png, arena-battle-revealed.png, arena-side-by-side.png."""

from __future__ import annotations

import random

import gradio as gr
import pytest

from lab.arena import battles
from lab.arena.contestants import ContestantError
from lab.config import GenConfig
from lab.generation import Answer
from lab.ui import arena_battle, arena_view
from lab.ui.common import GEN_FIELDS

PASSAGE = "The drive shaft coupling is inspected every 400 operating hours with gauge KX-7."


class Fake:
    def __init__(self, name: str, text: str, passages: list):
        self.name, self.text, self.passages = name, text, passages

    def answer(self, question: str, gen: GenConfig) -> Answer:
        return Answer(self.text, self.passages, 1.5 if self.passages else 0.2, 12, 6, self.name, draft="")


def _fake_contestants(monkeypatch):
    fakes = {
        "base": Fake("base", "It is checked often.", []),
        "rag:docs": Fake(
            "rag:docs",
            "According to the passages, every 400 hours [1] (source: m.md).",  # the RAG prompt's own marks
            [{"text": PASSAGE, "source": "m.md", "score": 0.8}],
        ),
    }
    monkeypatch.setattr(arena_battle.contestants, "responder", lambda ws, cache, name: fakes[name])
    return fakes


def _texts(outputs: dict) -> str:
    """Every text a battle's outputs show (answers, panels, status, reveal, id), by name."""
    values = [v for name in ("sides", "infos") for v in outputs.get(name, [])]
    values += [outputs.get(name) for name in ("status", "reveal", "battle_id")]
    return " ".join(v for v in values if isinstance(v, str))


def test_nothing_identifies_a_contestant_before_the_vote(ws, monkeypatch):
    _fake_contestants(monkeypatch)
    outs = list(arena_battle._battle(ws, None, ["base", "rag:docs"], "How often is the coupling checked?", 16, 0))
    first, last = outs[0], outs[-1]
    assert first["sides"] == first["infos"] == ["", ""]  # both sides wait with the same (empty) value
    for snapshot in outs[:-1]:  # while generating: no answer text, no passage, no name on either side
        shown = _texts({k: v for k, v in snapshot.items() if k != "status"})
        assert "400" not in shown and "checked often" not in shown
    sides, infos, status, battle_id, state = (last[k] for k in ("sides", "infos", "status", "battle_id", "state"))
    # both at once, in one update, the citation, source note and "according to the passages" hidden
    assert set(sides) == {"It is checked often.", "Every 400 hours."}
    assert infos == ["", ""] and "vote" in status
    everything = _texts(last)
    for secret in (PASSAGE[:30], "m.md", "rag:docs", "base", "tokens/s", "[1]", "passages"):
        assert secret not in everything
    row = battles.get_battle(ws.db_path, battle_id)
    generated = {"It is checked often.", "According to the passages, every 400 hours [1] (source: m.md)."}
    assert row["status"] == "ready" and {row["answer_a"], row["answer_b"]} == generated  # stored as generated
    assert state["battle"] == battle_id

    voted = arena_battle._vote(ws, state, "tie")
    reveal, (info_a, info_b) = voted["reveal"], voted["infos"]
    assert "saved" in reveal and f"**A** was {arena_view.name_html(row['system_a'])}" in reveal
    rag_info = info_a if row["system_a"] == "rag:docs" else info_b
    assert PASSAGE in rag_info and "m.md" in rag_info and "<details" in rag_info
    assert "every 400 hours [1]" in rag_info  # the answer as generated, after the vote
    assert "as generated" not in (info_b if rag_info is info_a else info_a)  # nothing hidden on the plain side
    again = arena_battle._vote(ws, state, "a")  # the same battle cannot be voted on twice
    assert "refused" in again["reveal"] and "already has its vote" in again["reveal"]
    assert len(battles.load_votes(ws.db_path)) == 1


def test_a_failed_contestant_voids_the_battle(ws, monkeypatch):
    fakes = _fake_contestants(monkeypatch)

    def broken(question, gen):
        raise ContestantError("index 'docs' cannot be opened")

    fakes["rag:docs"].answer = broken
    last = list(arena_battle._battle(ws, None, ["base", "rag:docs"], "q?", 16, 0))[-1]
    assert "void" in last["status"] and "cannot be opened" in last["status"] and "bug" not in last["status"]
    assert last["state"] == {} and last["sides"] == ["", ""]
    assert all(b.interactive is False for b in last["buttons"])
    assert "No finished battle" in arena_battle._vote(ws, {}, "a")["reveal"]


def test_while_both_answers_are_generated_the_event_changes_only_the_status_line(ws, monkeypatch):
    """The answers may come from a ZeroGPU slot, whose yields cross a process boundary as plain values keyed by
    name: the waiting line comes back alone and the event, in the app's process, updates that line alone."""
    fakes = _fake_contestants(monkeypatch)
    with gr.Blocks() as demo:
        arena_battle.build(ws, None, list(fakes))
    (event,) = [fn for fn in demo.fns.values() if fn.api_name == "arena_battle"]
    status = event.outputs[8]
    outs = list(event.fn(list(fakes), "How often is the coupling checked?", 16, 0))
    waiting = [o for o in outs if list(o) == [status]]
    assert waiting and all("Generating both answers" in o[status] for o in waiting)
    assert set(outs[-1]) == set(event.outputs) and "vote" in outs[-1][status]


def test_a_vote_that_cannot_be_stored_keeps_the_battle_open_for_another_try(ws, monkeypatch):
    _fake_contestants(monkeypatch)
    state = list(arena_battle._battle(ws, None, ["base", "rag:docs"], "q?", 16, 0))[-1]["state"]
    stored = battles.vote

    def full_disk(*args):
        raise OSError("no space left on the workspace's disk")

    monkeypatch.setattr(arena_battle.battles, "vote", full_disk)
    failed = arena_battle._vote(ws, state, "a")
    assert failed["reveal"] == "**Vote not saved:** no space left on the workspace's disk"
    assert all(b.interactive for b in failed["buttons"]) and "state" not in failed  # the battle stays votable
    monkeypatch.setattr(arena_battle.battles, "vote", stored)
    assert "saved" in arena_battle._vote(ws, state, "a")["reveal"]


def test_a_battle_gives_the_voter_no_setting_that_acts_on_one_side_only(ws, monkeypatch):
    """RAG-only settings would let a voter single out the side that reads passages (abstain_below=1: it answers
    "I don't know" to everything), so a battle takes only max new tokens and temperature."""
    fakes = _fake_contestants(monkeypatch)
    asked = []
    monkeypatch.setattr(Fake, "answer", lambda self, q, gen: asked.append(gen) or Answer(self.text, system=self.name))
    with gr.Blocks() as demo:
        arena_battle.build(ws, None, list(fakes))
    (event,) = [fn for fn in demo.fns.values() if fn.api_name == "arena_battle"]
    assert [c.label for c in event.inputs[2:]] == ["Max new tokens", "Temperature (0 = greedy, used for scoring)"]
    assert not any("RAG" in str(c.label) for c in event.inputs)
    last = list(arena_battle._battle(ws, None, list(fakes), "q?", 16, 0, 1.0))[-1]  # abstain_below=1 from the API
    assert "max_new_tokens, temperature" in last["status"] and last["state"] == {}
    assert asked == [] and battles.load_votes(ws.db_path, blind_only=False) == []
    last = list(arena_battle._battle(ws, None, list(fakes), "q?", 16, 0))[-1]
    defaults = GenConfig()
    assert last["state"] and len(asked) == 2 and asked[0] == asked[1]
    assert all(getattr(g, f) == getattr(defaults, f) for g in asked for f in GEN_FIELDS[2:])


@pytest.mark.parametrize(
    ("generated", "sources", "shown"),
    [
        ("Every 400 hours [1].\n2. [2] (source: 03-lo", ["03-lockout.md"], "Every 400 hours."),  # cut by the limit
        ("Every 400 hours.\n\n[2] (", [], "Every 400 hours."),
        ("It is 3 [1, 2", [], "It is 3"),
        ("The 03-lockout-tagout steps take 12 minutes.", ["docs/03-lockout-tagout.md"], "The steps take 12 minutes."),
        ("See m.md for the 400 hours.", ["m.md"], "See for the 400 hours."),
        ("Read the manual first (see table", ["manual.pdf"], "Read the manual first (see table"),  # plain words stay
    ],
)
def test_blind_text_also_hides_cut_off_marks_and_the_answers_own_file_names(generated, sources, shown):
    assert battles.blind_text(generated, sources) == shown


def test_a_voter_sees_no_cut_off_source_note_or_file_name_before_the_vote(ws, monkeypatch):
    fakes = _fake_contestants(monkeypatch)
    fakes["rag:docs"].text = "Per m.md, every 400 hours [1].\n2. [2] (source: m."  # the token limit hit mid-note
    last = list(arena_battle._battle(ws, None, ["base", "rag:docs"], "How often?", 16, 0))[-1]
    assert set(last["sides"]) == {"It is checked often.", "Per, every 400 hours."}
    reveal = "".join(arena_battle._vote(ws, last["state"], "tie")["infos"])
    assert "(source: m." in reveal  # the answer as generated, after the vote


def _battle_and_vote(ws, question: str, winner: str = "a") -> str:
    """The reveal line after a battle on `question` and a vote for `winner`."""
    last = list(arena_battle._battle(ws, None, ["base", "rag:docs"], question, 16, 0))[-1]
    return arena_battle._vote(ws, last["state"], winner)["reveal"]


def test_a_vote_on_answers_already_revealed_for_that_question_is_not_rated(ws, monkeypatch):
    """Greedy answers repeat: after one vote revealed who wrote which answer, the same question asked again shows
    the same answers, and its voter knows the sides. Such a vote is kept but not rated; a new question is."""
    _fake_contestants(monkeypatch)
    first = _battle_and_vote(ws, "How often is the coupling checked?")
    assert "saved" in first and "Not rated" not in first
    again = _battle_and_vote(ws, "  how often is the COUPLING checked ")  # case, spacing, punctuation: the same
    assert "saved" in again and "Not rated" in again and "already showed" in again
    fresh = _battle_and_vote(ws, "Which gauge is used for it?")
    assert "saved" in fresh and "Not rated" not in fresh
    rated = battles.load_votes(ws.db_path)
    assert [v["question"] for v in rated] == ["How often is the coupling checked?", "Which gauge is used for it?"]
    assert len(battles.load_votes(ws.db_path, blind_only=False)) == 3  # kept, for the teacher's export


def test_only_a_revealed_answer_from_the_same_contestant_makes_a_vote_not_blind(ws):
    def voted(a: str, b: str, text_a: str, text_b: str) -> dict:
        bid = battles.start_battle(ws.db_path, "q?", a, b)
        battles.finish_battle(ws.db_path, bid, text_a, text_b)
        return battles.vote(ws.db_path, bid, "tie")

    assert voted("base", "rag:x", "Four.", "Five.")["blind"]
    assert voted("ft:r", "rag:y", "Four.", "Five.")["blind"]  # the same words from other contestants
    assert voted("base", "ft:r", "Six.", "Six.")["blind"]  # identical answers: no side to tell apart
    repeat = voted("ft:r", "rag:x", "Seven.", "Five.")  # rag:x's "Five." was named in the first vote's reveal
    assert not repeat["blind"] and repeat["seen_in"] == 1
    assert [v["blind"] for v in battles.load_votes(ws.db_path, blind_only=False)] == [1, 1, 1, 0]


def test_sides_are_drawn_anew_for_every_battle():
    orders = {battles.pick_pair(["base", "rag:x"]) for _ in range(64)}  # unseeded, as _battle calls it
    assert orders == {("base", "rag:x"), ("rag:x", "base")}
    assert len({battles.pick_pair(["base", "rag:x"], random.Random(7)) for _ in range(8)}) == 1  # seeds reproduce


def _structure(page, selector: str) -> str:
    """Tags, classes and visibility of everything under `selector` (not its text): the markup skeleton."""
    return page.eval_on_selector(
        selector,
        """el => { const sig = n => { if (n.nodeType !== 1) return '';
              const cs = getComputedStyle(n); if (cs.display === 'none' || cs.visibility === 'hidden') return '';
              const cls = [...n.classList].filter(c => !/^(battle-|svelte-)/.test(c)).sort().join('.');
              return n.tagName + '.' + cls + '[' + [...n.children].map(sig).join(',') + ']'; };
            return sig(el); }""",
    )


def _pool(battle) -> list[str]:
    return sorted(t.strip() for t in battle.locator("#battle-pool .token").all_inner_texts())


def _side_text(page, side: str) -> str:
    box = page.locator(f"#battle-answer-{side} textarea")
    return page.locator(f"#battle-answer-{side}").inner_text() + "|" + (box.get_attribute("placeholder") or "")


def test_browser_battle_rag_and_plain_look_the_same_until_the_vote(page, shot):
    page.get_by_role("tab", name="Arena").click()
    page.get_by_role("tab", name="Blind battle").click()
    battle = page.locator("#arena-battle")
    assert _pool(battle) == ["base", "rag:sample"]  # the sample workspace: one plain and one RAG contestant
    battle.get_by_label("Question").fill("What is checked during the yearly inspection?")
    battle.get_by_text("Generation settings").click()
    battle.get_by_label("number input for Max new tokens").fill("16")
    battle.get_by_role("button", name="Start battle").click()
    page.get_by_text("Generating both answers").first.wait_for()
    page.get_by_text("Both answers are in").wait_for(timeout=300_000)
    answers = [page.locator(f"#battle-answer-{s} textarea").input_value() for s in "ab"]
    assert all(answers)
    assert _structure(page, "#battle-answer-a") == _structure(page, "#battle-answer-b")
    assert _structure(page, "#battle-reveal-a") == _structure(page, "#battle-reveal-b")
    assert _side_text(page, "a").replace("Model A", "Model B") == _side_text(page, "b")
    before = battle.inner_text()
    assert "Passages" not in before and "tokens/s" not in before
    shot(page, "arena-battle-prevote")

    page.get_by_role("button", name="A is better").click()
    page.get_by_text("Model A was").wait_for()
    revealed = {s: page.locator(f"#battle-reveal-{s}").inner_text() for s in "ab"}
    rag_side = "a" if "rag:sample" in revealed["a"] else "b"
    assert "base" in revealed["b" if rag_side == "a" else "a"]
    page.locator(f"#battle-reveal-{rag_side} summary").click()
    passage = page.locator(f"#battle-reveal-{rag_side} .arena-passage").first.inner_text()
    snippet = " ".join(passage.split()[-8:])  # words from the passage body, shown in full only now
    assert len(snippet) > 20 and snippet not in " ".join(before.split())
    assert page.get_by_role("button", name="Tie").is_disabled()  # one vote per battle
    shot(page, "arena-battle-revealed")


def test_browser_side_by_side_one_column_per_contestant_with_full_passages(page, shot):
    page.get_by_role("tab", name="Arena").click()
    side = page.locator("#arena-side")
    cols = side.locator(".arena-side-col")
    assert sum(c.is_visible() for c in cols.all()) == 2  # the default pick: base and rag:sample
    side.get_by_label("Contestants").click()
    page.keyboard.type("base:embedded")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    side.locator(".arena-side-col h3", has_text="base:embedded").wait_for()
    assert sum(c.is_visible() for c in cols.all()) == 3
    side.get_by_label("Question").fill("What is checked during the yearly inspection?")
    side.get_by_text("Generation settings").click()
    side.get_by_label("number input for Max new tokens").fill("16")
    side.get_by_role("button", name="Ask").click()
    side.locator("details.arena-passages").first.wait_for(timeout=300_000)
    page.get_by_text("Generating:").wait_for(state="hidden", timeout=300_000)
    assert side.locator("details.arena-passages").count() == 1  # only the RAG contestant read passages
    assert side.get_by_text("answers from the model alone").count() == 2
    first = side.locator(".arena-passage").first
    assert not first.is_visible()  # closed until asked for
    side.locator("details.arena-passages summary").click()
    assert first.is_visible() and len(first.inner_text().split()) > 5
    shot(page, "arena-side-by-side")


def test_blind_text_keeps_the_answers_own_numbers_and_words_that_merely_look_like_a_source():
    assert battles.blind_text("3.") == "3."  # a bare number that was the answer stays
    assert battles.blind_text("The answer is:\n3.") == "The answer is:\n3."
    assert battles.blind_text("1. [1]\n2. The valve [2]") == "2. The valve"  # only the item a citation emptied goes
    assert (
        battles.blind_text("Follow the safety manual first.", ["Safety Manual.pdf"])
        == "Follow the safety manual first."
    )
    assert battles.blind_text("The 2 bolts.", ["2.md"]) == "The 2 bolts."
    assert battles.blind_text("Use X-200.", ["X-200.pdf"]) == "Use X-200."
    assert "03-lockout-tagout" not in battles.blind_text("See 03-lockout-tagout first.", ["03-lockout-tagout.md"])
