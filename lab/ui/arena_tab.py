"""The Arena tab: side by side (1-4 named contestants, one column each), blind battles with votes, the leaderboard.

A blind battle is issued by the server (lab.arena.battles, with an id), both answers are generated out of
sight and shown together with identical markup and without the RAG prompt's citation marks
(`battles.blind_text`); names, speed, passages and the answers as generated come only after the one vote, which
must name that battle. The batch-evaluation sub-tab lives in lab.ui.arena_eval; formatting in lab.ui.arena_view;
all work in lab.arena. Every event has an api_name (arena_contestants, arena_side_by_side, arena_release,
arena_battle, arena_vote_a, arena_vote_b, arena_vote_tie, arena_vote_both_bad, arena_submit_vote (API only:
battle id, winner), arena_leaderboard). Errors become a status line and a toast, never a traceback. Models load
lazily on the first question, never in build().
"""

from __future__ import annotations

import time

import gradio as gr

from lab import catalog
from lab.arena import battles, contestants, live
from lab.arena.leaderboard import leaderboard
from lab.config import ConfigError
from lab.errors import LabError, expected, user_message
from lab.generation import passage_dict
from lab.ui import arena_eval, teacher_tab
from lab.ui import arena_view as view
from lab.ui.common import READ_ONLY, gen_controls, gen_from, generation
from lab.ui.spaces import answers_duration, gpu

MAX_SIDE = 4


def _choices(ws) -> list[str]:
    try:
        return contestants.available(ws)
    except Exception as exc:
        expected(exc)  # logged when it is a bug; the fallback below stands
        return ["base"]


def _marks(ws, choices: list[str]) -> str:
    """Which fine-tuned contestants were trained for RAG, and which ft+rag pairs read another index than theirs."""
    try:
        shown = contestants.marks(ws, choices)
    except Exception as exc:
        expected(exc)  # logged when it is a bug; the fallback below stands
        return ""
    return ("Trained for RAG: " + "; ".join(f"`{m}`" for m in shown)) if shown else ""


def _default_pick(choices: list[str]) -> list[str]:
    rag = [c for c in choices if c.startswith("rag:")]
    return ["base", *rag[:1]] if rag else choices[:2]


def build(ws, cache) -> None:
    gr.Markdown("## Arena\nCompare base, fine-tuned, RAG and fine-tuned + RAG on your own questions.")
    choices = _choices(ws)
    with gr.Row(equal_height=True):
        refresh = gr.Button("Refresh contestant list", size="sm", scale=1)
        extra = gr.Dropdown(
            catalog.arena_choices(),
            value=None,
            allow_custom_value=True,
            label="Add a base model as a contestant (or type a hub id or a local model folder)",
            info="added to the pickers below; a model that is neither embedded nor on this machine needs the hub",
            elem_id="arena-add-model",
            scale=3,
        )
    added = gr.State([])
    trained = gr.Markdown(_marks(ws, choices), elem_id="arena-marks")
    with gr.Tab("Side by side", elem_id="arena-side"):
        pick = _build_side_by_side(ws, cache, choices)
    with gr.Tab("Blind battle", elem_id="arena-battle"):
        pool = _build_battle(ws, cache, choices)
    with gr.Tab("Leaderboard", elem_id="arena-leaderboard"):
        _build_leaderboard(ws)
    with gr.Tab("Batch evaluation", elem_id="arena-eval"):
        eval_pick = arena_eval.build(ws, cache, choices)
    with gr.Tab("Teacher", elem_id="arena-teacher") as teacher:  # the whole tab, label included, hidden from students
        teacher_tab.build(ws, cache)
    gr.context.Context.root_block.load(teacher_tab.visible_for, None, teacher, api_name="teacher_visible", **READ_ONLY)

    def reload(more=()):
        c = _choices(ws)
        c += [m for m in more if m not in c]
        return [gr.Dropdown(choices=c)] * 3 + [_marks(ws, c)]

    def add(model, more):
        spec = _as_base(model)
        more = [*more, spec] if spec and spec not in more else list(more)
        return [more, *reload(more)]

    listed = [pick, pool, eval_pick, trained]
    refresh.click(reload, added, listed, api_name="arena_contestants", **READ_ONLY)
    extra.change(add, [extra, added], [added, *listed], api_name="arena_add_model", **READ_ONLY)


