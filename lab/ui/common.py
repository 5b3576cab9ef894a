"""Plumbing shared by the tabs: how generation events are scheduled, the generation settings controls, the
one way an action's failure is shown (`shows_errors`: a toast and a heading, a bug's traceback logged), and long
work in a worker thread with a cancel flag per browser session (the Start tab's comparison, the Arena's batch
evaluation), kept as a file so that it also reaches work in a forked ZeroGPU worker.

Interactive answers (side by side, battles) share one concurrency group and batch work (evaluations, the Start
tab's comparison) another, each `gen_limit()` wide: on a CPU one generation at a time per group (more only
oversubscribes the cores and slows every event, cheap ones included; see docs/reliability.md), on CUDA
two. `LAB_GEN_CONCURRENCY` overrides it. Cheap read-only events use `concurrency_limit=None` (never queued).

Live pickers: `Picker`, `picker_update` and `follow_workspace` read a picker's choices (datasets, corpora, indexes,
runs, contestants) from the workspace on page load, tab select and after the actions that change them, keeping the
user's selection while it exists.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import functools
import hashlib
import html
import inspect
import os
import tempfile
import threading
import typing
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from lab.config import GenConfig, field_help
from lab.errors import LabError, user_message

CONCURRENCY_ENV = "LAB_GEN_CONCURRENCY"
THREADS_ENV = "LAB_GEN_THREADS"  # CPU threads the app's own generation uses (training processes are not affected)
INTERACTIVE = "gen"
BATCH = "batch"


def gen_limit() -> int:
    """How many generation events of one group run at once (LAB_GEN_CONCURRENCY, else 1 on CPU, 2 on CUDA)."""
    value = os.environ.get(CONCURRENCY_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise LabError(f"{CONCURRENCY_ENV}={value!r} must be a positive integer (e.g. 1)")
        return int(value)
    from lab.models import has_gpu

    return 2 if has_gpu() else 1


def apply_gen_threads() -> int | None:
    """Set torch's CPU threads for the app's generation from LAB_GEN_THREADS (e.g. 1 on a 2-core machine serving
    a class, so one core stays free for the web server); returns the number set, None when unset."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise LabError(f"{THREADS_ENV}={value!r} must be a positive integer (e.g. 1)")
    import torch

    torch.set_num_threads(int(value))
    return int(value)


def generation(group: str = INTERACTIVE) -> dict:
    """Event keyword arguments for a generation event of `group` (INTERACTIVE or BATCH)."""
    return {"concurrency_id": group, "concurrency_limit": gen_limit()}


# Read-only listing events (lists, leaderboard, page-load views, the run view's timer) run outside the queue:
# a browser POSTs them directly, so they never wait behind queued work or the queue's own bookkeeping.
READ_ONLY = {"queue": False}
QUESTION_HINT = "a question your documents answer (or one they do not, to see who admits it)"


def config_help(cls: type, name: str) -> str:
    """The `info=` text of a control that sets field `name` of config class `cls`: the field's help, the one text
    the CLI's --help and the config reference show too. A field without help raises (the control would explain
    nothing)."""
    text = field_help(cls, name)
    if not text:
        raise KeyError(f"{cls.__name__}.{name} has no help text (lab.config)")
    return text


# GenConfig fields the shared generation controls set, in the order gen_controls returns them.
GEN_FIELDS = ("max_new_tokens", "temperature", "abstain_below", "focus_sentences", "idk_above")


@dataclasses.dataclass(frozen=True)
class View:
    """Base of a section's outputs: a frozen dataclass whose fields are components (or lists of them). `outputs()`
    lists them in field order (an event's outputs, and the API's order); `updates(**values)` turns field names
    into {component: value}, a list field taking a list of values, so a handler names what it changes and leaves
    the rest as they are."""

    def outputs(self) -> list:
        out = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out.extend(value if isinstance(value, (list, tuple)) else [value])
        return out

    def updates(self, **values) -> dict:
        out = {}
        for name, value in values.items():
            component = getattr(self, name)
            if isinstance(component, (list, tuple)):
                out.update(zip(component, value, strict=True))
            else:
                out[component] = value
        return out


