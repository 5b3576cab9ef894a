"""`python -m lab train ...` and `python -m lab runs ...`: the CLI twin of the Train tab (work is in lab.jobs).

train --data PATH_OR_DATASET --method lora|qlora [--base MODEL] [--max-steps N | --epochs E] [--name NAME]
      [--preset NAME] [--config FILE.yaml|json] [any TrainConfig field as --flag, booleans as --x/--no-x]
      [--rag-index INDEX --distractor-share 0.3]  train for RAG: on the Arena's RAG prompts over INDEX
      [--from-run RUN]                            continue from RUN's adapter (its base model)
train --method dpo --prefs FILE|votes [--beta 0.1] [--from-run RUN]
      train on preference pairs ({prompt, chosen, rejected} a line, or the Arena's blind votes) with DPO
      prints the run id and folder, streams progress lines, exits 0 finished, 1 failed/stopped
runs [--stop RUN | --cancel RUN | --resume RUN | --delete RUN]        list runs, or act on one
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from lab.config import TrainConfig, field_choices

_SHORT = {"dataset": "--data", "base_model": "--base"}


def register(sub) -> None:
    train = sub.add_parser("train", help="fine-tune a model with LoRA or QLoRA (runs in a child process)")
    for f in dataclasses.fields(TrainConfig):
        flag = _SHORT.get(f.name, "--" + f.name.replace("_", "-"))
        text = option_help(TrainConfig, f)
        if f.type in (bool, "bool"):
            train.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            train.add_argument(flag, dest=f.name, type=kind, default=None, help=text)
    train.add_argument("--preset", default="", help="a Train-tab preset, e.g. 'quick CPU demo'")
    train.add_argument("--config", dest="config_file", default="", help="a YAML/JSON TrainConfig file")
    train.add_argument("--quiet", action="store_true", help="print only the run id, folder and final state")
    train.set_defaults(func=cmd_train)
    runs = sub.add_parser("runs", help="list training runs, or stop / cancel / resume / delete one")
    act = runs.add_mutually_exclusive_group()
    for action, what in (
        ("stop", "save a checkpoint and the adapter, then end the run"),
        ("cancel", "kill the run's process tree"),
        ("resume", "continue a stopped or failed run from its last checkpoint"),
        ("delete", "delete the run's folder and record"),
    ):
        act.add_argument(f"--{action}", metavar="RUN", default="", help=what)
    runs.set_defaults(func=cmd_runs)


def option_help(cls, f: dataclasses.Field) -> str:
    """A config field's --help text: its metadata help, its choices and its default."""
    text = f.metadata.get("help", "")
    choices = field_choices(cls, f.name)
    if choices:
        text += f" (one of: {', '.join(choices)})"
    return f"{text}; default {f.default!r}".replace("%", "%%")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from lab.training.plan import apply_preset

    config = TrainConfig.load(args.config_file) if args.config_file else TrainConfig()
    if args.preset:
        config = apply_preset(config, args.preset)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    return TrainConfig.from_dict({**config.to_dict(), **{k: v for k, v in given.items() if v is not None}})


def _line(rec: dict) -> str:
    keys = ("loss", "eval_loss", "reward_margin", "learning_rate", "grad_norm", "tokens_per_s", "memory_mb")
    parts = [f"{k}={rec[k]:.4g}" for k in keys if isinstance(rec.get(k), (int, float))]
    return f"step {rec.get('step')} epoch {rec.get('epoch', 0):.2f} " + " ".join(parts)


def follow(ws, run_id: str, quiet: bool = False) -> dict:
    """Print new progress lines until the run ends; Ctrl-C asks for a graceful stop first."""
    from lab import jobs

    shown = 0
    while True:
        try:
            info = jobs.progress(ws, run_id, log_lines=0)
            for rec in info["progress"][shown:]:
                if not quiet:
                    print(_line(rec), flush=True)
            shown = len(info["progress"])
            if info["state"] in ("finished", "stopped", "failed", "cancelled"):
                return info
            time.sleep(1.0)
        except KeyboardInterrupt:
            print(jobs.stop(ws, run_id), file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from lab import jobs
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    config = config_from_args(args)
    if config.method == "dpo":  # prefs=votes: the run trains on a fresh export of the Arena's votes
        from lab.arena.votes import for_training

        config = for_training(ws, config)
    run_id = jobs.start(ws, config)
    print(f"run {run_id}\nfolder {ws.dir('runs', run_id)}", flush=True)
    info = follow(ws, run_id, args.quiet)
    status = info["status"]
    print(f"{info['state']} {json.dumps(status.get('metrics', {}))}", flush=True)
    if status.get("error"):
        print(f"error: {status['error']}", file=sys.stderr)
    return 0 if info["state"] == "finished" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    from lab import jobs
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    for action in ("stop", "cancel", "resume", "delete"):
        if getattr(args, action):
            print(getattr(jobs, action)(ws, getattr(args, action)))
            return 0
    for row in jobs.list_runs(ws):
        loss = row["metrics"].get("train_loss")
        loss_text = f"{loss:.4f}" if isinstance(loss, (int, float)) else "-"
        config = row.get("config") or {}
        config = json.loads(config) if isinstance(config, str) else config
        extra = "".join(f" {k} {config[f]}" for k, f in (("from", "from_run"), ("rag", "rag_index")) if config.get(f))
        line = f"{row['id']:<28} {row['status']:<10} {row['method']:<6} {row['dataset'][:30]:<30} loss {loss_text}"
        print(line + extra)
    return 0
