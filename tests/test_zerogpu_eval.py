"""ZeroGPU batch work, on a CPU: Cancel reaches an evaluation running in a forked worker (a flag file), answers are
saved batch by batch so a killed or cancelled evaluation continues where it stopped, an evaluation longer than a slot
is answered in slot-sized chunks or refused naming how many questions fit, resume and the Start tab train through
the ZeroGPU hooks, and a whole comparison that cannot fit the visitor's quota is refused before it starts.

Evaluations run with the scripted contestants of tests/test_arena.py in real forked processes (os.fork through
multiprocessing), as a ZeroGPU slot's worker is; the ZeroGPU hooks are recorded stand-ins of our own functions."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import signal
import time
from types import SimpleNamespace

import pytest
from fakes import Scripted, eval_items

from lab.arena import evaluation
from lab.config import GenConfig
from lab.ui import common
from lab.ui import spaces as zg
from lab.ui import zerogpu_budget as budget

FORK = multiprocessing.get_context("fork")
ZERO = {"SPACES_ZERO_GPU": "true"}
GOOD = {f"colour {i}?": "It is blue [1]." for i in range(8)}
BAD = {f"colour {i}?": "red" for i in range(8)} | {"price 0?": "100 euro"}


def same_length(preds: list[str], golds: list[str]) -> list[float]:
    """A deterministic stand-in for the embedding similarity (its value only has to be reproducible)."""
    return [1.0 / (1 + abs(len(p) - len(g))) for p, g in zip(preds, golds, strict=True)]


class Slow(Scripted):
    """A scripted contestant that takes a while per batch, so a cancel lands between batches."""

    def answer_many(self, questions, gen):
        time.sleep(0.3)
        return super().answer_many(questions, gen)


class Dying(Scripted):
    """A scripted contestant whose process is SIGKILLed on its `die_on`-th batch (a slot that runs out)."""

    def __init__(self, name, answers, die_on: int):
        super().__init__(name, answers)
        self.die_on = die_on

    def answer_many(self, questions, gen):
        if self.calls + 1 == self.die_on:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().answer_many(questions, gen)


def plain(result: dict) -> dict:
    return json.loads(json.dumps(result, default=str))


def saved_rows(path, items, systems, gen) -> dict:
    return evaluation.read_checkpoint(path, evaluation.checkpoint_key(items, systems, gen))


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


# --- Cancel across processes ----------------------------------------------------------------------------------


def test_cancel_in_the_parent_stops_an_evaluation_in_a_forked_worker_and_keeps_its_answers(tmp_path):
    flags = common.SessionFlags(tmp_path / "flags")  # made before the fork, as the tab is built before launch
    visitor, other = SimpleNamespace(session_hash="visitor"), SimpleNamespace(session_hash="other")
    checkpoint, gen, items = tmp_path / "answers.jsonl", GenConfig(batch_size=2), eval_items()
    results = FORK.Queue()

    def worker():  # a GPU slot's worker: the flag is made fresh there, as the handler does in the slot
        flag = flags.fresh(visitor)
        responders = {"x": Slow("x", GOOD)}
        results.put(evaluation.run_evaluation(items, responders, gen, should_stop=flag.is_set, bootstrap=20,
                                              checkpoint=checkpoint))  # fmt: skip

    child = FORK.Process(target=worker)
    child.start()
    wait_until(lambda: len(saved_rows(checkpoint, items, ["x"], gen)) >= 2)  # one batch answered
    assert not flags.cancel(other)  # another visitor's Cancel has no work to stop
    assert flags.cancel(visitor)
    result = results.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    answered = len(result["questions"])
    assert result["status"] == "cancelled" and 2 <= answered <= 6 < len(items)  # stopped at the next batch
    kept = saved_rows(checkpoint, items, ["x"], gen)
    assert sorted(kept) == sorted(("x", r["id"]) for r in result["questions"])  # what was answered is kept
    assert not flags.fresh(visitor).is_set()  # the next run starts with the flag cleared


def test_a_file_flag_is_seen_by_a_process_forked_before_it_was_raised(tmp_path):
    flag = common.FileFlag(tmp_path / "stop")
    seen = FORK.Queue()
    child = FORK.Process(target=lambda: (wait_until(flag.is_set), seen.put(True)))
    child.start()
    flag.set()
    assert seen.get(timeout=30) is True
    child.join(30)


# --- per-batch checkpoints: a killed evaluation continues -----------------------------------------------------


def test_a_killed_evaluation_keeps_its_batches_and_a_rerun_answers_only_the_rest(tmp_path):
    items, gen, checkpoint = eval_items(), GenConfig(batch_size=5), tmp_path / "answers.jsonl"

    def worker():  # killed on the second contestant's second batch, as a slot that runs out of time
        responders = {"rag:x": Scripted("rag:x", GOOD), "base": Dying("base", BAD, die_on=2)}
        evaluation.run_evaluation(items, responders, gen, same_length, bootstrap=50, checkpoint=checkpoint)

    child = FORK.Process(target=worker)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    kept = saved_rows(checkpoint, items, ["rag:x", "base"], gen)
    assert len(kept) == 12 + 5  # every batch of the first contestant, one batch of the second

    good, bad = Scripted("rag:x", GOOD), Scripted("base", BAD)
    resumed = evaluation.run_evaluation(items, {"rag:x": good, "base": bad}, gen, same_length, bootstrap=50,
                                        checkpoint=checkpoint)  # fmt: skip
    assert (good.calls, bad.calls) == (0, 2)  # only the 7 answers left, in batches of 5
    whole = evaluation.run_evaluation(items, {"rag:x": Scripted("rag:x", GOOD), "base": Scripted("base", BAD)},
                                      gen, same_length, bootstrap=50)  # fmt: skip
    assert resumed["status"] == "finished" and plain(resumed) == plain(whole)


def test_budgeted_calls_answer_slot_sized_chunks_and_add_up_to_the_whole_evaluation(tmp_path):
    items, gen, checkpoint = eval_items(), GenConfig(batch_size=4), tmp_path / "answers.jsonl"
    good, bad = Scripted("rag:x", GOOD), Scripted("base", BAD)
    statuses, sizes = [], []
    while not statuses or statuses[-1] == "partial":
        before = good.calls + bad.calls
        rows, status = evaluation.answer_items(items, {"rag:x": good, "base": bad}, gen, same_length,
                                               checkpoint=checkpoint, budget=8)  # fmt: skip
        statuses.append(status)
        sizes.append(good.calls + bad.calls - before)
    assert statuses == ["partial", "partial", "finished"] and sizes == [2, 2, 2]  # 24 answers, 8 per call
    whole = evaluation.run_evaluation(items, {"rag:x": Scripted("rag:x", GOOD), "base": Scripted("base", BAD)},
                                      gen, same_length, bootstrap=50)  # fmt: skip
    chunked = evaluation.summarize_rows(rows, ["rag:x", "base"], gen, "finished", bootstrap=50)
    assert plain(chunked) == plain(whole)


def test_a_torn_last_line_is_dropped_and_other_settings_start_over(tmp_path):
    items, gen, checkpoint = eval_items(), GenConfig(batch_size=4), tmp_path / "answers.jsonl"
    evaluation.answer_items(items, {"x": Scripted("x", GOOD)}, gen, checkpoint=checkpoint, budget=4)
    with checkpoint.open("a") as fh:
        fh.write('{"system": "x", "id": "q4", "predic')  # killed while writing a line
    assert len(saved_rows(checkpoint, items, ["x"], gen)) == 4
    responder = Scripted("x", GOOD)
    evaluation.answer_items(items, {"x": responder}, gen, checkpoint=checkpoint)
    assert responder.calls == 2 and len(saved_rows(checkpoint, items, ["x"], gen)) == 12
    other = GenConfig(batch_size=4, max_new_tokens=7)
    assert saved_rows(checkpoint, items, ["x"], other) == {}  # other settings: nothing reused


# --- chunk arithmetic and the quota -----------------------------------------------------------------------------


def test_on_zero_gpu_an_evaluation_splits_into_chunks_that_each_fit_one_slot():
    per = budget.answers_per_slot(8, ZERO)
    slot = zg.slot_seconds(ZERO)
    assert per % 8 == 0 and zg.answers_duration(per) <= slot < zg.answers_duration(per + 8)
    chunks = budget.answer_chunks(120 * 4, 8, ZERO)  # the default set, four contestants
    assert sum(chunks) == 480 and len(chunks) == -(-480 // per) and all(0 < c <= per for c in chunks)
    assert budget.chunks_seconds(chunks, ZERO) <= len(chunks) * slot
    assert budget.answer_chunks(480, 8, {}) == [480]  # off ZeroGPU: one call with everything
    assert budget.answer_chunks(0, 8, ZERO) == []
    longer = {**ZERO, "LAB_ZEROGPU_SLOT_S": str(2 * slot)}
    assert budget.answers_per_slot(8, longer) > per


def test_a_batch_that_cannot_fit_one_slot_is_refused_with_the_batch_size_that_fits():
    tight = {**ZERO, "LAB_ZEROGPU_SLOT_S": "30"}
    fits = budget.answers_per_slot(1, tight)
    with pytest.raises(zg.ZeroGpuError, match=f"batch size to {fits} or less"):
        budget.answers_per_slot(fits + 1, tight)
    with pytest.raises(zg.ZeroGpuError, match="LAB_ZEROGPU_SLOT_S higher"):
        budget.answers_per_slot(1, {**ZERO, "LAB_ZEROGPU_SLOT_S": str(int(zg.answers_duration(0)))})


def test_an_evaluation_over_the_quota_is_refused_naming_how_many_questions_fit():
    env = {**ZERO, "LAB_ZEROGPU_QUOTA_S": "240"}
    with pytest.raises(zg.ZeroGpuError) as err:
        budget.refuse_long_evaluation(120, 4, 8, env=env)
    message = str(err.value)
    fits = int(message.split("at most ")[1].split()[0])
    assert "120 questions x 4 contestants" in message and "LAB_ZEROGPU_QUOTA_S" in message and "\n" not in message
    assert budget.chunks_seconds(budget.answer_chunks(fits * 4, 8, env), env) <= 240
    assert budget.chunks_seconds(budget.answer_chunks((fits + 1) * 4, 8, env), env) > 240
    assert budget.refuse_long_evaluation(fits, 4, 8, env=env) == budget.answer_chunks(fits * 4, 8, env)
    assert budget.refuse_long_evaluation(120, 4, 8, saved=480 - fits * 4, env=env)  # what is saved costs nothing
    assert budget.refuse_long_evaluation(120, 4, 8, env={}) == [480]  # off ZeroGPU nothing is refused


def test_the_quota_defaults_to_a_free_accounts_and_reads_its_variable():
    assert budget.quota_seconds({}) == budget.DEFAULT_QUOTA_S == 300
    assert budget.quota_seconds({"LAB_ZEROGPU_QUOTA_S": "1500"}) == 1500
    assert budget.quota_seconds({"LAB_ZEROGPU_QUOTA_S": "lots"}) == budget.DEFAULT_QUOTA_S


def test_a_comparison_over_the_quota_is_refused_saying_what_fits():
    env = {**ZERO, "LAB_ZEROGPU_QUOTA_S": "300"}
    training = {"plain": 100.0}

    def fits(trained: dict, contestants: int) -> int:
        cost = lambda q: budget.comparison_seconds(trained, q, contestants, 8, env)  # noqa: E731
        return max((q for q in range(1, 41) if cost(q) <= 300), default=0)

    assert budget.comparison_seconds(training, 40, 5, 8, env) > 300
    with pytest.raises(zg.ZeroGpuError) as err:
        budget.refuse_long_comparison(training, 40, 5, 8, n_untrained=2, env=env)
    message = str(err.value)
    assert f"ask {fits(training, 5)} questions or fewer" in message and fits(training, 5) < 40
    assert f"skip the contestants that need training ({fits({}, 2)} questions fit then)" in message
    assert "plain ~100 s" in message and "LAB_ZEROGPU_QUOTA_S" in message and "\n" not in message
    assert budget.refuse_long_comparison(training, fits(training, 5), 5, 8, n_untrained=2, env=env) is None
    assert budget.refuse_long_comparison(training, 40, 5, 8, n_untrained=2, env={}) is None  # off ZeroGPU


# --- resume and the Start tab's training go through the ZeroGPU hooks -------------------------------------------


class RecordingHooks:
    """Stand-ins for lab.ui.spaces.slot_training's hooks that record their calls; `finish` makes the inline
    "training" end at once as finished, with an empty adapter (nothing is trained)."""

    def __init__(self, finish: bool = False):
        self.admitted, self.inline, self.finish = [], [], finish

    def __call__(self) -> dict:
        return {"admit": lambda config, plan: self.admitted.append((config, dict(plan))), "run_inline": self.run}

    def run(self, run_dir) -> None:
        from lab.training import write_status

        self.inline.append(run_dir)
        if self.finish:
            (run_dir / "adapter").mkdir()
            (run_dir / "adapter" / "adapter_config.json").write_text("{}")
            write_status(run_dir, state="finished", step=3, ended=time.time())


def _failed_with_checkpoint(ws, run_id: str, step: int, **estimate) -> None:
    """The state a run is left in when its slot was killed after saving checkpoint-STEP."""
    from lab import jobs
    from lab.training import CHECKPOINTS, read_status, write_status

    run_dir = ws.dir("runs", run_id)
    (run_dir / CHECKPOINTS / f"checkpoint-{step}").mkdir(parents=True)
    (run_dir / CHECKPOINTS / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    write_status(run_dir, state="failed", error="slot ended", estimate=read_status(run_dir)["estimate"] | estimate)
    assert jobs.poll(ws, run_id)["state"] == "failed"


@pytest.mark.integration
def test_resume_on_zero_gpu_trains_through_the_slot_hooks_not_a_child_process(ws, tmp_path):
    from fakes import train_settings

    from lab import jobs

    first = RecordingHooks()
    run_id = jobs.start(ws, train_settings(tmp_path, "slot-resume", max_steps=6), **first())
    run_dir = ws.dir("runs", run_id)
    assert first.inline == [run_dir]
    _failed_with_checkpoint(ws, run_id, 2, steps=6, time_s=60.0)

    again = RecordingHooks()
    assert jobs.resume(ws, run_id, **again()) == f"resumed {run_id} from checkpoint-2"
    assert again.inline == [run_dir] and len(again.admitted) == 1
    config, plan = again.admitted[0]
    assert config.name == run_id and plan["steps"] == 4 and plan["time_s"] == pytest.approx(40.0)
    status = jobs.poll(ws, run_id)["status"]
    assert status["inline"] is True and status["pid"] == os.getpid()  # this process: no child was started


@pytest.mark.integration
def test_resume_longer_than_a_slot_is_refused_and_leaves_the_run_as_it_was(ws, tmp_path):
    from fakes import train_settings

    from lab import jobs

    run_id = jobs.start(ws, train_settings(tmp_path, "slot-long", max_steps=6), **RecordingHooks()())
    _failed_with_checkpoint(ws, run_id, 2, steps=300, time_s=900.0)
    with pytest.raises(zg.ZeroGpuError, match="298 steps"):
        jobs.resume(ws, run_id, **zg.slot_training({"SPACES_ZERO_GPU": "true"}))
    assert jobs.poll(ws, run_id)["state"] == "failed"


def _plain_training_stage(ws, cache, hooks, should_stop=None):
    """The Start tab's plain fine-tuning stage, after its validation stage (no index needed for it)."""
    from lab.arena import showcase

    inputs = showcase.Inputs(questions=4, contestants=["fine-tuned"], train={"epochs": 1.0, "max_steps": 3})
    run = showcase._Run(ws, cache, inputs, None, should_stop, hooks)
    run.number = 1
    showcase._validate(run)
    run.ctx["index_key"] = ""
    return run, showcase._train("plain")(run)


