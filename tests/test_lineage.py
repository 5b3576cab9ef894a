"""Continue from a run: the new run starts from the parent's adapter weights (not a fresh LoRA), takes the
parent's base model, records its parent, and a missing parent is refused with a message naming it."""

from __future__ import annotations

import pytest
from fakes import train_settings
from safetensors.torch import load_file

from lab import jobs
from lab.training.lineage import LineageError, lineage


def _lora_b(ws, run_id: str) -> dict:
    weights = load_file(str(ws.dir("runs", run_id) / "adapter" / "adapter_model.safetensors"))
    return {k: v for k, v in weights.items() if "lora_B" in k}


@pytest.mark.integration
def test_a_continued_run_starts_from_its_parents_adapter(ws, tmp_path):
    parent = jobs.start(ws, train_settings(tmp_path, "parent", max_steps=3, learning_rate=1e-2))
    assert jobs.wait(ws, parent, timeout=1200)["state"] == "finished"
    child = jobs.start(ws, train_settings(tmp_path, "child", max_steps=1, learning_rate=1e-9, from_run=parent))
    assert jobs.wait(ws, child, timeout=1200)["state"] == "finished"
    before, after = _lora_b(ws, parent), _lora_b(ws, child)
    assert before.keys() == after.keys() and before
    assert max(float(v.abs().max()) for v in before.values()) > 1e-4  # a fresh LoRA B matrix is all zeros
    for name, value in before.items():  # a learning rate of 1e-9 leaves the parent's weights where they were
        assert (after[name] - value).abs().max() < 1e-5, name
    assert lineage(ws, child)["parent"] == parent
    assert f"continued from run `{parent}`" in (ws.dir("runs", child) / "README.md").read_text()


def test_continuing_from_a_run_without_an_adapter_is_refused(ws, tmp_path):
    with pytest.raises(LineageError, match="no-such-run"):
        jobs.start(ws, train_settings(tmp_path, "orphan", max_steps=1, from_run="no-such-run"))