def _as_base(model: str | None) -> str:
    """A picked or typed model as a `base:MODEL` contestant id ("" for nothing, "base" for the embedded model)."""
    model = (model or "").strip()
    if not model:
        return ""
    spec = model if model == "base" or model.startswith("base:") else f"base:{model}"
    try:
        return contestants.parse(spec).id
    except LabError as exc:
        gr.Warning(user_message(exc))
        return ""


def _build_side_by_side(ws, cache, choices):
    default = _default_pick(choices)
    with gr.Row():
        pick = gr.Dropdown(
            choices,
            value=default,
            multiselect=True,
            allow_custom_value=True,
            label=f"Contestants (1-{MAX_SIDE}): base, ft:RUN, rag:INDEX, ft+rag:RUN:INDEX",
            elem_id="arena-side-pick",
            scale=3,
        )
        question = gr.Textbox(label="Question", scale=4)
        ask = gr.Button("Ask", variant="primary", scale=1)
    gen = gen_controls()
    status = gr.Markdown()
    cols, mds, passages = _side_columns(default)

    @gpu(duration=lambda names, *_: answers_duration(len(names or [])))
    def run(names, q, *settings):
        yield from _side_answers(ws, cache, names, q, *settings)

    ask.click(
        run,
        [pick, question, *gen],
        [status, *mds, *passages],
        api_name="arena_side_by_side",
        **generation(),
        show_progress="hidden",  # the status line counts finished answers; no bars over the columns
    )
    _follow_pick(ws, cache, pick, cols, mds, passages)
    return pick


def _side_columns(default: list[str]) -> tuple[list, list, list]:
    """MAX_SIDE columns (title + answer, passages), the first len(default) visible: (columns, answers, passages)."""
    cols, mds, passages = [], [], []
    with gr.Row(equal_height=False):
        for i in range(MAX_SIDE):  # one column per chosen contestant; the others stay hidden
            with gr.Column(visible=i < len(default), elem_classes="arena-side-col") as col:
                mds.append(gr.Markdown(_side_title(default, i), min_height=60))
                passages.append(gr.HTML(""))
            cols.append(col)
    return cols, mds, passages


def _side_answers(ws, cache, names, q, *settings):
    """Stream every chosen contestant's answer into its column: (status, answers..., passages...) per update."""
    try:
        names, cfg = _check_side(names, q), gen_from(*settings)
    except (ConfigError, ValueError) as exc:
        msg = user_message(exc)
        gr.Warning(msg)
        yield f"**{msg}**", *[gr.skip()] * (2 * MAX_SIDE)
        return
    makers = [lambda n=n: contestants.responder(ws, cache, n) for n in names]
    shown, rest = [None] * MAX_SIDE, [""] * (MAX_SIDE - len(names))
    for answers, errors in live.stream_many(makers, q, cfg):
        texts = [view.answer_md(n, a, e) for n, a, e in zip(names, answers, errors, strict=True)]
        htmls = [view.passages_html(a.passages) if a else "" for a in answers] + rest
        fresh = [h if h != old else gr.skip() for h, old in zip(htmls, shown, strict=True)]  # keeps open ones open
        shown = htmls
        done = sum(bool(e) or (a is not None and a.done) for a, e in zip(answers, errors, strict=True))
        yield f"Generating: {done} of {len(names)} answers complete...", *texts, *rest, *fresh
    yield "", *texts, *rest, *htmls  # the complete values (an API caller gets no skipped outputs)


def _follow_pick(ws, cache, pick, cols, mds, passages) -> None:
    """When the selection changes: free dropped fine-tuned contestants, show one column per chosen one."""
    previous = gr.State(list(pick.value or []))

    def dropped(before, now):
        """Free the adapter model of a fine-tuned contestant that was removed from the selection."""
        for name in set(before or []) - set(now or []):
            try:
                contestants.release(ws, cache, name, still_used=list(now or []))
            except Exception as exc:  # a malformed custom id never loaded anything
                expected(exc)  # logged when it is a bug
        return list(now or [])

    def columns(now):
        names = [n for n in now or [] if n]
        shown = [gr.Column(visible=i < len(names)) for i in range(MAX_SIDE)]
        return *shown, *[_side_title(names, i) for i in range(MAX_SIDE)], *[""] * MAX_SIDE

    pick.change(dropped, [previous, pick], previous, api_name="arena_release", queue=False)
    pick.change(columns, pick, [*cols, *mds, *passages], api_name=False, queue=False)


