"""Injected faults and what survives them: SIGKILL of a training child and of the app that started it, kills during
an index build, an evaluation and SQLite writes, a damaged lab.db, an unusable workspace, and a full disk."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import wait_for

from lab import db, jobs
from lab.training import read_progress, write_status
from lab.workspace import Workspace, WorkspaceError

REPO = Path(__file__).resolve().parent.parent


def lab_cmd(ws: Workspace, *args: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "LAB_HOME": str(ws.root), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "lab", *args], stdout=subprocess.PIPE, stderr=stderr, env=env,
                            cwd=str(REPO), start_new_session=True)  # fmt: skip


def kill_when(proc: subprocess.Popen, predicate, what: str) -> None:
    """SIGKILL `proc` (the process group) as soon as `predicate()` holds; fail if it finished first."""
    wait_for(lambda: predicate() or proc.poll() is not None, timeout=600, what=what)
    assert proc.poll() is None, f"the process ended before {what}: {proc.stderr.read()[-1500:] if proc.stderr else ''}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def chat_file(path: Path, n: int = 16) -> Path:
    pairs = [("What colour is the Zorblat valve?", "It is teal."), ("Who oils the Frell pump?", "Ada Brink.")]
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]
    path.write_text("\n".join(json.dumps(rows[i % 2]) for i in range(n)) + "\n", encoding="utf-8")
    return path


@pytest.mark.integration
def test_app_and_training_child_killed_run_reattaches_then_fails_and_resumes(ws, tmp_path):
    """The app (the process that started the run) is SIGKILLed: a restart re-attaches to the live child. Then the
    child is SIGKILLed after a checkpoint: the run is failed with its log, the checkpoint is kept and resumes."""
    data = chat_file(tmp_path / "facts.jsonl")
    starter = (
        "import sys, time; from lab import jobs; from lab.config import TrainConfig; from lab.workspace import "
        f"Workspace; ws = Workspace.open({str(ws.root)!r}); cfg = TrainConfig(name='crash', dataset={str(data)!r}, "
        "batch_size=2, max_length=64, logging_steps=1, save_steps=2, max_steps=500, warmup_ratio=0.0); "
        "print(jobs.start(ws, cfg), flush=True); time.sleep(600)"
    )
    app = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True, cwd=str(REPO),
                           env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)  # fmt: skip
    assert app.stdout.readline().strip() == "crash"
    os.killpg(app.pid, signal.SIGKILL)  # the "app" dies; the child runs in its own session
    app.wait()
    run_dir = ws.dir("runs", "crash")
    try:
        _reattach_kill_resume(ws, run_dir)
    finally:  # never leave a training child behind, whatever failed
        if jobs.poll(ws, "crash")["state"] in ("starting", "running"):
            jobs.cancel(ws, "crash")


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints the Trainer finished writing (trainer_state.json is its last file)."""
    return [p for p in (run_dir / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").is_file()]


def _reattach_kill_resume(ws: Workspace, run_dir: Path) -> None:
    assert jobs.reconcile(ws)["crash"] in ("starting", "running")  # re-attached: its child lives
    assert jobs.active(ws) == "crash"
    wait_for(lambda: complete_checkpoints(run_dir), timeout=900, what="a complete checkpoint")
    os.kill(jobs.poll(ws, "crash")["status"]["pid"], signal.SIGKILL)  # maybe mid-save of a later checkpoint
    wait_for(lambda: not jobs._alive(jobs.read_status(run_dir).get("pid"), run_dir), timeout=30, what="the kill")
    assert jobs.reconcile(ws) == {"crash": "failed"}
    row = jobs.list_runs(ws)[0]
    assert row["status"] == "failed" and "train.log" in row["error"] and (run_dir / "train.log").stat().st_size > 0
    kept = max(complete_checkpoints(run_dir), key=lambda p: int(p.name.split("-")[1]))
    (run_dir / "checkpoints" / "checkpoint-9999").mkdir()  # what a kill during a checkpoint save leaves
    (run_dir / "checkpoints" / "checkpoint-9999" / "adapter_model.safetensors").write_bytes(b"half")
    resumed_from = int(kept.name.split("-")[1])
    logged = len(read_progress(run_dir))
    assert jobs.resume(ws, "crash") == f"resumed crash from {kept.name}"
    assert not (run_dir / "checkpoints" / "checkpoint-9999").exists()
    wait_for(
        lambda: any("loss" in r for r in read_progress(run_dir)[logged:]), timeout=300, what="a step after the resume"
    )
    assert [r["step"] for r in read_progress(run_dir)[logged:] if "loss" in r][0] == resumed_from + 1
    jobs.cancel(ws, "crash")
    assert jobs.reconcile(ws) == {} and jobs.active(ws) is None


def test_a_run_left_queued_by_a_dead_starter_is_marked_failed(ws, tmp_path):
    run_dir = ws.dir("runs", "limbo")
    run_dir.mkdir(parents=True)
    write_status(run_dir, state="queued")
    with db.connect(db.init(ws.db_path)) as conn:
        conn.execute(
            "INSERT INTO runs (id, name, status, method, base_model, dataset, config, created_at, path)"
            " VALUES ('limbo', 'limbo', 'queued', 'lora', 'embedded', 'd', '{}', ?, ?)",
            (time.time(), str(run_dir)),
        )
    assert jobs.reconcile(ws) == {"limbo": "queued"}  # just queued: give the starter its grace period
    status = json.loads((run_dir / "status.json").read_text())
    status["updated"] -= jobs.QUEUED_GRACE_S + 1
    (run_dir / "status.json").write_text(json.dumps(status))
    assert jobs.reconcile(ws) == {"limbo": "failed"}
    assert jobs.list_runs(ws)[0]["status"] == "failed"


def test_a_running_run_whose_folder_was_deleted_by_hand_is_marked_failed_and_blocks_nothing(ws, tmp_path):
    """A training killed and its folder removed by hand left a 'running' record; every later start
    polled it, wrote status.json into the missing folder and failed with FileNotFoundError."""
    import shutil

    run_dir = ws.dir("runs", "gone")
    run_dir.mkdir(parents=True)
    write_status(run_dir, state="running", pid=2**22 + 7)  # no such process
    with db.connect(db.init(ws.db_path)) as conn:
        conn.execute(
            "INSERT INTO runs (id, name, status, method, base_model, dataset, config, created_at, path)"
            " VALUES ('gone', 'gone', 'running', 'lora', 'embedded', 'd', '{}', ?, ?)",
            (time.time(), str(run_dir)),
        )
    shutil.rmtree(run_dir)
    assert jobs.active(ws) is None  # what every start asks first: no FileNotFoundError
    assert not run_dir.exists()  # nothing is recreated
    row = jobs.list_runs(ws)[0]
    assert row["status"] == "failed" and str(run_dir) in row["error"] and "deleted" in row["error"]
    assert jobs.reconcile(ws) == {}
    assert jobs.delete(ws, "gone") == "deleted gone" and jobs.list_runs(ws) == []


@pytest.mark.integration
def test_two_users_starting_training_at_once_one_runs_the_other_is_told_which(ws, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from lab.config import TrainConfig

    data = chat_file(tmp_path / "facts.jsonl")
    configs = [TrainConfig(name=n, dataset=str(data), batch_size=2, max_length=64, max_steps=500) for n in "ab"]

    def attempt(cfg):
        try:
            return "ok", jobs.start(ws, cfg)
        except jobs.JobError as exc:
            return "refused", str(exc)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, configs))
    try:
        assert sorted(r[0] for r in results) == ["ok", "refused"], results
        winner = next(r[1] for r in results if r[0] == "ok")
        message = next(r[1] for r in results if r[0] == "refused")
        assert f"run {winner!r} is already training" in message and "one job at a time" in message
        assert ws.list("runs") == [winner]
    finally:
        for run_id in ws.list("runs"):
            jobs.cancel(ws, run_id)


def _many_docs(folder: Path, n: int = 400) -> Path:
    folder.mkdir()
    for i in range(n):
        words = " ".join(f"term{i}x{j}" for j in range(60))
        (folder / f"doc{i:03d}.md").write_text(f"# Document {i}\n\n{words}.\n\nSecond paragraph {i}: {words}.\n")
    return folder


@pytest.mark.integration
def test_kill_during_index_build_keeps_the_previous_index_and_the_next_build_works(ws, tmp_path, cache):
    from lab.rag import list_indexes, open_index

    small = tmp_path / "small"
    small.mkdir()
    (small / "a.md").write_text("# Valves\n\nThe Zorblat valve is teal.\n")
    first = lab_cmd(ws, "index", "build", "--docs", str(small), "--name", "kb")
    assert first.wait(timeout=600) == 0, first.stderr.read()
    before = (ws.dir("indexes", "kb") / "meta.json").read_bytes()
    big = _many_docs(tmp_path / "big")
    log = tmp_path / "build.err"
    with log.open("w") as err:
        proc = lab_cmd(ws, "index", "build", "--docs", str(big), "--name", "kb", stderr=err)
        kill_when(proc, lambda: "embedding" in log.read_text() or "writing" in log.read_text(), "the build started")
    assert list_indexes(ws) == ["kb"]
    assert (ws.dir("indexes", "kb") / "meta.json").read_bytes() == before
    assert [p.text for p in open_index(ws, "kb", cache).retrieve("Zorblat valve", 1)][0].startswith("# Valves")
    ws.clean_staging(min_age_s=0)
    again = lab_cmd(ws, "index", "build", "--docs", str(small), "--name", "kb2")
    assert again.wait(timeout=600) == 0, again.stderr.read()
    assert list_indexes(ws) == ["kb", "kb2"]
    assert not [p for p in (ws.root / "indexes").iterdir() if p.name.startswith(".")]


def test_kill_between_the_two_renames_of_a_save_is_repaired(ws):
    """The one window where neither copy is at its name: the old one is put back by clean_staging (app start)."""
    (ws.root / "indexes" / ".kb.1234abcd.old").mkdir()
    (ws.root / "indexes" / ".kb.1234abcd.old" / "meta.json").write_text("{}")
    (ws.root / "indexes" / ".kb.99999999.tmp").mkdir()
    assert ws.clean_staging() == 1  # the young staging folder may be a build running now: kept
    assert (ws.root / "indexes" / "kb" / "meta.json").is_file()
    assert ws.clean_staging(min_age_s=0) == 1 and ws.list("indexes") == ["kb"]


@pytest.mark.integration
def test_kill_during_an_evaluation_lists_nothing_and_the_next_one_works(ws, tmp_path):
    from lab.arena.evaluation import list_evaluations
    from lab.data import ensure_sample_domain

    ensure_sample_domain(ws)
    args = ["eval", "--systems", "base", "--max-new-tokens", "8", "--batch-size", "1", "--bootstrap", "10"]
    log = tmp_path / "eval.err"
    with log.open("w") as err:
        proc = lab_cmd(ws, *args, "--limit", "40", stderr=err)
        kill_when(proc, lambda: "1/40" in log.read_text(), "the first answer")
    assert list_evaluations(ws) == []
    assert not [p for p in (ws.root / "evals").iterdir() if not p.name.startswith(".")]
    done = lab_cmd(ws, *args, "--limit", "2")
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-2000:]
    listed = list_evaluations(ws)
    assert len(listed) == 1 and listed[0]["status"] == "finished"


