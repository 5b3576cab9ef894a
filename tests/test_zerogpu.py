"""ZeroGPU on this CPU: the real app under the `spaces` package's own patching (tests/zerogpu.py), driven from
gradio_client so handlers run on gradio's worker threads, plus the pieces that fix it, each on its own.

The launched app replaces exactly two functions of `spaces`, `spaces.zero.torch.init` and `spaces.zero.torch.move`
(the GPU worker's CUDA init and its tensor move, which need a CUDA build); everything else is the package's code.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zerogpu

from lab import jobs, models, resolve
from lab.config import TrainConfig
from lab.training import plan as training_plan
from lab.training import speed
from lab.ui import spaces as zg

REPO = Path(__file__).resolve().parent.parent
QUESTION = "How often is the internal rope-access blade inspection?"


# ---- the launched app (one per module) ----


@pytest.fixture(scope="module")
def zero_app(tmp_path_factory, model_cache_dir, embedded_path):
    """(gradio Client, Scheduler, LAB_HOME) of app.py under the ZeroGPU patching, launched once for this module."""
    pytest.importorskip("spaces")
    from gradio_client import Client

    tmp = tmp_path_factory.mktemp("zerogpu")
    home = tmp / "home"
    home.mkdir()
    (home / "models").symlink_to(model_cache_dir, target_is_directory=True)
    scheduler = zerogpu.Scheduler()
    proc, url, log = zerogpu.launch_app(home, scheduler, tmp)
    try:
        yield Client(url, verbose=False), scheduler, home  # the launch-time sample index build is still running
    finally:
        zerogpu.stop_app(proc)
        scheduler.close()


def _status(home: Path, run_id: str, until: tuple[str, ...], timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    status: dict = {}
    while time.time() < deadline:
        path = home / "runs" / run_id / "status.json"
        status = json.loads(path.read_text()) if path.is_file() else {}
        if status.get("state") in until:
            return status
        time.sleep(0.3)
    return status


@pytest.mark.integration
def test_answers_ask_for_one_slot_and_release_it(zero_app):
    """Two contestants, one slot, asked right after launch while the app's sample index build is still loading
    the embedder (the first test of the module). Before: the forked worker hung for good on a module import lock
    the build's thread held at the fork; now the fork waits for that import (lab.models.importing)."""
    client, scheduler, home = zero_app
    scheduler.reset()
    assert not (home / "indexes" / "sample" / "meta.json").is_file(), "the sample build finished before the slot"
    job = client.submit(["base", "rag:sample"], QUESTION, api_name="/arena_side_by_side")
    out = job.result(timeout=300)  # a worker deadlocked on a lock inherited through the fork never answers
    assert out[1].startswith("### <b>base</b>") and "<code>rag:sample</code>" in out[2], out  # the columns' names
    assert "arena-passage" in out[6], out[6]
    assert scheduler.counts["/schedule"] == 1 and scheduler.counts["/release"] == 1
    assert scheduler.counts["/allow"] == 1  # the forked worker announced itself
    assert 10 <= int(scheduler.scheduled[0]["durationSeconds"]) <= zg.DEFAULT_SLOT_S


@pytest.mark.integration
def test_rag_retrieval_on_a_worker_thread_runs_on_the_cpu_and_asks_for_no_slot(zero_app):
    """Before: "Torch not compiled with CUDA enabled" (the embedder moved to the emulated "cuda" off the main
    thread)."""
    client, scheduler, _ = zero_app
    scheduler.reset()
    hits, prompt = client.predict("sample", QUESTION, 3, False, 0, 2, api_name="/rag_query")
    assert "✗" not in hits and "rag-hit" in hits, hits
    assert "rope-access" in prompt
    assert scheduler.counts["/schedule"] == 0


