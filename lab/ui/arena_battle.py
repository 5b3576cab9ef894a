"""The Arena's blind battle: two contestants drawn at random answer one question on random sides; one vote each.

A battle is issued by the server (lab.arena.battles, with an id), both answers are generated out of sight and shown
together with identical markup, both through one normaliser (`battles.battle_text`: no citation marks or source
names, Markdown as plain text, cut at the last full sentence within the same budget); names, speed, passages and the
answers as generated come only after the one vote, which must name that battle. The voter sets only the generation
settings that act on both sides alike (BATTLE_FIELDS); the passage readers' own settings stay at their defaults, or a
voter could make the RAG side recognisable. The pool's default (`lab.arena.pool`) is read again when the page or the
Blind battle tab opens.
Both Arena answering events (this battle, the side-by-side question) run through `live_events` and `session_of`:
with batching on (lab.generation.batcher) many of them run at once, so the answers of a class meet in shared
batches, each session taking its turn; otherwise one generation at a time, as every generation event.
Events: arena_battle, arena_vote_a, arena_vote_b, arena_vote_tie, arena_vote_both_bad, arena_submit_vote (API
only: battle id, winner). Errors become a status line and a toast, never a traceback.
"""

from __future__ import annotations

import dataclasses
import time

import gradio as gr

from lab.arena import battles, contestants, live
from lab.arena.pool import battle_pool
from lab.config import GenConfig
from lab.errors import LabError, user_message
from lab.generation import batcher, passage_dict
from lab.ui import arena_view as view
from lab.ui.common import (
    GEN_FIELDS,
    READ_ONLY,
    View,
    ask_row,
    contestant_names,
    gen_controls,
    gen_from,
    generation,
    shows_errors,
)
from lab.ui.spaces import answers_duration, gpu, prefetch

BATTLE_FIELDS = GEN_FIELDS[:2]  # max_new_tokens, temperature: they act on every contestant alike
LIVE = "live"  # the concurrency group of the Arena's answering events when they are batched
WAITING_PER_BATCH = 2  # events let in per batch row: the next batch forms while one runs


def live_events() -> dict:
    """Event keyword arguments for an Arena answering event. Batched: enough events run at once for batches to
    form (each waits for its answers in a shared batch; the batcher bounds the rows generated together, so memory
    stays bounded); unbatched: the generation group's own limit."""
    if not batcher.enabled():
        return generation()
    return {"concurrency_id": LIVE, "concurrency_limit": WAITING_PER_BATCH * batcher.max_batch()}


def session_of() -> str:
    """The browser session of the event being handled (its turn in the shared batches); "" outside an event."""
    request = gr.context.LocalContext.request.get(None)
    return str(getattr(request, "session_hash", "") or "")


def build(ws, cache, choices):
    """The Blind battle sub-tab; returns its contestant pool and whether this page's voter edited it (the Arena
    refreshes its choices, and its default through `follow_work`)."""
    gr.Markdown(
        "Two contestants drawn at random answer on random sides. Both answers appear together, once both are "
        "complete, with nothing that tells them apart; names, speed and passages are shown after you vote. "
        "Only these blind votes count for the leaderboard. The pool starts with a spread of the newest work (base, "
        "the newest index, the newest fine-tuned run, both together, the newest run trained for RAG); add any other."
    )
    label = "Contestant pool (at least 2)"
    pool, question, start = ask_row(choices, _default(ws, choices), label, "battle-pool", "Start battle")
    edited = gr.State(False)
    pool.input(lambda: True, None, edited, api_name=False, **READ_ONLY)  # the voter's own pool is kept from now on
    gen = gen_controls(BATTLE_FIELDS)
    status = gr.Markdown("Pick the pool, type a question and press **Start battle**.")
    sides, buttons, reveal, infos = _battle_views()
    battle_id = gr.Textbox(visible=False, label="Battle id (vote with it through arena_submit_vote)")
    state = gr.State({})
    shown = Battle(sides, infos, buttons, status, reveal, battle_id, state)
    voted = Vote(reveal, infos, buttons, state)

    @gpu(duration=lambda *_: answers_duration(2), prepare=lambda pool, *_: prefetch(ws, cache, pool))
    def answer_both(*args):
        yield from _battle(ws, cache, *args)

    def on_battle(*args):  # in this process: a GPU slot's outputs are plain values, keyed by name
        for outputs in answer_both(*args):
            yield shown.updates(**outputs)

    start.click(on_battle, [pool, question, *gen], shown.outputs(), api_name="arena_battle", **live_events(),
                show_progress_on=sides)  # fmt: skip
    for winner, button in zip(battles.WINNERS, buttons, strict=True):
        button.click(
            lambda s, w=winner: voted.updates(**_vote(ws, s, w)),
            state,
            voted.outputs(),
            api_name=f"arena_vote_{winner}",
            concurrency_limit=None,
        )
    _submit_vote_api(ws)
    return pool, edited


