"""The whole comparison in one call: validate, build the index, train, evaluate every contestant, verdict.

The Start tab and `python -m lab showcase` run `run_showcase`. Every stage is keyed on a hash of its inputs
(data hash + training config, index settings + document hashes, the question set, the generation settings), and
its product is stored under a name derived from that key: a training run `start-KIND-KEY`, an evaluation
`start-CONTESTANT-KEY` per contestant and the comparison `showcase-KEY`. A stage whose product already exists is
reused, so a second run with the same inputs does no work; a cancelled run keeps every finished stage. `forecast`
gives each stage's time range before a run (lab.arena.timing, under the CPU load then); progress goes to one
callback (`Update`: stage, its ETA and the overall ETA, both following measured progress). `quick_look` is the
same comparison on QUICK_QUESTIONS questions. Training extra kinds (e.g. for RAG) and extra contestants are one
entry each in TRAININGS / CONTESTANTS. The questions and the indexed corpus are lab/arena/showcase_data.py's (with
ShowcaseError and `digest`, imported here for callers). The comparison shipped with the app and the examples shown
from a comparison are lab/arena/reference.py's. No gradio here.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab import jobs
from lab.arena import evaluation
from lab.arena.own_evalset import counts_text, group_counts
from lab.arena.scoring import summarize_all
from lab.arena.showcase_data import (
    ShowcaseError,
    check_corpus,
    digest,
    held_out_docs,
    index_docs,
    index_name,
    indexed_corpus,
    question_set,
)
from lab.arena.timing import Forecast, Plan, prior_times, stage_estimate
from lab.arena.verdict import verdict
from lab.config import GenConfig, RagConfig, TrainConfig
from lab.data.evalset import EvalItem, stratified
from lab.estimate import FOR_GENERATION, Machine, apply_threads, drift, eta, machine_now
from lab.training import ADAPTER
from lab.training.plan import PRESETS, apply_preset
from lab.workspace import SAMPLE, Workspace, slugify

PREFIX = "showcase-"
CUT_SHORT = "cut-short"  # in a run folder: a cancelled comparison stopped this run early; it is trained again
# Training kinds: (kind, preset, whether it trains on the index's passages). A kind whose preset (or, for RAG,
# the TrainConfig.rag_index setting) is not in this version is left out.
TRAININGS = (("plain", "quick CPU demo", False), ("rag", "quick CPU demo (RAG)", True))
TRAINING_LABELS = {"plain": "Fine-tuning on the data (quick preset)", "rag": "Fine-tuning for RAG (quick preset)"}
# The showcase's shorter schedule on top of the presets (measured effect: README, section "Start tab"); training
# for RAG keeps its preset's epochs.
SHOWCASE_TRAIN = {"epochs": 1.0, "eval_steps": 0}
# Contestants: (label shown to people, contestant id template, training kinds it needs).
CONTESTANTS = (
    ("base", "base", ()),
    ("fine-tuned", "ft:{plain}", ("plain",)),
    ("RAG", "rag:{index}", ()),
    ("fine-tuned + RAG", "ft+rag:{plain}:{index}", ("plain",)),
    ("trained for RAG + RAG", "ft+rag:{rag}:{index}", ("rag",)),
)
ALL_CONTESTANTS = tuple(label for label, _, _ in CONTESTANTS)
CPU_OPTIONAL = ("trained for RAG + RAG",)  # its training on RAG prompts is the longest stage on a CPU
CONTESTANTS_NOTE = (
    '"trained for RAG + RAG" adds a second fine-tuning, on the RAG prompts, for two epochs: on a 2-core CPU about '
    "10 minutes, 10 times the plain one, so it is ticked by default only on a GPU"
)
QUICK_QUESTIONS = 12  # the quick look: a stratified subset this small, its intervals wide (and labelled so)


@dataclass
class Inputs:
    """What the comparison runs on; the defaults are the installed sample domain and the fast settings."""

    dataset: str = SAMPLE
    corpus: str = SAMPLE
    qa: str = ""  # evaluation JSONL; empty = the sample's questions, or for own data questions held out from it
    questions: int = 40  # stratified subset size (every group kept); 0 = all questions
    max_new_tokens: int = 32
    train: dict[str, Any] = field(default_factory=lambda: dict(SHOWCASE_TRAIN))
    seed: int = 0
    bootstrap: int = 1000
    contestants: list[str] = field(default_factory=list)  # labels from CONTESTANTS; empty = default_contestants()
    quick: bool = False  # a quick look (QUICK_QUESTIONS questions): the view labels its intervals as wide


def quick_look(inputs: Inputs) -> Inputs:
    """The same comparison on QUICK_QUESTIONS questions (every group kept): its trainings and index are the full
    comparison's, so either reuses what the other built."""
    return dataclasses.replace(inputs, questions=QUICK_QUESTIONS, quick=True)