def _side_title(names: list[str], i: int) -> str:
    return f"### {names[i]}\n\n*Ask a question to see its answer.*" if i < len(names) else ""


def _check_side(names, question) -> list[str]:
    names = [n for n in (names or []) if n]
    if not 1 <= len(names) <= MAX_SIDE:
        raise LabError(f"pick 1 to {MAX_SIDE} contestants (got {len(names)})")
    if not (question or "").strip():
        raise LabError("type a question first")
    for n in names:
        contestants.parse(n)
    return names


def _build_battle(ws, cache, choices):
    gr.Markdown(
        "Two contestants drawn at random answer on random sides. Both answers appear together, once both are "
        "complete, with nothing that tells them apart; names, speed and passages are shown after you vote. "
        "Only these blind votes count for the leaderboard."
    )
    with gr.Row():
        pool = gr.Dropdown(
            choices,
            value=choices,
            multiselect=True,
            allow_custom_value=True,
            label="Contestant pool (at least 2)",
            scale=3,
            elem_id="battle-pool",
        )
        question = gr.Textbox(label="Question", scale=4)
        start = gr.Button("Start battle", variant="primary", scale=1)
    gen = gen_controls()
    status = gr.Markdown("Pick the pool, type a question and press **Start battle**.")
    sides, buttons, reveal, infos = _battle_views()
    battle_id = gr.Textbox(visible=False, label="Battle id (vote with it through arena_submit_vote)")
    state = gr.State({})

    @gpu(duration=lambda *_: answers_duration(2))
    def battle(*args):
        yield from _battle(ws, cache, *args)

    start.click(
        battle,
        [pool, question, *gen],
        [*sides, *infos, *buttons, status, reveal, battle_id, state],
        api_name="arena_battle",
        **generation(),
        show_progress_on=sides,
    )
    for winner, button in zip(battles.WINNERS, buttons, strict=True):
        button.click(
            lambda s, w=winner: _vote(ws, s, w),
            state,
            [reveal, *infos, *buttons, state],
            api_name=f"arena_vote_{winner}",
            concurrency_limit=None,
        )
    _submit_vote_api(ws)
    return pool


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


def _battle(ws, cache, pool, question, *settings):
    """Issue a battle, generate both answers out of sight, then show both at once (or void the battle)."""
    off, blank = [gr.Button(interactive=False)] * 4, [""] * 4
    try:
        a, b = battles.pick_pair([p for p in pool or [] if p])
        cfg = gen_from(*settings)
        if not (question or "").strip():
            raise LabError("type a question first")
        for name in (a, b):
            contestants.parse(name)
        battle = battles.start_battle(ws.db_path, question, a, b, cfg.to_dict())
    except Exception as exc:
        msg = user_message(exc)
        gr.Warning(msg)
        yield *blank, *off, f"**{msg}**", "", "", {}
        return
    wait = "Generating both answers: they appear together when both are complete"
    yield *blank, *off, f"{wait}...", "", "", {}
    makers = [lambda n=n: contestants.responder(ws, cache, n) for n in (a, b)]
    began, answers, errors = time.monotonic(), [None, None], ["", ""]
    for snapshot in live.stream_many(makers, question, cfg, poll_s=1.0):
        answers, errors = snapshot  # only the elapsed time is shown meanwhile: a side would give itself away
        yield *[gr.skip()] * 8, f"{wait} ({time.monotonic() - began:.0f} s)...", *[gr.skip()] * 3
    if any(errors) or not live.all_done(answers, errors):
        battles.fail_battle(ws.db_path, battle)
        why = "; ".join(f"side {s}: {e}" for s, e in zip("AB", errors, strict=True) if e) or "an answer stopped"
        gr.Warning(f"battle void: {why}")
        yield *blank, *off, f"**This battle is void** ({why}): start a new battle.", "", "", {}
        return
    battles.finish_battle(ws.db_path, battle, answers[0].text, answers[1].text)
    texts = [battles.blind_text(x.text) or "(empty answer)" for x in answers]  # no citation tells which side
    state = {"battle": battle, "sides": [_side_state(x) for x in answers]}
    ready = "Both answers are in: read them and vote below."
    yield *texts, "", "", *[gr.Button(interactive=True)] * 4, ready, "", battle, state