def follow_work(demo, ws, pool, edited, added, triggers) -> None:
    """Read the pool's choices and default again on page load (api: arena_battle_pool) and on each of `triggers`
    (listener methods such as a tab's `select`): runs and indexes made after the app started enter it. A pool the
    voter edited keeps its value and only gains the new choices. `added`: this page's extra base models."""

    def on_pool(was_edited, more):
        return pool_update(ws, bool(was_edited), list(more or []))

    demo.load(on_pool, [edited, added], pool, api_name="arena_battle_pool", **READ_ONLY)
    for trigger in triggers:
        trigger(on_pool, [edited, added], pool, api_name=False, **READ_ONLY)


def pool_update(ws, was_edited: bool, more: list[str]) -> dict:
    """The pool picker with this workspace's contestants (plus `more`) and, unless edited, its default value."""
    choices = _available(ws)
    choices += [m for m in more if m not in choices]
    return gr.update(choices=choices) if was_edited else gr.update(choices=choices, value=_default(ws, choices))


def _default(ws, choices: list[str]) -> list[str]:
    """The default pool (lab.arena.pool); the first two choices when the workspace cannot be read."""
    pool = _pool(ws, [c for c in choices if not c.startswith("base:")])
    return choices[:2] if pool is None else pool


@shows_errors(lambda message: ["base"])  # logged when it is a bug; the fallback stands
def _available(ws) -> list[str]:
    return contestants.available(ws)


@shows_errors(lambda message: None)  # logged when it is a bug; the caller's fallback stands
def _pool(ws, choices: list[str]) -> list[str]:
    return battle_pool(ws, choices)


def _battle_config(*values) -> GenConfig:
    """A battle's GenConfig from BATTLE_FIELDS values. The RAG-only settings (abstention, focus) are refused: set by
    the voter, they act on one side only (abstain_below=1 makes the side that reads passages answer "I don't know"
    to everything), which would tell the sides apart; they stay at their defaults."""
    if len(values) > len(BATTLE_FIELDS):
        raise LabError(
            f"a battle takes {len(BATTLE_FIELDS)} generation settings ({', '.join(BATTLE_FIELDS)}), got {len(values)}:"
            " the RAG settings stay at their defaults, so that no side can be singled out"
        )
    return gen_from(*values, fields=BATTLE_FIELDS)


def _battle_views() -> tuple[list, list, gr.Markdown, list]:
    """The two answer boxes (built identically: structure must not give a contestant away), the vote buttons,
    the reveal line and the two reveal panels (empty until the vote): (sides, buttons, reveal, infos)."""
    sides, infos = [], []
    with gr.Row():
        for s in "AB":
            sides.append(
                gr.Textbox(
                    label=f"Model {s}",
                    placeholder=view.BATTLE_WAITING,
                    lines=6,
                    max_lines=30,
                    interactive=False,
                    elem_id=f"battle-answer-{s.lower()}",
                    elem_classes="battle-answer",
                )
            )
    with gr.Row():
        buttons = [gr.Button(label, interactive=False) for label in battles.LABELS.values()]
    reveal = gr.Markdown()
    with gr.Row(equal_height=False):
        for s in "AB":  # names, speed and passages after the vote
            infos.append(gr.HTML("", elem_id=f"battle-reveal-{s.lower()}", elem_classes="battle-reveal"))
    return sides, buttons, reveal, infos


@dataclasses.dataclass(frozen=True)
class Battle(View):
    """A battle's outputs, in the arena_battle API's order: the two answers, the two reveal panels, the four vote
    buttons, the status line, the reveal line, the battle's id and its server-side state."""

    sides: list
    infos: list
    buttons: list
    status: gr.Markdown
    reveal: gr.Markdown
    battle_id: gr.Textbox
    state: gr.State


@dataclasses.dataclass(frozen=True)
class Vote(View):
    """A vote's outputs, in the arena_vote_* APIs' order."""

    reveal: gr.Markdown
    infos: list
    buttons: list
    state: gr.State


def _buttons(active: bool) -> list:
    return [gr.Button(interactive=active) for _ in battles.WINNERS]


def _shown(status: str, sides=("", ""), buttons: bool = False, battle_id: str = "", state=None) -> dict:
    """Every battle output by name (Battle's fields); the reveal panels and line are empty until the vote."""
    return {"sides": list(sides), "infos": ["", ""], "buttons": _buttons(buttons), "status": status, "reveal": "",
            "battle_id": battle_id, "state": state or {}}  # fmt: skip


def _not_started(message: str) -> dict:
    """The battle's outputs when it cannot start or stops: empty sides and reveals, no vote, `message`."""
    gr.Warning(message)
    return _shown(f"**{message}**")


