"""Training jobs as child processes: stop then resume continues the step count, SIGKILL is recorded as failed,
one job at a time, cancel kills the process tree, the CLI streams progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from fakes import train_settings, wait_for, write_facts

from lab import jobs
from lab.training import last_checkpoint, read_progress


def steps(run_dir) -> list[int]:
    return [r["step"] for r in read_progress(run_dir) if "loss" in r]


@pytest.mark.integration
def test_stop_then_resume_continues_the_step_count(ws, tmp_path):
    run_id = jobs.start(ws, train_settings(tmp_path, "stop-resume", max_steps=40))
    run_dir = ws.dir("runs", run_id)
    wait_for(lambda: len(steps(run_dir)) >= 2, what="two logged steps")
    jobs.stop(ws, run_id)
    info = jobs.wait(ws, run_id, timeout=240)
    assert info["state"] == "stopped", info
    stopped_at = steps(run_dir)[-1]
    assert 2 <= stopped_at < 40 and last_checkpoint(run_dir).name == f"checkpoint-{stopped_at}"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    jobs.resume(ws, run_id)
    wait_for(lambda: any(s > stopped_at for s in steps(run_dir)), what="a step after the resume")
    jobs.stop(ws, run_id)
    assert jobs.wait(ws, run_id, timeout=240)["state"] == "stopped"
    after = steps(run_dir)[steps(run_dir).index(stopped_at) + 1 :]
    assert after[0] == stopped_at + 1 and after == sorted(after)
    assert jobs.list_runs(ws)[0]["status"] == "stopped"


@pytest.mark.integration
def test_sigkill_is_recorded_as_failed_and_a_second_job_is_refused(ws, tmp_path):
    run_id = jobs.start(ws, train_settings(tmp_path, "killed", max_steps=500))
    run_dir = ws.dir("runs", run_id)
    with pytest.raises(jobs.JobError, match="'killed' is already training"):
        jobs.start(ws, train_settings(tmp_path, "second", max_steps=2))
    assert not ws.exists("runs", "second")
    wait_for(lambda: steps(run_dir), what="a logged step")
    os.kill(jobs.poll(ws, run_id)["status"]["pid"], signal.SIGKILL)
    info = wait_for(lambda: (i := jobs.poll(ws, run_id))["state"] == "failed" and i, timeout=30, what="failed")
    assert "killed or crashed" in info["status"]["error"]
    assert "step 1/500" in (run_dir / "train.log").read_text()
    row = jobs.list_runs(ws)[0]
    assert row["status"] == "failed" and "train.log" in row["error"]
    assert jobs.active(ws) is None


@pytest.mark.integration
def test_cancel_kills_the_process_tree(ws, tmp_path):
    run_id = jobs.start(ws, train_settings(tmp_path, "cancel-me", max_steps=500))
    pid = jobs.poll(ws, run_id)["status"]["pid"]
    assert jobs.cancel(ws, run_id) == "cancelled cancel-me"
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2],
             timeout=30, what="the child to die")  # fmt: skip
    assert jobs.poll(ws, run_id)["state"] == "cancelled"
    with pytest.raises(jobs.JobError, match="no checkpoint"):
        jobs.resume(ws, run_id)
    jobs.delete(ws, run_id)
    assert jobs.list_runs(ws) == [] and not ws.exists("runs", run_id)


@pytest.mark.integration
def test_cli_train_prints_run_and_streams_progress(ws, tmp_path):
    data = write_facts(tmp_path / "cli.jsonl")
    cmd = [sys.executable, "-m", "lab", "train", "--data", str(data), "--method", "lora", "--max-steps", "2",
           "--batch-size", "2", "--max-length", "64", "--name", "cli-run"]  # fmt: skip
    env = {**os.environ, "LAB_HOME": str(ws.root)}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "run cli-run" and lines[1] == f"folder {ws.dir('runs', 'cli-run')}"
    assert [ln.split()[1] for ln in lines if ln.startswith("step ")] == ["1", "2"]
    assert lines[-1].startswith("finished ")
    listing = subprocess.run([sys.executable, "-m", "lab", "runs"], capture_output=True, text=True, env=env)
    assert "cli-run" in listing.stdout and "finished" in listing.stdout


@pytest.mark.integration
def test_zero_gpu_refuses_a_long_run_before_creating_it_and_trains_a_short_one_inline(ws, tmp_path):
    """The ZeroGPU hooks: a run longer than one slot leaves nothing behind; a short one trains in this process
    (off ZeroGPU the slot wrapper is the function itself, so the same inline path runs on the CPU)."""
    from lab.ui import spaces as zg

    tight = {"SPACES_ZERO_GPU": "true", "LAB_ZEROGPU_SLOT_S": "60"}
    with pytest.raises(zg.ZeroGpuError, match="max_steps to"):
        jobs.start(ws, train_settings(tmp_path, "too-long", max_steps=5000), **zg.slot_training(tight))
    assert not ws.exists("runs", "too-long") and jobs.list_runs(ws) == []

    run_id = jobs.start(ws, train_settings(tmp_path, "inline", max_steps=3), **zg.slot_training({}))
    status = jobs.poll(ws, run_id)["status"]
    assert status["inline"] is True and status["pid"] == os.getpid()
    assert jobs.poll(ws, run_id)["state"] in ("starting", "running")  # alive: no child process names the run
    assert "cannot be killed" in jobs.cancel(ws, run_id)  # cancel must not kill this process: it stops the run
    info = jobs.wait(ws, run_id, timeout=240)
    assert info["state"] in ("finished", "stopped"), info["status"].get("error")
    assert (ws.dir("runs", run_id) / "adapter" / "adapter_model.safetensors").exists()
    assert os.getpid() == status["pid"]  # and this process is still here