WRITER = """
import sys
from lab import db
path = sys.argv[1]
db.init(path)
for i in range(100000):
    with db.connect(path) as conn:
        conn.execute("INSERT INTO votes (created_at, question, system_a, system_b, answer_a, answer_b, winner)"
                     " VALUES (?, ?, 'a', 'b', ?, ?, 'a')", (i, f"q{i}", "x" * 500, "y" * 500))
    print(i, flush=True)
"""


def test_sqlite_survives_a_kill_during_writes(ws):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ws.db_path)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        for _ in range(2)
    ]
    committed = []
    for proc in procs:
        for _ in range(150):
            last = proc.stdout.readline()
        committed.append(int(last))
    for proc in procs:
        proc.kill()
        proc.wait()
    conn = sqlite3.connect(ws.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
    conn.close()
    assert count >= sum(c + 1 for c in committed)  # every commit a writer reported is there
    with db.connect(ws.db_path) as conn:
        conn.execute("INSERT INTO votes (created_at, question, system_a, system_b, answer_a, answer_b, winner)"
                     " VALUES (0, 'after', 'a', 'b', '', '', 'tie')")  # fmt: skip
    assert db.rows(ws.db_path, "SELECT COUNT(*) AS n FROM votes")[0]["n"] == count + 1


def _start_app(home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAB_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "app.py"], capture_output=True, text=True, cwd=str(REPO), env=env,
                          timeout=300)  # fmt: skip


