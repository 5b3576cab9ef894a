"""The chat-template preview and token statistics with the real embedded tokenizer."""

from __future__ import annotations

import pytest

from lab.config import DataConfig
from lab.data.stats import compute, preview_segments

pytestmark = pytest.mark.integration

EXAMPLE = {
    "messages": [
        {"role": "user", "content": "Which code is a pitch fault?"},
        {"role": "assistant", "content": "a", "weight": 0},
        {"role": "user", "content": "And the torque?"},
        {"role": "assistant", "content": "1,180 Nm for the hub bolts."},
    ]
}


def test_preview_marks_only_trained_assistant_tokens(cache):
    tokenizer = cache.tokenizer("embedded")
    segments = preview_segments(EXAMPLE, tokenizer)
    text = "".join(t for t, _ in segments)
    assert text == tokenizer.apply_chat_template(EXAMPLE["messages"], tokenize=False)
    labelled = [(t, label) for t, label in segments if label]
    # the single-letter answer "a" is found at its turn, not inside "<|im_start|>" or the system prompt
    assert labelled[0] == ("a" + tokenizer.eos_token, "not trained (weight 0)")
    assert labelled[1] == ("1,180 Nm for the hub bolts." + tokenizer.eos_token, "trained")
    assert len(labelled) == 2


def test_token_statistics_match_the_tokenizer(cache):
    tokenizer = cache.tokenizer("embedded")
    summary, series = compute([EXAMPLE], DataConfig(), tokenizer)
    rendered = tokenizer.apply_chat_template(EXAMPLE["messages"], tokenize=False)
    assert series["tokens"] == [len(tokenizer(rendered, add_special_tokens=False)["input_ids"])]
    assert series["assistant_tokens"] == [
        len(tokenizer("1,180 Nm for the hub bolts.", add_special_tokens=False)["input_ids"])
    ]
    assert summary["estimate"]["epochs"] == 25


def test_batched_rendering_equals_one_by_one(cache):
    from lab.data.stats import render, render_all

    tokenizer = cache.tokenizer("embedded")
    tools = {**EXAMPLE, "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]}
    examples = [
        EXAMPLE,
        tools,
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
    ]
    assert render_all(examples, tokenizer) == [render(e, tokenizer) for e in examples]


def test_default_system_prompt_of_the_chat_template_is_found(cache):
    from lab.data.stats import template_default_system

    tokenizer = cache.tokenizer("embedded")
    plain = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    found = template_default_system(plain, tokenizer)
    rendered = tokenizer.apply_chat_template(plain["messages"], tokenize=False)
    assert found and found in rendered and "Hi?" not in found  # SmolLM2's template adds its own system turn
    own = {"messages": [{"role": "system", "content": "Be brief."}, *plain["messages"]]}
    assert template_default_system(own, tokenizer) == ""


def test_no_default_system_prompt_when_the_template_adds_none():
    from lab.data.stats import template_default_system

    class Plain:  # a template that renders only the messages it is given
        def apply_chat_template(self, messages, tools=None, tokenize=False):
            return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)

    example = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    assert template_default_system(example, Plain()) == ""


def test_the_examples_default_system_prompt_is_probed_on_one_without_its_own():
    from lab.data.stats import examples_default_system

    class Defaulting:  # a template that opens with its own system turn when the messages bring none
        def apply_chat_template(self, messages, tools=None, tokenize=False):
            if messages[0]["role"] != "system":
                messages = [{"role": "system", "content": "You are helpful."}, *messages]
            return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)

    chat = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    own = {"messages": [{"role": "system", "content": "Be brief."}, *chat]}
    assert examples_default_system([own, {"messages": chat}], Defaulting()) == "You are helpful."
    assert examples_default_system([own, own], Defaulting()) == ""
    assert examples_default_system([], Defaulting()) == ""