@pytest.mark.integration
def test_the_start_tabs_training_goes_through_the_hooks_it_is_given(ws, cache):
    from lab import jobs
    from lab.arena import showcase
    from lab.ui import start_tab

    hooks = RecordingHooks(finish=True)
    run, info = _plain_training_stage(ws, cache, hooks)
    run_id = run.ctx["runs"]["plain"]
    assert info == {"reused": False, "run": run_id, "steps": 3}
    assert hooks.inline == [ws.dir("runs", run_id)] and [c.name for c, _ in hooks.admitted] == [run_id]
    assert jobs.poll(ws, run_id)["status"]["pid"] == os.getpid()
    factory = start_tab.training_hooks(ZERO)  # what the tab passes on ZeroGPU: a fresh slot_training per run
    assert factory is not None and set(factory()) == {"admit", "run_inline"} and factory() is not factory()
    assert start_tab.training_hooks({}) is None
    assert showcase.work_plan(ws, run.inputs)["training_s"] == {}  # that run is finished: no training to cost


@pytest.mark.integration
def test_cancelling_a_comparison_marks_its_inline_training_cut_short(ws, cache):
    from lab.arena import showcase
    from lab.training import STOP

    run, info = _plain_training_stage(ws, cache, RecordingHooks(finish=False), should_stop=lambda: True)
    run_dir = ws.dir("runs", run.ctx["runs"]["plain"])
    assert info == {"cancelled": True} and (run_dir / STOP).exists() and (run_dir / showcase.CUT_SHORT).exists()
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")  # the adapter of the steps before Cancel
    assert not showcase._finished_run(ws, run_dir.name)  # so the next comparison trains it again


