"""Precision and measurement: the training precision is a pure function of named device facts (bf16 only where
native, fp16 with loss scaling on fp16-only cards, float32 elsewhere); packed examples do not attend across their
boundaries; calibration synchronises CUDA before reading the clock and reports CUDA memory; the CUDA peak starts
again with each run; the memory estimate on a GPU machine is the GPU formula; tokens are counted by the collator.
What needs CUDA itself is in the `gpu` tests at the end (skipped without CUDA)."""

from __future__ import annotations

import pytest
from fakes import tiny_llama, token_rows

from lab.catalog import DeviceFacts, precision, weight_dtype
from lab.config import TrainConfig

CPU_PLAIN = DeviceFacts()
CPU_AMX = DeviceFacts(cpu_bf16=True)
A100 = DeviceFacts(cuda=True, count=1, capability=(8, 0), native_bf16=True)
H100 = DeviceFacts(cuda=True, count=1, capability=(9, 0), native_bf16=True)
T4 = DeviceFacts(cuda=True, count=1, capability=(7, 5))  # torch's is_bf16_supported() says True: emulated
V100 = DeviceFacts(cuda=True, count=1, capability=(7, 0))
P40 = DeviceFacts(cuda=True, count=1, capability=(6, 1))


@pytest.mark.parametrize(
    ("facts", "method", "expected"),
    [
        (A100, "lora", "bf16"), (H100, "qlora", "bf16"),
        (T4, "lora", "fp16"), (T4, "qlora", "fp16"), (V100, "lora", "fp16"),
        (P40, "lora", "fp32"),
        (CPU_AMX, "lora", "bf16"), (CPU_AMX, "qlora", "fp32"), (CPU_PLAIN, "lora", "fp32"),
    ],
)  # fmt: skip
def test_bf16_only_where_native_fp16_on_fp16_cards_else_float32(facts, method, expected):
    assert precision(facts, "auto", method) == expected


def test_the_bf16_setting_overrides_auto():
    assert precision(T4, "on") == "bf16"  # asked for: emulated, slow, but what the user chose
    assert precision(A100, "off") == "fp16" and precision(T4, "off") == "fp16"
    assert precision(P40, "off") == "fp32" and precision(CPU_AMX, "off") == "fp32"


def test_weights_load_in_the_run_precision_on_cuda_and_float32_on_a_cpu():
    assert weight_dtype(T4, precision(T4)) == "float16"
    assert weight_dtype(A100, precision(A100)) == "bfloat16"
    assert weight_dtype(P40, precision(P40)) == "float32"
    assert weight_dtype(CPU_AMX, precision(CPU_AMX)) == "float32"  # bf16 on a CPU is an autocast


def test_fp16_trains_with_loss_scaling_and_a_cpu_machine_joins_a_gloo_world():
    from lab.training.engine import autocast_dtype, precision_args, run_precision

    assert precision_args("fp16", T4) == {"bf16": False, "fp16": True, "use_cpu": False}  # the Trainer's GradScaler
    assert precision_args("bf16", A100) == {"bf16": False, "fp16": False, "use_cpu": False}  # own autocast
    assert precision_args("fp32", CPU_PLAIN) == {"bf16": False, "fp16": False, "use_cpu": True}
    assert run_precision(TrainConfig(), T4) == "fp16" and str(autocast_dtype("fp16")) == "torch.float16"
    assert autocast_dtype("fp32") is None


def test_fp16_run_arguments_ask_the_trainer_for_loss_scaling(tmp_path):
    from lab.training.engine import training_args

    args = training_args(TrainConfig(dataset="sample"), tmp_path, False, facts=CPU_PLAIN, chosen="fp32")
    assert args.fp16 is False and args.bf16 is False and args.use_cpu is True
    assert args.mixed_precision == "no"


def test_calibration_synchronises_cuda_before_each_clock_read_and_peaks_reset_per_run():
    from lab.training.engine import reset_peak_memory
    from lab.training.speed import _clock

    calls = []
    _clock(T4, synchronize=lambda: calls.append("sync"))
    _clock(CPU_PLAIN, synchronize=lambda: calls.append("cpu"))
    assert calls == ["sync"]
    resets = []
    assert reset_peak_memory(A100, reset=lambda: resets.append(1)) is True and resets == [1]
    assert reset_peak_memory(CPU_PLAIN, reset=lambda: resets.append(2)) is False and resets == [1]


def test_a_packed_segment_sees_only_itself():
    import torch

    from lab.training.engine import decoder_inputs
    from lab.training.prep import PadCollator, pack

    model = tiny_llama()
    rows = token_rows()
    (packed,) = pack(rows, max_length=64)
    batch = PadCollator(0)([packed])
    with torch.no_grad():
        together = model.model(**decoder_inputs(batch)).last_hidden_state[0]
        start = 0
        for row in sorted(rows, key=lambda r: -r["length"]):  # pack's order
            alone = model.model(input_ids=torch.tensor([row["input_ids"]]), use_cache=False).last_hidden_state[0]
            assert torch.allclose(together[start : start + row["length"]], alone, atol=1e-5), start
            start += row["length"]
        with_cache = model.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).last_hidden_state
    assert not torch.allclose(with_cache[0, :start], together[:start], atol=1e-5)  # why use_cache=False matters