def ask_row(choices: list[str], value: list[str], label: str, elem_id: str, action: str) -> tuple:
    """A row with a contestant multi-picker, a question box and the action button: (picker, question, button)."""
    with gr.Row():
        pick = gr.Dropdown(choices, value=value, multiselect=True, allow_custom_value=True, label=label,
                           elem_id=elem_id, scale=3)  # fmt: skip
        question = gr.Textbox(label="Question", scale=4, placeholder=QUESTION_HINT)
        button = gr.Button(action, variant="primary", scale=1)
    return pick, question, button


def gen_controls(fields: tuple[str, ...] = GEN_FIELDS) -> list:
    """Generation settings: one slider per entry of `fields` (GEN_FIELDS, or a subset such as the blind battle's),
    in that order."""
    d, c = GenConfig(), {}
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            c["max_new_tokens"] = gr.Slider(8, 256, d.max_new_tokens, step=8, label="Max new tokens",
                                            info=config_help(GenConfig, "max_new_tokens"))  # fmt: skip
            c["temperature"] = gr.Slider(0, 1.5, 0.0, step=0.1, label="Temperature (0 = greedy, used for scoring)",
                                         info=config_help(GenConfig, "temperature"))  # fmt: skip
        if set(fields) - {"max_new_tokens", "temperature"}:
            _rag_controls(c, d)
    return [c[name] for name in fields]


def _rag_controls(c: dict, d: GenConfig) -> None:
    with gr.Row():
        c["abstain_below"] = gr.Slider(
            -1,
            1,
            d.abstain_below,
            step=0.05,
            label="RAG: say 'I don't know' below this top score (-1 = off)",
            info=config_help(GenConfig, "abstain_below"),
        )
        c["focus_sentences"] = gr.Slider(
            0,
            12,
            d.focus_sentences,
            step=1,
            label="RAG: keep the N sentences closest to the question (0 = off)",
            info=config_help(GenConfig, "focus_sentences"),
        )
    c["idk_above"] = gr.Slider(
        0,
        0.95,
        d.idk_above,
        step=0.05,
        label="RAG: say 'I don't know' when the model gives it more than this probability (0 = plain greedy); "
        "higher = fewer abstentions, more answers and more made-up ones",
        info=config_help(GenConfig, "idk_above"),
    )


def gen_from(*values, fields: tuple[str, ...] = GEN_FIELDS, **extra) -> GenConfig:
    """A GenConfig from the controls' values in `fields` order (API callers may pass fewer: the rest default)."""
    if len(values) > len(fields):
        raise LabError(f"{len(values)} generation settings given; expected at most {len(fields)}: {fields}")
    kinds = typing.get_type_hints(GenConfig)
    settings = {name: kinds[name](v) for name, v in zip(fields, values, strict=False) if v is not None}
    return GenConfig(**settings, **extra)


def fail(message: str) -> str:
    """Show `message` as a warning toast and return it as the action's result heading."""
    gr.Warning(message)
    return f"### ✗ {message}"


def fail_with(*rest) -> Callable[[str], object]:
    """An `on_error` for `shows_errors`: `fail(message)` (toast and heading), then `rest`, the handler's other
    outputs (e.g. gr.skip() to leave one as it is)."""

    def outputs(message: str):
        shown = fail(message)
        return (shown, *copy.deepcopy(rest)) if rest else shown

    return outputs


