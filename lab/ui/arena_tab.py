"""The Arena tab: side by side (1-4 named contestants, one column each), blind battles with votes, the leaderboard.

The blind battle sub-tab lives in lab.ui.arena_battle, the batch-evaluation sub-tab in lab.ui.arena_eval;
formatting in lab.ui.arena_view; all work in lab.arena. Every event has an api_name (arena_contestants,
arena_add_model, arena_side_by_side, arena_release, arena_leaderboard: also computed when its tab opens,
arena_pickers: the pickers read again on page load, also when the tab opens; the battle's in lab.ui.arena_battle).
Errors become a status line and a toast, never a traceback. Models load lazily on the first question, never in build().
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from lab import catalog
from lab.arena import battles, contestants, live
from lab.arena.leaderboard import leaderboard
from lab.arena.pool import battle_pool
from lab.errors import LabError, user_message
from lab.metrics.rate import Rate, format_rate
from lab.ui import arena_battle, arena_eval, teacher_tab
from lab.ui import arena_view as view
from lab.ui.common import (
    READ_ONLY,
    Picker,
    View,
    ask_row,
    contestant_names,
    gen_controls,
    gen_from,
    picker_update,
    shows_errors,
    this_tab,
)
from lab.ui.spaces import answers_duration, gpu, prefetch

MAX_SIDE = 4


@shows_errors(lambda message: ["base"])  # logged when it is a bug; the fallback stands
def _choices(ws) -> list[str]:
    return contestants.available(ws)


def _marks(ws, choices: list[str]) -> str:
    """Which fine-tuned contestants were trained for RAG, and which ft+rag pairs read another index than theirs."""
    shown = shows_errors(lambda message: [])(contestants.marks)(ws, choices)  # a bug is logged; no marks
    return ("Trained for RAG: " + "; ".join(f"`{m}`" for m in shown)) if shown else ""


CONTESTANTS = Picker("contestants")


@shows_errors(lambda message: [])  # logged when it is a bug; the fallback stands
def _pool(ws, choices: list[str]) -> list[str]:
    return battle_pool(ws, choices)


def _default_pick(ws, choices: list[str]) -> list[str]:
    """The side-by-side default: the battle pool's spread of the newest work (base, the newest index, the newest
    run, both together), at most MAX_SIDE; base and the first index when the workspace cannot be read."""
    pick = _pool(ws, [c for c in choices if not c.startswith("base:")])[:MAX_SIDE]
    if len(pick) >= 2:
        return pick
    rag = [c for c in choices if c.startswith("rag:")]
    return ["base", *rag[:1]] if rag else choices[:2]


def side_update(ws, edited: bool, current, more) -> dict:
    """The side-by-side picker with this workspace's contestants (plus `more`): the user's own pick kept while its
    contestants exist, else the default spread of the newest work."""
    update = picker_update(ws, CONTESTANTS, current if edited else None, extra=list(more or []))
    if not edited or not update["value"]:
        update["value"] = _default_pick(ws, update["choices"])
    return update


INTRO = (
    "## Arena\nCompare base, fine-tuned, RAG and fine-tuned + RAG on your own questions. A fresh workspace has "
    "`base` and `rag:sample`; each run you train in **Train** adds `ft:RUN` and `ft+rag:RUN:INDEX` (read again "
    "when the page or this tab opens), each index you build in **RAG** adds `rag:INDEX`."
)


@dataclasses.dataclass(frozen=True)
class Listed(View):
    """The Arena's contestant lists: the side-by-side picker, the battle pool, the evaluation picker and the
    trained-for-RAG marks, in the arena_contestants API's order."""

    pick: gr.Dropdown
    pool: gr.Dropdown
    eval_pick: gr.Dropdown
    trained: gr.Markdown


