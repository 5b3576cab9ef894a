"""How the Train tab shows a run: its progress line, the log (cleaned of library noise) and its table rows, the
estimate (its time range scaled by the load now, lab.training.preflight), the chart frames and their colours, and
the runs table's columns. Text, rows and pandas frames: no gradio components and no events (lab/ui/train_tab.py
wires them).
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

from lab.training import preflight
from lab.ui.common import progress_bar_html

LIVE = ("queued", "starting", "running")
# Library messages every run prints that say nothing about this run (kept in train.log, hidden in the view).
NOISE = re.compile(
    r"Failed to load CPU gemm_4bit|FutureWarning|DeprecationWarning|UserWarning|^\s*warnings\.warn\(|"
    r"is deprecated and will be removed|^\s*\{'(loss|eval_loss|train_runtime)'|it/s\]|s/it\]|^\s*$|"
    r"^step \d+/\d+ \{"  # an older run's record echo (raw dict, Unix time): the log table shows those records
)


def clean_log(text: str) -> str:
    """The log tail without known library noise (deprecation warnings, progress bars, Trainer's dict echo)."""
    return "\n".join(line for line in (text or "").splitlines() if not NOISE.search(line))


def log_html(text: str) -> str:
    """The log tail in a box that opens scrolled to its newest (bottom) line."""
    body = html.escape(clean_log(text)) or "(no output yet)"
    return (
        "<div class='train-log' style='max-height:220px;overflow:auto;display:flex;flex-direction:column-reverse;"
        "border:1px solid #d4d4d8;border-radius:6px;padding:6px'>"
        f"<pre style='margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px'>{body}</pre></div>"
    )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def estimate_md(plan: dict, method: str) -> str:
    mb = plan["memory_mb"]
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.0f}" for k, v in mb.items() if k != "total")
    source = plan.get("time_source") or "rough guess from the model size: no run or calibration measured yet"
    span = preflight.time_range(plan)  # on a CPU scaled by the load now, and it says so
    busy = f"; {span['load_note']}" if span["load_note"] else ""
    return (
        f"**Estimate** ({method}, {plan['n_train']} train / {plan['n_val']} val examples, {plan['steps']} steps): "
        f"memory ≈ **{mb['total']:.0f} MB** ({parts}; LoRA {plan['lora_params']:,} params); "
        f"time **{span['time_range']}** ({source}{busy})"
    ) + "".join(f"\n\n**Warning:** {w}" for w in plan.get("warnings") or ())


STOPPING = "⏳ **Stopping after the current step: saving a checkpoint and the adapter (no final evaluation)...**"
STOPPED = "✓ Stopped at step {step}: checkpoint and adapter saved (**Resume** continues from here)."


def progress_md(info: dict, records: list[dict]) -> str:
    status = info["status"]
    state, step, total = info["state"], status.get("step", 0), status.get("total_steps") or 0
    frac = step / total if total else 0.0
    started = status.get("started") or time.time()
    eta = (time.time() - started) * (1 - frac) / frac if 0 < frac < 1 and state in LIVE else 0
    last = next((r for r in reversed(records) if "tokens_per_s" in r), {})
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    lines = [
        f"### Run `{info['id']}`: {state}",
        progress_bar_html(frac, f"step {step} of {total or '?'}"),
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
    planned = (status.get("estimate") or {}).get("time_s")
    if metrics.get("runtime_s") and planned:
        lines.append(f"time: estimated {_minutes(planned)}, measured {_minutes(metrics['runtime_s'])}")
    if state in LIVE and (Path(info["run_dir"]) / "STOP").exists():
        lines.insert(1, STOPPING)
    if state == "stopped":
        lines.insert(1, STOPPED.format(step=step))
    if status.get("error"):
        lines.append(f"**Error:** {status['error']}")
    return "\n\n".join(lines)


LOG_HEADERS = ["step", "epoch", "loss", "eval loss", "learning rate", "grad norm", "elapsed"]


def clock(seconds: float) -> str:
    """A duration as h:mm:ss."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _number(value, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else ""


def log_rows(records: list[dict], started: float | None = None) -> list[list]:
    """The training log as table rows, newest first: step, epoch, loss, eval loss, learning rate, grad norm and the
    time since the run started (h:mm:ss; from the first record when the start is unknown)."""
    times = [r["time"] for r in records if isinstance(r.get("time"), (int, float))]
    origin = started or (min(times) if times else None)
    rows = []
    for r in records:
        at = r.get("time")
        elapsed = clock(at - origin) if isinstance(at, (int, float)) and origin else ""
        rows.append([int(r.get("step", 0)), _number(r.get("epoch"), ".2f"), _number(r.get("loss"), ".4f"),
                     _number(r.get("eval_loss"), ".4f"), _number(r.get("learning_rate"), ".2e"),
                     _number(r.get("grad_norm"), ".3f"), elapsed])  # fmt: skip
    return rows[::-1]


def chart_frames(records: list[dict], run_label: str = ""):
    """Long-format frames (step, value, series) for the loss, learning-rate and grad-norm charts. The eval loss is
    the loss chart's second series; measured once (the final evaluation of a run without periodic ones) it is drawn
    as a level line across the run, since a line of one point would not show. Series names never change as points
    arrive (a renamed series would need the chart drawn anew)."""
    import pandas as pd

    def name(key: str) -> str:
        return f"{run_label}{key}" if run_label else key

    def frame(keys):
        rows = [
            {"step": r["step"], "value": r[k], "series": name(k)}
            for r in records
            for k in keys
            if isinstance(r.get(k), (int, float))
        ]
        frame = pd.DataFrame(rows, columns=["step", "value", "series"])  # typed even when empty (numeric axes)
        return frame.astype({"step": "int64", "value": "float64", "series": "str"})

    loss = frame(("loss", "eval_loss"))
    once = loss[loss["series"] == name("eval_loss")]
    if len(once) == 1:
        step, value = int(once["step"].iloc[0]), float(once["value"].iloc[0])
        last = max([int(r.get("step", 0)) for r in records] + [step, 1])
        level = pd.DataFrame({"step": [0, last], "value": [value, value], "series": [name("eval_loss")] * 2})
        loss = pd.concat([loss[loss["series"] != name("eval_loss")], level], ignore_index=True)
        loss = loss.astype({"step": "int64", "value": "float64", "series": "str"})
    return loss, frame(("learning_rate",)), frame(("grad_norm",))


def step_axis(total_steps: int) -> list[int]:
    """x limits of the step charts: the whole run, and at least 10 steps, so the axis ticks are whole steps."""
    return [0, max(int(total_steps or 0), 10)]


PALETTE = ("#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")


def series_colors(frame) -> dict[str, str]:
    """A colour per series of a chart frame, in order of appearance (the train loss comes first: blue, the eval loss
    orange)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(frame["series"]))}


ROUNDING = (("train_loss", 3), ("eval_loss", 3), ("tokens_per_s", 0), ("peak_memory_mb", 0))


def rounded(value, digits: int):
    if not isinstance(value, (int, float)):
        return ""
    return int(round(value)) if digits == 0 else round(float(value), digits)


RUN_HEADERS = ["run", "status", "method", "dataset", "RAG index", "parent run", "base", "created", "train loss",
               "eval loss", "tok/s", "peak MB"]  # fmt: skip
