"""Train tab, no training: assistant-only label mask, target-module presets, commands, refusals before start."""

from __future__ import annotations

import json

import pytest

from lab.config import ConfigError, TrainConfig
from lab.training.plan import accelerate_command, cli_command, linear_modules, target_names, weight_shapes
from lab.training.prep import IGNORE, encode

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Colour of the Zorblat valve?"},
    {"role": "assistant", "content": "Teal."},
    {"role": "user", "content": "And the Quinx rotor?"},
    {"role": "assistant", "content": "Crimson, always."},
]


@pytest.fixture(scope="module")
def tok(cache):
    return cache.tokenizer("embedded")


def _trained_text(tok, row) -> str:
    return tok.decode([t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != IGNORE])


def test_assistant_only_mask_covers_exactly_the_assistant_turns(tok):
    row = encode(tok, MESSAGES, max_length=256)
    assert _trained_text(tok, row) == "Teal.<|im_end|>\nCrimson, always.<|im_end|>\n"
    assert row["length"] == len(row["input_ids"]) == len(row["labels"])
    full = encode(tok, MESSAGES, max_length=256, assistant_only=False)
    assert full["labels"] == full["input_ids"]


def test_turn_with_weight_zero_is_not_trained_and_truncation_applies(tok):
    messages = [dict(m) for m in MESSAGES]
    messages[2]["weight"] = 0
    assert _trained_text(tok, encode(tok, messages, max_length=256)) == "Crimson, always.<|im_end|>\n"
    assert encode(tok, MESSAGES, max_length=10)["length"] == 10


def test_target_presets_come_from_the_models_own_module_names(embedded_path):
    modules = linear_modules(weight_shapes(embedded_path))
    assert target_names(modules, "attention") == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert target_names(modules, "mlp") == ["down_proj", "gate_proj", "up_proj"]
    assert set(target_names(modules, "all-linear")) == {"k_proj", "o_proj", "q_proj", "v_proj", "down_proj",
                                                         "gate_proj", "up_proj"}  # fmt: skip
    assert target_names(modules, "q_proj, v_proj") == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="wq_proj"):
        target_names(modules, "q_proj,wq_proj")


@pytest.mark.parametrize(
    ("field", "value"), [("rank", 0), ("learning_rate", -1.0), ("method", "full"), ("batch_size", 0)]
)
def test_invalid_settings_are_refused_naming_the_value(field, value):
    with pytest.raises(ConfigError, match=f"{field}={value!r}"):
        TrainConfig(**{field: value})


def test_cli_command_reproduces_the_config():
    from lab.cli import build_parser
    from lab.cli.train import config_from_args

    config = TrainConfig(dataset="sample", method="qlora", rank=8, max_steps=7, packing=True)
    config = config.replace(assistant_only_loss=False)
    cmd = cli_command(config)
    assert cmd[:4] == ["python", "-m", "lab", "train"] and "--no-assistant-only-loss" in cmd
    args = build_parser().parse_args(cmd[3:])
    assert config_from_args(args) == config


def test_accelerate_command_is_built_for_several_gpus(tmp_path):
    cmd = accelerate_command(tmp_path / "runs" / "r1", 4)
    assert cmd == ["accelerate", "launch", "--num_processes", "4", "--multi_gpu", "--mixed_precision", "no",
                   "-m", "lab.training", str(tmp_path / "runs" / "r1")]  # fmt: skip
    assert "--multi_gpu" not in accelerate_command("r", 1)
    with pytest.raises(ValueError, match="num_processes=0"):
        accelerate_command("r", 0)


@pytest.mark.integration
def test_bad_data_and_too_long_max_length_are_refused_before_a_process_starts(ws, tmp_path):
    from lab import jobs

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "narrator", "content": "hi"}]}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="narrator"):
        jobs.start(ws, TrainConfig(dataset=str(bad), name="bad-data"))
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"messages": MESSAGES}) + "\n", encoding="utf-8")
    with pytest.raises(jobs.JobError, match="max_length=99999"):
        jobs.start(ws, TrainConfig(dataset=str(good), name="too-long", max_length=99999))
    with pytest.raises(ValueError, match="no dataset named 'nope'"):
        jobs.start(ws, TrainConfig(dataset="nope", name="no-data"))
    assert ws.list("runs") == [] and jobs.list_runs(ws) == []


def test_packing_keeps_whole_examples_and_restarts_positions(tok):
    from lab.training.prep import PadCollator, pack

    rows = [encode(tok, MESSAGES, 256), encode(tok, MESSAGES[:3], 256), encode(tok, MESSAGES[:3], 256)]
    bins = pack(rows, max_length=rows[0]["length"] + rows[1]["length"])
    assert sorted(b["length"] for b in bins) == sorted([rows[0]["length"] + rows[1]["length"], rows[2]["length"]])
    assert sum(p == 0 for p in bins[0]["position_ids"]) == 2
    batch = PadCollator(tok.pad_token_id)(bins)
    assert batch["input_ids"].shape[1] % 8 == 0 and (batch["labels"][1, bins[1]["length"] :] == IGNORE).all()


def test_out_of_memory_is_reported_with_advice():
    from lab.training.engine import advice

    text = advice(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), TrainConfig(batch_size=16))
    assert "out of memory (batch_size=16, max_length=512)" in text and "qlora" in text and "grad_accum" in text
    assert advice(ValueError("bad thing\nmore"), None) == "ValueError: bad thing"