def build(demo, ws, cache, settings) -> None:
    gr.Markdown(INTRO)
    choices = _choices(ws)
    arena = this_tab()  # the tab this builds into: opening it reads the lists again
    refresh, extra = _add_row()
    added = gr.State([])  # this page's extra base models
    trained = gr.Markdown(_marks(ws, choices), elem_id="arena-marks")
    with gr.Tab("Side by side", elem_id="arena-side") as side_tab:
        pick, side_edited = _build_side_by_side(ws, cache, choices)
    with gr.Tab("Blind battle", elem_id="arena-battle") as battle_tab:
        pool, pool_edited = arena_battle.build(ws, cache, choices)
    with gr.Tab("Leaderboard", elem_id="arena-leaderboard") as board_tab:
        _build_leaderboard(ws, board_tab)
    with gr.Tab("Batch evaluation", elem_id="arena-eval"):
        eval_pick = arena_eval.build(ws, cache, choices)
    _build_classroom(demo, ws, cache, settings)
    listed = Listed(pick, pool, eval_pick, trained)
    _wire_lists(ws, listed, added, refresh, extra)
    opened = [arena.select] if arena else []
    arena_battle.follow_work(demo, ws, pool, pool_edited, added, [*opened, battle_tab.select, refresh.click])
    _follow_lists(demo, ws, listed, side_edited, added, [*opened, side_tab.select])


def _add_row() -> tuple[gr.Button, gr.Dropdown]:
    """Refresh, and the picker that adds a base model to every contestant list: (refresh, picker)."""
    with gr.Row():
        refresh = gr.Button("Refresh contestant list", size="sm", scale=0, min_width=180)
        extra = gr.Dropdown(
            catalog.arena_choices(),
            value=None,
            allow_custom_value=True,
            label="Add a base model as a contestant (or type a hub id or a local model folder)",
            info="added to the pickers below; a model that is neither embedded nor on this machine needs the hub",
            elem_id="arena-add-model",
            scale=3,
        )
    return refresh, extra


def _build_classroom(demo, ws, cache, settings) -> None:
    """The votes-as-data and Teacher sub-tabs; the Teacher tab, label included, shows only to teachers (checked
    on page load: teacher_visible)."""
    from lab.ui import arena_votes

    with gr.Tab("Votes as data", elem_id="arena-votes"):  # the blind votes exported as training data
        arena_votes.build(ws, settings)
    with gr.Tab("Teacher", elem_id="arena-teacher") as teacher:
        teacher_tab.build(ws, cache, settings)

    def on_teacher_visible(request: gr.Request):
        return teacher_tab.visible_for(settings, request)

    demo.load(on_teacher_visible, None, teacher, api_name="teacher_visible", **READ_ONLY)


def _wire_lists(ws, listed: Listed, added, refresh, extra) -> None:
    """Refresh reads every contestant list again (arena_contestants); a model added at the top joins them all, on
    this page only (arena_add_model)."""

    def on_refresh(more=()):
        return _reload(ws, listed, more)

    def on_add_model(model, more):
        spec = _as_base(model)
        more = [*more, spec] if spec and spec not in more else list(more)
        return {added: more, **_reload(ws, listed, more)}

    refresh.click(on_refresh, added, listed.outputs(), api_name="arena_contestants", **READ_ONLY)
    extra.change(on_add_model, [extra, added], [added, *listed.outputs()], api_name="arena_add_model", **READ_ONLY)


def _reload(ws, listed: Listed, more=()) -> dict:
    """Every contestant list with this workspace's contestants and `more`; selections are kept by the pickers."""
    c = _choices(ws)
    c += [m for m in more if m not in c]
    lists = [gr.Dropdown(choices=c) for _ in range(3)]
    return listed.updates(pick=lists[0], pool=lists[1], eval_pick=lists[2], trained=_marks(ws, c))


