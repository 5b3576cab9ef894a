"""The Train tab: pick base model, dataset and method (LoRA / QLoRA), see an estimate, start a run in a child
process, watch live charts (loss, eval loss, learning rate, grad norm), tokens/s, memory and the log; Stop,
Cancel, Resume; a runs table with overlaid loss curves and delete. All work is in lab.jobs / lab.training; this
module only maps form values to a TrainConfig and job state to components. A gr.Timer polls the run's files, and
re-attaches to a running job after a page reload. Every event has an api_name (train_*); errors become a status
message and a toast, never a traceback.
"""

from __future__ import annotations

import shlex
import time

import gradio as gr

from lab import jobs
from lab.config import TrainConfig
from lab.training.plan import PRESETS, TARGET_PRESETS, apply_preset, cli_command

USER_ERRORS = (ValueError, RuntimeError, OSError)
# Form fields, in the order of the components passed to every event that builds a TrainConfig.
FIELDS = ("base_model", "dataset", "method", "max_steps", "epochs", "name", "rank", "alpha", "dropout",
          "target_modules", "learning_rate", "scheduler", "warmup_ratio", "batch_size", "grad_accum", "max_length",
          "packing", "assistant_only_loss", "seed", "eval_steps", "early_stopping_patience", "merge")  # fmt: skip
INTS = {"max_steps", "rank", "alpha", "batch_size", "grad_accum", "max_length", "seed", "eval_steps",
        "early_stopping_patience"}  # fmt: skip
LIVE = ("queued", "starting", "running")


def form_config(*values) -> TrainConfig:
    settings = dict(zip(FIELDS, values, strict=True))
    for key in INTS:
        settings[key] = int(settings[key] or 0)
    for key in ("epochs", "dropout", "learning_rate", "warmup_ratio"):
        settings[key] = float(settings[key] or 0)
    settings["name"] = (settings["name"] or "").strip()
    settings["dataset"] = (settings["dataset"] or "").strip()
    return TrainConfig(**{**TrainConfig().to_dict(), **settings})


def form_values(config: TrainConfig) -> list:
    return [getattr(config, f) for f in FIELDS]


def _fail(message: str) -> str:
    gr.Warning(message)
    return f"### ✗ {message}"


def dataset_choices(ws) -> list[str]:
    from lab.data import list_datasets

    return [d["name"] for d in list_datasets(ws) if "error" not in d]


def estimate_md(plan: dict, method: str) -> str:
    mb = plan["memory_mb"]
    minutes = plan["time_s_cpu"] / 60
    return (
        f"**Estimate** ({method}, {plan['n_train']} train / {plan['n_val']} val examples, {plan['steps']} steps): "
        f"memory ≈ **{mb['total']:.0f} MB** (weights {mb['weights']:.0f}, LoRA {mb['lora']:.1f} "
        f"[{plan['lora_params']:,} params], optimiser+grads {mb['optimizer_and_grads']:.1f}, activations "
        f"{mb['activations']:.0f}); time on this CPU ≈ **{minutes:.1f} min** (rough; the GPU is much faster)"
    )


def progress_md(info: dict, records: list[dict]) -> str:
    status = info["status"]
    state, step, total = info["state"], status.get("step", 0), status.get("total_steps") or 0
    frac = step / total if total else 0.0
    started = status.get("started") or time.time()
    eta = (time.time() - started) * (1 - frac) / frac if 0 < frac < 1 and state in LIVE else 0
    last = next((r for r in reversed(records) if "tokens_per_s" in r), {})
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    bar = f"<progress value='{step}' max='{max(total, 1)}' style='width:100%'></progress>"
    lines = [
        f"### Run `{info['id']}`: {state}",
        bar,
        f"step **{step}/{total or '?'}** ({frac:.0%})" + (f", ETA {eta / 60:.1f} min" if eta else ""),
        f"loss {last.get('loss', float('nan')):.4f}" if "loss" in last else "waiting for the first step...",
    ]
    if last:
        lines.append(f"tokens/s {last['tokens_per_s']:.0f}, peak memory {last.get('memory_mb', 0):.0f} MB")
    if evals:
        lines.append(f"eval loss {evals[-1]:.4f}")
    metrics, est = status.get("metrics") or {}, status.get("estimate_mb")
    if metrics.get("peak_memory_mb") and est:
        lines.append(f"memory: estimated {est:.0f} MB, measured peak {metrics['peak_memory_mb']:.0f} MB")
    if status.get("error"):
        lines.append(f"**Error:** {status['error']}")
    return "\n\n".join(lines)