@dataclass
class Update:
    """One progress report: which stage, how far, and the ETAs (None = unknown yet)."""

    stage: str
    label: str
    number: int
    total: int
    fraction: float
    stage_eta_s: float | None
    overall_eta_s: float | None
    message: str = ""


def trainings() -> list[tuple[str, str, bool]]:
    """The training kinds this version can run (the RAG one once its preset and setting exist)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return [t for t in TRAININGS if t[1] in PRESETS and (not t[2] or "rag_index" in fields)]


class _Run:
    """One pass over the stages; `ctx` collects what later stages need (run ids, index name, keys)."""

    def __init__(self, ws: Workspace, cache, inputs: Inputs, progress, should_stop, train_hooks=None, answer=None,
                 machine: Machine | None = None):  # fmt: skip
        self.ws, self.cache, self.inputs = ws, cache, inputs
        self.train_hooks, self.answer = train_hooks or (lambda: {}), answer
        self.progress, self.should_stop = progress or (lambda u: None), should_stop or (lambda: False)
        self.ctx: dict[str, Any] = {}
        self.records: list[dict[str, Any]] = []
        self.prior = prior_times((latest(ws) or {}).get("showcase", {}).get("stages", []))
        self.machine = machine or machine_now()  # the load of other work, read before this run adds its own
        self.plan = Plan(answers=inputs.questions, fast_cpu=_fast_cpu())
        self.stages = _stage_list(inputs.contestants)
        self.number = 0
        self.started = self.stage_started = 0.0
        self.expected_done = self.taken_done = 0.0  # estimated and measured seconds of the stages that did work

    def report(self, fraction: float, message: str = "", stage_eta: float | None = None) -> None:
        """Progress of the current stage: its ETA follows measured progress (the stage's own `stage_eta`, else
        elapsed / fraction done) once there is some, before that the estimate; the later stages' estimates are
        scaled by how far the finished ones ran from theirs."""
        stage, label = self.stages[self.number - 1][:2]
        guess = self.expected(stage)
        left = stage_eta if stage_eta is not None else eta(time.time() - self.stage_started, fraction)
        left = guess * (1 - fraction) if left is None else left
        later = sum(self.expected(s[0]) for s in self.stages[self.number :])
        overall = left + later * drift(self.taken_done, self.expected_done)
        self.progress(Update(stage, label, self.number, len(self.stages), fraction, left, overall, message))

    def expected(self, stage: str) -> float:
        """Seconds a stage should take on this machine under the load read at the start."""
        return stage_estimate(stage, self.prior, self.plan, self.machine).seconds

    def go(self) -> dict[str, Any]:
        self.started = time.time()
        for number, (stage, label, work) in enumerate(self.stages, 1):
            self.number = number
            if self.should_stop():
                return self.finish("cancelled")
            t0, cpu0 = time.time(), _cpu_s()
            self.stage_started, expected = t0, self.expected(stage)
            self.report(0.0, "starting")
            info = work(self) or {}
            if info.get("cancelled"):
                return self.finish("cancelled")
            took = {"seconds": round(time.time() - t0, 2), "cpu_s": round(_cpu_s() - cpu0, 1)}
            if not info.get("reused"):
                self.expected_done, self.taken_done = self.expected_done + expected, self.taken_done + took["seconds"]
            took |= {"estimate_s": round(expected, 1), "factor": round(self.machine.factor, 2)}
            if stage.startswith("train:"):  # per planned step: training for RAG runs more steps than planned
                took["planned_steps"] = self.plan.steps.get(stage.split(":", 1)[1])
            self.records.append({"stage": stage, "label": label} | took | info)
            self.report(1.0, "reused (same inputs as before)" if info.get("reused") else "done", 0.0)
        return self.finish("finished")

    def finish(self, status: str) -> dict[str, Any]:
        source = self.ctx.get("question_source", "")
        result = self.ctx.get("result") or compose(self.ctx.get("evals", {}), self.inputs, status, source)
        result = dict(result, status=status if status == "cancelled" else result.get("status", status))
        result["run"] = {"stages": self.records, "total_s": round(time.time() - self.started, 2), "status": status}
        return result


def _fast_cpu() -> bool:
    """Whether the stage defaults hold as they are: a GPU, or a CPU with bf16 instructions (lab.catalog)."""
    from lab.catalog import cpu_has_bf16
    from lab.models import has_gpu

    return has_gpu() or cpu_has_bf16()


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (training): comparable on a shared machine."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# --- stages -------------------------------------------------------------------------------------------------


def _validate(run: _Run) -> dict:
    from lab.data import dataset_hash, ensure_sample_domain

    ws, inp = run.ws, run.inputs
    if SAMPLE in (inp.dataset, inp.corpus):
        ensure_sample_domain(ws)
    check_corpus(ws, inp.corpus)
    every, qa, said = question_set(ws, inp)
    items = stratified(every, inp.questions, inp.seed)
    run.ctx.update(qa=qa, items=items, all_items=len(every), data_hash=dataset_hash(ws, inp.dataset))
    run.ctx["held_out_docs"] = held_out_docs(every)
    run.plan.answers = len(items)
    run.ctx["question_source"] = f"{said}; asked {len(items)}: {counts_text(group_counts(items))}"
    run.ctx["configs"] = {kind: _train_config(inp, preset, rag) for kind, preset, rag in trainings()}
    plain = run.ctx["configs"]["plain"]
    reused = _finished_run(ws, _run_name(run, "plain"))
    if not reused:
        run.ctx["steps"] = _plan_training(ws, plain, "plain", run.plan)  # the validator's errors, settings, model
    if any(stage == "train:rag" for stage, _, _ in run.stages):
        _plan_training(ws, run.ctx["configs"]["rag"], "rag", run.plan)
    run.ctx["questions_hash"] = digest([it.to_dict() for it in items])
    return {"reused": reused, "questions": len(items), "of": run.ctx["all_items"], "source": said}


def _plan_training(ws: Workspace, config: TrainConfig, kind: str, plan: Plan) -> int:
    """jobs.check's steps for a training (on the dataset's own rows), and its time where this machine's
    throughput was measured; both go into `plan`. Returns the steps."""
    checked = jobs.check(ws, config)
    plan.steps[kind] = checked.steps
    if checked.time_s and checked.measured:
        plan.measured_train_s[kind] = checked.time_s
    return plan.steps[kind]


def _train_config(inp: Inputs, preset: str, for_rag: bool) -> TrainConfig:
    """The preset under the showcase's schedule; training for RAG keeps its preset's epochs (its second epoch is
    what cuts the made-up answers: docs/experiments/) unless max_steps says otherwise."""
    train = {k: v for k, v in inp.train.items() if not (for_rag and k == "epochs")}
    return apply_preset(TrainConfig(dataset=inp.dataset), preset).replace(**train)


def _index(run: _Run) -> dict:
    from lab.rag import build_index, ensure_sample_index, index_info, list_indexes
    from lab.rag.chunking import load_documents
    from lab.rag.index import fingerprint

    ws, corpus = run.ws, indexed_corpus(run.ws, run.inputs.corpus, run.ctx.get("held_out_docs", ()), create=True)
    name = SAMPLE if corpus == SAMPLE else index_name(ws, corpus)
    folder = ws.dir("indexes", name)
    config = RagConfig.load(folder / "config.json") if name in list_indexes(ws) else RagConfig(name=name)
    config = config.replace(name=name, corpus=corpus)
    docs = sorted(d.doc_id for d in load_documents(ws, corpus).documents)
    reused = name in list_indexes(ws) and index_docs(index_info(ws, name)) == docs
    if not reused and name == SAMPLE:
        ensure_sample_index(ws, run.cache, lambda f, m: run.report(f, m))
        reused = index_docs(index_info(ws, name)) == docs
    if not reused:
        build_index(ws, config, run.cache, progress=lambda f, m: run.report(f, m))
    meta = index_info(ws, name)
    run.ctx.update(index=name, index_key=digest([meta.get("fingerprint") or fingerprint(config), docs]))
    return {"reused": reused, "index": name}


def _for_rag(kind: str) -> bool:
    return any(rag for k, _, rag in TRAININGS if k == kind)


def _config(run: _Run, kind: str) -> TrainConfig:
    config = run.ctx["configs"][kind]
    return config.replace(rag_index=run.ctx["index"]) if _for_rag(kind) else config


def _run_name(run: _Run, kind: str) -> str:
    """`start-KIND-KEY`, KEY from the data hash, the config and (training for RAG) the index key."""
    index_key = run.ctx["index_key"] if _for_rag(kind) else ""
    return _name_for(kind, run.ctx["data_hash"], _config(run, kind), index_key)


def _name_for(kind: str, data_hash: str, config: TrainConfig, index_key: str = "") -> str:
    return f"start-{kind}-{digest([data_hash, config.to_dict(), index_key])[:10]}"


def _finished_run(ws: Workspace, run_id: str) -> bool:
    """The run has its adapter, and it was not cut short by a cancelled comparison (a run trained inside the app,
    on ZeroGPU, cannot be killed: Cancel stops it early, and it saves an adapter of the steps so far)."""
    folder = ws.dir("runs", run_id)
    return (folder / ADAPTER / "adapter_config.json").is_file() and not (folder / CUT_SHORT).exists()


def _train(kind: str) -> Callable[[_Run], dict]:
    def work(run: _Run) -> dict:
        ws, run_id = run.ws, _run_name(run, kind)
        run.ctx.setdefault("runs", {})[kind] = run_id
        if _finished_run(ws, run_id):
            return {"reused": True, "run": run_id}
        if ws.exists("runs", run_id) and jobs.poll(ws, run_id)["state"] in ("queued", "starting", "running"):
            return _watch_training(run, run_id, own=False)  # started by another comparison: wait for it
        if ws.exists("runs", run_id):
            jobs.delete(ws, run_id)  # an unfinished earlier attempt (cancelled or failed): start again
        jobs.start(ws, _config(run, kind).replace(name=run_id), **run.train_hooks())  # ZeroGPU: inside a slot
        return _watch_training(run, run_id)

    return work


def _watch_training(run: _Run, run_id: str, own: bool = True) -> dict:
    """Poll the training until it ends; Cancel kills it when this comparison started it."""
    t0 = time.time()
    while True:
        info = jobs.poll(run.ws, run_id)
        status = info["status"]
        if info["state"] in ("finished", "stopped"):
            return {"reused": False, "run": run_id, "steps": status.get("step")}
        if info["state"] in ("failed", "cancelled"):
            raise ShowcaseError(f"training {run_id} {info['state']}: {status.get('error') or 'see its train.log'}")
        if run.should_stop():
            if own:
                if status.get("inline"):  # it stops after its step and saves an adapter that is not the run's
                    (run.ws.dir("runs", run_id) / CUT_SHORT).touch()
                jobs.cancel(run.ws, run_id)
            return {"cancelled": True}
        step, total = status.get("step") or 0, status.get("total_steps") or run.ctx.get("steps") or 0
        eta = (time.time() - t0) / step * (total - step) if step and total else None
        run.report(step / total if total else 0.0, f"training {run_id}: step {step}/{total or '?'}", eta)
        time.sleep(1.0)


def _evaluate(label: str, template: str) -> Callable[[_Run], dict]:
    def work(run: _Run) -> dict:
        from lab.arena.contestants import describe

        ws, spec = run.ws, template.format(index=run.ctx["index"], **run.ctx.get("runs", {}))
        gen = GenConfig(max_new_tokens=run.inputs.max_new_tokens)
        key = _eval_key(template, run.ctx, run.inputs)
        eval_id = f"start-{slugify(label)}-{key[:10]}"
        info = describe(ws, spec)  # which run was trained for RAG: the verdict's sentence on it
        run.ctx.setdefault("evals", {})[label] = {"spec": spec, "id": eval_id, "key": key, "info": info}
        if ws.exists("evals", eval_id):
            run.ctx["evals"][label]["result"] = evaluation.load_evaluation(ws, eval_id)
            return {"reused": True, "evaluation": eval_id}
        run.report(0.0, f"loading {spec}")
        items, t0 = run.ctx["items"], time.time()

        def tick(done: int, total: int, message: str) -> None:
            eta = (time.time() - t0) / done * (total - done) if done else None
            run.report(done / max(total, 1), f"{spec}: {done}/{total} answers", eta)

        def here(spec, label, items, gen, should_stop, progress) -> str:
            return evaluation.answer_to_checkpoint(ws, run.cache, spec, label, items, gen, None, should_stop, progress)

        # Answers go to a checkpoint batch by batch (a cancelled or killed stage continues), here or through the
        # caller's `answer` (a ZeroGPU Space answers in GPU slots).
        status = (run.answer or here)(spec, label, items, gen, run.should_stop, tick)
        if status == "cancelled":
            return {"cancelled": True}
        rows = evaluation.saved_rows(ws, items, [label], gen)
        result = evaluation.summarize_rows(rows, [label], gen, "finished", run.inputs.bootstrap)
        evaluation.save_evaluation(ws, result | {"showcase_stage": spec}, run.ctx["qa"], eval_id)
        evaluation.checkpoint_path(ws, items, [label], gen).unlink(missing_ok=True)
        run.ctx["evals"][label]["result"] = result
        return {"reused": False, "evaluation": eval_id, "answers": len(items)}

    return work


def _eval_key(template: str, ctx: dict, inputs: Inputs) -> str:
    """An evaluation's key: the contestant kind, the index and run it uses, the questions and generation settings."""
    deps = [ctx["index_key"] if "{index}" in template else ""]
    deps += [ctx["runs"][k] for k in ctx.get("runs", {}) if "{" + k + "}" in template]
    gen = GenConfig(max_new_tokens=inputs.max_new_tokens)
    return digest([template.split(":")[0], deps, ctx["questions_hash"], gen.to_dict(), inputs.bootstrap])


