"""The learning curve: correct answers on taught facts after fine-tuning on shares of the training data.

`subset(examples, share, seed)` is the seeded share of a dataset a curve point trains on; `curve(points, flat)`
turns each point's per-question correct flags into rates with 95% intervals, and `trend_sentence` names a trend
only when the smallest and the largest share's intervals do not overlap ("no trend detectable with these questions"
otherwise); these are pure. `run_curve` trains and asks each point (training through lab.jobs, answers through the
shared model cache, both replaceable for tests), `forecast` gives its time before it starts (the training planner and
lab.arena.timing), and the result is saved as an evaluation that the decision card reads. No gradio here.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.config import GenConfig, TrainConfig
from lab.data.evalset import EvalItem
from lab.errors import LabError
from lab.metrics.stats import bootstrap_ci
from lab.training.plan import apply_preset
from lab.workspace import SAMPLE, Workspace, WorkspaceError, slugify

SHARES = (0.25, 0.5, 1.0)
NO_TREND = "no trend detectable with these questions"


def subset(examples: list[Any], share: float, seed: int = 0) -> list[Any]:
    """A seeded `share` of `examples` (at least one), in their original order; nested: a smaller share of the
    same seed is a subset of a larger one."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    keep = set(order[: max(1, round(share * len(examples)))]) if examples else set()
    return [e for i, e in enumerate(examples) if i in keep]


def _rate(flags: list[float], bootstrap: int, seed: int) -> dict[str, Any]:
    ci = bootstrap_ci(flags, bootstrap, seed)
    if not flags:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    return {"value": sum(flags) / len(flags), "lo": ci[0], "hi": ci[1], "n": len(flags)}


def curve(points: dict[float, list[float]], flat: list[float] | None = None, bootstrap: int = 1000, seed: int = 0):
    """{"cells": {"25%": rate, ...}, "flat": RAG's rate on the same questions or None, "shares": [...]} from
    {share: per-question correct flags on taught facts}."""
    shares = sorted(points)
    cells = {f"{s:.0%}": _rate([float(f) for f in points[s]], bootstrap, seed) for s in shares}
    flat_rate = _rate([float(f) for f in flat], bootstrap, seed) if flat else None
    return {"cells": cells, "flat": flat_rate, "shares": shares}


def trend(result: dict[str, Any]) -> str:
    """ "up", "down" or "none": up / down only when the smallest and the largest share's intervals are apart."""
    cells = list(result.get("cells", {}).values())
    if len(cells) < 2 or any(c["value"] is None for c in (cells[0], cells[-1])):
        return "none"
    small, large = cells[0], cells[-1]
    if large["lo"] > small["hi"]:
        return "up"
    if large["hi"] < small["lo"]:
        return "down"
    return "none"


def trend_sentence(result: dict[str, Any]) -> str:
    """One plain sentence: the rates by share, and a trend only where the intervals allow one."""
    cells = result.get("cells", {})
    shown = ", ".join(f"{k} of the data {100 * c['value']:.0f}%" for k, c in cells.items() if c["value"] is not None)
    flat = result.get("flat")
    against = (
        f"; RAG answers {100 * flat['value']:.0f}% of the same questions" if flat and flat["value"] is not None else ""
    )
    words = {"up": "more data helps: the largest share is ahead of the smallest beyond chance",
             "down": "the largest share is behind the smallest beyond chance", "none": NO_TREND}  # fmt: skip
    lead = "Correct on taught facts by share of training data"
    return f"{lead}: {shown or 'not measured'}{against}: {words[trend(result)]}."


# --- running it -----------------------------------------------------------------------------------------------
# Each point is the plain quick preset under the Start tab's schedule, trained on a seeded share of the dataset's
# training split (saved as dataset `curve-DATASET-PCT-sSEED`, the validation split kept whole), then asked the
# taught-fact questions. The 100% point is the Start tab's own plain run (`start-plain-KEY`), or any finished run
# of the same config on the same data, reused when present. RAG's line is the same questions asked of RAG over the
# index. The curve is saved as evaluation `curve-KEY` (its per-question rows, one contestant per share plus RAG)
# with the curve itself under "curve".

PREFIX = "curve-"
PRESET = "quick CPU demo"
RAG_LABEL = "RAG"


class CurveError(LabError):
    """The learning curve cannot run on these inputs; the message names the input and what to do."""