def chart_frames(records: list[dict], run_label: str = ""):
    """Long-format frames (step, value, series) for the loss, learning-rate and grad-norm charts."""
    import pandas as pd

    def frame(keys):
        rows = [
            {"step": r["step"], "value": r[k], "series": f"{run_label}{k}" if run_label else k}
            for r in records
            for k in keys
            if isinstance(r.get(k), (int, float))
        ]
        frame = pd.DataFrame(rows, columns=["step", "value", "series"])  # typed even when empty (numeric axes)
        return frame.astype({"step": "int64", "value": "float64", "series": "str"})

    return frame(("loss", "eval_loss")), frame(("learning_rate",)), frame(("grad_norm",))


def _plots(records: list[dict], label: str = "") -> list:
    """Chart frames, or no update while a frame is empty: a colour-split LinePlot that first receives an empty
    frame never draws its lines afterwards (seen with gradio 6.31), so an empty chart is left untouched."""
    return [frame if len(frame) else gr.skip() for frame in chart_frames(records, label)]


def refresh(ws, run_id: str):
    """Everything the live view shows for `run_id`; with no run chosen, re-attach to the running job if any."""
    run_id = run_id or jobs.active(ws) or ""
    if not run_id:
        return "", "No run yet: pick a dataset and press **Start**.", *_plots([]), "", ""
    try:
        info = jobs.progress(ws, run_id, log_lines=40)
    except USER_ERRORS as exc:
        return "", f"### ✗ {exc}", *_plots([]), "", ""
    config = TrainConfig.load(f"{info['run_dir']}/config.json")
    command = shlex.join(cli_command(config))
    return run_id, progress_md(info, info["progress"]), *_plots(info["progress"]), info["log"], command


def runs_table(ws) -> list[list]:
    out = []
    for row in jobs.list_runs(ws):
        m = row["metrics"]
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"]))
        metrics = [m.get(k) for k in ("train_loss", "eval_loss", "tokens_per_s", "peak_memory_mb")]
        out.append([row["id"], row["status"], row["method"], row["dataset"], row["base_model"], started, *metrics])
    return out


RUN_HEADERS = ["run", "status", "method", "dataset", "base", "created", "train loss", "eval loss", "tok/s", "peak MB"]


def overlay(ws, run_ids: list[str]):
    import pandas as pd

    from lab.training import read_progress

    frames = [chart_frames(read_progress(ws.dir("runs", r)), f"{r}: ")[0] for r in run_ids or []]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames) if frames else gr.skip()


def _form(ws) -> list:
    d = TrainConfig()
    with gr.Row():
        base = gr.Textbox(d.base_model, label="Base model", info="embedded, a local model folder, or a hub id")
        names = dataset_choices(ws)
        data = gr.Dropdown(names, value="sample" if "sample" in names else None, label="Dataset",
                           allow_custom_value=True, info="a saved dataset or a chat JSONL path")  # fmt: skip
        data.focus(lambda: gr.Dropdown(choices=dataset_choices(ws)), None, data, api_name="train_datasets")
        method = gr.Radio(list(TrainConfig.METHODS), value=d.method, label="Method", info="qlora = 4-bit NF4 base")
    with gr.Row():
        steps = gr.Number(d.max_steps, label="Max steps (0 = use epochs)", precision=0)
        epochs = gr.Number(d.epochs, label="Epochs")
        name = gr.Textbox("", label="Run name", placeholder="auto: run-YYYYmmdd-HHMMSS")
    with gr.Accordion("Advanced settings", open=False):
        with gr.Row():
            rank = gr.Number(d.rank, label="LoRA rank", precision=0)
            alpha = gr.Number(d.alpha, label="LoRA alpha", precision=0)
            dropout = gr.Number(d.dropout, label="LoRA dropout")
            targets = gr.Dropdown(list(TARGET_PRESETS), value=d.target_modules, label="Target modules",
                                  allow_custom_value=True, info="a preset or names like q_proj,v_proj")  # fmt: skip
        with gr.Row():
            lr = gr.Number(d.learning_rate, label="Learning rate")
            sched = gr.Dropdown(list(TrainConfig.SCHEDULERS), value=d.scheduler, label="Schedule")
            warmup = gr.Number(d.warmup_ratio, label="Warmup ratio")
            batch = gr.Number(d.batch_size, label="Batch size", precision=0)
            accum = gr.Number(d.grad_accum, label="Gradient accumulation", precision=0)
            max_len = gr.Number(d.max_length, label="Max length (tokens)", precision=0)
        with gr.Row():
            packing = gr.Checkbox(d.packing, label="Packing")
            only = gr.Checkbox(d.assistant_only_loss, label="Loss on assistant tokens only")
            seed = gr.Number(d.seed, label="Seed", precision=0)
            eval_steps = gr.Number(d.eval_steps, label="Evaluate every N steps (0 = off)", precision=0)
            patience = gr.Number(d.early_stopping_patience, label="Early stopping patience (0 = off)", precision=0)
            merge = gr.Checkbox(d.merge, label="Also save a merged model")
    return [base, data, method, steps, epochs, name, rank, alpha, dropout, targets, lr, sched, warmup, batch, accum,
            max_len, packing, only, seed, eval_steps, patience, merge]  # fmt: skip