def _verdict(run: _Run) -> dict:
    evals = run.ctx["evals"]
    key = digest([e["key"] for e in evals.values()])
    eval_id = f"{PREFIX}{key[:16]}"
    if run.ws.exists("evals", eval_id):
        run.ctx["result"] = evaluation.load_evaluation(run.ws, eval_id)
        return {"reused": True, "evaluation": eval_id}
    result = compose(evals, run.inputs, "finished", run.ctx.get("question_source", ""))
    result["showcase"] |= {"stages": run.records, "total_s": round(time.time() - run.started, 2)}
    evaluation.save_evaluation(run.ws, result, run.ctx["qa"], eval_id)
    run.ctx["result"] = result
    return {"reused": False, "evaluation": eval_id}


def compose(evals: dict[str, dict], inputs: Inputs, status: str, source: str = "") -> dict[str, Any]:
    """One comparison from {label: {"spec": contestant id, "result": its evaluation}} (those with a result);
    `source` says which questions were asked."""
    done = {label: e for label, e in evals.items() if e.get("result")}
    rows = [r for e in done.values() for r in e["result"]["questions"]]
    first = next(iter(done.values()), {}).get("result", {})
    result = {"status": status, "gen": first.get("gen", {}), "questions": rows}
    result["contestants"] = {label: e["info"] for label, e in done.items() if e.get("info")}  # for the verdict
    result["systems"] = summarize_all(rows, list(done), inputs.bootstrap) if rows else []
    result["verdict"] = verdict(result)
    result["showcase"] = {
        "inputs": dataclasses.asdict(inputs),
        "contestants": {k: e["spec"] for k, e in evals.items()},
        "questions": len({r["id"] for r in rows}),
        "question_source": source,
    }
    return result