@dataclass
class CurveInputs:
    """What a learning curve runs on: the dataset, the index RAG reads ("" = the sample's for the sample dataset,
    else no RAG line), the evaluation file ("" = the Start tab's question set), how many taught questions (0 =
    all), answer length, seed (subsets and question choice), shares and bootstrap resamples."""

    dataset: str = SAMPLE
    index: str = ""
    qa: str = ""
    questions: int = 0
    max_new_tokens: int = 32
    seed: int = 0
    shares: tuple[float, ...] = SHARES
    bootstrap: int = 1000


def label_of(share: float) -> str:
    return f"{share:.0%}"


def plain_config(dataset: str) -> TrainConfig:
    """The plain quick preset under the Start tab's schedule: the 100% point is the comparison's own training."""
    from lab.arena.showcase import SHOWCASE_TRAIN

    return apply_preset(TrainConfig(dataset=dataset), PRESET).replace(**SHOWCASE_TRAIN)


def index_for(inputs: CurveInputs) -> str:
    return inputs.index or (SAMPLE if inputs.dataset == SAMPLE else "")


def taught_questions(ws: Workspace, inputs: CurveInputs) -> tuple[list[EvalItem], str]:
    """The questions on facts the training data teaches (the file's groups where they name places, else each gold
    looked up in the training split), a seeded stratified `inputs.questions` of them; and where they come from."""
    from lab.arena.decision import TAUGHT, assign_places
    from lab.arena.showcase import Inputs
    from lab.arena.showcase_data import question_set
    from lab.data import load_split
    from lab.data.evalset import stratified

    every, source, _ = question_set(ws, Inputs(dataset=inputs.dataset, qa=inputs.qa))
    train_text = json.dumps(load_split(ws, inputs.dataset, "train"), ensure_ascii=False)
    places, _ = assign_places([it.to_dict() for it in every], train_text)
    taught = [it for it in every if places.get(it.id) == TAUGHT]
    if not taught:
        raise CurveError(
            f"none of the {len(every)} questions ({source}) asks about a fact in dataset {inputs.dataset!r}'s "
            "training data, so fine-tuning on shares of it cannot be measured; give an evaluation file whose "
            "answers the training data holds"
        )
    return stratified(taught, inputs.questions, inputs.seed), source


def subset_name(dataset: str, share: float, seed: int) -> str:
    return f"{PREFIX}{slugify(dataset, 'data')[:40]}-{round(100 * share)}-s{seed}"


