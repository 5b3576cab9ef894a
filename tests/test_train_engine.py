"""Train tab engine, in-process on the embedded model: LoRA and QLoRA few-step runs on a small fixed dataset."""

from __future__ import annotations

import json

import pytest
from fakes import TRAIN_FACTS, new_run, write_facts

from lab.config import TrainConfig
from lab.training import ADAPTER, read_progress, read_status


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, model_cache_dir):
    """One LoRA run of 8 steps on attention modules only; captures the trained model and its initial state."""
    from lab.training import engine
    from lab.workspace import Workspace

    tmp = tmp_path_factory.mktemp("lora")
    ws = Workspace.open(tmp / "home")
    (ws.root / "models").rmdir()
    (ws.root / "models").symlink_to(model_cache_dir, target_is_directory=True)
    from lab.config import DataConfig
    from lab.data import save_dataset

    save_dataset(ws, "facts", write_facts(tmp / "facts.jsonl", facts=TRAIN_FACTS), DataConfig(val_fraction=0.25))
    run_dir = new_run(ws, tmp, "lora8", max_steps=8, target_modules="attention", dataset="facts", eval_steps=4)
    captured = {}
    build = engine.build_model

    def capture(config, path, parent=None):
        model = build(config, path, parent)
        captured["model"] = model
        captured["before"] = {k: v.detach().clone() for k, v in model.named_parameters()}
        return model

    engine.build_model = capture
    try:
        status = engine.train(run_dir)
    finally:
        engine.build_model = build
    return run_dir, status, captured


@pytest.mark.integration
def test_lora_run_logs_a_falling_loss_and_finishes(lora_run):
    run_dir, status, _ = lora_run
    losses = [r["loss"] for r in read_progress(run_dir) if "loss" in r]
    assert status["state"] == "finished" and status["step"] == 8 and len(losses) == 8
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2
    assert all(r["tokens_per_s"] > 0 and r["memory_mb"] > 0 for r in read_progress(run_dir) if "loss" in r)
    assert (run_dir / "README.md").read_text().count("python -m lab train") == 1
    assert read_status(run_dir)["metrics"]["steps"] == 8
    evals = [r for r in read_progress(run_dir) if "eval_loss" in r]
    assert sorted({r["step"] for r in evals}) == [4, 8] and status["metrics"]["eval_loss"] > 0  # + the final eval


@pytest.mark.integration
def test_lora_weights_change_and_base_weights_do_not(lora_run):
    _, _, captured = lora_run
    after = dict(captured["model"].named_parameters())
    lora = [k for k in captured["before"] if "lora_" in k]
    base = [k for k in captured["before"] if "lora_" not in k]
    assert lora and base
    assert all(not after[k].requires_grad for k in base)
    assert all(after[k].detach().equal(captured["before"][k]) for k in base)
    assert sum(not after[k].detach().equal(captured["before"][k]) for k in lora) == len(lora)