def _estimate(ws, *values) -> str:
    try:
        config = form_config(*values)
        return estimate_md(jobs.check(ws, config), config.method)
    except USER_ERRORS as exc:
        return _fail(str(exc))


def _start(ws, *values):
    try:
        run_id = jobs.start(ws, form_config(*values))
    except USER_ERRORS as exc:
        return "", _fail(str(exc))
    gr.Info(f"run {run_id} started")
    return run_id, f"### Run `{run_id}` starting..."


def _act(ws, action: str, run_id: str) -> str:
    try:
        if not run_id:
            raise jobs.JobError("no run selected: start one or pick one in the runs table")
        return getattr(jobs, action)(ws, run_id)
    except USER_ERRORS as exc:
        return _fail(str(exc))


def _preset(preset: str, *values):
    try:
        return form_values(apply_preset(form_config(*values), preset))
    except USER_ERRORS as exc:
        _fail(str(exc))
        return list(values)


def _live():
    with gr.Row():
        loss = gr.LinePlot(x="step", y="value", color="series", title="Loss (train / eval)", height=260)
        lr = gr.LinePlot(x="step", y="value", color="series", title="Learning rate", height=260)
        gn = gr.LinePlot(x="step", y="value", color="series", title="Grad norm", height=260)
    log = gr.Textbox(label="Log (tail)", lines=8, max_lines=8, autoscroll=True)
    command = gr.Code(label="Reproduce from a shell", language="shell")
    return [loss, lr, gn, log, command]


def build(ws, cache) -> None:
    gr.Markdown("## Fine-tune with LoRA or QLoRA\nTraining runs in its own process; leave or reload the page, "
                "it keeps going and this view re-attaches.")  # fmt: skip
    with gr.Row():
        preset = gr.Dropdown(["(none)", *PRESETS], value="(none)", label="Preset")
        run_state = gr.Textbox("", label="Run shown", info="the running job is shown by itself; type a run to view")
    form = _form(ws)
    with gr.Row():
        est_btn, start_btn = gr.Button("Estimate"), gr.Button("Start", variant="primary")
        stop_btn, cancel_btn = gr.Button("Stop (save)"), gr.Button("Cancel (kill)", variant="stop")
        resume_btn = gr.Button("Resume")
    estimate = gr.Markdown()
    status = gr.Markdown("No run yet: pick a dataset and press **Start**.")
    live = _live()
    with gr.Accordion("Runs", open=False):
        table = gr.Dataframe(headers=RUN_HEADERS, value=lambda: runs_table(ws), interactive=False)
        with gr.Row():
            picked = gr.Dropdown([], multiselect=True, label="Runs to overlay / act on", allow_custom_value=True)
            refresh_btn, delete_btn = gr.Button("Refresh runs"), gr.Button("Delete selected", variant="stop")
        compare = gr.LinePlot(x="step", y="value", color="series", title="Loss of selected runs", height=260)
    view = [run_state, status, *live]
    preset.change(lambda p, *v: _preset(p, *v), [preset, *form], form, api_name="train_preset")
    est_btn.click(lambda *v: _estimate(ws, *v), form, estimate, api_name="train_estimate")
    start_btn.click(lambda *v: _start(ws, *v), form, [run_state, status], api_name="train_start")
    for btn, action in ((stop_btn, "stop"), (cancel_btn, "cancel"), (resume_btn, "resume")):
        btn.click(lambda r, a=action: _act(ws, a, r), run_state, estimate, api_name=f"train_{action}")
    timer = gr.Timer(2.0)
    timer.tick(lambda r: refresh(ws, r), run_state, view, api_name="train_refresh", show_progress="hidden")
    refresh_btn.click(lambda: _runs_update(ws), None, [table, picked], api_name="train_runs")
    picked.change(lambda ids: overlay(ws, ids), picked, compare, api_name="train_compare")
    delete_btn.click(lambda ids: _delete(ws, ids), picked, [table, picked], api_name="train_delete")


def _runs_update(ws):
    rows = runs_table(ws)
    return rows, gr.Dropdown(choices=[r[0] for r in rows])


def _delete(ws, run_ids: list[str]):
    for run_id in run_ids or []:
        try:
            gr.Info(jobs.delete(ws, run_id))
        except USER_ERRORS as exc:
            _fail(str(exc))
    return _runs_update(ws)
