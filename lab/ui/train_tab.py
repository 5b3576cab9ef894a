"""The Train tab: pick base model, dataset and method (LoRA / QLoRA), see an estimate, start a run in a child
process, watch live charts (loss, eval loss, learning rate, grad norm), tokens/s, memory and the log; Stop,
Cancel, Resume; a runs table with overlaid loss curves and delete. All work is in lab.jobs / lab.training; this
module only maps form values to a TrainConfig and job state to components. A gr.Timer polls the run's files, and
re-attaches to a running job after a page reload. Training for RAG (an index, a distractor share, a preview of the
rewritten data) and continuing from an earlier run's adapter are form fields like any other (the form itself is
lab/ui/train_form.py, how a run is shown lab/ui/train_view.py). Every event has an api_name (train_*); errors become
a status message and a toast, never a traceback.
"""

from __future__ import annotations

import dataclasses
import html
import shlex
import time

import gradio as gr

from lab import jobs
from lab.arena import votes
from lab.config import TrainConfig
from lab.errors import LabError
from lab.training.plan import PRESETS, apply_preset, cli_command
from lab.training.speed import measured_throughput
from lab.ui import spaces
from lab.ui.common import (
    READ_ONLY,
    Picker,
    View,
    fail,
    follow_workspace,
    picker_update,
    shows_errors,
    this_tab,
)
from lab.ui.roles import ServerSettings
from lab.ui.train_form import (
    _form,
    form_config,
    form_values,
    live_pickers,
    rag_preview_html,
)
from lab.ui.train_view import (
    LOG_HEADERS,
    ROUNDING,
    RUN_HEADERS,
    STOPPING,
    chart_frames,
    estimate_md,
    log_html,
    log_rows,
    progress_md,
    rounded,
    series_colors,
    step_axis,
)


@shows_errors(lambda message: None)  # logged when it is a bug; the config's own fields stand
def _saved_lineage(ws, run_id: str) -> dict:
    from lab.training.lineage import lineage

    return lineage(ws, run_id)


def lineage_md(ws, run_id: str, config: TrainConfig) -> str:
    """Where a run came from: the parent run it continued and the index it was trained for (with fingerprint)."""
    info = _lineage(ws, run_id, config.to_dict())
    parts = []
    if info["parent"]:
        parts.append(f"continued from run `{info['parent']}`")
    if info["rag_index"]:
        fp = f" (fingerprint `{info['index_fingerprint']}`)" if info.get("index_fingerprint") else ""
        parts.append(f"trained for RAG on index `{info['rag_index']}`{fp}")
    return ("Lineage: " + "; ".join(parts) + ".") if parts else ""


def _lineage(ws, run_id: str, config: dict) -> dict:
    found = _saved_lineage(ws, run_id)
    if found is not None:
        return found
    return {"parent": config.get("from_run", ""), "rag_index": config.get("rag_index", ""),
                "index_fingerprint": ""}  # fmt: skip


def line_plot(frame, x_lim: list[int]):
    """A LinePlot update that draws every series of `frame`. The chart fixes its colour domain to the series of the
    frame it was drawn with, and only a new legend list makes it draw anew (seen with gradio 6.31: a new colour map
    or title does not), so the legend names the series each time and a series that appears later (the eval loss
    after the first steps) is drawn too."""
    colors = series_colors(frame)
    return gr.LinePlot(frame, x_lim=x_lim, color_map=colors, colors_in_legend=list(colors), visible=True)


def _plots(records: list[dict], label: str = "", total_steps: int = 0) -> list:
    """Chart frames, or no update while a frame is empty: a colour-split LinePlot that first receives an empty
    frame never draws its lines afterwards (seen with gradio 6.31), so an empty chart is left untouched (and stays
    hidden until its first point: a fresh Train tab shows no empty boxes)."""
    last = max([int(r.get("step", 0)) for r in records] + [total_steps or 0])
    x_lim = step_axis(last)
    frames = chart_frames(records, label)
    return [line_plot(frame, x_lim) if len(frame) else gr.skip() for frame in frames]


@dataclasses.dataclass(frozen=True)
class RunShown(View):
    """The live view of a run, in the train_refresh API's order: the run shown, its status, the loss, learning-rate
    and grad-norm charts, the log, the command that reproduces it and the log table."""

    run: gr.Textbox
    status: gr.Markdown
    plots: list
    log: gr.HTML
    command: gr.Code
    table: gr.Dataframe


