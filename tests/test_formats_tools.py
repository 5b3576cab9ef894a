"""ShareGPT with tools (glaive style: `function_call` / `observation` turns, a `tools` list or JSON string): exact
record counts and line errors, the saved record (tool_calls, then the tool message), and the rendering through a
tools-aware chat template with the calls trained and the tool results not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.config import DataConfig
from lab.data import load_split, save_dataset, validate_file
from lab.training.prep import IGNORE, encode, encode_all
from tests.test_templates import _tokenizer, _trained_runs

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
GLAIVE = FIXTURES / "glaive_tools.json"


def test_glaive_file_validates_with_exact_counts_and_line_errors():
    report = validate_file(GLAIVE)
    assert report.format == "sharegpt" and report.records == 6
    assert report.lines == [2, 24, 83]
    assert [(e.line, e.kind) for e in report.errors] == [
        (108, "bad_tool_calls"),
        (129, "bad_tool_calls"),
        (150, "bad_tools"),
    ]
    messages = [e.message for e in report.errors]
    assert "'{city: Oslo}'" in messages[0] and "get_weather" in messages[0] and "not JSON" in messages[0]
    assert "'get_weather(Quito)'" in messages[1] and "function_call" in messages[1]
    assert "'tools'" in messages[2]


def test_function_call_and_observation_become_tool_calls_and_tool_messages():
    report = validate_file(GLAIVE)
    first, plain, parallel = report.examples
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = first["messages"][2]
    assert call["content"] == "" and call["tool_calls"] == [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "C"}}}
    ]
    assert first["messages"][3] == {
        "role": "tool",
        "content": '{"temperature": 19, "sky": "clear"}',
        "name": "get_weather",
    }
    assert [t["name"] for t in first["tools"]] == ["get_weather"]  # a JSON string of tools, kept as a list
    assert [t["name"] for t in plain["tools"]] == ["get_weather", "convert_currency"]  # a list, kept
    calls = parallel["messages"][1]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == [
        {"amount": 10, "from": "EUR", "to": "USD"},
        {"amount": 5, "from": "GBP", "to": "JPY"},  # arguments given as a JSON string are parsed too
    ]
    assert [m["role"] for m in parallel["messages"]] == ["user", "assistant", "tool", "tool", "assistant"]


def _clean_copy(tmp_path) -> Path:
    """The fixture without its three bad conversations: a file that saves."""
    records = json.loads(GLAIVE.read_text(encoding="utf-8"))[:3]
    path = tmp_path / "glaive_clean.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


def test_saved_record_keeps_each_call_then_its_tool_message(ws, tmp_path):
    meta = save_dataset(ws, "glaive", _clean_copy(tmp_path), DataConfig(val_fraction=0.0))
    assert meta["counts"] == {"train": 3, "val": 0} and meta["format"] == "sharegpt" and meta["records"] == 3
    saved = next(e for e in load_split(ws, "glaive") if e["messages"][0]["role"] == "system")
    assert [m["role"] for m in saved["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    fn = saved["messages"][2]["tool_calls"][0]["function"]
    assert fn == {"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "C"}}
    assert saved["messages"][3]["role"] == "tool" and saved["messages"][3]["name"] == "get_weather"
    assert saved["tools"][0]["name"] == "get_weather"


@pytest.mark.integration
def test_tool_conversation_renders_through_a_tools_template_with_calls_trained(ws, tmp_path, embedded_path):
    """Qwen2.5's tools template: the tool schema is in the prompt, each call (and the answer) is trained, the
    tool result is rendered but not trained."""
    save_dataset(ws, "glaive", _clean_copy(tmp_path), DataConfig(val_fraction=0.0))
    example = next(e for e in load_split(ws, "glaive") if e["messages"][0]["role"] == "system")
    tok = _tokenizer(embedded_path, "qwen2.5")
    row = encode(tok, example["messages"], max_length=1024, tools=example["tools"])
    text = tok.decode(row["input_ids"], skip_special_tokens=False)
    assert '<tools>\n{"name": "get_weather", "description": "Current weather for a city"' in text
    call = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "C"}}\n</tool_call><|im_end|>\n'
    )
    assert _trained_runs(tok, row) == [call, "It is 19 °C and clear in Lisbon.<|im_end|>\n"]
    result = '<tool_response>\n{"temperature": 19, "sky": "clear"}\n</tool_response>'
    assert result in text
    trained = "".join(_trained_runs(tok, row))
    assert "temperature" not in trained and "<tool_response>" not in trained
    rows = encode_all(tok, load_split(ws, "glaive"), max_length=1024)  # training's path: every example's tools
    assert len(rows) == 3 and all(any(label != IGNORE for label in r["labels"]) for r in rows)


@pytest.mark.integration
def test_preview_marks_the_tool_call_turn_trained(embedded_path):
    from lab.data.stats import preview_segments

    example = validate_file(GLAIVE).examples[0]
    tok = _tokenizer(embedded_path, "qwen2.5")
    trained = "".join(text for text, label in preview_segments(example, tok) if label == "trained")
    assert '{"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "C"}}' in trained
    assert "It is 19 °C and clear in Lisbon." in trained and "temperature" not in trained


@pytest.mark.integration
def test_a_template_without_tool_support_gets_calls_and_tools_as_text(embedded_path):
    """The embedded model's template renders only role and content: the calls are written into the trained
    answer as <tool_call> JSON and the tools into the system message, with one counted warning."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_path)
    assert "tool_calls" not in tok.chat_template
    report = validate_file(GLAIVE, tokenizer=tok)
    (warning,) = [w for w in report.warnings if w.kind == "tools_as_text"]
    assert warning.message.startswith("3 example(s)") and "(lines 2, 24, 83)" in warning.message
    example = report.examples[0]
    row = encode(tok, example["messages"], max_length=1024, tools=example["tools"])
    text = tok.decode(row["input_ids"], skip_special_tokens=False)
    assert text.startswith('<|im_start|>system\nYou can call functions to answer.\n\n# Tools\n<tools>\n{"name": ')
    call = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "C"}}\n</tool_call><|im_end|>\n'
    )
    assert _trained_runs(tok, row) == [call, "It is 19 °C and clear in Lisbon.<|im_end|>\n"]
    answer = len(tok("It is 19 °C and clear in Lisbon.")["input_ids"])
    assert report.series["assistant_tokens"][0] > answer + 10  # the call is counted as trained text too