@pytest.mark.integration
def test_the_start_tab_refuses_a_comparison_over_the_quota_before_it_starts(ws):
    from lab.arena import showcase
    from lab.ui import start_tab

    inputs = showcase.Inputs(questions=40, contestants=["base", "fine-tuned"])
    with pytest.raises(zg.ZeroGpuError, match="ZeroGPU time"):
        start_tab.refuse_over_quota(ws, inputs, {**ZERO, "LAB_ZEROGPU_QUOTA_S": "30"})
    assert start_tab.refuse_over_quota(ws, inputs, {**ZERO, "LAB_ZEROGPU_QUOTA_S": "100000"}) is None
    assert not ws.list("runs") and not evaluation.list_evaluations(ws)  # nothing was started
    plan = showcase.work_plan(ws, inputs)
    assert plan["questions"] == 40 and plan["contestants"] == 2 and plan["untrained"] == 1
    assert set(plan["training_s"]) == {"plain"} and plan["training_s"]["plain"] > 0


# --- the Arena's evaluation handler on ZeroGPU: chunks, real question count, cancel -----------------------------


def _upload(tmp_path, n: int = 12):
    path = tmp_path / "upload.jsonl"
    path.write_text("".join(json.dumps(it.to_dict()) + "\n" for it in eval_items()[:n]), encoding="utf-8")
    return str(path)