def test_damaged_database_or_unusable_workspace_gives_one_clear_line(tmp_path):
    home = tmp_path / "home"
    Workspace.open(home)
    (home / "lab.db").write_bytes(b"this is not a database, it was overwritten by mistake" * 100)
    for case, where in ((home, "lab.db"), (tmp_path / "a-file" / "home", "LAB_HOME")):
        if case != home:
            (tmp_path / "a-file").write_text("a file where a folder should be")
        out = _start_app(case)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
        line = out.stderr.strip().splitlines()[-1]
        assert line.startswith("ExpertLab cannot start:") and where in line, out.stderr[-2000:]
    env = {**os.environ, "LAB_HOME": str(home), "PYTHONPATH": str(REPO)}
    cli = subprocess.run([sys.executable, "-m", "lab", "runs"], capture_output=True, text=True, env=env, cwd=REPO)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr and "not a usable SQLite database" in cli.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs where mounting is allowed (root); elsewhere None (ENOSPC is injected instead)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    ok = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                                              capture_output=True).returncode == 0  # fmt: skip
    yield mnt if ok else None
    if ok:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> None:
    with (folder / "filler.bin").open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_full_disk_during_a_save_is_a_clear_error_and_keeps_earlier_artefacts(small_disk, tmp_path, monkeypatch):
    from lab.corpus import save_corpus
    from lab.data import load_split, save_dataset

    data = chat_file(tmp_path / "facts.jsonl", n=200)
    ws = Workspace.open(small_disk or tmp_path / "home")
    save_dataset(ws, "first", data)
    kept = {p.name: p.read_bytes() for p in ws.dir("datasets", "first").iterdir()}
    if small_disk:
        _fill(small_disk)
    else:  # no tmpfs here: make every write into a staging folder fail as a full disk would
        import builtins
        import io

        real_open = io.open

        def full(file, mode="r", *a, **k):
            if ("w" in mode or "a" in mode) and ".tmp" in str(file):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_open(file, mode, *a, **k)

        monkeypatch.setattr(io, "open", full)
        monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(WorkspaceError, match="is full: dataset 'second' was not saved"):
        save_dataset(ws, "second", data)
    doc = tmp_path / "doc.md"
    doc.write_text("# Doc\n" + "words " * 200_000)
    with pytest.raises(WorkspaceError, match="is full: corpus 'docs' was not saved"):
        save_corpus(ws, "docs", [doc])
    assert ws.list("datasets") == ["first"] and ws.list("corpora") == []
    assert {p.name: p.read_bytes() for p in ws.dir("datasets", "first").iterdir()} == kept
    assert len(load_split(ws, "first")) > 0
    assert not [p for kind in ("datasets", "corpora") for p in (ws.root / kind).iterdir() if p.name.startswith(".")]


def test_a_new_database_locked_by_another_process_is_waited_for_not_called_corrupt(tmp_path, monkeypatch):
    """Two processes creating lab.db at once: the switch to WAL can answer "database is locked" at once; init
    retries that (a flake of the kill test above), while a real fault is still reported at once."""
    real, calls = db.connect, []

    def flaky(path):
        calls.append(path)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return real(path)

    monkeypatch.setattr(db, "connect", flaky)
    path = db.init(tmp_path / "lab.db")
    assert len(calls) == 3 and path.is_file()
    with real(path) as conn:
        assert conn.execute("SELECT count(*) FROM votes").fetchone()[0] == 0  # the schema is there

    def broken(path):
        calls.append(path)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(db, "connect", broken)
    calls.clear()
    with pytest.raises(db.DatabaseError, match="not a usable SQLite database"):
        db.init(tmp_path / "other.db")
    assert len(calls) == 1  # not retried
