"""The model catalog: sizes agree with the published parameter counts, estimates move the right way with length,
batch and method, every entry carries a licence note and a preset that exists."""

from __future__ import annotations

import re

import pytest

from lab import catalog
from lab.training import plan

PUBLISHED_PARAMS_B = {  # from the model cards
    "embedded": 0.135,
    "HuggingFaceTB/SmolLM2-360M-Instruct": 0.36,
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": 1.7,
    "Qwen/Qwen2.5-0.5B-Instruct": 0.49,
    "Qwen/Qwen2.5-1.5B-Instruct": 1.54,
    "microsoft/Phi-3-mini-4k-instruct": 3.8,
    "microsoft/Phi-3.5-mini-instruct": 3.8,
}


def test_catalog_holds_the_curated_models():
    assert {m.hub_id for m in catalog.MODELS} == set(PUBLISHED_PARAMS_B)


@pytest.mark.parametrize("model", catalog.MODELS, ids=lambda m: m.name)
def test_parameter_count_from_sizes_matches_the_model_card(model):
    assert model.params / 1e9 == pytest.approx(PUBLISHED_PARAMS_B[model.hub_id], rel=0.03)


@pytest.mark.parametrize("model", catalog.MODELS, ids=lambda m: m.name)
def test_every_entry_has_a_licence_note_and_a_real_preset(model):
    assert model.licence.strip() and ("gated" in model.licence or "wheel" in model.licence)
    assert model.preset in plan.PRESETS


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_estimate_grows_with_length_and_batch(method):
    model = catalog.find("Qwen/Qwen2.5-0.5B-Instruct")
    base = catalog.memory_mb(model, method, 256, 4)["total"]
    assert catalog.memory_mb(model, method, 512, 4)["total"] > base
    assert catalog.memory_mb(model, method, 256, 8)["total"] > base


@pytest.mark.parametrize("model", catalog.MODELS, ids=lambda m: m.name)
def test_qlora_needs_less_than_lora(model):
    assert catalog.memory_mb(model, "qlora", 512, 4)["total"] < catalog.memory_mb(model, "lora", 512, 4)["total"]


def test_bigger_models_need_more_and_checkpointing_saves_activations():
    small, large = (
        catalog.find("HuggingFaceTB/SmolLM2-360M-Instruct"),
        catalog.find("microsoft/Phi-3-mini-4k-instruct"),
    )
    assert catalog.memory_mb(large, "lora", 512, 4)["total"] > catalog.memory_mb(small, "lora", 512, 4)["total"]
    plain = catalog.memory_mb(large, "lora", 1024, 8)
    ckpt = catalog.memory_mb(large, "lora", 1024, 8, gradient_checkpointing=True)
    assert ckpt["activations"] < plain["activations"] and ckpt["weights"] == plain["weights"]


def test_lora_weights_in_bf16_are_two_bytes_a_parameter():
    model = catalog.find("embedded")
    assert catalog.memory_mb(model, "lora", 128, 1)["weights"] == pytest.approx(model.params * 2 / 2**20)


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="'dora'"):
        catalog.memory_mb(catalog.MODELS[0], "dora", 512, 1)


def test_logits_coefficient_is_the_training_plans():
    assert catalog.LOGIT_BYTES == plan.LOGIT_BYTES


def test_choices_label_each_model_with_its_estimates_and_note():
    pairs = catalog.choices(max_length=1024, batch_size=2)
    assert [value for _, value in pairs] == [m.hub_id for m in catalog.MODELS]
    for (text, _), model in zip(pairs, catalog.MODELS, strict=True):
        assert model.name in text and "LoRA ~" in text and "QLoRA ~" in text and model.licence in text
        assert "length 1024, batch 2" in text
    assert catalog.choices(2048, 8)[0][0] != catalog.choices(256, 1)[0][0]


def test_find_accepts_ids_labels_and_the_embedded_alias_and_nothing_else():
    assert catalog.find("") is catalog.find("embedded") is catalog.MODELS[0]
    assert catalog.find("Qwen2.5-1.5B-Instruct").hub_id == "Qwen/Qwen2.5-1.5B-Instruct"
    assert catalog.find("/models/my-own-model") is None


def test_arena_choices_are_base_contestants_with_an_answering_estimate():
    pairs = catalog.arena_choices(batch_size=8)
    assert [v for _, v in pairs][0] == "base" and all(v.startswith("base:") for _, v in pairs[1:])
    assert {v.removeprefix("base:") for _, v in pairs[1:]} == {m.hub_id for m in catalog.MODELS[1:]}
    small, big = catalog.find("Qwen/Qwen2.5-0.5B-Instruct"), catalog.find("microsoft/Phi-3-mini-4k-instruct")
    assert catalog.answer_mb(big) > catalog.answer_mb(small) > small.params * 2 / 2**20  # weights and more
    assert catalog.answer_mb(small, batch_size=16) > catalog.answer_mb(small, batch_size=1)  # the cache grows
    assert all(re.search(r"answering ~\d+\.\d GB \(batch 8\)", label) for label, _ in pairs)
