"""Several GPUs, made testable on this CPU: `torchrun --nproc_per_node 2 -m lab.training RUN_DIR` starts a
2-process gloo world that the Trainer joins (each rank on the CPU, DistributedDataParallel); one rank writes the
run's files. Device pinning is checked over named fakes of the device facts (lab.catalog.DeviceFacts); the same
launch on CUDA is the `gpu` test at the end (it needs two GPUs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.catalog import DeviceFacts, child_gpu_env, cuda_device
from lab.config import TrainConfig
from lab.errors import LabError
from lab.training import ADAPTER, read_progress, read_status

REPO = Path(__file__).resolve().parent.parent
CPU_ONLY = DeviceFacts()
ONE_A100 = DeviceFacts(cuda=True, count=1, capability=(8, 0), native_bf16=True)
FOUR_A100 = DeviceFacts(cuda=True, count=4, capability=(8, 0), native_bf16=True)
TWO_T4 = DeviceFacts(cuda=True, count=2, capability=(7, 5))


def _run(ws, tmp_path, name: str, **settings) -> Path:
    turns = [(f"Part {i}: which shelf?", f"Shelf {i}.") for i in range(16)]
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in turns]
    data = tmp_path / "shelves.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    run_dir = ws.dir("runs", name)
    run_dir.mkdir(parents=True)
    base = dict(name=name, dataset=str(data), batch_size=2, max_length=64, max_steps=3, logging_steps=1,
                save_steps=100, warmup_ratio=0.0, scheduler="constant", target_modules="attention")  # fmt: skip
    TrainConfig(**{**base, **settings}).save(run_dir / "config.json")
    return run_dir


def _torchrun(ws, run_dir: Path, nproc: int = 2, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAB_HOME": str(ws.root), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    cmd = [*launcher, "--standalone", "--nproc_per_node", str(nproc), "-m", "lab.training", str(run_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))


@pytest.mark.integration
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_two_processes_train_one_run_with_one_writer(ws, tmp_path, embedded_path, method):
    run_dir = _run(ws, tmp_path, f"ddp-{method}", method=method)
    done = _torchrun(ws, run_dir)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    # the ranks share the data: each step takes 2 ranks x 2 examples of 16, a quarter epoch (one process: an eighth)
    logged = [r for r in read_progress(run_dir) if "loss" in r]
    assert [r["step"] for r in logged] == [1, 2, 3]  # one writer: no line twice
    assert [r["epoch"] for r in logged] == [0.25, 0.5, 0.75]
    status = read_status(run_dir)
    assert status["state"] == "finished" and status["world_size"] == 2 and status["metrics"]["steps"] == 3
    assert (run_dir / ADAPTER / "adapter_model.safetensors").is_file() and (run_dir / "README.md").is_file()
    assert not list(run_dir.glob(".status.json.*"))  # no half-written status from a second writer
    ranks = sorted(re.findall(r"rank (\d) of 2 on (\S+),", done.stderr))
    assert ranks == [("0", "cpu"), ("1", "cpu")], done.stderr[-2000:]


def test_each_rank_takes_its_own_gpu():
    assert cuda_device({}) == 0
    assert cuda_device({"LOCAL_RANK": "1"}, count=FOUR_A100.count) == 1
    assert cuda_device({"LOCAL_RANK": "3"}, count=FOUR_A100.count) == 3
    with pytest.raises(LabError, match="LOCAL_RANK=1 but this process sees 1 CUDA device"):
        cuda_device({"LOCAL_RANK": "1"}, count=ONE_A100.count)


def test_the_app_pins_its_training_child_to_one_gpu():
    assert child_gpu_env({}, FOUR_A100) == {"CUDA_VISIBLE_DEVICES": "3"}  # the last: the app's models sit on 0
    assert child_gpu_env({}, TWO_T4) == {"CUDA_VISIBLE_DEVICES": "1"}
    assert child_gpu_env({}, ONE_A100) == {}
    assert child_gpu_env({}, CPU_ONLY) == {}
    assert child_gpu_env({"CUDA_VISIBLE_DEVICES": "0,1"}, FOUR_A100) == {}  # the user's choice stays


def _environ(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads a child's environment from /proc")
def test_spawn_gives_the_child_one_gpu_on_a_many_gpu_machine(ws, monkeypatch):
    from lab import jobs

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    seen = {}
    for name, facts in (("four", FOUR_A100), ("one", ONE_A100)):
        run_dir = ws.dir("runs", name)
        run_dir.mkdir(parents=True)  # no config.json: the child fails at once, which is all this test needs
        pid = jobs._spawn(ws, run_dir, facts=facts)
        seen[name] = _environ(pid).get("CUDA_VISIBLE_DEVICES")
        deadline = time.time() + 120
        while read_status(run_dir).get("state") not in ("failed", "finished") and time.time() < deadline:
            time.sleep(0.2)
    assert seen == {"four": "3", "one": None}


def test_the_printed_multi_gpu_command_leaves_precision_to_the_run():
    from lab.training.plan import accelerate_command

    cmd = accelerate_command("runs/r1", 2)
    assert cmd == ["accelerate", "launch", "--num_processes", "2", "--multi_gpu", "--mixed_precision", "no",
                   "-m", "lab.training", "runs/r1"]  # fmt: skip


@pytest.mark.gpu
def test_two_gpus_train_qlora_each_rank_on_its_own_card(ws, tmp_path, embedded_path):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    run_dir = _run(ws, tmp_path, "ddp-cuda", method="qlora")
    done = _torchrun(ws, run_dir)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert read_status(run_dir)["state"] == "finished"
    assert sorted(re.findall(r"rank (\d) of 2 on (\S+),", done.stderr)) == [("0", "cuda:0"), ("1", "cuda:1")]


def test_the_loss_through_the_ddp_wrapper_equals_the_single_process_loss(tmp_path):
    """Under DistributedDataParallel the loss is the run's own (labelled positions only, each answer's first token
    weighted by decision_weight, packed examples apart), computed through the wrapper so gradients are averaged:
    a one-process gloo world shows it equals the unwrapped loss."""
    import socket

    import torch
    import torch.distributed as dist
    from fakes import tiny_llama, token_rows
    from peft import LoraConfig, get_peft_model
    from transformers import TrainingArguments

    from lab.training.engine import make_trainer_class
    from lab.training.prep import PadCollator, pack

    model = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], remove_unused_columns=False)
    trainer = make_trainer_class()(model=model, args=args, decision_weight=5.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        for batch in (PadCollator(0)(token_rows()), PadCollator(0)(pack(token_rows(), max_length=64))):
            with torch.no_grad():
                alone = trainer.compute_loss(model, dict(batch))
                through = trainer.compute_loss(wrapped, dict(batch))
            assert torch.allclose(alone, through, atol=1e-5), (alone, through)
    finally:
        dist.destroy_process_group()