def _empty(status: str) -> dict:
    """The live view without a run: `status` as its heading, nothing else (by name, RunShown's fields)."""
    return {"run": "", "status": status, "plots": _plots([]), "log": log_html(""), "command": "",
            "table": _log_table([])}  # fmt: skip


@shows_errors(lambda message: _empty(f"### ✗ {message}"))
def _on_refresh(ws, run_id: str) -> dict:
    """Everything the live view shows for `run_id`, by name (RunShown's fields); with no run chosen, re-attach to
    the running job if any."""
    run_id = run_id or jobs.active(ws) or ""
    if not run_id:
        return _empty("No run yet: pick a dataset and press **Start**.")
    info = jobs.progress(ws, run_id, log_lines=120)
    config = TrainConfig.load(f"{info['run_dir']}/config.json")
    command = shlex.join(cli_command(config))
    text = progress_md(info, info["progress"])
    lineage = lineage_md(ws, run_id, config)
    text = text + ("\n\n" + lineage if lineage else "")
    plots = _plots(info["progress"], total_steps=info["status"].get("total_steps") or 0)
    log = log_html("\n".join(info["log"].splitlines()[-40:]))
    table = _log_table(log_rows(info["progress"], info["status"].get("started")))
    return {"run": run_id, "status": text, "plots": plots, "log": log, "command": gr.Code(command, visible=True),
            "table": table}  # fmt: skip


def _log_table(rows: list[list]):
    """The log table, hidden until the run has logged a step."""
    return gr.Dataframe(value=rows or None, visible=bool(rows))


def runs_table(ws) -> list[list]:
    import json

    out = []
    for row in jobs.list_runs(ws):
        m = row["metrics"]
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"]))
        metrics = [rounded(m.get(k), digits) for k, digits in ROUNDING]
        info = _lineage(ws, row["id"], json.loads(row.get("config") or "{}"))
        out.append([row["id"], row["status"], row["method"], row["dataset"], info["rag_index"], info["parent"],
                    row["base_model"], started, *metrics])  # fmt: skip
    return out


def overlay(ws, run_ids: list[str]):
    import pandas as pd

    from lab.training import read_progress

    frames = [chart_frames(read_progress(ws.dir("runs", r)), f"{r}: ")[0] for r in run_ids or []]
    frames = [f for f in frames if len(f)]
    if not frames:
        return gr.skip()
    merged = pd.concat(frames)
    return line_plot(merged, step_axis(int(merged["step"].max())))


def with_measured_time(ws, config: TrainConfig, plan: dict, calibrate=None) -> dict:
    """The plan with its time from this machine's measured throughput: the last finished runs of the same base
    model and method, else a short calibration (a few real training steps, remembered for the next estimate)."""
    found = measured_throughput(ws.root / "runs", config)
    if found is None and calibrate is not None:
        found = calibrate(ws, config, plan)
    if found is None or not plan.get("tokens_total"):
        return plan
    return {**plan, "time_s": plan["tokens_total"] / found["tokens_per_s"], "time_source": found["source"]}


@shows_errors(lambda message: _calibration_failed(message))
def _calibrate(ws, config: TrainConfig, plan: dict):
    from lab.training.speed import calibrate

    gr.Info("No finished run of this model to learn its speed from: timing a few training steps (about a minute)")
    return calibrate(ws.root / "runs", config, plan["model_dir"], plan["mean_tokens"])


def _calibration_failed(message: str) -> None:
    gr.Warning(f"calibration failed ({message}); the time shown is a rough guess")


@shows_errors()
def _on_estimate(ws, *values) -> str:
    config = form_config(*values)
    plan = jobs.check(ws, config)
    # On ZeroGPU a run trains inside a GPU slot but a calibration child would time the CPU: keep the GPU estimate.
    calibrate = None if spaces.on_zero_gpu() else _calibrate
    text = estimate_md(with_measured_time(ws, config, plan, calibrate), config.method)
    if config.rag_index:
        text += (" Training for RAG trains on the longer RAG prompts: **Preview RAG training data** shows their "
                 "length; memory and time grow with it.")  # fmt: skip
    return text


@shows_errors(lambda message: f"<p><b>✗ {html.escape(message)}</b></p>")
def _on_rag_preview(ws, cache, *values):
    config = form_config(*values)
    if not config.rag_index:
        raise LabError("choose an index under 'Train for retrieval (RAG)' first (empty = plain fine-tuning)")
    from lab.training.lineage import inherit
    from lab.training.ragdata import preview

    config = inherit(ws, config)
    rewrite = preview(ws, cache, config)
    return rag_preview_html(rewrite, cache.tokenizer(config.base_model))