@pytest.mark.integration
def test_a_refused_slot_fails_the_run_with_the_reason_and_blocks_no_later_run(zero_app):
    """Before: the default quick run was refused as about 12 minutes (a CPU rate); with a GPU rate it is admitted,
    and a slot the scheduler refuses used to leave the run "starting" for good, refusing every later run."""
    client, scheduler, home = zero_app
    estimate = client.predict(api_name="/train_estimate")
    assert "37 steps" in estimate and "ZeroGPU" in estimate, estimate
    for refusal, reason in (("quota", "quota exceeded"), ("duration", "illegal duration")):
        scheduler.reset(refusal)
        run_id, message = client.predict(f"refused-{refusal}", api_name="/train_start")  # the form's run name
        assert run_id == f"refused-{refusal}" and "✗" not in message, message
        status = _status(home, run_id, ("failed", "finished"))
        assert status.get("state") == "failed" and reason in status["error"], status
        assert scheduler.counts["/schedule"] == 1


# ---- device(): where a model loads ----

DEVICE_PROBE = """
import json, os, sys, threading
sys.path.insert(0, "tests")
import zerogpu
zerogpu.install_cuda_shim()
import spaces, torch
from lab import models
from lab.models import device

seen = {"main": device()}
def on_worker():
    seen["worker"] = device()
    models.mark_gpu_call()
    seen["in_call"] = device()
thread = threading.Thread(target=on_worker)
thread.start(); thread.join()
print(json.dumps({**seen, "cuda_emulated": torch.cuda.is_available()}))
"""