def test_the_trainer_loss_on_packed_examples_equals_the_loss_on_them_apart(tmp_path):
    """End to end through LabTrainer.compute_loss. (transformers 5.23's Trainer also sets the model's
    config.use_cache to TrainingArguments.use_cache, False by default; the loss no longer depends on that.)"""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import TrainingArguments

    from lab.training.engine import make_trainer_class
    from lab.training.prep import PadCollator, pack

    model = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], remove_unused_columns=False)
    trainer = make_trainer_class()(model=model, args=args)
    rows = token_rows()
    with torch.no_grad():
        packed = trainer.compute_loss(model, PadCollator(0)(pack(rows, max_length=64)))
        apart = trainer.compute_loss(model, PadCollator(0)(rows))
    assert torch.allclose(packed, apart, atol=1e-5), (packed, apart)


def test_the_collator_counts_tokens_on_the_host():
    from lab.training.prep import PadCollator

    batch = PadCollator(0)(token_rows())
    assert batch["n_tokens"] == 11 + 7 + 9 and isinstance(batch["n_tokens"], int)
    assert batch["input_ids"].shape == (3, 16)


@pytest.mark.integration
def test_the_memory_estimate_on_a_gpu_machine_is_the_gpu_formula(embedded_path):
    from lab import catalog
    from lab.training.plan import estimate

    config = TrainConfig(method="lora", rank=16, target_modules="all-linear", batch_size=4, max_length=256)
    gpu = estimate(config, embedded_path, 100, 200.0, max_tokens=256, gpu=True)["memory_mb"]
    cpu = estimate(config, embedded_path, 100, 200.0, max_tokens=256, gpu=False)["memory_mb"]
    formula = catalog.memory_mb(catalog.find("embedded"), "lora", 256, 4, rank=16)
    assert "CUDA overhead" in gpu and "libraries" in cpu
    assert gpu["total"] == pytest.approx(formula["total"], rel=0.02)
    assert gpu["weights"] == pytest.approx(cpu["weights"] / 2, rel=0.05)  # bf16 on the GPU, float32 on the CPU
    qlora = estimate(config.replace(method="qlora"), embedded_path, 100, 200.0, max_tokens=256, gpu=True)
    assert qlora["memory_mb"]["total"] < gpu["total"]


@pytest.mark.integration
def test_calibration_reports_its_precision_and_which_memory_it_measured(embedded_path):
    from lab.catalog import device_facts
    from lab.training.speed import _calibration_child

    config = TrainConfig(batch_size=2, max_length=32, target_modules="attention")
    facts = device_facts()
    result = _calibration_child({"config": config.to_dict(), "model_dir": embedded_path, "seq": 32}, 1, facts)
    assert result["tokens_per_s"] > 0 and result["peak_mb"] > 0
    assert result["memory"] == ("CUDA allocated" if facts.cuda else "resident")
    assert result["precision"] == precision(facts, config.bf16, config.method)


def _cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (run on a lent GPU machine)")
    return torch


@pytest.mark.gpu
def test_cuda_native_bf16_is_read_without_emulation():
    torch = _cuda()
    from lab.catalog import device_facts

    facts = device_facts()
    assert facts.native_bf16 == (torch.cuda.get_device_capability()[0] >= 8)
    assert precision(facts) == ("bf16" if facts.native_bf16 else "fp16")


@pytest.mark.gpu
def test_cuda_peak_resets_at_the_start_of_a_measurement():
    torch = _cuda()
    from lab.catalog import device_facts
    from lab.training.engine import reset_peak_memory

    big = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    del big
    assert torch.cuda.max_memory_allocated() >= 256 * 2**20
    assert reset_peak_memory(device_facts())
    assert torch.cuda.max_memory_allocated() < 256 * 2**20


@pytest.mark.gpu
def test_cuda_fp16_run_trains_with_a_grad_scaler(ws, tmp_path, embedded_path):
    _cuda()
    from fakes import new_run

    from lab.training import engine, read_status

    seen = {}
    make = engine.make_trainer_class

    def spying():
        cls = make()

        class Spy(cls):
            def training_step(self, *args, **kwargs):
                seen["scaler"] = self.accelerator.scaler is not None
                return super().training_step(*args, **kwargs)

        return Spy

    engine.make_trainer_class = spying
    try:
        run_dir = new_run(ws, tmp_path, "cuda-fp16", max_steps=3, batch_size=4, max_length=64, bf16="off")
        status = engine.train(run_dir)
    finally:
        engine.make_trainer_class = make
    assert status["state"] == "finished" and read_status(run_dir)["precision"] == "fp16" and seen["scaler"]
    assert status["metrics"]["train_loss"] == status["metrics"]["train_loss"]  # not NaN


@pytest.mark.gpu
@pytest.mark.integration
def test_cuda_calibration_reports_cuda_memory(embedded_path):
    _cuda()
    test_calibration_reports_its_precision_and_which_memory_it_measured(embedded_path)