@shows_errors(_not_started)
def _battle(ws, cache, pool, question, *settings):
    """Issue a battle, generate both answers out of sight, then show both at once (or void the battle). Yields
    the outputs by name (Battle's fields), while the answers are generated only the status line."""
    a, b = battles.pick_pair([p for p in pool or [] if p])
    cfg = _battle_config(*settings)
    if not (question or "").strip():
        raise LabError("type a question first")
    for name in (a, b):
        contestants.parse(name)
    battle = battles.start_battle(ws.db_path, question, a, b, cfg.to_dict())
    wait = "Generating both answers: they appear together when both are complete"
    yield _shown(f"{wait}...")
    makers = [lambda n=n: contestants.responder(ws, cache, n) for n in (a, b)]
    began, answers, errors = time.monotonic(), [None, None], ["", ""]
    for snapshot in live.stream_many(makers, question, cfg, poll_s=1.0, cache=cache, session=session_of()):
        answers, errors = snapshot  # only the elapsed time is shown meanwhile: a side would give itself away
        yield {"status": f"{wait} ({time.monotonic() - began:.0f} s)..."}
    if any(errors) or not live.all_done(answers, errors):
        battles.fail_battle(ws.db_path, battle)
        why = "; ".join(f"side {s}: {e}" for s, e in zip("AB", errors, strict=True) if e) or "an answer stopped"
        gr.Warning(f"battle void: {why}")
        yield _shown(f"**This battle is void** ({why}): start a new battle.")
        return
    battles.finish_battle(ws.db_path, battle, answers[0].text, answers[1].text)
    texts = [_blind(x, cfg) or "(empty answer)" for x in answers]  # one normaliser: no style tells which side
    state = {"battle": battle, "sides": [_side_state(x, cfg) for x in answers]}
    ready = "Both answers are in: read them and vote below."
    yield _shown(ready, texts, buttons=True, battle_id=battle, state=state)


def _blind(answer, cfg: GenConfig) -> str:
    """The answer's text as the voter sees it before the vote (battles.battle_text, with its passages' sources;
    an answer that used every token it was allowed was stopped by the limit)."""
    sources = [passage_dict(p).get("source") for p in answer.passages]
    return battles.battle_text(answer.text, sources, cut=answer.completion_tokens >= cfg.max_new_tokens)


def _side_state(answer, cfg: GenConfig) -> dict:
    """What the reveal shows after the vote (kept server-side in gr.State until then)."""
    return {
        "speed": view.speed(answer),
        "draft": answer.draft,
        "generated": answer.text if _blind(answer, cfg) != answer.text.strip() else "",
        "passages": [passage_dict(p) for p in answer.passages],
    }


def _vote(ws, state, winner) -> dict:
    """Store the vote and reveal both sides: the outputs by name (Vote's fields); the reveal panels stay as they
    are when nothing was stored."""
    if not state or not state.get("battle"):
        gr.Warning("no finished battle to vote on: start a battle first")
        return {"reveal": "No finished battle to vote on: start a battle first.", "buttons": _buttons(False),
                "state": {}}  # fmt: skip
    row = _cast(ws, state["battle"], winner)
    if "reveal" in row:  # refused or not saved: the vote's outputs
        return row
    names = [row["system_a"], row["system_b"]]
    labels = contestant_names(ws, names)  # one friendly name per contestant, the id small
    infos = [view.battle_reveal_html(s, n, x, labels) for s, n, x in zip("AB", names, state["sides"], strict=True)]
    a, b = (view.name_html(n, labels) for n in names)
    reveal = f"Vote #{row['vote_id']} saved ({battles.LABELS[winner]}). **A** was {a}, **B** was {b}."
    if not row["blind"]:
        reveal += (
            f" Not rated: vote #{row['seen_in']} already showed one of these answers to this question with its"
            " contestant's name, so this battle was not blind. Ask a new question for a rated vote."
        )
    return {"reveal": reveal, "infos": infos, "buttons": _buttons(False), "state": {}}


def _not_saved(message: str) -> dict:
    """The vote's outputs when it could not be stored (a bug or the disk): the battle and its buttons stay, so
    the voter can try again."""
    gr.Warning(message)
    return {"reveal": f"**Vote not saved:** {message}", "buttons": _buttons(True)}


@shows_errors(_not_saved)
def _cast(ws, battle: str, winner: str) -> dict:
    """Store the vote: the battle's row, or the vote's outputs (with a "reveal") that say why it was refused or
    not saved."""
    try:
        return battles.vote(ws.db_path, battle, winner)
    except battles.BattleError as exc:  # an unknown, unfinished or already voted battle: it takes no vote now
        message = user_message(exc)
        gr.Warning(message)
        return {"reveal": f"**Vote refused:** {message}", "buttons": _buttons(False), "state": {}}


def _submit_vote_api(ws) -> None:
    """An API-only endpoint for scripted arenas: vote on a battle this server issued (the battle id that
    arena_battle returned) with a, b, tie or both_bad; returns the vote id. The stored vote holds the battle's
    question, contestants and answers as the server generated them; an unknown id or a second vote is refused, and a
    vote on answers an earlier reveal already named is stored but not rated (battles.vote)."""

    def submit(battle_id: str, winner: str) -> int:
        row = shows_errors(lambda message: message)(battles.vote)(ws.db_path, battle_id, winner)
        if isinstance(row, str):
            raise gr.Error(f"vote refused: {row}")
        return int(row["vote_id"])

    gr.api(submit, api_name="arena_submit_vote", concurrency_limit=None)