def _drive(ws, chunk, upload, pick, limit=0, batch=2, visitor="v"):
    from lab.ui import arena_eval

    stops = common.SessionFlags(ws.tmp / "flags")
    request = SimpleNamespace(session_hash=visitor)
    return list(arena_eval._on_run(ws, stops, chunk, upload, pick, limit, batch, 4, 0.0, request=request))


def test_the_arena_costs_an_upload_by_its_own_questions_and_answers_it_in_slot_chunks(ws, tmp_path, monkeypatch):
    from lab.ui import arena_eval

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setenv("LAB_ZEROGPU_SLOT_S", "30")  # a slot of a few answers
    monkeypatch.setenv("LAB_ZEROGPU_QUOTA_S", "200")  # 120 questions x 2 would not fit; this upload's 12 do
    calls = []
    finished = evaluation.run_evaluation(eval_items(), {"base": Scripted("base", GOOD)}, GenConfig(), bootstrap=20)

    def chunk(*args):  # records what each GPU call is asked, then says how far it got
        qa, systems, limit, gen, per, flag = args
        calls.append(per)
        assert pickle.loads(pickle.dumps(args)) == args  # ZeroGPU pickles them to its worker
        assert arena_eval.chunk_seconds(*args) == zg.answers_duration(per) <= zg.slot_seconds()  # fits unclamped
        done = min(24, per * len(calls))
        yield "progress", (done, 24, "x")
        yield "result", {"status": "partial", "done": done, "total": 24} if done < 24 else finished

    with pytest.raises(zg.ZeroGpuError):
        budget.refuse_long_evaluation(120, 2, 2)
    per = budget.answers_per_slot(2)
    shown = _drive(ws, chunk, _upload(tmp_path), ["base", "rag:sample"])
    assert calls == [per] * -(-24 // per) and len(calls) > 1  # each chunk one GPU call of one slot's answers
    assert "Running: 0 of 24 answers" in shown[0]["status"]

    calls.clear()
    monkeypatch.setenv("LAB_ZEROGPU_QUOTA_S", "40")
    refused = _drive(ws, chunk, _upload(tmp_path), ["base", "rag:sample"])
    said = refused[0]["status"]
    assert calls == [] and "questions fit" in said and "12 questions x 2 contestants" in said


@pytest.mark.integration
def test_an_arena_evaluation_in_slot_chunks_equals_one_in_a_single_call(ws, cache, tmp_path, monkeypatch):
    """The real chunk (`_chunk`: the embedded base model answers, the embedder scores) called as ZeroGPU would,
    once per slot-sized chunk; the result is the one a single call gives."""
    from lab.ui import arena_eval

    calls = []

    def chunk(qa, systems, limit, gen, per, flag):
        calls.append(per)
        yield from arena_eval._chunk(ws, cache, qa, systems, limit, gen, per, common.FileFlag(flag))

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setenv("LAB_ZEROGPU_SLOT_S", str(math.ceil(zg.answers_duration(1))))  # the shortest useful slot
    per = budget.answers_per_slot(1)
    upload = _upload(tmp_path, per + 1)
    chunked = _drive(ws, chunk, upload, ["base"], batch=1)[-1]["result"]
    assert calls == [per, per] and chunked["status"] == "finished" and len(chunked["questions"]) == per + 1
    monkeypatch.delenv("SPACES_ZERO_GPU")
    calls.clear()
    whole = _drive(ws, chunk, upload, ["base"], batch=1)[-1]["result"]
    assert calls == [None]
    keep = ("id", "system", "prediction", "category")
    assert [{k: r[k] for k in keep} for r in chunked["questions"]] == [
        {k: r[k] for k in keep} for r in whole["questions"]
    ]
    # the similarity is embedded per chunk: batch composition and torch's thread count move the last float digits
    assert [r["similarity"] for r in chunked["questions"]] == pytest.approx(
        [r["similarity"] for r in whole["questions"]], abs=1e-5
    )


# --- the Start tab's answers on ZeroGPU: slot-sized GPU calls ---------------------------------------------------


def test_the_start_tab_answers_a_contestant_in_slot_sized_calls_that_add_up(ws):
    from lab.ui import start_tab

    env = {**ZERO, "LAB_ZEROGPU_SLOT_S": str(math.ceil(zg.answers_duration(4)))}  # one batch of 4 a slot
    items, gen, calls, seen = eval_items(), GenConfig(batch_size=4), [], []

    def answer_slot(spec, label, items, gen, per, should_stop):  # a GPU call: what answer_to_checkpoint does
        calls.append((spec, per))
        path = evaluation.checkpoint_path(ws, items, [label], gen)
        return evaluation.answer_items(items, {label: Scripted(label, GOOD)}, gen, same_length, None, should_stop,
                                       path, per)[1]  # fmt: skip

    answer = start_tab.slot_answers(answer_slot, env)
    assert answer("rag:x", "RAG", items, gen, lambda: False, lambda d, t, m: seen.append(d)) == "finished"
    per = budget.answers_per_slot(4, env)
    assert calls == [("rag:x", per)] * -(-12 // per) and seen == list(range(per, 12, per))
    rows = evaluation.saved_rows(ws, items, ["RAG"], gen)
    whole = evaluation.run_evaluation(items, {"RAG": Scripted("RAG", GOOD)}, gen, same_length, bootstrap=50)
    assert plain(evaluation.summarize_rows(rows, ["RAG"], gen, "finished", 50)) == plain(whole)
    assert start_tab.slot_seconds_for("rag:x", "RAG", items, gen, per, None) == zg.answers_duration(per)
    calls.clear()
    stopped = evaluation.checkpoint_path(ws, items, ["other"], gen)
    assert answer("base", "other", items, gen, lambda: True, lambda *a: None) == "cancelled" and not stopped.exists()


@pytest.mark.integration
def test_a_comparison_stage_answers_through_the_hook_it_is_given(ws, cache):
    """The showcase's evaluation stage with an `answer` hook: no model is loaded here, the rows come back through
    the checkpoint, and the stage's result is saved as usual."""
    from lab.arena import showcase

    inputs = showcase.Inputs(questions=4, contestants=["base"])
    calls = []

    def answer(spec, label, items, gen, should_stop, progress):
        calls.append((spec, label, len(items)))
        path = evaluation.checkpoint_path(ws, items, [label], gen)
        return evaluation.answer_items(items, {label: Scripted(label, {})}, gen, None, progress, should_stop,
                                       path)[1]  # fmt: skip

    run = showcase._Run(ws, cache, inputs, None, None, None, answer)
    run.number = 1
    showcase._validate(run)
    run.ctx.update(index="sample", index_key="")
    info = showcase._evaluate("base", "base")(run)
    assert calls == [("base", "base", 4)] and info["reused"] is False and info["answers"] == 4
    saved = evaluation.load_evaluation(ws, info["evaluation"])
    assert len(saved["questions"]) == 4 and saved["systems"][0]["system"] == "base"
    assert not evaluation.checkpoint_path(ws, run.ctx["items"], ["base"], GenConfig(max_new_tokens=32)).exists()