def shows_errors(on_error: Callable[[str], object] = fail) -> Callable[[Callable], Callable]:
    """Decorator for an event handler or a helper it calls: an exception becomes `on_error(message)`, returned in
    place of the outputs (a generator yields it and stops). The message is `lab.errors.user_message`: a LabError's
    or OSError's own words; anything else is named as a bug and its traceback logged, once. `on_error` may also
    just return a fallback value (a list that cannot be read shows empty)."""

    def wrap(fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def streamed(*args, **kwargs):
                steps = fn(*args, **kwargs)
                try:
                    while True:
                        ok, value = _attempt(next, steps, _DONE)
                        if not ok:
                            yield on_error(value)
                            return
                        if value is _DONE:
                            return
                        yield value
                finally:
                    steps.close()

            return streamed

        @functools.wraps(fn)
        def handled(*args, **kwargs):
            ok, value = _attempt(fn, *args, **kwargs)
            return value if ok else on_error(value)

        return handled

    return wrap


_DONE = object()


def _attempt(call: Callable, /, *args, **kwargs) -> tuple[bool, object]:
    """(True, call's result) or (False, the message for its exception; a bug's traceback is logged)."""
    try:
        return True, call(*args, **kwargs)
    except Exception as exc:  # the one place the tabs catch everything: see shows_errors
        return False, user_message(exc)


class FileFlag:
    """A cancel flag kept as a file, so a process forked after it was made (a ZeroGPU GPU slot's worker) sees the
    main process raise it: `is_set` is checked between batches; the Event-like API of threading.Event."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def is_set(self) -> bool:
        return self.path.exists()

    def set(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class SessionFlags:
    """One cancel flag per browser session (by gr.Request.session_hash): Cancel in one tab stops only its work.
    The flags are files under `folder` (by default a fresh temporary folder), so Cancel reaches work running in
    a forked process as well as in a thread."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="lab-cancel-"))
        self.folder.mkdir(parents=True, exist_ok=True)

    def _flag(self, request) -> FileFlag:
        session = getattr(request, "session_hash", "") or ""
        return FileFlag(self.folder / f"{hashlib.sha256(session.encode()).hexdigest()[:24]}.stop")

    def fresh(self, request) -> FileFlag:
        """This session's flag, cleared (work is starting)."""
        flag = self._flag(request)
        flag.clear()
        flag.path.with_suffix(".started").touch()
        return flag

    def cancel(self, request) -> bool:
        """Raise this session's flag; False when it has no work to cancel."""
        flag = self._flag(request)
        if not flag.path.with_suffix(".started").exists():
            return False
        flag.set()
        return True


def in_background(work: Callable[[], object], box: dict, name: str) -> threading.Thread:
    """Start `work` in a daemon thread; its return value lands in box["result"], a failure as a message in
    box["error"] (never a traceback on the page; a bug's traceback goes to the log)."""

    @shows_errors(lambda message: box.__setitem__("error", message))
    def run() -> None:
        box["result"] = work()

    # The caller's context goes along: ZeroGPU reads the visitor (and so the quota) of a GPU call from it.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True, name=name)
    thread.start()
    return thread


# The live pickers: each kind of list a picker offers, read from the workspace when asked (never cached), so work
# saved in another tab, another session or the command line after the app started is offered.
def _datasets(ws) -> list[str]:
    from lab.data import list_datasets

    return [d["name"] for d in list_datasets(ws) if "error" not in d]


def _corpora(ws) -> list[str]:
    from lab.corpus import list_corpora

    return list_corpora(ws)


def _indexes(ws) -> list[str]:
    """Built indexes, plus the shipped sample (built on first use)."""
    from lab.rag import list_indexes
    from lab.workspace import SAMPLE

    names = list_indexes(ws)
    return names if SAMPLE in names else [*names, SAMPLE]


def _runs(ws) -> list[str]:
    from lab import jobs

    return [r["id"] for r in jobs.list_runs(ws)]


def _adapters(ws) -> list[str]:
    """Runs whose adapter is saved (a new run can continue from them), newest first."""
    from lab import jobs
    from lab.training import ADAPTER

    return [r["id"] for r in jobs.list_runs(ws) if (Path(r["path"]) / ADAPTER / "adapter_config.json").is_file()]


def _contestants(ws) -> list[str]:
    from lab.arena import contestants

    return contestants.available(ws)


PICKERS: dict[str, Callable] = {
    "datasets": _datasets,
    "corpora": _corpora,
    "indexes": _indexes,
    "runs": _runs,
    "adapters": _adapters,
    "contestants": _contestants,
}


@dataclasses.dataclass(frozen=True)
class Picker:
    """A picker that follows the workspace: its `kind` (a PICKERS key), choices always offered before the listed
    ones (`lead`, e.g. "" for "none"), and `default(choices)`: the value when the current one is gone (None: keep
    only what still exists, which may be nothing). `typed`: a value the user typed that is not a listed choice
    (a folder path) is kept."""

    kind: str
    lead: tuple[str, ...] = ()
    default: Callable[[list[str]], object] | None = None
    typed: bool = False


def picker_choices(ws, kind: str) -> list[str]:
    """The choices a picker of `kind` offers in this workspace now; ["base"] / [] when it cannot be read (a bug
    is logged)."""
    listed = shows_errors(lambda message: ["base"] if kind == "contestants" else [])(PICKERS[kind])
    return listed(ws)  # a bug is logged; the fallback stands


def picker_update(ws, picker: Picker, current=None, extra=()) -> dict:
    """gr.update for `picker` with this workspace's choices (then `extra` ones, e.g. this page's added models),
    keeping the user's `current` selection where it is still offered (for a multi-picker, the picked items still
    offered); otherwise the picker's default."""
    choices = list(dict.fromkeys([*picker.lead, *picker_choices(ws, picker.kind), *extra]))
    if isinstance(current, (list, tuple)):
        kept = [c for c in current if c in choices]
        if kept or picker.default is None:
            return gr.update(choices=choices, value=kept)
    elif current in choices or (picker.typed and current):
        return gr.update(choices=choices, value=current)
    return gr.update(choices=choices, value=picker.default(choices) if picker.default else None)


def follow_workspace(demo, ws, pickers: dict, triggers=(), api_name: str | bool = False) -> None:
    """Read `pickers` ({component: Picker}) again when `demo`'s page loads (api_name, for gradio_client), on each of
    `triggers` (listener methods: a tab's `select`, an action's `success`), keeping each current selection."""
    comps, specs = list(pickers), list(pickers.values())

    def on_pickers(*current):
        return [picker_update(ws, spec, value) for spec, value in zip(specs, current, strict=True)]

    demo.load(on_pickers, comps, comps, api_name=api_name, **READ_ONLY)
    for trigger in triggers:
        trigger(on_pickers, comps, comps, api_name=False, **READ_ONLY)


def this_tab():
    """The gr.Tab being built now (a tab's `build` calls it first), None outside one: its `select` re-reads lists."""
    block = gr.context.Context.block
    return block if isinstance(block, gr.Tab) else None


def progress_bar_html(fraction: float, label: str = "") -> str:
    """A progress bar as HTML (a filled track with the percentage written beside it): readable at 0 %, in between and
    at 100 %, and announced as a progressbar to screen readers. `label` follows the percentage (e.g. "step 3/10")."""
    share = max(0.0, min(1.0, float(fraction or 0.0)))
    pct = round(100 * share)
    text = f"{pct} %" + (f" · {html.escape(label)}" if label else "")
    return (
        f"<div class='lab-progress' role='progressbar' aria-valuemin='0' aria-valuemax='100' aria-valuenow='{pct}' "
        "style='display:flex;align-items:center;gap:8px;margin:4px 0'>"
        "<div class='lab-progress-track' style='flex:1;height:12px;min-width:120px;border-radius:6px;"
        "background:#e4e4e7;border:1px solid #a1a1aa;overflow:hidden'>"
        f"<div class='lab-progress-fill' style='width:{pct}%;height:100%;background:#2563eb'></div></div>"
        f"<span class='lab-progress-text' style='white-space:nowrap;font-size:13px'>{text}</span></div>"
    )


def contestant_names(ws, specs) -> dict[str, str]:
    """{contestant id: friendly name} for `specs`, a run trained for RAG named as such (read from its lineage); an
    id that cannot be described keeps the name its kind gives it."""
    from lab.ui.arena_view import friendly

    return {spec: friendly(spec, _rag_trained(ws, spec)) for spec in dict.fromkeys(s for s in specs or [] if s)}


@shows_errors(lambda message: False)  # logged when it is a bug; the kind's name stands
def _rag_trained(ws, spec: str) -> bool:
    from lab.arena import contestants

    return contestants.describe(ws, spec)["rag_trained"]


def pack_files(ws, result: dict):
    """Write the evidence pack of the result shown (report.html and evidence.zip, lab.arena.report) and show both
    files; a warning and no files when there is nothing to pack."""
    from lab.ui.decision_view import evidence_files

    try:
        files = evidence_files(ws, result)
    except (LabError, OSError) as exc:
        gr.Warning(user_message(exc))
        return gr.update(value=None, visible=False)
    gr.Info("Evidence pack written: report.html and evidence.zip")
    return gr.update(value=files, visible=True)