def _follow_lists(demo, ws, listed: Listed, edited, added, triggers) -> None:
    """On page load (api: arena_pickers) and on `triggers`: the side-by-side picker (its user's pick kept, else
    the newest work), the evaluation picker and the marks read again."""

    def on_lists(was_edited, current, evals, more):
        side = side_update(ws, bool(was_edited), current, more)
        return side, picker_update(ws, CONTESTANTS, evals, extra=list(more or [])), _marks(ws, side["choices"])

    io = ([edited, listed.pick, listed.eval_pick, added], [listed.pick, listed.eval_pick, listed.trained])
    demo.load(on_lists, *io, api_name="arena_pickers", **READ_ONLY)
    for trigger in triggers:
        trigger(on_lists, *io, api_name=False, **READ_ONLY)


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
    """The side-by-side sub-tab; returns its picker and whether this page's user edited it."""
    default = _default_pick(ws, choices)
    label = f"Contestants (1-{MAX_SIDE}): base, ft:RUN, rag:INDEX, ft+rag:RUN:INDEX"
    pick, question, ask = ask_row(choices, default, label, "arena-side-pick", "Ask")
    gen = gen_controls()
    status = gr.Markdown()
    cols, mds, passages = _side_columns(ws, default)
    shown = Side(status, mds, passages)

    @gpu(
        duration=lambda names, *_: answers_duration(len(names or [])),
        prepare=lambda names, *_: prefetch(ws, cache, names),
    )
    def answer_slot(names, q, *settings):  # one GPU slot on ZeroGPU: plain values keyed by name
        yield from _side_answers(ws, cache, names, q, *settings)

    def on_ask(names, q, *settings):
        refused = _side_refusal(names, q, settings)
        if refused:
            gr.Warning(refused)
            yield shown.updates(status=f"**{refused}**")  # the columns keep their answers
            return
        for outputs in answer_slot(names, q, *settings):
            yield shown.updates(**outputs)

    ask.click(
        on_ask,
        [pick, question, *gen],
        shown.outputs(),
        api_name="arena_side_by_side",
        **arena_battle.live_events(),
        show_progress="hidden",  # the status line counts finished answers; no bars over the columns
    )
    _follow_pick(ws, cache, pick, cols, mds, passages)
    edited = gr.State(False)
    pick.input(lambda: True, None, edited, api_name=False, **READ_ONLY)  # the user's own pick is kept from now on
    return pick, edited


@dataclasses.dataclass(frozen=True)
class Side(View):
    """The side-by-side answer's outputs, in the arena_side_by_side API's order: the status line, then MAX_SIDE
    answer titles and MAX_SIDE passage panels."""

    status: gr.Markdown
    answers: list
    passages: list


def _side_columns(ws, default: list[str]) -> tuple[list, list, list]:
    """MAX_SIDE columns (title + answer, passages), the first len(default) visible: (columns, answers, passages)."""
    cols, mds, passages = [], [], []
    with gr.Row(equal_height=False):
        for i in range(MAX_SIDE):  # one column per chosen contestant; the others stay hidden
            with gr.Column(visible=i < len(default), elem_classes="arena-side-col") as col:
                mds.append(gr.Markdown(_side_title(default, i, contestant_names(ws, default)), min_height=60))
                passages.append(gr.HTML(""))
            cols.append(col)
    return cols, mds, passages


@shows_errors(lambda message: message)
def _side_refusal(names, q, settings) -> str:
    """Why this question cannot be asked of these contestants (shown in the app's process, before any GPU call);
    "" when it can."""
    _check_side(names, q)
    gen_from(*settings)
    return ""


def _side_answers(ws, cache, names, q, *settings):
    """Stream every chosen contestant's answer into its column: the outputs by name (Side's fields) per update."""
    names, cfg = _check_side(names, q), gen_from(*settings)  # checked before the GPU call (_side_refusal)
    makers = [lambda n=n: contestants.responder(ws, cache, n) for n in names]
    labels = contestant_names(ws, names)
    shown, rest = [None] * MAX_SIDE, [""] * (MAX_SIDE - len(names))
    for answers, errors in live.stream_many(makers, q, cfg, cache=cache, session=arena_battle.session_of()):
        texts = [view.answer_md(n, a, e, labels) for n, a, e in zip(names, answers, errors, strict=True)]
        htmls = [view.passages_html(a.passages) if a else "" for a in answers] + rest
        fresh = [h if h != old else gr.skip() for h, old in zip(htmls, shown, strict=True)]  # keeps open ones open
        shown = htmls
        done = sum(bool(e) or (a is not None and a.done) for a, e in zip(answers, errors, strict=True))
        yield {"status": f"Generating: {done} of {len(names)} answers complete...", "answers": [*texts, *rest],
               "passages": fresh}  # fmt: skip
    yield {"status": "", "answers": [*texts, *rest], "passages": htmls}  # complete: an API caller gets no skips


