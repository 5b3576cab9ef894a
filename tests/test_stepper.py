"""Continuous batching on the embedded model (lab.generation.stepper): rows that join between decoding steps, with
their own settings, get exactly the greedy answers they get alone; finished rows leave the key/value cache; the
app's batcher uses the stepper where the model allows it and falls back to whole batches where it does not."""

from __future__ import annotations

import pytest

from lab.config import GenConfig
from lab.generation import IDK, plain_messages

pytestmark = pytest.mark.integration

PASSAGE = "The Harbour Amber ferry leaves pier 3 at 7:15 every weekday and is captained by Marta Olsen. " * 4


@pytest.fixture(scope="module")
def model(cache):
    return cache.generator("embedded"), cache.tokenizer("embedded")


def _rows(model):
    from lab.generation.engine import Row

    gen, tok = model
    short, long = GenConfig(max_new_tokens=6), GenConfig(max_new_tokens=20, idk_above=0.5)
    always = GenConfig(max_new_tokens=20, idk_above=1e-9)  # any probability of abstaining is over it
    return [
        Row(gen, tok, plain_messages("What is the capital of France?"), long),
        Row(gen, tok, plain_messages(PASSAGE + "Who captains the Harbour Amber?"), long, decide_idk=True),
        Row(gen, tok, plain_messages("Name three colours."), short),
        Row(gen, tok, plain_messages("Write one sentence about rain."), long),
        Row(gen, tok, plain_messages("What is 2 + 2?"), always, decide_idk=True),
    ]


def _run(stepper, rows, join_at: list[int]) -> dict:
    """Join row i just before step join_at[i]; step until every row ended. Returns {row index: result}."""
    out: dict = {}
    step = 0
    while len(out) < len(rows):
        out.update(stepper.add([(i, r) for i, r in enumerate(rows) if join_at[i] == step]))
        out.update(stepper.step())
        step += 1
        assert step < 200, "rows never ended"
    return out


def test_rows_joining_between_steps_get_the_answers_they_get_alone(model):
    from lab.generation.engine import generate_rows
    from lab.generation.stepper import Stepper

    rows = _rows(model)
    alone = [generate_rows([r])[0] for r in rows]
    out = _run(Stepper(model[0].shared), rows, join_at=[0, 0, 2, 5, 9])
    assert [out[i] for i in range(len(rows))] == alone
    assert alone[4][0] == IDK + "." and alone[2][2] == 6  # the forced abstention; the short limit
    assert alone[1][1] > 3 * alone[0][1]  # rows of very different prompt length shared the steps


def test_finished_rows_leave_the_cache_and_its_unused_columns_go(model):
    from lab.generation.stepper import Stepper

    rows = _rows(model)
    stepper = Stepper(model[0].shared)
    stepper.add([(i, r) for i, r in enumerate(rows[:3])])  # the passage prompt is by far the longest
    ended: dict = {}
    while 2 not in ended:
        ended.update(stepper.step())
    keys = stepper.cache.layers[0].keys
    assert len(stepper) == keys.shape[0] == stepper.mask.shape[0] == 3 - len(ended)
    while 1 not in ended:  # once the passage row ends, the padding it forced on the others goes
        ended.update(stepper.step())
    if len(stepper):
        assert bool(stepper.mask[:, 0].any()) and stepper.cache.layers[0].keys.shape[-2] == stepper.mask.shape[1]
        assert stepper.mask.shape[1] < rows[1].gen.max_new_tokens + 60


def test_a_sampled_row_decodes_beside_greedy_ones(model):
    from lab.generation.engine import Row, generate_rows
    from lab.generation.stepper import Stepper

    gen, tok = model
    greedy = Row(gen, tok, plain_messages("What is the capital of France?"), GenConfig(max_new_tokens=12))
    sampled = Row(gen, tok, plain_messages("Tell me a story."), GenConfig(max_new_tokens=12, temperature=0.8))
    out = _run(Stepper(gen.shared), [greedy, sampled], join_at=[0, 1])
    assert out[0] == generate_rows([greedy])[0]
    assert out[1][0] and 0 < out[1][2] <= 12


def test_the_app_batcher_steps_where_the_model_allows_it(model, monkeypatch):
    from lab.generation.batcher import Batcher, StepBatcher
    from lab.generation.engine import batcher_for
    from lab.generation.stepper import supports

    gen, _ = model
    monkeypatch.delenv("LAB_BATCH_MODE", raising=False)
    assert supports(gen.shared) and isinstance(batcher_for(gen), StepBatcher)
    monkeypatch.setenv("LAB_BATCH_MODE", "whole")
    whole = batcher_for(gen)
    assert type(whole) is Batcher


def test_models_the_loop_cannot_match_keep_whole_batches():
    from transformers import MistralConfig, MistralForCausalLM

    from lab.generation.stepper import supports
    from tests.fakes import tiny_llama

    plain = tiny_llama()
    assert supports(plain)
    plain.generation_config.repetition_penalty = 1.2  # a processor the loop does not apply
    assert not supports(plain)
    config = MistralConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=16)  # fmt: skip
    assert not supports(MistralForCausalLM(config))  # a sliding-window cache

    class OlderForward(type(tiny_llama())):  # a remote-code model whose forward predates `logits_to_keep`
        def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None):
            return super().forward(input_ids, attention_mask, position_ids, past_key_values)

    assert not supports(OlderForward(tiny_llama().config))