def default_contestants() -> tuple[str, ...]:
    """Every contestant on CUDA; on a CPU all but CPU_OPTIONAL (so the default comparison fits minutes)."""
    from lab.models import has_gpu

    return ALL_CONTESTANTS if has_gpu() else tuple(c for c in ALL_CONTESTANTS if c not in CPU_OPTIONAL)


def _stage_list(only: list[str]) -> list[tuple[str, str, Callable]]:
    """validate, index, the trainings the chosen contestants need, one evaluation per contestant, verdict."""
    chosen = _chosen(only)
    kinds = {kind for c in chosen for kind in c[2]}
    stages = [("validate", "Checking the data, questions and model", _validate),
              ("index", "Building the retrieval index", _index)]  # fmt: skip
    stages += [
        (f"train:{k}", TRAINING_LABELS.get(k, f"Fine-tuning ({k})"), _train(k)) for k in sorted(kinds, key=_order)
    ]
    for label, template, _ in chosen:
        stages.append((f"eval:{label}", f"Evaluating {label}", _evaluate(label, template)))
    return stages + [("verdict", "Writing the verdict", _verdict)]


def _chosen(only: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """The CONTESTANTS entries picked by label (["all"] = every one, empty = the defaults) that this version can
    train for; ShowcaseError for an unknown label."""
    only = list(ALL_CONTESTANTS) if only == ["all"] else (only or list(default_contestants()))
    unknown = sorted(set(only) - {c[0] for c in CONTESTANTS})
    if unknown:
        raise ShowcaseError(f"contestant(s) {', '.join(unknown)} unknown; use {', '.join(c[0] for c in CONTESTANTS)}")
    available = {kind for kind, _, _ in trainings()}
    return [c for c in CONTESTANTS if c[0] in only and set(c[2]) <= available]


def _order(kind: str) -> int:
    return [k for k, _, _ in TRAININGS].index(kind)


# --- public API ---------------------------------------------------------------------------------------------


def run_showcase(
    ws: Workspace,
    cache,
    inputs: Inputs | None = None,
    progress: Callable[[Update], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    train_hooks: Callable[[], dict[str, Callable]] | None = None,
    answer: Callable[..., str] | None = None,
    machine: Machine | None = None,
) -> dict[str, Any]:
    """Run (or reuse) every stage; returns the comparison (an evaluation result + `showcase` and `run`).

    For a ZeroGPU Space the UI passes what this layer cannot import (lab.ui.spaces): `train_hooks()` gives each
    training's `jobs.start` hooks (`admit`, `run_inline`: it trains inside a GPU slot), and `answer(spec, label,
    items, gen, should_stop, progress)` answers one contestant's questions into its checkpoint
    (`evaluation.answer_to_checkpoint`, in GPU slots) and returns "finished" or "cancelled"."""
    apply_threads(machine, names=FOR_GENERATION)  # torch's threads for the load the estimate read
    return _Run(ws, cache, inputs or Inputs(), progress, should_stop, train_hooks, answer, machine).go()


def work_plan(ws: Workspace, inputs: Inputs | None = None) -> dict[str, Any]:
    """What a comparison will do, read before it starts (for a quota check): `training_s`, the estimated seconds
    of each training still to run (jobs.check's estimate; training for RAG is estimated on the dataset's own rows,
    and a finished plain run is left out), `questions`, `contestants`, and `untrained`, the contestants that need
    no training. Raises what the comparison's first stage would (a bad dataset, question set or contestant)."""
    from lab.data import dataset_hash, ensure_sample_domain

    inp = inputs or Inputs()
    if SAMPLE in (inp.dataset, inp.corpus):
        ensure_sample_domain(ws)
    items = stratified(question_set(ws, inp)[0], inp.questions, inp.seed)
    chosen = _chosen(inp.contestants)
    kinds = {kind for c in chosen for kind in c[2]}
    data_hash, training = dataset_hash(ws, inp.dataset), {}
    for kind, preset, rag in trainings():
        config = _train_config(inp, preset, rag)
        if kind in kinds and (rag or not _finished_run(ws, _name_for(kind, data_hash, config))):
            training[kind] = jobs.check(ws, config).time_s
    untrained = sum(not c[2] for c in chosen)
    return {"training_s": training, "questions": len(items), "contestants": len(chosen), "untrained": untrained}


def forecast(ws: Workspace, inputs: Inputs | None = None, machine: Machine | None = None) -> Forecast:
    """Each stage's time range before the comparison starts: from this machine's last comparison (per answer, per
    training step), its measured training throughput, else defaults, under the CPU load now (`machine`, default
    read now); a stage whose product exists is marked reused. Raises what the first stage would (a bad dataset,
    question set or contestant)."""
    from lab.data import ensure_sample_domain

    inp = inputs or Inputs()
    if SAMPLE in (inp.dataset, inp.corpus):
        ensure_sample_domain(ws)
    check_corpus(ws, inp.corpus)
    every = question_set(ws, inp)[0]
    items = stratified(every, inp.questions, inp.seed)
    stages = _stage_list(inp.contestants)
    plan = Plan(answers=len(items), fast_cpu=_fast_cpu())
    _plan_reuse(ws, inp, items, [s for s, _, _ in stages], plan, held_out_docs(every))
    machine = machine or machine_now()
    prior = prior_times((latest(ws) or {}).get("showcase", {}).get("stages", []))
    estimates = [(stage, label, stage_estimate(stage, prior, plan, machine)) for stage, label, _ in stages]
    return Forecast(estimates, machine, len(items), plan.reused)


def _plan_reuse(ws: Workspace, inp: Inputs, items: list[EvalItem], stages: list[str], plan: Plan,
                held_out: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Which stages' products exist already (into `plan.reused`), and the steps of the trainings still to run;
    `held_out`: the documents the index leaves out."""
    from lab.data import dataset_hash
    from lab.rag import index_info, list_indexes

    corpus = indexed_corpus(ws, inp.corpus, held_out)
    index = SAMPLE if corpus == SAMPLE else index_name(ws, corpus)
    ctx: dict[str, Any] = {"index_key": None, "runs": {}, "questions_hash": digest([it.to_dict() for it in items])}
    if index in list_indexes(ws):
        meta = index_info(ws, index)
        ctx["index_key"] = digest([meta.get("fingerprint"), index_docs(meta)]) if meta.get("fingerprint") else None
    plan.reused |= {"index"} if ctx["index_key"] else set()
    data_hash, configs = dataset_hash(ws, inp.dataset), {k: _train_config(inp, p, r) for k, p, r in trainings()}
    for kind in (s.split(":", 1)[1] for s in stages if s.startswith("train:")):
        config = configs[kind].replace(rag_index=index) if _for_rag(kind) else configs[kind]
        index_key = ctx["index_key"] if _for_rag(kind) else ""
        name = "" if index_key is None else _name_for(kind, data_hash, config, index_key)
        if name and _finished_run(ws, name):
            plan.reused.add(f"train:{kind}")
            ctx["runs"][kind] = name
        else:
            _plan_training(ws, configs[kind], kind, plan)
    keys = []
    for label, template, kinds in _chosen(inp.contestants):
        ready = all(k in ctx["runs"] for k in kinds) and (ctx["index_key"] or "{index}" not in template)
        keys.append(_eval_key(template, ctx, inp) if ready else "")
        if ready and ws.exists("evals", f"start-{slugify(label)}-{keys[-1][:10]}"):
            plan.reused.add(f"eval:{label}")
    if all(keys) and ws.exists("evals", f"{PREFIX}{digest(keys)[:16]}"):
        plan.reused.add("verdict")


def list_showcases(ws: Workspace) -> list[dict[str, Any]]:
    """Saved finished comparisons, newest first."""
    rows = [r for r in evaluation.list_evaluations(ws) if r["id"].startswith(PREFIX) and r["status"] == "finished"]
    return sorted(rows, key=lambda r: r["created_at"] or 0, reverse=True)


def latest(ws: Workspace) -> dict[str, Any] | None:
    """The newest finished comparison on this workspace, or None."""
    for row in list_showcases(ws):
        try:
            return evaluation.load_evaluation(ws, row["id"])
        except (OSError, ValueError):
            continue
    return None