@shows_errors(lambda message: ("", fail(message)))
def _on_start(ws, cache, *values):
    hooks = spaces.slot_training() if spaces.on_zero_gpu() else {}  # ZeroGPU: train inside a GPU slot
    cache.release_generators()  # the training child gets the memory the app's generators held
    config = votes.for_training(ws, form_config(*values))  # DPO on "votes": a fresh export of them
    run_id = jobs.start(ws, config, cache, **hooks)
    gr.Info(f"run {run_id} started")
    return run_id, f"### Run `{run_id}` starting..."


@shows_errors()
def _on_act(ws, action: str, run_id: str) -> str:
    if not run_id:
        raise jobs.JobError("no run selected: start one or pick one in the runs table")
    hooks = spaces.slot_training() if action == "resume" and spaces.on_zero_gpu() else {}  # in a GPU slot
    message = getattr(jobs, action)(ws, run_id, **hooks)
    gr.Info(message)
    if action == "stop":
        return f"### Run `{run_id}`\n\n{STOPPING}"
    return f"### Run `{run_id}`\n\n{message}"


def _on_preset(preset: str, *values):
    applied = _applied(preset, *values)
    return list(values) if applied is None else applied


@shows_errors(lambda message: _shown(message))
def _applied(preset: str, *values):
    return form_values(apply_preset(form_config(*values), preset))


def _shown(message: str) -> None:
    """The failure shown as a toast only (the form keeps its values)."""
    fail(message)


REWARDS = ("reward_margin", "reward_chosen", "reward_rejected")  # what a DPO run logs besides its loss


def reward_plot(records: list[dict], total_steps: int = 0):
    """The DPO rewards chart (margin, chosen, rejected), drawn like the other charts: left untouched (hidden, on a
    fresh tab) until the run shown logs rewards."""
    rows = [{"step": r["step"], "value": r[k], "series": k} for r in records for k in REWARDS
            if isinstance(r.get(k), (int, float))]  # fmt: skip
    if not rows:
        return gr.skip()
    import pandas as pd

    frame = pd.DataFrame(rows).astype({"step": "int64", "value": "float64", "series": "str"})
    last = max([int(r.get("step", 0)) for r in records] + [total_steps or 0])
    return gr.LinePlot(frame, x_lim=step_axis(last), visible=True)


@shows_errors(lambda message: None)  # a typed run name that is not one: nothing to draw
def _run_dir(ws, run_id: str):
    return ws.dir("runs", run_id) if run_id else None


def _rewards_chart(ws, run_state) -> gr.LinePlot:
    """The rewards chart of the run shown, read from its progress.jsonl on its own timer."""
    from lab.training import read_progress, read_status

    chart = gr.LinePlot(x="step", y="value", color="series", title="Rewards (DPO)", height=260, visible=False)

    def on_rewards(run_id: str):
        run_dir = _run_dir(ws, run_id)
        if run_dir is None or not run_dir.is_dir():
            return gr.skip()
        return reward_plot(read_progress(run_dir), read_status(run_dir).get("total_steps") or 0)

    gr.Timer(2.0).tick(on_rewards, run_state, chart, api_name="train_rewards", show_progress="hidden", **READ_ONLY)
    return chart


def _live() -> tuple:
    """The live charts (loss, learning rate, grad norm), the log, the reproduce command and the log table."""
    with gr.Row():
        loss = gr.LinePlot(x="step", y="value", color="series", title="Loss (train / eval)", height=260, visible=False)
        lr = gr.LinePlot(x="step", y="value", color="series", title="Learning rate", height=260, visible=False)
        gn = gr.LinePlot(x="step", y="value", color="series", title="Grad norm", height=260, visible=False)
    table = gr.Dataframe(
        headers=LOG_HEADERS,
        label="Training log (newest step first; elapsed = time since the run started, h:mm:ss)",
        interactive=False,
        max_height=260,
        visible=False,
        elem_id="train-log-table",
    )
    gr.Markdown("**Output** (newest line at the bottom; library warnings hidden, all in the run's train.log)")
    log = gr.HTML(log_html(""))
    command = gr.Code(label="Reproduce from a shell", language="shell", visible=False)
    return [loss, lr, gn], log, command, table


RUNS_PICKER = Picker("runs")


