"""The Arena tab: side by side (2-4 named contestants), blind battles with votes, and the leaderboard.

The batch-evaluation sub-tab lives in lab.ui.arena_eval; formatting in lab.ui.arena_view; all work in
lab.arena. Every event has an api_name (arena_contestants, arena_side_by_side, arena_battle, arena_vote_a,
arena_vote_b, arena_vote_tie, arena_vote_both_bad, arena_submit_vote, arena_leaderboard). Errors become a status
line and a toast, never a traceback. Models load lazily on the first question, never in build().
"""

from __future__ import annotations

import gradio as gr

from lab.arena import battles, contestants, live
from lab.arena.leaderboard import leaderboard
from lab.config import ConfigError, GenConfig
from lab.ui import arena_eval
from lab.ui import arena_view as view

MAX_SIDE = 4
USER_ERRORS = (ValueError, RuntimeError, OSError)


def gen_controls() -> list:
    """Generation settings shared by every sub-tab, in the argument order of `gen_from`."""
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            max_new = gr.Slider(8, 256, GenConfig.max_new_tokens, step=8, label="Max new tokens")
            temp = gr.Slider(0, 1.5, 0.0, step=0.1, label="Temperature (0 = greedy, used for scoring)")
        with gr.Row():
            abstain = gr.Slider(
                -1,
                1,
                GenConfig.abstain_below,
                step=0.05,
                label="RAG: say 'I don't know' below this top score (-1 = off)",
            )
            focus = gr.Slider(
                0,
                12,
                GenConfig.focus_sentences,
                step=1,
                label="RAG: keep the N sentences closest to the question (0 = off)",
            )
    return [max_new, temp, abstain, focus]


def gen_from(max_new, temp, abstain, focus, **extra) -> GenConfig:
    values = {"max_new_tokens": int(max_new), "temperature": float(temp), "abstain_below": float(abstain)}
    return GenConfig(**values, focus_sentences=int(focus), **extra)


def _choices(ws) -> list[str]:
    try:
        return contestants.available(ws)
    except USER_ERRORS:
        return ["base"]


def _default_pick(choices: list[str]) -> list[str]:
    rag = [c for c in choices if c.startswith("rag:")]
    return ["base", *rag[:1]] if rag else choices[:2]


def build(ws, cache) -> None:
    gr.Markdown("## Arena\nCompare base, fine-tuned, RAG and fine-tuned + RAG on your own questions.")
    choices = _choices(ws)
    refresh = gr.Button("Refresh contestant list", size="sm")
    with gr.Tab("Side by side", elem_id="arena-side"):
        pick = _build_side_by_side(ws, cache, choices)
    with gr.Tab("Blind battle", elem_id="arena-battle"):
        pool = _build_battle(ws, cache, choices)
    with gr.Tab("Leaderboard", elem_id="arena-leaderboard"):
        _build_leaderboard(ws)
    with gr.Tab("Batch evaluation", elem_id="arena-eval"):
        eval_pick = arena_eval.build(ws, cache, choices, gen_controls)

    def reload():
        c = _choices(ws)
        return [gr.Dropdown(choices=c)] * 3

    refresh.click(reload, None, [pick, pool, eval_pick], api_name="arena_contestants")


def _build_side_by_side(ws, cache, choices):
    with gr.Row():
        pick = gr.Dropdown(
            choices,
            value=_default_pick(choices),
            multiselect=True,
            allow_custom_value=True,
            label="Contestants (2-4): base, ft:RUN, rag:INDEX, ft+rag:RUN:INDEX",
            scale=3,
        )
        question = gr.Textbox(label="Question", scale=4)
        ask = gr.Button("Ask", variant="primary", scale=1)
    gen = gen_controls()
    status = gr.Markdown()
    with gr.Row():
        cols = [gr.Markdown(min_height=80) for _ in range(MAX_SIDE)]

    def run(names, q, *settings):
        try:
            names, cfg = _check_side(names, q), gen_from(*settings)
        except (ConfigError, ValueError) as exc:
            gr.Warning(str(exc))
            yield f"**{exc}**", *[""] * MAX_SIDE
            return
        makers = [lambda n=n: contestants.responder(ws, cache, n) for n in names]
        for answers, errors in live.stream_many(makers, q, cfg):
            mds = [view.answer_md(n, a, e) for n, a, e in zip(names, answers, errors, strict=True)]
            yield "", *mds, *[""] * (MAX_SIDE - len(names))

    ask.click(run, [pick, question, *gen], [status, *cols], api_name="arena_side_by_side", concurrency_id="gen")
    previous = gr.State(list(pick.value or []))

    def dropped(before, now):
        """Free the adapter model of a fine-tuned contestant that was removed from the selection."""
        for name in set(before or []) - set(now or []):
            try:
                contestants.release(ws, cache, name, still_used=list(now or []))
            except USER_ERRORS:
                pass  # a malformed custom id never loaded anything
        return list(now or [])

    pick.change(dropped, [previous, pick], previous, api_name="arena_release", queue=False)
    return pick


