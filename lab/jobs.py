"""Training jobs: check a run before it starts (lab.training.preflight), start it as a child process, watch, stop,
cancel, resume.

A job is `python -m lab.training RUN_DIR` started without a shell in its own session (so Cancel can kill its
whole process tree); it talks back only through files in the run folder. Run records live in the `runs`
table of lab/db.py and are brought up to date by `poll`, which also notices a child that died without
saying so (SIGKILL, crash) and marks it failed, keeping its log. One training job at a time per machine.
No gradio here; no module state (a reaper thread per child only waits on it so it never lingers as a zombie).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lab import db
from lab.cache import ModelCache
from lab.config import TrainConfig
from lab.training import (
    CHECKPOINTS,
    CONFIG,
    FINAL_STATES,
    LOG,
    STOP,
    last_checkpoint,
    log_tail,
    read_progress,
    read_status,
    write_status,
)
from lab.training.lineage import inherit
from lab.training.plan import TrainPlan
from lab.training.preflight import JobError, check, remaining_plan
from lab.training.ragdata import prepare_run, write_run_files
from lab.workspace import Workspace, check_name

REPO_ROOT = Path(__file__).resolve().parent.parent
QUEUED_GRACE_S = 60.0
INLINE_GRACE_S = 10.0


def new_run_id(name: str = "") -> str:
    return check_name(name, "run name") if name else time.strftime("run-%Y%m%d-%H%M%S")


def _write_preferences(ws: Workspace, config: TrainConfig) -> dict:
    """Keep the pairs a DPO run trains on in its folder; returns what its status records."""
    from lab.training.prefs import pairs_hash, resolve, write_run_file

    pairs = resolve(ws, config.prefs)
    write_run_file(ws.dir("runs", config.name), pairs)
    return {"n_pairs": len(pairs), "data_hash": pairs_hash(pairs)}


def inline_thread_name(run_dir: str | Path) -> str:
    """The name of the thread that trains `run_dir` inline (a ZeroGPU slot, see `start`'s `run_inline`)."""
    return f"lab-train:{Path(run_dir).name}"


def _inline_alive(run_dir: Path, status: dict) -> bool:
    """A run trained inline by this process is alive while its thread is; a thread not started yet counts for
    INLINE_GRACE_S after the run was marked starting (the starter starts it right after)."""
    name = inline_thread_name(run_dir)
    if any(t.name == name and t.is_alive() for t in threading.enumerate()):
        return True
    return status.get("state") == "starting" and time.time() - float(status.get("started") or 0) < INLINE_GRACE_S


def _alive(pid: int | None, run_dir: Path, inline: bool = False, status: dict | None = None) -> bool:
    """True when `pid` is a live (not zombie) process working on `run_dir`. A run trained inline, inside the app's
    own process, is alive while its training thread is when that process is this one (a refused or lost GPU slot
    ends the thread; a restarted app may reuse the pid), else while `pid` lives (its command line does not name
    the run)."""
    import psutil

    if not pid:
        return False
    if inline and pid == os.getpid():
        return _inline_alive(run_dir, status or {})
    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        return inline or str(run_dir) in " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return False


def active(ws: Workspace) -> str | None:
    """The id of the run training now (its record is refreshed first), or None."""
    db.init(ws.db_path)
    for row in db.rows(ws.db_path, "SELECT id FROM runs WHERE status IN ('queued', 'running') ORDER BY created_at"):
        if poll(ws, row["id"])["state"] in ("starting", "running"):
            return row["id"]
    return None


def _refuse_if_busy(ws: Workspace) -> None:
    busy = active(ws)
    if busy:
        step = read_status(ws.dir("runs", busy))
        raise JobError(
            f"run {busy!r} is already training on this machine (step {step.get('step', 0)}/"
            f"{step.get('total_steps', '?')}): one job at a time; stop or cancel it, or wait for it to finish"
        )


def _spawn(ws: Workspace, run_dir: Path, facts=None) -> int:
    """Start the training child; on a machine with several GPUs it sees one (`facts`: lab.catalog.DeviceFacts,
    read from torch when not given; see `child_gpu_env`)."""
    from lab.catalog import DeviceFacts, child_gpu_env

    env = {**os.environ, "LAB_HOME": str(ws.root), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    if facts is None:
        import torch  # counts devices without initialising CUDA where NVML is available

        facts = DeviceFacts(cuda=torch.cuda.is_available(), count=torch.cuda.device_count())
    env.update(child_gpu_env(env, facts))
    with (run_dir / LOG).open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.training", str(run_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(REPO_ROOT),
            env=env,
            start_new_session=True,
        )
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()
    write_status(run_dir, state="starting", pid=proc.pid, started=time.time())
    return proc.pid


@contextlib.contextmanager
def _start_lock(ws: Workspace):
    """One starter at a time per workspace (two users pressing Start together: the second sees the first run)."""
    import fcntl

    with (ws.tmp / "start.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def start(ws: Workspace, config: TrainConfig, cache=None, admit=None, run_inline=None) -> str:
    """Check, create the run folder and record, start the child; returns the run id. Training for RAG rewrites
    the data here first (with `cache`'s embedder and index) into the run folder's rag_train.jsonl.

    `admit(config, plan)` may refuse the run (raise) after the checks, before anything is created. With
    `run_inline(run_dir)`, no child process is started: the run is marked inline (its liveness is this process)
    and `run_inline` is called to train it on a thread named `inline_thread_name(run_dir)` (a ZeroGPU Space
    trains inside its GPU slot, see lab/ui/spaces.py); `poll` fails the run once that thread is gone."""
    run_id = new_run_id(config.name)
    if ws.exists("runs", run_id):
        raise JobError(f"run {run_id!r} already exists: pick another name or delete it")
    config = inherit(ws, config)  # continuing from a run: its base model
    for_rag = config.rag_index and config.method != "dpo"  # dpo: refused by `check`
    rag = prepare_run(ws, cache or ModelCache(ws.model_cache), config) if for_rag else None
    plan = check(ws, config, rag["train"] if rag else None)
    if admit is not None:
        admit(config, plan)
    with _start_lock(ws):
        _refuse_if_busy(ws)
        if ws.exists("runs", run_id):
            raise JobError(f"run {run_id!r} already exists: pick another name or delete it")
        _create(ws, config.replace(name=run_id), plan)
        if rag:
            write_status(ws.dir("runs", run_id), rag=write_run_files(ws.dir("runs", run_id), rag))
        if config.method == "dpo":
            write_status(ws.dir("runs", run_id), **_write_preferences(ws, config.replace(name=run_id)))
        if run_inline is None:
            _launch(ws, run_id, ws.dir("runs", run_id))
        else:
            _mark_running(ws, run_id, os.getpid())
            write_status(ws.dir("runs", run_id), state="starting", pid=os.getpid(), inline=True, started=time.time())
    if run_inline is not None:
        run_inline(ws.dir("runs", run_id))
    return run_id


def _create(ws: Workspace, config: TrainConfig, plan: TrainPlan) -> None:
    run_id, run_dir = config.name, ws.dir("runs", config.name)
    run_dir.mkdir(parents=True)
    config.save(run_dir / CONFIG)
    from lab.data import dataset_hash

    data_hash = "" if config.method == "dpo" else dataset_hash(ws, config.dataset)  # dpo: its pairs' hash, below
    data = config.prefs if config.method == "dpo" else config.dataset
    write_status(run_dir, state="queued", data_hash=data_hash, estimate_mb=plan.memory_total_mb,
                 estimate=plan.to_dict())  # fmt: skip
    now = time.time()
    with db.connect(db.init(ws.db_path)) as conn:
        conn.execute(
            "INSERT INTO runs (id, name, status, method, base_model, dataset, data_hash, config, created_at, path)"
            " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
            (run_id, run_id, config.method, config.base_model, data, data_hash,
             db.dumps(config.to_dict()), now, str(run_dir)),
        )  # fmt: skip


def _launch(ws: Workspace, run_id: str, run_dir: Path, run_inline=None) -> None:
    """Start the child process; with `run_inline` only mark the run as training in this process (the caller then
    calls `run_inline(run_dir)` outside the start lock)."""
    if run_inline is None:
        _mark_running(ws, run_id, _spawn(ws, run_dir))
        return
    _mark_running(ws, run_id, os.getpid())
    write_status(run_dir, state="starting", pid=os.getpid(), inline=True, started=time.time())


def _mark_running(ws: Workspace, run_id: str, pid: int) -> None:
    with db.connect(ws.db_path) as conn:
        conn.execute(
            "UPDATE runs SET status='running', pid=?, started_at=COALESCE(started_at, ?), ended_at=NULL, error=''"
            " WHERE id=?",
            (pid, time.time(), run_id),
        )


def _record(ws: Workspace, run_id: str) -> dict:
    db.init(ws.db_path)
    found = db.rows(ws.db_path, "SELECT * FROM runs WHERE id=?", (run_id,))
    if not found:
        known = ", ".join(r["id"] for r in db.rows(ws.db_path, "SELECT id FROM runs ORDER BY created_at")) or "none"
        raise JobError(f"no run named {run_id!r}; runs: {known}")
    return found[0]


def _orphaned(state: str, status: dict) -> bool:
    """A run left 'queued' for a minute: the process that was starting it died before the child started."""
    return state == "queued" and time.time() - status.get("updated", time.time()) > QUEUED_GRACE_S


def poll(ws: Workspace, run_id: str) -> dict:
    """The run's state, progress and log tail; syncs its record and marks a silently dead child failed."""
    row = _record(ws, run_id)
    run_dir = Path(row["path"])
    if row["status"] not in FINAL_STATES and not run_dir.is_dir():
        return _folder_gone(ws, row, run_dir)
    status = read_status(run_dir)
    state = status.get("state", row["status"])
    if _orphaned(state, status) or (
        state not in (*FINAL_STATES, "queued")
        and not _alive(status.get("pid") or row["pid"], run_dir, bool(status.get("inline")), status)
    ):
        time.sleep(0.2)  # the child may be writing its final status right now
        status = read_status(run_dir)
        if status.get("state") not in FINAL_STATES:
            error = "the training process ended without finishing (killed or crashed); see train.log"
            if status.get("inline"):
                error = (
                    "the training ended without finishing (its GPU slot was refused or lost, or the app restarted); "
                    "start it again"
                )
            status = write_status(run_dir, state="failed", error=error, ended=time.time())
    state = status.get("state", state)
    if state in FINAL_STATES and row["status"] != state:
        with db.connect(ws.db_path) as conn:
            conn.execute(
                "UPDATE runs SET status=?, ended_at=?, metrics=?, error=? WHERE id=?",
                (state, status.get("ended", time.time()), db.dumps(status.get("metrics", {})),
                 status.get("error", ""), run_id),
            )  # fmt: skip
    return {"id": run_id, "state": state, "status": status, "run_dir": str(run_dir)}


def _folder_gone(ws: Workspace, row: dict, run_dir: Path) -> dict:
    """A queued or running record whose folder was deleted outside ExpertLab: marked failed in the database (there
    is no folder to write a status into, and none is recreated)."""
    error = f"its folder {run_dir} no longer exists (deleted outside ExpertLab); delete the run to tidy the list"
    with db.connect(ws.db_path) as conn:
        conn.execute(
            "UPDATE runs SET status='failed', ended_at=?, error=? WHERE id=?", (time.time(), error, row["id"])
        )
    status = {"state": "failed", "error": error}
    return {"id": row["id"], "state": "failed", "status": status, "run_dir": str(run_dir)}


def progress(ws: Workspace, run_id: str, log_lines: int = 30) -> dict:
    """poll() plus the progress records and the log tail (what the UI and CLI show)."""
    info = poll(ws, run_id)
    return {**info, "progress": read_progress(info["run_dir"]), "log": log_tail(info["run_dir"], log_lines)}


def stop(ws: Workspace, run_id: str) -> str:
    """Ask a running job to stop after its current step: it saves a checkpoint and the adapter and skips the final
    evaluation (a user who pressed Stop wants it stopped)."""
    info = poll(ws, run_id)
    if info["state"] not in ("starting", "running"):
        raise JobError(f"run {run_id!r} is {info['state']}, not running: nothing to stop")
    (Path(info["run_dir"]) / STOP).touch()
    return f"stopping {run_id} after the current step: saving a checkpoint and the adapter (no final evaluation)"


def cancel(ws: Workspace, run_id: str) -> str:
    """Kill the job's whole process tree now; the run is marked cancelled (its log and checkpoints stay)."""
    info = poll(ws, run_id)
    if info["state"] not in ("starting", "running", "queued"):
        raise JobError(f"run {run_id!r} is {info['state']}, not running: nothing to cancel")
    if info["status"].get("inline"):  # it runs in this process (a ZeroGPU slot): killing it would kill the app
        (Path(info["run_dir"]) / STOP).touch()
        return f"{run_id} trains inside the app (ZeroGPU), so it cannot be killed: it saves and stops after this step"
    pid = info["status"].get("pid")
    if pid and _alive(pid, Path(info["run_dir"])):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    write_status(info["run_dir"], state="cancelled", error="cancelled by the user", ended=time.time())
    poll(ws, run_id)
    return f"cancelled {run_id}"


def resume(ws: Workspace, run_id: str, admit=None, run_inline=None) -> str:
    """Continue a stopped, failed or cancelled run from its last checkpoint (the step count continues).

    `admit` and `run_inline` are `start`'s hooks (a ZeroGPU Space trains inside a GPU slot): `admit(config, plan)`
    sees the plan of the steps left (the saved estimate scaled to them) and may refuse; with `run_inline` the run
    continues in this process instead of a child."""
    info = poll(ws, run_id)
    run_dir = Path(info["run_dir"])
    if info["state"] not in ("stopped", "failed", "cancelled"):
        raise JobError(f"run {run_id!r} is {info['state']}: only stopped, failed or cancelled runs resume")
    _drop_incomplete_checkpoints(run_dir)
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None:
        raise JobError(f"run {run_id!r} has no checkpoint to resume from: start a new run instead")
    if admit is not None:
        admit(TrainConfig.load(run_dir / CONFIG), remaining_plan(info["status"], checkpoint))
    with _start_lock(ws):
        _refuse_if_busy(ws)
        (run_dir / STOP).unlink(missing_ok=True)
        write_status(run_dir, state="queued", error="", metrics={}, inline=False)
        _launch(ws, run_id, run_dir, run_inline)
    if run_inline is not None:
        run_inline(run_dir)
    return f"resumed {run_id} from {checkpoint.name}"


def reconcile(ws: Workspace) -> dict[str, str]:
    """At app start: bring every queued or running record up to date (a live child is re-attached, a dead one is
    marked failed with its log kept); returns {run id: state}."""
    db.init(ws.db_path)
    found = db.rows(ws.db_path, "SELECT id FROM runs WHERE status IN ('queued', 'running')")
    return {row["id"]: poll(ws, row["id"])["state"] for row in found}


def _drop_incomplete_checkpoints(run_dir: Path) -> list[str]:
    """Delete checkpoints a kill interrupted mid-save (the Trainer writes trainer_state.json last), so a resume
    starts from the last complete one; returns their names."""
    import shutil

    dropped = []
    for path in sorted((run_dir / CHECKPOINTS).glob("checkpoint-*")):
        if path.is_dir() and not (path / "trainer_state.json").is_file():
            shutil.rmtree(path, ignore_errors=True)
            dropped.append(path.name)
    return dropped


def list_runs(ws: Workspace) -> list[dict]:
    db.init(ws.db_path)
    rows = db.rows(ws.db_path, "SELECT * FROM runs ORDER BY created_at DESC")
    for row in rows:
        row["metrics"] = json.loads(row["metrics"] or "{}")
    return rows


def delete(ws: Workspace, run_id: str) -> str:
    info = poll(ws, run_id)
    if info["state"] in ("starting", "running", "queued"):
        raise JobError(f"run {run_id!r} is {info['state']}: stop or cancel it before deleting")
    import shutil

    shutil.rmtree(info["run_dir"], ignore_errors=True)
    with db.connect(ws.db_path) as conn:
        conn.execute("DELETE FROM runs WHERE id=?", (run_id,))
    return f"deleted {run_id}"


def wait(ws: Workspace, run_id: str, timeout: float = 3600, interval: float = 0.5) -> dict:
    """Poll until the run reaches a final state (tests and the CLI); returns the last poll."""
    deadline = time.time() + timeout
    while True:
        info = poll(ws, run_id)
        if info["state"] in FINAL_STATES or time.time() > deadline:
            return info
        time.sleep(interval)
