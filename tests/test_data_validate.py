"""The validator: every error kind with its physical line, each accepted format, file-level problems, warnings,
statistics with a fake tokenizer, and a property test that no byte string makes it crash."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.config import DataConfig
from lab.data import validate_bytes
from lab.data.stats import epoch_estimate, histogram_figure

SYS = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "What is the torque?"}
ASSISTANT = {"role": "assistant", "content": "1,180 Nm."}
GOOD = {"messages": [SYS, USER, ASSISTANT]}


def jsonl(*records) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode()


def kinds(report) -> list[tuple[int | None, str]]:
    return [(e.line, e.kind) for e in report.errors]


class FakeTokenizer:
    """Whitespace tokens; a ChatML-like template. Enough to test the statistics arithmetic."""

    all_special_ids: list[int] = []

    def apply_chat_template(self, messages, tools=None, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<s> {m['role']} {m['content']} </s> " for m in messages)
        return text + ("<s> assistant " if add_generation_prompt else "")

    def __call__(self, texts, add_special_tokens=False, return_offsets_mapping=False):
        if isinstance(texts, str):
            return {"input_ids": texts.split()}
        return {"input_ids": [t.split() for t in texts]}


@pytest.mark.parametrize(
    "line, kind",
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "not_an_object"),
        ('"just a string"', "not_an_object"),
        ({"prompt": "x"}, "missing_messages"),
        ({"messages": "hello"}, "missing_messages"),
        ({"messages": []}, "empty_messages"),
        ({"messages": [{"content": "x"}, ASSISTANT]}, "message_missing_role"),
        ({"messages": [{"role": "user"}, ASSISTANT]}, "message_missing_content"),
        ({"messages": [{**USER, "mood": "happy"}, ASSISTANT]}, "unknown_message_key"),
        ({"messages": [{"role": "narrator", "content": "x"}, ASSISTANT]}, "unknown_role"),
        ({"messages": [{"role": "user", "content": 42}, ASSISTANT]}, "bad_content"),
        ({"messages": [{"role": "user", "content": "   "}, ASSISTANT]}, "bad_content"),
        ({"messages": [USER, {"role": "assistant", "content": {"text": "x"}}]}, "bad_content"),
        ({"messages": [SYS, USER]}, "no_assistant_message"),
        ({"messages": [USER, {**ASSISTANT, "weight": 2}]}, "bad_weight"),
        ({"messages": [USER, {**ASSISTANT, "weight": "1"}]}, "bad_weight"),
        ({"messages": [{**USER, "weight": 1}, ASSISTANT]}, "bad_weight"),
        ({"messages": [USER, {"role": "assistant", "tool_calls": "call it"}]}, "bad_tool_calls"),
    ],
)
def test_each_error_kind_is_reported_on_its_physical_line(line, kind):
    # a good line, a blank line, then the bad one: the bad one is physical line 3
    report = validate_bytes(jsonl(GOOD, "", line, GOOD), "data.jsonl")
    assert not report.valid
    assert (3, kind) in kinds(report)
    assert all(e.line == 3 for e in report.errors)
    assert len(report.examples) == 2  # the good lines around it were still checked and kept


def test_error_messages_name_the_bad_value():
    report = validate_bytes(jsonl({"messages": [{"role": "narrator", "content": "x"}, ASSISTANT]}), "d.jsonl")
    assert "'narrator'" in report.errors[0].message and "system, user, assistant, tool" in report.errors[0].message
    report = validate_bytes(jsonl({"messages": [USER, {**ASSISTANT, "weight": 7}]}), "d.jsonl")
    assert "weight 7" in report.errors[0].message


def test_validation_goes_on_after_errors_and_reports_every_bad_line():
    lines = [GOOD if i % 3 else "oops" for i in range(30)]
    report = validate_bytes(jsonl(*lines), "d.jsonl")
    assert [e.line for e in report.errors] == list(range(1, 31, 3))
    assert len(report.examples) == 20


def test_empty_file_and_blank_only_file():
    for raw in (b"", b"\n\n  \r\n", b"\xef\xbb\xbf"):
        report = validate_bytes(raw, "d.jsonl")
        assert kinds(report) == [(None, "empty_file")]


def test_not_jsonl_is_reported_once():
    report = validate_bytes(b"hello there\nthis is prose\nnot json at all\n", "notes.jsonl")
    assert [e.kind for e in report.errors] == ["not_jsonl"]
    assert "line 1" in report.errors[0].message


def test_bom_crlf_and_blank_lines_are_accepted_silently():
    raw = b"\xef\xbb\xbf" + jsonl(GOOD, "", GOOD).replace(b"\n", b"\r\n") + b"\r\n\r\n"
    report = validate_bytes(raw, "d.jsonl")
    assert report.valid and report.errors == [] and len(report.examples) == 2
    assert report.lines == [1, 3]


def test_binary_garbage_non_utf8_and_oversize_get_clear_file_errors():
    assert kinds(validate_bytes(bytes(range(256)) * 20, "d.jsonl")) == [(None, "binary_file")]
    latin = "Drehmoment für Schrauben".encode("latin-1")
    report = validate_bytes(jsonl(GOOD).replace(b"Be brief.", latin), "d.jsonl")
    assert [e.kind for e in report.errors] == ["not_utf8"] and "0xfc" in report.errors[0].message
    report = validate_bytes(jsonl(GOOD) * 100, "d.jsonl", DataConfig(max_upload_mb=0.001))
    assert [e.kind for e in report.errors] == ["too_large"] and "0.001 MB" in report.errors[0].message


def test_chat_keeps_weight_tool_calls_and_tool_role():
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"code": "E-17"}'}}
    record = {
        "messages": [
            SYS,
            USER,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "E-17: pitch fault"},
            {"role": "assistant", "content": "A pitch fault.", "weight": 1},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "You're welcome.", "weight": 0},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
    }
    report = validate_bytes(jsonl(record), "d.jsonl")
    assert report.valid, report.errors
    out = report.examples[0]
    assert out["messages"][2]["tool_calls"] == [call] and out["messages"][2]["content"] == ""
    assert out["messages"][3] == {"role": "tool", "content": "E-17: pitch fault", "tool_call_id": "c1"}
    assert [m.get("weight") for m in out["messages"]][4:] == [1, None, 0]
    assert out["tools"] == record["tools"]


def test_content_as_text_parts_is_normalised_to_a_string():
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ASSISTANT,
        ]
    }
    report = validate_bytes(jsonl(record), "d.jsonl")
    assert report.examples[0]["messages"][0]["content"] == "ab"


def test_pretty_printed_json_array_in_a_jsonl_file_is_read_as_an_array():
    text = json.dumps([GOOD, GOOD], indent=2)
    report = validate_bytes(text.encode(), "x.jsonl")
    starts = [i + 1 for i, line in enumerate(text.split("\n")) if line == "  {"]
    assert report.valid and len(report.examples) == 2 and report.lines == starts == [2, 18]
    one_line = validate_bytes(b'[{"messages": []}]\n' + jsonl(GOOD), "x.jsonl")  # JSONL whose line 1 is an array
    assert [(e.line, e.kind) for e in one_line.errors] == [(1, "not_an_object")] and len(one_line.examples) == 1


def test_alpaca_json_array_and_jsonl():
    rows = [
        {"instruction": "Name the code", "input": "E-17", "output": "Pitch fault"},
        {"instruction": "Hi", "output": "Hello"},
    ]
    for raw, name in ((json.dumps(rows, indent=2).encode(), "a.json"), (jsonl(*rows), "a.jsonl")):
        report = validate_bytes(raw, name)
        assert report.format == "alpaca" and report.valid
        assert report.examples[0]["messages"] == [
            {"role": "user", "content": "Name the code\n\nE-17"},
            {"role": "assistant", "content": "Pitch fault"},
        ]


def test_alpaca_json_array_errors_carry_the_line_where_the_element_starts():
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "c"}, {"instruction": "d", "output": 5.5}]
    report = validate_bytes(json.dumps(rows, indent=2).encode(), "a.json")
    text = json.dumps(rows, indent=2).split("\n")
    starts = [i + 1 for i, t in enumerate(text) if t.strip() == "{"]
    assert kinds(report) == [(starts[1], "missing_field")]
    assert report.examples[1]["messages"][1]["content"] == "5.5"


def test_sharegpt_with_system_and_role_mapping():
    record = {
        "system": "Be brief.",
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
    }
    bad = {"conversations": [{"from": "narrator", "value": "x"}, {"from": "gpt"}]}
    report = validate_bytes(jsonl(record, bad), "s.jsonl")
    assert report.format == "sharegpt"
    assert report.examples[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    assert kinds(report) == [(2, "unknown_role"), (2, "message_missing_content")]


def test_csv_with_mapped_columns_and_line_numbers():
    raw = b'Frage,Antwort\n"What, exactly?",Yes\n\n"multi\nline",ok\nonly question,\n'
    report = validate_bytes(raw, "qa.csv", DataConfig(question_column="Frage", answer_column="Antwort"))
    assert report.format == "csv"
    assert [e.kind for e in report.errors] == ["bad_content"] and report.errors[0].line == 6
    assert "Antwort" in report.errors[0].message
    assert report.examples[0]["messages"][0]["content"] == "What, exactly?"
    assert report.lines == [2, 4]  # the row with a quoted two-line cell starts on line 4


def test_csv_detects_question_answer_columns_and_tsv():
    report = validate_bytes(b"Question;Answer;system\nq1;a1;s\n", "x.csv")
    assert report.valid and report.examples[0]["messages"][0] == {"role": "system", "content": "s"}
    assert validate_bytes(b"prompt\tcompletion\nq\ta\n", "x.tsv").valid


def test_csv_without_the_needed_columns_says_which_columns_exist():
    report = validate_bytes(b"foo,bar\n1,2\n", "x.csv")
    assert [e.kind for e in report.errors] == ["missing_columns"]
    assert "'foo', 'bar'" in report.errors[0].message and "question_column" in report.errors[0].message


def test_parquet_with_question_answer_columns():
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame({"question": ["q1", "q2"], "answer": ["a1", ""]}).to_parquet(buf)
    report = validate_bytes(buf.getvalue(), "x.parquet")
    assert report.format == "csv" and len(report.examples) == 1
    assert kinds(report) == [(2, "bad_content")]
    assert [e.kind for e in validate_bytes(b"PAR1garbage", "x.parquet").errors] == ["invalid_parquet"]


def test_explicit_format_overrides_detection():
    report = validate_bytes(jsonl({"instruction": "a", "output": "b"}), "x.jsonl", DataConfig(format="chat"))
    assert [e.kind for e in report.errors] == ["missing_messages"]


def test_warnings_are_aggregated_with_counts_and_first_lines():
    no_system = {"messages": [USER, ASSISTANT]}
    untrained = {"messages": [USER, {**ASSISTANT, "weight": 0}]}
    report = validate_bytes(jsonl(no_system, GOOD, no_system, untrained, GOOD), "d.jsonl")
    warned = {w.kind: w for w in report.warnings}
    assert warned["no_system_message"].line == 1 and "3 example(s)" in warned["no_system_message"].message
    assert "(lines 3, 5)" in warned["duplicates"].message and report.stats["duplicates"] == 2
    assert warned["nothing_trained"].line == 4
    assert "few_examples" in warned


def test_statistics_and_too_long_warning_use_the_tokenizer():
    long = {"messages": [USER, {"role": "assistant", "content": "word " * 50}]}
    report = validate_bytes(jsonl(GOOD, long), "d.jsonl", DataConfig(max_length=30), FakeTokenizer())
    s = report.stats
    # GOOD: "<s> system Be brief. </s> <s> user What is the torque? </s> <s> assistant 1,180 Nm. </s>" = 17 tokens
    assert s["tokens"]["min"] == 17 and s["assistant_tokens"]["min"] == 2 and s["assistant_tokens"]["max"] == 50
    assert s["messages"]["median"] == 2.5 and s["over_max_length"] == 1
    assert [w.kind for w in report.warnings if w.kind == "too_long"] == ["too_long"]
    assert s["estimate"]["epochs"] == 25 and s["estimate"]["tokens_per_epoch"] == 17 + 30


def test_epoch_estimate_follows_the_checklist_with_ceil():
    assert epoch_estimate([10] * 30, 1024)["epochs"] == 4  # 30 x 4 >= 100 (floor division gave 3)
    assert epoch_estimate([10] * 1000, 1024)["epochs"] == 3
    assert epoch_estimate([10] * 20000, 1024)["epochs"] == 1
    assert epoch_estimate([10] * 2, 1024)["epochs"] == 25
    assert epoch_estimate([5, 2000], 1024) == {"epochs": 25, "tokens_per_epoch": 1029, "total_tokens": 25725}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.binary(max_size=400), name=st.sampled_from(["x.jsonl", "x.json", "x.csv", "x.tsv", "x.parquet", "x.txt"])
)
def test_validator_never_crashes_on_arbitrary_bytes(raw, name):
    report = validate_bytes(raw, name, tokenizer=FakeTokenizer())
    assert report.valid == (not report.errors and bool(report.examples))
    json.dumps(report.to_dict())


@settings(max_examples=100, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["messages", "role", "content", "weight", "tool_calls", "x"]), inner, max_size=4
            )
        ),
        max_leaves=12,
    )
)
def test_validator_never_crashes_on_arbitrary_json(value):
    report = validate_bytes(json.dumps(value).encode(), "x.jsonl", tokenizer=FakeTokenizer())
    assert report.records == 1
    assert report.valid or report.errors


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from('{}[]":,\n\r \ufeffabc01-messagesrolecontent\u00e9'), max_size=300),
    name=st.sampled_from(["x.jsonl", "x.json", "x.csv"]),
)
def test_validator_never_crashes_on_json_like_text(text, name):
    report = validate_bytes(text.encode(), name, tokenizer=FakeTokenizer())
    assert all(e.line is None or e.line >= 1 for e in report.errors)
    json.dumps(report.to_dict())


def test_histogram_figure_has_one_panel_per_series_and_marks_max_length():
    fig = histogram_figure({"tokens": [5, 50, 500], "assistant_tokens": [1, 2, 3], "messages": [2, 2, 4]}, 100)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["tokens per example", "assistant tokens per example", "messages per example"]
    assert fig.axes[0].get_legend() is not None and fig.axes[1].get_legend() is None