@shows_errors(lambda message: None)  # a malformed custom id never loaded anything; a bug is logged
def _release(ws, cache, name: str, still_used: list[str]) -> None:
    contestants.release(ws, cache, name, still_used=still_used)


def _follow_pick(ws, cache, pick, cols, mds, passages) -> None:
    """When the selection changes: free dropped fine-tuned contestants, show one column per chosen one."""
    previous = gr.State(list(pick.value or []))

    def on_release(before, now):
        """Free the adapter model of a fine-tuned contestant that was removed from the selection."""
        for name in set(before or []) - set(now or []):
            _release(ws, cache, name, list(now or []))
        return list(now or [])

    def on_columns(now):
        names = [n for n in now or [] if n]
        labels = contestant_names(ws, names)
        shown = [gr.Column(visible=i < len(names)) for i in range(MAX_SIDE)]
        titles = [_side_title(names, i, labels) for i in range(MAX_SIDE)]
        return {**dict(zip(cols, shown, strict=True)), **dict(zip(mds, titles, strict=True)),
                **dict.fromkeys(passages, "")}  # fmt: skip

    pick.change(on_release, [previous, pick], previous, api_name="arena_release", queue=False)
    pick.change(on_columns, pick, [*cols, *mds, *passages], api_name=False, queue=False)


def _side_title(names: list[str], i: int, labels: dict[str, str] | None = None) -> str:
    return f"### {view.name_html(names[i], labels)}\n\n*Ask a question to see its answer.*" if i < len(names) else ""


def _check_side(names, question) -> list[str]:
    names = [n for n in (names or []) if n]
    if not 1 <= len(names) <= MAX_SIDE:
        raise LabError(f"pick 1 to {MAX_SIDE} contestants (got {len(names)})")
    if not (question or "").strip():
        raise LabError("type a question first")
    for n in names:
        contestants.parse(n)
    return names


RATING_NOTE = (
    "**Rating**: a Bradley-Terry strength fitted to the blind votes, on a scale where 1000 is the average "
    "contestant and 400 points more means 10-to-1 odds of winning a battle; the **95% interval** is the range "
    "that holds the middle 95% of the ratings refitted on 100 resamples of the votes (bootstrap)."
)


def _build_leaderboard(ws, tab) -> None:
    """The leaderboard, computed from the stored votes whenever its tab opens (and on Refresh)."""
    gr.Markdown(RATING_NOTE)
    show = gr.Button("Refresh leaderboard", size="sm")  # it is computed when the tab opens; this re-reads the votes
    summary = gr.Markdown("Computing ratings from the stored blind votes...")
    table = gr.Dataframe(
        headers=["rank", "contestant", "rating", "95% interval", "votes", "wins", "ties"],
        label="Ratings (best first; rank = 1 + contestants whose interval is entirely above)",
        interactive=False,
        visible=False,
        wrap=True,
        elem_id="arena-leaderboard-table",
    )
    plot = gr.Plot(show_label=False, visible=False)
    show.click(lambda: leaderboard_view(ws), None, [summary, table, plot], api_name="arena_leaderboard", **READ_ONLY)
    tab.select(lambda: leaderboard_view(ws), None, [summary, table, plot], api_name=False, **READ_ONLY)


def leaderboard_view(ws) -> tuple:
    """(summary line, ratings table, win-rate heatmap) from the votes stored now; contestants by friendly name."""
    board = leaderboard(battles.load_votes(ws.db_path), bootstrap=100, seed=0)
    if not board["rows"]:
        return "No blind votes yet: run a few battles first.", gr.Dataframe(visible=False), gr.Plot(visible=False)
    names = contestant_names(ws, board["names"])
    ties, n = format_rate(Rate(board["tie_rate"], n=board["n"]), "short"), board["n"]
    text = f"{n} blind vote{'' if n == 1 else 's'}; {ties} of them were a tie or both bad." + view.few_votes(
        board, names
    )
    return (
        text,
        gr.Dataframe(view.leaderboard_rows(board, names), visible=True),
        gr.Plot(view.heatmap(board, names), visible=True),
    )