def _side_state(answer) -> dict:
    """What the reveal shows after the vote (kept server-side in gr.State until then)."""
    return {
        "speed": view.speed(answer),
        "draft": answer.draft,
        "generated": answer.text if battles.blind_text(answer.text) != answer.text.strip() else "",
        "passages": [passage_dict(p) for p in answer.passages],
    }


def _vote(ws, state, winner):
    off, keep = [gr.Button(interactive=False)] * 4, [gr.skip(), gr.skip()]
    if not state or not state.get("battle"):
        gr.Warning("no finished battle to vote on: start a battle first")
        return "No finished battle to vote on: start a battle first.", *keep, *off, {}
    try:
        row = battles.vote(ws.db_path, state["battle"], winner)
    except battles.BattleError as exc:
        msg = user_message(exc)
        gr.Warning(msg)
        return f"**Vote refused:** {msg}", *keep, *off, {}
    except Exception as exc:
        msg = user_message(exc)
        gr.Warning(msg)
        return f"**Vote not saved:** {msg}", *keep, *[gr.Button(interactive=True)] * 4, state
    names = [row["system_a"], row["system_b"]]
    infos = [view.battle_reveal_html(s, n, x) for s, n, x in zip("AB", names, state["sides"], strict=True)]
    reveal = (
        f"Vote #{row['vote_id']} saved ({battles.LABELS[winner]}). **A** was `{names[0]}`, **B** was `{names[1]}`."
    )
    return reveal, *infos, *off, {}


def _submit_vote_api(ws) -> None:
    """An API-only endpoint for scripted arenas: vote on a battle this server issued (the battle id that
    arena_battle returned) with a, b, tie or both_bad; returns the vote id. The stored vote holds the battle's
    question, contestants and answers as the server generated them; an unknown id or a second vote is refused."""

    def submit(battle_id: str, winner: str) -> int:
        try:
            return int(battles.vote(ws.db_path, battle_id, winner)["vote_id"])
        except Exception as exc:
            raise gr.Error(f"vote refused: {user_message(exc)}") from None

    gr.api(submit, api_name="arena_submit_vote", concurrency_limit=None)


RATING_NOTE = (
    "**Rating**: a Bradley-Terry strength fitted to the blind votes, on a scale where 1000 is the average "
    "contestant and 400 points more means 10-to-1 odds of winning a battle; the **95% interval** is the range "
    "that holds the middle 95% of the ratings refitted on 100 resamples of the votes (bootstrap)."
)


def _build_leaderboard(ws) -> None:
    gr.Markdown(RATING_NOTE)
    show = gr.Button("Refresh leaderboard", variant="primary")
    summary = gr.Markdown("Press **Refresh** to compute ratings from the stored blind votes.")
    table = gr.Dataframe(
        headers=["rank", "contestant", "rating", "95% interval", "votes", "wins", "ties"],
        label="Ratings (best first; rank = 1 + contestants whose interval is entirely above)",
        interactive=False,
        visible=False,
    )
    plot = gr.Plot(show_label=False, visible=False)

    def refresh():
        board = leaderboard(battles.load_votes(ws.db_path), bootstrap=100, seed=0)
        if not board["rows"]:
            return "No blind votes yet: run a few battles first.", gr.Dataframe(visible=False), gr.Plot(visible=False)
        ties = f"{100 * board['tie_rate']:.0f}%"
        text = f"{board['n']} blind votes; {ties} of them were a tie or both bad."
        return (
            text,
            gr.Dataframe(view.leaderboard_rows(board), visible=True),
            gr.Plot(view.heatmap(board), visible=True),
        )

    show.click(refresh, None, [summary, table, plot], api_name="arena_leaderboard", **READ_ONLY)