@pytest.mark.integration
def test_adapter_targets_exactly_the_chosen_modules(lora_run):
    run_dir, _, _ = lora_run
    cfg = json.loads((run_dir / ADAPTER / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    from safetensors import safe_open

    with safe_open(str(run_dir / ADAPTER / "adapter_model.safetensors"), "pt") as fh:
        leaves = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in fh.keys()}
    assert leaves == {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_saved_adapter_reloads_to_identical_outputs(lora_run, cache):
    import torch
    from peft import PeftModel

    from lab.models import load_causal_lm

    run_dir, _, captured = lora_run
    trained = captured["model"].eval()
    reloaded = PeftModel.from_pretrained(load_causal_lm(cache.resolve("embedded").path), str(run_dir / ADAPTER))
    ids = torch.tensor([[1, 422, 2051, 314, 260, 1078, 30]])
    with torch.no_grad():
        assert torch.allclose(trained(input_ids=ids).logits, reloaded.eval()(input_ids=ids).logits, atol=1e-5)


def test_merged_model_matches_the_adapter(lora_run, cache):
    import torch
    from transformers import AutoModelForCausalLM

    from lab.training.engine import merge_adapter

    run_dir, _, captured = lora_run
    merged = AutoModelForCausalLM.from_pretrained(str(merge_adapter(cache.resolve("embedded").path, run_dir)))
    ids = torch.tensor([[1, 422, 2051, 314, 260, 1078, 30]])
    with torch.no_grad():
        expected = captured["model"].eval()(input_ids=ids).logits
        assert torch.allclose(merged.eval()(input_ids=ids).logits, expected, atol=1e-4)


@pytest.mark.integration
def test_qlora_trains_a_few_steps_on_4bit_nf4(ws, tmp_path):
    from lab.training import engine

    run_dir = new_run(ws, tmp_path, "qlora2", method="qlora", max_steps=2, batch_size=2, max_length=64)
    status = engine.train(run_dir)
    assert status["state"] == "finished" and status["step"] == 2
    assert [r["step"] for r in read_progress(run_dir) if "loss" in r] == [1, 2]
    assert (run_dir / ADAPTER / "adapter_model.safetensors").is_file()
    assert json.loads((run_dir / ADAPTER / "adapter_config.json").read_text())["r"] == 16


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_cuda_run_uses_bf16_and_reports_cuda_memory(ws, tmp_path, method):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (run on a lent GPU machine)")
    from lab.training import engine

    run_dir = new_run(ws, tmp_path, f"cuda-{method}", method=method, max_steps=4, batch_size=8, max_length=128)
    status = engine.train(run_dir)
    assert status["state"] == "finished" and status["bf16"] == torch.cuda.is_bf16_supported()
    assert 0 < status["metrics"]["peak_memory_mb"] < torch.cuda.get_device_properties(0).total_memory / 2**20
    print(f"{method}: {status['metrics']['runtime_s'] / 4:.3f} s/step, peak {status['metrics']['peak_memory_mb']} MB")


def test_peak_memory_is_this_process_own_not_the_launching_app_s():
    """A training child started from a big process (the app, models loaded) reports its own peak: Linux carries
    the parent's resident memory over exec into ru_maxrss, which made the Train tab show the app's size."""
    import subprocess
    import sys

    big = bytearray(600 * 2**20)
    for i in range(0, len(big), 4096):
        big[i] = 1  # resident in this process
    code = "from lab.training.plan import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < child < 400, child  # the child imports a little; the parent holds over 600 MB
    assert len(big) == 600 * 2**20


@pytest.mark.integration
def test_the_decision_weight_weighs_each_answer_s_first_token_and_is_what_the_trainer_uses(ws, tmp_path, monkeypatch):
    """The answer-or-"I don't know" token of every labelled span (rows and packed spans alike) weighs w times in
    a weighted mean; w = 1 is the plain mean; the engine hands the run's decision_weight to that loss."""
    import torch
    import torch.nn.functional as F

    from lab.training import engine

    keep = torch.tensor(
        [[False, True, True, True, False, True, True], [False, False, False, True, True, False, False]]
    )
    assert engine.decision_starts(keep).int().tolist() == [[0, 1, 0, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0, 0]]
    torch.manual_seed(0)
    targets = torch.randint(0, 11, keep.shape)
    logits = torch.randn(int(keep.sum()), 11, requires_grad=True)
    per = F.cross_entropy(logits, targets[keep], reduction="none").detach()
    w = torch.tensor([5.0, 1, 1, 5, 1, 5, 1])  # the flattened labelled positions, starts weigh 5
    assert torch.isclose(engine.token_loss(logits, targets, keep, 5.0), (per * w).sum() / w.sum())
    assert torch.isclose(engine.token_loss(logits, targets, keep, 1.0), per.mean())
    engine.token_loss(logits, targets, keep, 5.0).backward()
    grads = logits.grad.norm(dim=1)
    plain = torch.autograd.grad(F.cross_entropy(logits, targets[keep]), logits)[0].norm(dim=1)
    ratio = (grads / plain).tolist()  # a start's gradient grows against the others' by the weight
    assert abs(ratio[0] / ratio[1] - 5) < 1e-4 and abs(ratio[3] / ratio[2] - 5) < 1e-4

    seen = []
    real = engine.token_loss
    monkeypatch.setattr(engine, "token_loss", lambda *a: seen.append(a[3]) or real(*a))
    run_dir = new_run(ws, tmp_path, "weighted", max_steps=1, decision_weight=7.0)
    assert engine.train(run_dir)["state"] == "finished"
    assert seen and set(seen) == {7.0}
    with pytest.raises(ValueError, match="decision_weight"):
        TrainConfig(decision_weight=0.5).validate()


def test_cosine_with_restarts_climbs_back_to_the_top_at_each_epoch(tmp_path):
    import torch
    from transformers import get_scheduler

    from lab.training.engine import training_args

    config = TrainConfig(dataset="sample", scheduler="cosine_with_restarts", epochs=2.0, warmup_ratio=0.0)
    args = training_args(config, tmp_path, has_eval=False, bf16=False)
    assert args.lr_scheduler_kwargs == {"num_cycles": 2}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler(args.lr_scheduler_type, opt, num_warmup_steps=0, num_training_steps=20,
                          scheduler_specific_kwargs=args.lr_scheduler_kwargs)  # fmt: skip
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0 and lrs[9] < 0.1 and lrs[10] == 1.0  # the second epoch starts again at the top
    assert training_args(TrainConfig(dataset="sample"), tmp_path, False, False).lr_scheduler_kwargs == {}


class _Saved:
    def save_pretrained(self, path):
        path.mkdir(parents=True, exist_ok=True)


class _FinishingTrainer:
    """What `finish` asks of a Trainer: its step, an evaluation (counted), the rank and a model to save."""

    def __init__(self):
        self.state = type("State", (), {"global_step": 3})()
        self.tokens_seen, self.model, self.evaluations = 100, _Saved(), 0

    def evaluate(self):
        self.evaluations += 1
        return {"eval_loss": 1.5}

    def is_world_process_zero(self):
        return True


@pytest.mark.parametrize("stopped", [False, True])
def test_a_stopped_run_saves_its_adapter_without_the_final_evaluation(tmp_path, stopped):
    from lab.training import STOP
    from lab.training.engine import finish

    if stopped:
        (tmp_path / STOP).touch()
    trainer, result = _FinishingTrainer(), type("Result", (), {"training_loss": 2.0})()
    status = finish(trainer, TrainConfig(name="x", dataset="x"), tmp_path, "", _Saved(), result, 10.0, has_val=True)
    assert status["state"] == ("stopped" if stopped else "finished")
    assert trainer.evaluations == (0 if stopped else 1)  # Stop means stop: no evaluation after it
    assert ("eval_loss" in status["metrics"]) is not stopped and (tmp_path / ADAPTER).is_dir()
