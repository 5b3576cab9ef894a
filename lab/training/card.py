"""The run card: RUN_DIR/README.md with data, settings, metrics and the command that reproduces the run.

Pure text from the config and status; must not load models.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from lab.config import TrainConfig
from lab.training.plan import cli_command


def card_text(config: TrainConfig, status: dict) -> str:
    metrics = status.get("metrics", {})
    rows = "\n".join(f"| {k} | {v} |" for k, v in config.to_dict().items())
    mrows = "\n".join(f"| {k} | {v} |" for k, v in metrics.items()) or "| (none yet) | |"
    estimate = status.get("estimate_mb")
    peak = metrics.get("peak_memory_mb")
    memory = f"estimated {estimate:.0f} MB, measured peak {peak} MB" if estimate and peak else "not measured"
    return (
        f"# Run {config.name}\n\n"
        f"- state: **{status.get('state', '?')}** after {status.get('step', 0)} steps\n"
        f"- base model: `{config.base_model}`; method: {config.method}\n"
        f"- data: `{config.dataset}` (hash `{status.get('data_hash', '')}`, {status.get('n_train', '?')} train / "
        f"{status.get('n_val', '?')} val examples)\n"
        f"- memory: {memory}\n"
        f"- time: {_time(status)}\n"
        f"{_lineage(config, status)}\n"
        "Load the adapter: `PeftModel.from_pretrained(base_model, 'adapter')`.\n\n"
        f"Reproduce:\n\n```\n{shlex.join(cli_command(config))}\n```\n\n"
        f"## Metrics\n\n| metric | value |\n|---|---|\n{mrows}\n\n"
        f"## Settings\n\n| setting | value |\n|---|---|\n{rows}\n"
    )


def _time(status: dict) -> str:
    plan = status.get("estimate") or {}
    measured = (status.get("metrics") or {}).get("runtime_s")
    if not plan.get("time_s"):
        return f"measured {measured:.0f} s" if measured else "no estimate"
    guess = f"estimated {plan['time_s']:.0f} s ({plan.get('time_source', '')})"
    return f"{guess}, measured {measured:.0f} s" if measured else guess


def _lineage(config: TrainConfig, status: dict) -> str:
    """Card lines for a run trained for RAG (index + fingerprint + rewrite counts) or continued from another."""
    lines = []
    if config.from_run:
        lines.append(f"- continued from run `{config.from_run}` (started from its adapter)\n")
    rag = status.get("rag") or {}
    if config.rag_index:
        counts = rag.get("counts", {})
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        lines.append(
            f"- trained for RAG on index `{config.rag_index}` (fingerprint `{rag.get('index_fingerprint', '?')}`): "
            f"each question rewritten into the Arena's RAG prompt; examples: {shown or '?'}\n"
        )
    return "".join(lines)


def write_card(run_dir: str | Path, config: TrainConfig, status: dict) -> Path:
    path = Path(run_dir) / "README.md"
    path.write_text(card_text(config, status), encoding="utf-8")
    return path