def build(demo, ws, cache, settings: ServerSettings) -> None:
    tab = this_tab()
    gr.Markdown("## Fine-tune with LoRA or QLoRA\nTraining runs in its own process; leave or reload the page, "
                "it keeps going and this view re-attaches.")  # fmt: skip
    with gr.Row():
        preset = gr.Dropdown(["(none)", *PRESETS], value="(none)", label="Preset")
        run_state = gr.Textbox("", label="Run shown", info="the running job is shown by itself; type a run to view")
    (rag_btn, rag_view), form = _form(ws)
    with gr.Row():
        est_btn, start_btn = gr.Button("Estimate"), gr.Button("Start", variant="primary")
        stop_btn, cancel_btn = gr.Button("Stop (save)"), gr.Button("Cancel (kill)", variant="stop")
        resume_btn = gr.Button("Resume")
    estimate = gr.Markdown()
    status = gr.Markdown("No run yet: pick a dataset and press **Start**.")
    shown = RunShown(run_state, status, *_live())
    _rewards_chart(ws, run_state)
    with gr.Accordion("Runs", open=False):
        table = gr.Dataframe(headers=RUN_HEADERS, value=lambda: runs_table(ws), interactive=False)
        with gr.Row():
            picked = gr.Dropdown([], multiselect=True, label="Runs to overlay / act on", allow_custom_value=True)
            refresh_btn, delete_btn = gr.Button("Refresh runs"), gr.Button("Delete selected", variant="stop")
        compare = gr.LinePlot(x="step", y="value", color="series", title="Loss of selected runs", height=260)
    preset.change(lambda p, *v: _on_preset(p, *v), [preset, *form], form, api_name="train_preset")
    est_btn.click(lambda *v: _on_estimate(ws, *v), form, estimate, api_name="train_estimate")
    rag_btn.click(lambda *v: _on_rag_preview(ws, cache, *v), form, rag_view, api_name="train_rag_preview")
    start_btn.click(lambda *v: _on_start(ws, cache, *v), form, [run_state, status], api_name="train_start")
    for btn, action in ((stop_btn, "stop"), (cancel_btn, "cancel"), (resume_btn, "resume")):
        # into the status view, which the next timer tick rewrites from the run's state (no stale action line)
        btn.click(lambda r, a=action: _on_act(ws, a, r), run_state, status, api_name=f"train_{action}")
    timer = gr.Timer(2.0)
    timer.tick(
        lambda r: shown.updates(**_on_refresh(ws, r)),
        run_state,
        shown.outputs(),
        api_name="train_refresh",
        show_progress="hidden",
        **READ_ONLY,
    )
    refresh_btn.click(lambda: _runs_update(ws), None, [table, picked], api_name="train_runs", **READ_ONLY)
    picked.change(lambda ids: overlay(ws, ids), picked, compare, api_name="train_compare")

    def on_delete(ids, request: gr.Request):
        return _on_delete(ws, settings, ids, request)

    delete_btn.click(on_delete, picked, [table, picked], api_name="train_delete")
    runs = _follow_runs(demo, ws, timer, {**live_pickers(form), picked: RUNS_PICKER}, [tab.select] if tab else [])
    runs.change(lambda: runs_table(ws), None, table, api_name=False, **READ_ONLY)


def _follow_runs(demo, ws, timer, pickers: dict, triggers: list) -> gr.State:
    """The pickers read again on page load (api: train_pickers), on `triggers` and whenever a run starts,
    finishes or is deleted: the timer reads each run's status into the returned state, and a change of it
    re-reads the lists."""
    runs = gr.State(_run_states(ws))
    timer.tick(lambda: _run_states(ws), None, runs, api_name=False, show_progress="hidden", **READ_ONLY)
    follow_workspace(demo, ws, pickers, [*triggers, runs.change], api_name="train_pickers")
    return runs


@shows_errors(lambda message: [])  # a bug is logged; the lists stay as they are
def _run_states(ws) -> list:
    """Each run's id and status (what the run pickers depend on)."""
    return [[r["id"], r["status"]] for r in jobs.list_runs(ws)]


def _runs_update(ws, picked=None):
    """The runs table and the runs picker, keeping the picked runs that still exist."""
    return runs_table(ws), picker_update(ws, RUNS_PICKER, picked)


def _on_delete(ws, settings: ServerSettings, run_ids: list[str], request: gr.Request):
    for run_id in run_ids or []:
        _delete_one(ws, settings, run_id, request)
    return _runs_update(ws, run_ids)


@shows_errors()  # a refusal is a toast; the other picked runs are still deleted
def _delete_one(ws, settings: ServerSettings, run_id: str, request: gr.Request) -> None:
    settings.require_teacher(request, "delete a run")
    gr.Info(jobs.delete(ws, run_id))