def test_under_the_zero_gpu_patching_models_load_on_the_cpu_outside_a_gpu_call():
    """Before: "cuda" on every thread, which only the importing thread can use."""
    pytest.importorskip("spaces")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACES_", "LAB_"))}
    env.update(SPACES_ZERO_GPU="true", SPACES_ZERO_DEVICE_API_URL="http://127.0.0.1:9/", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", DEVICE_PROBE], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"main": "cpu", "worker": "cpu", "in_call": "cuda", "cuda_emulated": True}


def test_device_off_zero_gpu_and_has_gpu():
    assert models.device(env={}) == "cpu"  # this machine has no CUDA card
    assert models.device(env={"SPACES_ZERO_GPU": "true"}) == "cpu"
    assert models.has_gpu(env={"SPACES_ZERO_GPU": "true"}) and not models.has_gpu(env={})


def test_the_slot_marks_its_process_and_keeps_generators(monkeypatch):
    monkeypatch.setattr(models, "_in_gpu_call", False)  # restored after the test: the marked call sets it

    def stream(n):
        yield from range(n)

    marked = zg.in_slot(stream)
    assert not models.in_gpu_call()
    import inspect

    assert inspect.isgeneratorfunction(marked) and list(marked(3)) == [0, 1, 2]
    assert models.in_gpu_call() and inspect.unwrap(marked) is stream


def test_a_slot_refusal_names_its_reason():
    import gradio as gr

    refused = gr.Error("Space app has reached its GPU limit.", title="ZeroGPU quota exceeded")
    message = zg.slot_failure(refused)
    assert "ZeroGPU quota exceeded" in message and "GPU limit" in message and "\n" not in message
    assert "PicklingError" in zg.slot_failure(__import__("pickle").PicklingError("x"))


# ---- jobs: an inline run whose thread is gone ----


def _facts(path: Path) -> str:
    turns = [{"role": "user", "content": "Zorblat valve colour?"}, {"role": "assistant", "content": "Teal."}]
    row = {"messages": turns}
    path.write_text("\n".join(json.dumps(row) for _ in range(8)) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.integration
def test_poll_fails_an_inline_run_whose_thread_is_gone(ws, tmp_path, embedded_path, monkeypatch):
    """Before: the run stayed "starting" (its pid is this live process) and refused every later run."""
    monkeypatch.setattr(jobs, "INLINE_GRACE_S", 0.0, raising=False)  # raising=False: absent before the fix
    config = TrainConfig(name="lost", dataset=_facts(tmp_path / "facts.jsonl"), max_steps=1, max_length=32)
    run_id = jobs.start(ws, config, run_inline=lambda run_dir: None)  # the slot never ran: no thread
    info = jobs.poll(ws, run_id)
    assert info["state"] == "failed" and "GPU slot" in info["status"]["error"]
    assert jobs.active(ws) is None

    started = threading.Event()
    release = threading.Event()

    def run_inline(run_dir):
        def work():
            started.set()
            release.wait(30)

        thread = threading.Thread(target=work, name=jobs.inline_thread_name(run_dir), daemon=True)
        thread.start()
        return thread

    second = jobs.start(ws, config.replace(name="kept"), run_inline=run_inline)
    assert started.wait(10) and jobs.poll(ws, second)["state"] == "starting"  # its thread lives: not failed
    release.set()


# ---- the time estimate on ZeroGPU ----


@pytest.mark.integration
def test_on_zero_gpu_the_default_quick_run_is_admitted(ws, embedded_path, monkeypatch):
    """Before: costed at a CPU's rate (about 12 minutes) and refused: "set max_steps to 5 or fewer"."""
    from lab.data import ensure_sample_domain

    ensure_sample_domain(ws)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    config = TrainConfig(dataset="sample")
    plan = jobs.check(ws, config)
    assert plan["steps"] == 37 and plan["device"] == "zerogpu" and "ZeroGPU" in plan["time_source"]
    assert zg.refuse_long_training(config, plan, {"SPACES_ZERO_GPU": "true"}) is None
    assert plan["time_s"] < 30
    monkeypatch.delenv("SPACES_ZERO_GPU")
    on_cpu = jobs.check(ws, config)
    assert on_cpu["device"] == "cpu" and on_cpu["time_s"] > 50 * plan["time_s"]


def test_fallback_rates_by_device():
    n = 135_000_000
    cpu, gpu = (training_plan.fallback_rate(n, "lora", d) for d in ("cpu", "zerogpu"))
    assert cpu == pytest.approx(2.0e10 / (6 * n)) and gpu > 500 * cpu
    assert training_plan.fallback_rate(n, "qlora", "zerogpu") < gpu
    assert training_plan.fallback_rate(n, "lora", "cuda:NVIDIA A10G") > cpu
    assert training_plan.rate_device({"SPACES_ZERO_GPU": "1"}) == "zerogpu"
    assert training_plan.rate_device({}) == "cpu"
    assert speed.calibration_device({"SPACES_ZERO_GPU": "1"}) == "cpu"


def test_remembered_speeds_are_kept_per_device(tmp_path):
    """A CPU calibration or run must not cost a GPU slot's run (nor the reverse)."""
    config = TrainConfig(base_model="embedded", method="lora")
    saved = {"embedded|lora": {"tokens_per_s": 25.0, "at": 0}, "embedded|lora|zerogpu": {"tokens_per_s": 9e3, "at": 0}}
    (tmp_path / speed.CALIBRATION).write_text(json.dumps(saved))
    assert speed.measured_throughput(tmp_path, config, device="cpu")["tokens_per_s"] == 25.0
    assert speed.measured_throughput(tmp_path, config, device="zerogpu")["tokens_per_s"] == 9e3
    assert speed.measured_throughput(tmp_path, config, device="cuda:NVIDIA L4") is None

    run = tmp_path / "r1"
    run.mkdir()
    config.save(run / "config.json")
    status = {"state": "finished", "ended": 1.0, "metrics": {"runtime_s": 10.0, "steps": 5},
              "estimate": {"tokens_total": 500.0, "steps": 5, "device": "zerogpu"}}  # fmt: skip
    (run / "status.json").write_text(json.dumps(status))
    assert speed.measured_throughput(tmp_path, config, device="zerogpu")["tokens_per_s"] == 50.0
    assert speed.measured_throughput(tmp_path, config, device="cpu")["tokens_per_s"] == 25.0


# ---- fork safety: the sample-index lock and open edge stores ----


def _in_child(work, timeout: int = 60) -> int:
    """Run `work()` in a forked child (as ZeroGPU forks its worker); its exit code, or -signal when killed."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        import signal

        signal.alarm(timeout)
        try:
            os._exit(0 if work() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.integration
def test_a_forked_child_does_not_deadlock_on_the_sample_build_lock(ws, cache):
    """Before: the child blocked for good on the lock another thread held through the sample build."""
    from lab.rag import index as rag_index

    holding, done = threading.Event(), threading.Event()

    def hold(fraction, message):
        holding.set()
        done.wait(60)
        raise RuntimeError("stop the sample build here")

    def build():
        with contextlib.suppress(RuntimeError):
            rag_index.ensure_sample_index(ws, cache, hold)

    builder = threading.Thread(target=build, daemon=True)
    builder.start()
    assert holding.wait(120), "the sample build never started"
    marker = ws.dir("indexes", "sample") / "meta.json"  # the child then finds "sample" built and returns at once
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("{}")
    try:
        assert _in_child(lambda: rag_index.ensure_sample_index(ws, cache) is None, timeout=15) == 0
    finally:
        done.set()
        builder.join(60)


@pytest.mark.integration
def test_a_forked_child_reopens_an_open_edge_store_and_retrieves(ws, cache, tmp_path):
    """The child neither uses nor drops the parent's open Qdrant Edge shard, and embeds on one CPU thread (before:
    a query embedded in a fork of a process that had embedded hung in torch's thread pool)."""
    from lab.config import RagConfig
    from lab.rag import index as rag_index

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in (1, 2, 3):
        (docs / f"d{i}.md").write_text(f"# Part {i}\n\nValve {i} is inspected every {i} months by rope access.\n")
    rag_index.build_index(ws, RagConfig(name="tiny", corpus=str(docs), chunk_size=64), cache)
    idx = rag_index.open_index(ws, "tiny", cache)
    top = idx.retrieve("valve 2 inspection", 1)[0].chunk_id

    def child_retrieves() -> bool:
        again = rag_index.open_index(ws, "tiny", cache)
        reopened = again is idx and type(idx.store).__name__ == "ReopenedEdgeStore"
        return reopened and idx.retrieve("valve 2 inspection", 1)[0].chunk_id == top

    assert _in_child(child_retrieves) == 0
    assert type(idx.store).__name__ == "EdgeVectorStore"  # the parent keeps its own


# ---- models resolved before the slot (a download inside it would spend the slot's seconds) ----


def test_prefetch_resolves_each_contestants_base_and_embedder(ws, tmp_path, monkeypatch, embedded_path):
    """A fine-tuned run on a hub model, a hub base, the sample index (embedded embedder) and a bad id: every model
    folder is resolved here, from the hub cache, and the bad id is left for the slot to report."""
    from hubcache import lay_model

    from lab.config import TrainConfig

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    snapshot = lay_model(tmp_path / "hf-home", "Org/tiny", Path(embedded_path))
    run_dir = ws.dir("runs", "r1")
    run_dir.mkdir(parents=True)
    TrainConfig(name="r1", base_model="Org/tiny").save(run_dir / "config.json")
    folders = zg.prefetch(ws, models_cache(ws), ["ft:r1", "base:Org/tiny", "rag:sample", "nonsense:x:y:z"])
    hub, embedded, embedder = snapshot.resolve(), Path(embedded_path).resolve(), resolve.resolve_embedder("").path
    assert [Path(f).resolve() for f in folders] == [hub, hub, embedded, Path(embedder).resolve()], folders


def models_cache(ws):
    from lab.cache import ModelCache

    return ModelCache(ws.model_cache)


@pytest.mark.parametrize("generator", [True, False])
def test_prepare_runs_in_the_calling_process_before_the_slot_is_requested(generator):
    """`gpu(prepare=...)`: the prefetch happens before `spaces.GPU`'s wrapper runs (which requests the slot), on the
    calling thread, with the call's own arguments; a generator stays a generator for gradio."""
    import inspect

    events: list[tuple] = []

    def slotted_gen(names, question):
        events.append(("slot", names))
        yield f"answer to {question}"

    def slotted(names, question):
        events.append(("slot", names))
        return f"answer to {question}"

    def prepare(names, *_):
        events.append(("prepare", names, threading.current_thread().name))

    fn = zg.prepared_first(prepare, slotted_gen if generator else slotted, generator)
    assert inspect.isgeneratorfunction(fn) is generator
    out = fn(["base"], "q")
    assert (list(out) if generator else [out]) == ["answer to q"]
    assert events == [("prepare", ["base"], threading.current_thread().name), ("slot", ["base"])]