def save_subset(ws: Workspace, dataset: str, share: float, seed: int) -> str:
    """Save the seeded `share` of `dataset`'s training split (its validation split whole) as a dataset; its name.
    An existing one with the same rows is kept."""
    from lab.data import examples_hash, load_split

    if share >= 1.0:
        return dataset
    name = subset_name(dataset, share, seed)
    train, val = subset(load_split(ws, dataset, "train"), share, seed), load_split(ws, dataset, "val")
    data_hash = examples_hash(train, val)
    meta_path = ws.dir("datasets", name) / "meta.json"
    if meta_path.is_file() and json.loads(meta_path.read_text(encoding="utf-8")).get("data_hash") == data_hash:
        return name
    meta = {"name": name, "source": f"{share:.0%} of dataset {dataset} (seed {seed}), for the learning curve",
            "format": "chat", "records": len(train) + len(val), "counts": {"train": len(train), "val": len(val)},
            "data_hash": data_hash, "seed": seed, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    with ws.atomic_dir("datasets", name, overwrite=True) as staging:
        for split, rows in (("train", train), ("val", val)):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            (staging / f"{split}.jsonl").write_text(text, encoding="utf-8")
        (staging / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return name


def run_name(ws: Workspace, dataset: str, share: float, seed: int) -> str:
    """The run of a point: the Start tab's plain run for 100%, else `curve-PCT-KEY` (KEY: data hash + config)."""
    from lab.arena.showcase import _name_for, digest
    from lab.data import dataset_hash, examples_hash, load_split

    config = plain_config(dataset)
    if share >= 1.0:
        own = _name_for("plain", dataset_hash(ws, dataset), config)
        return own if finished(ws, own) else (same_run(ws, config, dataset_hash(ws, dataset)) or own)
    name = subset_name(dataset, share, seed)
    rows = subset(load_split(ws, dataset, "train"), share, seed), load_split(ws, dataset, "val")
    key = digest([examples_hash(*rows), config.replace(dataset=name).to_dict()])[:10]
    return f"{PREFIX}{round(100 * share)}-{key}"


def same_run(ws: Workspace, config: TrainConfig, data_hash: str) -> str:
    """A finished run of exactly `config` (its name aside) on data of `data_hash`, e.g. one started with
    `python -m lab train --preset ...`; "" when there is none."""
    from lab.training import CONFIG, read_status

    for run in sorted(ws.list("runs")):
        folder = ws.dir("runs", run)
        if not finished(ws, run) or not (folder / CONFIG).is_file():
            continue
        same = TrainConfig.load(folder / CONFIG).replace(name="") == config.replace(name="")
        if same and read_status(folder).get("data_hash") == data_hash:
            return run
    return ""


def finished(ws: Workspace, run_id: str) -> bool:
    from lab.arena.showcase import _finished_run

    return ws.exists("runs", run_id) and _finished_run(ws, run_id)


# --- the stages and their estimates ---------------------------------------------------------------------------


def stage_list(inputs: CurveInputs) -> list[tuple[str, str]]:
    """(stage, label) in order: train then evaluate each share, then RAG's line when an index is read."""
    out = []
    for label in (label_of(s) for s in sorted(inputs.shares)):
        out += [(f"train:{label}", f"Fine-tuning on {label} of the training data"),
                (f"eval:{label}", f"Asking the {label} model the taught-fact questions")]  # fmt: skip
    if index_for(inputs):
        out.append((f"eval:{RAG_LABEL}", f"Asking RAG over {index_for(inputs)} the same questions"))
    return out


def _fast_cpu() -> bool:
    from lab.catalog import cpu_has_bf16
    from lab.models import has_gpu

    return has_gpu() or cpu_has_bf16()


def plan_for(ws: Workspace, inputs: CurveInputs, items: list[EvalItem]):
    """lab.arena.timing's Plan: each share's steps and measured-throughput seconds from the training planner
    (jobs.check on the share's own rows), the points whose run is finished marked reused."""
    from lab import jobs
    from lab.arena.timing import Plan
    from lab.data import load_split

    plan = Plan(answers=len(items), fast_cpu=_fast_cpu())
    config, train = plain_config(inputs.dataset), load_split(ws, inputs.dataset, "train")
    for share in inputs.shares:
        label = label_of(share)
        if finished(ws, run_name(ws, inputs.dataset, share, inputs.seed)):
            plan.reused.add(f"train:{label}")
            continue
        checked = jobs.check(ws, config, subset(train, share, inputs.seed))
        plan.steps[label] = int(checked["steps"])
        if checked.get("time_s") and not str(checked.get("time_source", "")).startswith("rough guess"):
            plan.measured_train_s[label] = float(checked["time_s"])
    return plan


def latest(ws: Workspace, dataset: str | None = None) -> dict[str, Any] | None:
    """The newest finished learning curve saved here (of `dataset` when given): its evaluation result."""
    from lab.arena import evaluation

    rows = [r for r in evaluation.list_evaluations(ws) if r["id"].startswith(PREFIX) and r["status"] == "finished"]
    for row in sorted(rows, key=lambda r: r["created_at"] or 0, reverse=True):
        try:
            result = evaluation.load_evaluation(ws, row["id"])
        except (OSError, ValueError):
            continue
        if "curve" in result and (dataset is None or result["curve"].get("dataset") == dataset):
            return result
    return None


def forecast(ws: Workspace, inputs: CurveInputs | None = None, machine=None):
    """Each stage's time range before the curve starts (lab.arena.timing: this machine's last curve, its measured
    training throughput, else defaults, under the load now); finished points' trainings are marked reused.
    Raises what the run would (a bad dataset, question set or index)."""
    from lab.arena.timing import Forecast, prior_times, stage_estimate
    from lab.data import ensure_sample_domain
    from lab.estimate import machine_now

    inp = inputs or CurveInputs()
    if inp.dataset == SAMPLE:
        ensure_sample_domain(ws)
    items, _ = taught_questions(ws, inp)
    plan = plan_for(ws, inp, items)
    machine = machine or machine_now()
    prior = prior_times(((latest(ws) or {}).get("curve") or {}).get("stages", []))
    stages = [(s, label, stage_estimate(s, prior, plan, machine)) for s, label in stage_list(inp)]
    return Forecast(stages, machine, len(items), plan.reused)


# --- the run --------------------------------------------------------------------------------------------------

Trainer = Callable[[Workspace, TrainConfig, Callable[[], bool], Callable], str]
Evaluator = Callable[[str, str, list[EvalItem], GenConfig, Callable[[], bool], Callable], "list[dict] | None"]


def train_with_jobs(ws: Workspace, config: TrainConfig, should_stop: Callable[[], bool], report: Callable) -> str:
    """Train `config` (named) as a child process and wait: "finished", or "cancelled" (the run killed) when
    `should_stop` says so; CurveError when it fails. A run of that name still going is waited for."""
    from lab import jobs

    run_id = config.name
    if not ws.exists("runs", run_id) or jobs.poll(ws, run_id)["state"] not in ("queued", "starting", "running"):
        if ws.exists("runs", run_id):
            jobs.delete(ws, run_id)  # an unfinished earlier attempt: start again
        jobs.start(ws, config)
    t0 = time.time()
    while True:
        info = jobs.poll(ws, run_id)
        status = info["status"]
        if info["state"] in ("finished", "stopped"):
            return "finished"
        if info["state"] in ("failed", "cancelled"):
            raise CurveError(f"training {run_id} {info['state']}: {status.get('error') or 'see its train.log'}")
        if should_stop():
            jobs.cancel(ws, run_id)
            return "cancelled"
        step, total = status.get("step") or 0, status.get("total_steps") or 0
        eta_s = (time.time() - t0) / step * (total - step) if step and total else None
        report(step / total if total else 0.0, f"training {run_id}: step {step}/{total or '?'}", eta_s)
        time.sleep(1.0)


def answer_with_models(ws: Workspace, cache) -> Evaluator:
    """The real evaluator: answers go to a checkpoint batch by batch (a cancelled point continues), then the scored
    rows are read back and the contestant's adapter is released."""

    def evaluate(spec, label, items, gen, should_stop, progress):
        from lab.arena import evaluation
        from lab.arena.contestants import release

        status = evaluation.answer_to_checkpoint(ws, cache, spec, spec, items, gen, None, should_stop, progress)
        if status == "cancelled":
            return None
        rows = evaluation.saved_rows(ws, items, [spec], gen)
        evaluation.checkpoint_path(ws, items, [spec], gen).unlink(missing_ok=True)
        release(ws, cache, spec)
        return [r | {"system": label, "spec": spec} for r in rows]

    return evaluate


class _Progress:
    """Stage-by-stage progress as lab.arena.showcase.Update (the same printer and view draw it)."""

    def __init__(self, stages: list[tuple[str, str]], callback, estimates: dict[str, float]):
        self.stages, self.callback, self.estimates = stages, callback or (lambda u: None), estimates
        self.number, self.started = 0, time.time()

    def begin(self, stage: str) -> None:
        self.number = [s for s, _ in self.stages].index(stage) + 1
        self.started = time.time()
        self.report(0.0, "starting")

    def report(self, fraction: float, message: str = "", stage_eta: float | None = None) -> None:
        from lab.arena.showcase import Update

        stage, label = self.stages[self.number - 1]
        guess = self.estimates.get(stage, 0.0)
        left = guess * (1 - fraction) if stage_eta is None else stage_eta
        later = sum(self.estimates.get(s, 0.0) for s, _ in self.stages[self.number :])
        self.callback(Update(stage, label, self.number, len(self.stages), fraction, left, left + later, message))


def curve_key(ws: Workspace, inputs: CurveInputs, items: list[EvalItem]) -> str:
    from lab.arena.showcase import digest
    from lab.data import dataset_hash

    return digest([dataset_hash(ws, inputs.dataset), plain_config(inputs.dataset).to_dict(), sorted(inputs.shares),
                   inputs.seed, index_for(inputs), [it.to_dict() for it in items], inputs.max_new_tokens])  # fmt: skip


def run_curve(
    ws: Workspace,
    cache,
    inputs: CurveInputs | None = None,
    progress: Callable | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    trainer: Trainer | None = None,
    evaluator: Evaluator | None = None,
    plan=None,
) -> dict[str, Any]:
    """Train and ask each share in turn (a finished point's run is reused), then RAG; save and return the
    evaluation result with its "curve". `should_stop` is checked between stages (and inside them): a cancelled
    curve returns {"status": "cancelled", ...} and saves nothing, its finished runs are reused next time.
    `trainer(ws, config, should_stop, report)` and `evaluator(spec, label, items, gen, should_stop, progress)`
    default to jobs (a child process) and the shared model cache; `plan` is the `forecast` shown before the start
    (computed here when not given)."""
    from lab.arena import evaluation

    inp, stop = inputs or CurveInputs(), should_stop or (lambda: False)
    plan = plan or forecast(ws, inp)
    items, source = taught_questions(ws, inp)
    steps = _Progress([(s, label) for s, label, _ in plan.stages], progress, {s: e.seconds for s, _, e in plan.stages})
    train, ask = trainer or train_with_jobs, evaluator or answer_with_models(ws, cache)
    gen = GenConfig(max_new_tokens=inp.max_new_tokens)
    records, rows, runs, points, t_start = [], [], {}, {}, time.time()

    def stage(name: str, work: Callable[[], Any], **extra) -> Any:
        steps.begin(name)
        t0 = time.time()
        out = work()
        took = {"stage": name, "seconds": round(time.time() - t0, 2), "factor": round(plan.machine.factor, 2)}
        records.append(took | extra)
        steps.report(1.0, "done", 0.0)
        return out

    for share in sorted(inp.shares):
        label = label_of(share)
        if stop():
            return {"status": "cancelled", "points": sorted(points)}
        run_id = run_name(ws, inp.dataset, share, inp.seed)
        config = plain_config(save_subset(ws, inp.dataset, share, inp.seed)).replace(name=run_id)
        if finished(ws, run_id):
            state = "finished"
            records.append({"stage": f"train:{label}", "seconds": 0.0, "reused": True, "run": run_id})
        else:
            state = stage(f"train:{label}", lambda c=config: train(ws, c, stop, steps.report))
            records[-1] |= {"run": run_id, "steps": _steps_of(ws, run_id)}
        if state == "cancelled" or stop():
            return {"status": "cancelled", "points": sorted(points)}
        runs[label] = run_id
        got = stage(f"eval:{label}", lambda s=f"ft:{run_id}", lb=label: ask(s, lb, items, gen, stop, _tick(steps)),
                    answers=len(items))  # fmt: skip
        if got is None:
            return {"status": "cancelled", "points": sorted(points)}
        rows += got
        points[share] = [float(r["category"] == "correct") for r in got]
    flat = None
    if index_for(inp):
        if stop():
            return {"status": "cancelled", "points": sorted(points)}
        spec = f"rag:{index_for(inp)}"
        got = stage(f"eval:{RAG_LABEL}", lambda: ask(spec, RAG_LABEL, items, gen, stop, _tick(steps)),
                    answers=len(items))  # fmt: skip
        if got is None:
            return {"status": "cancelled", "points": sorted(points)}
        rows += got
        flat = [float(r["category"] == "correct") for r in got]
    labels = [label_of(s) for s in sorted(inp.shares)] + ([RAG_LABEL] if flat is not None else [])
    result = evaluation.summarize_rows(rows, labels, gen, "finished", inp.bootstrap)
    result["contestants"] = {label_of(s): {"kind": "ft", "run": runs[label_of(s)]} for s in inp.shares}
    if flat is not None:
        result["contestants"][RAG_LABEL] = {"kind": "rag", "index": index_for(inp)}
    result["curve"] = curve(points, flat, inp.bootstrap, inp.seed) | {
        "dataset": inp.dataset, "index": index_for(inp), "seed": inp.seed, "runs": runs, "questions": len(items),
        "question_source": source, "stages": records, "total_s": round(time.time() - t_start, 2),
        "estimate_s": round(plan.total.seconds, 1), "machine_factor": round(plan.machine.factor, 2),
        "subsets": {label_of(s): subset_name(inp.dataset, s, inp.seed) for s in inp.shares if s < 1.0},
    }  # fmt: skip
    result["curve"]["sentence"] = trend_sentence(result["curve"])
    evaluation.save_evaluation(ws, result, source, f"{PREFIX}{curve_key(ws, inp, items)[:16]}")
    return result


def _steps_of(ws: Workspace, run_id: str) -> int | None:
    """The steps a finished run took (its status), the unit a later estimate scales by."""
    from lab.training import read_status

    return read_status(ws.dir("runs", run_id)).get("total_steps") if ws.exists("runs", run_id) else None


def _tick(steps: _Progress) -> Callable[[int, int, str], None]:
    t0 = time.time()

    def tick(done: int, total: int, message: str) -> None:
        eta_s = (time.time() - t0) / done * (total - done) if done else None
        steps.report(done / max(total, 1), message, eta_s)

    return tick


def for_result(ws: Workspace, result: dict[str, Any]) -> dict[str, Any] | None:
    """The curve a decision card shows beside `result`: its own (a curve's evaluation), else the newest saved one
    of the dataset it fine-tuned on (the comparison's inputs, else a contestant's run); None when there is none."""
    if result.get("curve"):
        return result["curve"]
    dataset = ((result.get("showcase") or {}).get("inputs") or {}).get("dataset", "")
    for info in (result.get("contestants") or {}).values():
        dataset = dataset or _dataset_of_run(ws, (info or {}).get("run", ""))
    found = latest(ws, dataset) if dataset else None
    return found["curve"] if found else None


def _dataset_of_run(ws: Workspace, run: str) -> str:
    """The dataset a run of this workspace trained on; "" for no run, a bad name or a run that is not here."""
    try:
        config = ws.dir("runs", run) / "config.json" if run else None
    except WorkspaceError:
        return ""
    return TrainConfig.load(config).dataset if config is not None and config.is_file() else ""