def _check_side(names, question) -> list[str]:
    names = [n for n in (names or []) if n]
    if not 1 <= len(names) <= MAX_SIDE:
        raise ValueError(f"pick 1 to {MAX_SIDE} contestants (got {len(names)})")
    if not (question or "").strip():
        raise ValueError("type a question first")
    for n in names:
        contestants.parse(n)
    return names


def _build_battle(ws, cache, choices):
    gr.Markdown(
        "Two contestants drawn at random answer on swapped sides; their names are shown after you vote. "
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
        )
        question = gr.Textbox(label="Question", scale=4)
        start = gr.Button("Start battle", variant="primary", scale=1)
    gen = gen_controls()
    state = gr.State({})
    with gr.Row():
        side_a, side_b = gr.Markdown("### Model A", min_height=80), gr.Markdown("### Model B", min_height=80)
    with gr.Row():
        buttons = [gr.Button(label, interactive=False) for label in battles.LABELS.values()]
    reveal = gr.Markdown()
    start.click(
        lambda *a: (yield from _battle(ws, cache, *a)),
        [pool, question, *gen],
        [side_a, side_b, *buttons, reveal, state],
        api_name="arena_battle",
        concurrency_id="gen",
    )
    for winner, button in zip(battles.WINNERS, buttons, strict=True):
        button.click(
            lambda s, w=winner: _vote(ws, s, w),
            state,
            [reveal, *buttons, state],
            api_name=f"arena_vote_{winner}",
            concurrency_limit=None,
        )
    _submit_vote_api(ws)
    return pool


def _battle(ws, cache, pool, question, *settings):
    off = [gr.Button(interactive=False)] * 4
    try:
        a, b = battles.pick_pair([p for p in pool or [] if p])
        cfg = gen_from(*settings)
        if not (question or "").strip():
            raise ValueError("type a question first")
    except (ConfigError, ValueError) as exc:
        gr.Warning(str(exc))
        yield "### Model A", "### Model B", *off, f"**{exc}**", {}
        return
    makers = [lambda n=n: contestants.responder(ws, cache, n) for n in (a, b)]
    answers, errors = [None, None], ["", ""]
    for answers, errors in live.stream_many(makers, question, cfg):
        mds = [view.answer_md(f"Model {s}", x, e) for s, x, e in zip("AB", answers, errors, strict=True)]
        yield *mds, *off, "", {}
    done = live.all_done(answers, errors) and not any(errors)
    state = (
        {
            "question": question,
            "a": a,
            "b": b,
            "answer_a": answers[0].text if answers[0] else "",
            "answer_b": answers[1].text if answers[1] else "",
            "settings": cfg.to_dict(),
        }
        if done
        else {}
    )
    note = "Both answers are in: vote below." if done else "A contestant failed; start a new battle."
    yield *mds, *[gr.Button(interactive=done)] * 4, note, state


def _vote(ws, state, winner):
    off = [gr.Button(interactive=False)] * 4
    if not state or not state.get("a"):
        gr.Warning("no finished battle to vote on: start a battle first")
        return "No finished battle to vote on.", *off, {}
    try:
        vote_id = battles.record_vote(
            ws.db_path,
            state["question"],
            state["a"],
            state["b"],
            state["answer_a"],
            state["answer_b"],
            winner,
            True,
            state.get("settings"),
        )
    except USER_ERRORS as exc:
        gr.Warning(str(exc))
        return f"**Vote not saved:** {exc}", *[gr.Button(interactive=True)] * 4, state
    reveal = f"Vote #{vote_id} saved ({battles.LABELS[winner]}). **A** was `{state['a']}`, **B** was `{state['b']}`."
    return reveal, *off, {}


def _submit_vote_api(ws) -> None:
    """An API-only endpoint for scripted arenas: store a finished blind battle's vote; returns the vote id."""

    def submit(question: str, system_a: str, system_b: str, answer_a: str, answer_b: str, winner: str) -> int:
        return battles.record_vote(ws.db_path, question, system_a, system_b, answer_a, answer_b, winner, True)

    gr.api(submit, api_name="arena_submit_vote", concurrency_limit=None)


def _build_leaderboard(ws) -> None:
    show = gr.Button("Refresh leaderboard", variant="primary")
    summary = gr.Markdown("Press **Refresh** to compute ratings from the stored blind votes.")
    table = gr.Dataframe(
        headers=["rank", "contestant", "rating", "95% CI", "votes", "wins", "ties"],
        label="Bradley-Terry ratings (400 x strength + 1000)",
        interactive=False,
    )
    plot = gr.Plot(label="Win-rate matrix")

    def refresh():
        board = leaderboard(battles.load_votes(ws.db_path), bootstrap=100, seed=0)
        if not board["rows"]:
            return "No blind votes yet: run a few battles first.", [], None
        ties = f"{100 * board['tie_rate']:.0f}%"
        text = f"{board['n']} blind votes, tie or both-bad rate {ties}. Rank = 1 + contestants clearly above."
        return text, view.leaderboard_rows(board), view.heatmap(board)

    show.click(refresh, None, [summary, table, plot], api_name="arena_leaderboard")
