"""Message content as a list of typed parts (text / reasoning / thinking / tool_call), per-message `loss_weight`,
and unsupported part types as line errors; reasoning kept in the template's reasoning field or dropped with one
counted warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.config import DataConfig
from lab.data import load_split, save_dataset, validate_bytes, validate_file

PARTS = Path(__file__).parent / "fixtures" / "formats" / "parts_messages.jsonl"
THINKING_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message.role + '\\n' }}"
    "{% if message.reasoning_content %}{{ '<think>\\n' + message.reasoning_content + '\\n</think>\\n' }}{% endif %}"
    "{{ message.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_parts_file_validates_with_exact_counts_and_line_errors():
    report = validate_file(PARTS)
    assert report.format == "chat" and report.records == 7 and report.lines == [1, 2, 3, 7]
    assert [(e.line, e.kind) for e in report.errors] == [
        (4, "unsupported_part"),
        (5, "unsupported_part"),
        (6, "bad_tool_calls"),
    ]
    assert "'image'" in report.errors[0].message and "'audio'" in report.errors[1].message
    assert "'value=2'" in report.errors[2].message and "convert_units" in report.errors[2].message


def test_text_parts_join_and_loss_weight_maps_to_weight_on_assistant_turns_only():
    first, second, tools, _thinking = validate_file(PARTS).examples
    assert first["messages"] == [
        {"role": "user", "content": "How many metres in a mile?"},  # loss_weight 0.0 on a user turn: dropped
        {"role": "assistant", "content": "About 1609 metres.", "weight": 1},
    ]
    assert [m.get("weight") for m in second["messages"]] == [None, None, 0, None, 1]
    assert second["messages"][0] == {"role": "system", "content": "Answer in one line."}  # OpenAI's "text" key
    call = tools["messages"][1]
    assert call["content"] == "" and call["tool_calls"] == [
        {
            "type": "function",
            "function": {"name": "convert_units", "arguments": {"value": 3, "from": "ft", "to": "cm"}},
        }
    ]
    assert tools["tools"][0]["function"]["name"] == "convert_units"  # a JSON string of tools, kept as a list


def test_loss_weight_other_than_0_or_1_on_an_assistant_turn_is_a_line_error():
    bad = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "loss_weight": 0.5}]}
    report = validate_bytes(json.dumps(bad).encode(), "x.jsonl")
    assert [(e.line, e.kind) for e in report.errors] == [(1, "bad_weight")] and "0.5" in report.errors[0].message


def test_reasoning_parts_are_dropped_with_one_counted_warning_when_no_template_takes_them():
    report = validate_file(PARTS)
    dropped = [w for w in report.warnings if w.kind == "reasoning_dropped"]
    assert len(dropped) == 1 and dropped[0].message.startswith("2 example(s)") and "lines 1, 7" in dropped[0].message
    assert not any("reasoning_content" in m for e in report.examples for m in e["messages"])


def test_saved_parts_dataset_keeps_counts_weights_and_calls(ws, tmp_path):
    lines = PARTS.read_text(encoding="utf-8").splitlines()
    clean = tmp_path / "parts_clean.jsonl"
    clean.write_text("\n".join(lines[i] for i in (0, 1, 2, 6)) + "\n", encoding="utf-8")
    meta = save_dataset(ws, "parts", clean, DataConfig(val_fraction=0.0))
    assert meta["counts"] == {"train": 4, "val": 0} and meta["records"] == 4
    saved = load_split(ws, "parts")
    with_call = next(e for e in saved if "tools" in e)
    assert [m["role"] for m in with_call["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert with_call["messages"][1]["tool_calls"][0]["function"]["name"] == "convert_units"


@pytest.mark.integration
def test_reasoning_goes_to_the_templates_reasoning_field_and_is_trained(embedded_path):
    from transformers import AutoTokenizer

    from lab.training.prep import encode
    from tests.test_templates import _trained_runs

    tok = AutoTokenizer.from_pretrained(embedded_path)
    tok.chat_template = THINKING_TEMPLATE
    report = validate_file(PARTS, tokenizer=tok)
    assert not any(w.kind == "reasoning_dropped" for w in report.warnings)
    first = report.examples[0]
    assert first["messages"][1]["reasoning_content"] == "A mile is 1760 yards of 0.9144 m."
    runs = _trained_runs(tok, encode(tok, first["messages"], max_length=256))
    assert runs == ["<think>\nA mile is 1760 yards of 0.9144 m.\n</think>\nAbout 1609 metres.<|im_end|>\n"]
