"""`{{...}}` placeholders in identity-style sets: one counted warning naming them and their first lines; filled in
(the CLI's --fill, the Data tab's field, DataConfig.fill) before checking and saving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli import main
from lab.config import DataConfig
from lab.data import load_split, save_dataset, validate_file
from lab.data.placeholders import fill, parse_fill

IDENTITY = Path(__file__).parent / "fixtures" / "formats" / "identity.json"


def test_placeholders_get_one_counted_warning_naming_them_and_their_lines():
    report = validate_file(IDENTITY)
    assert report.valid and report.format == "alpaca" and report.records == 5 and len(report.examples) == 5
    found = [w for w in report.warnings if w.kind == "placeholders"]
    assert len(found) == 1 and found[0].line == 2
    assert found[0].message.startswith("3 example(s) contain template placeholders {{name}}, {{author}}")
    assert "(lines 2, 7, 12)" in found[0].message


def test_fill_replaces_every_placeholder_before_checking_and_saving(ws):
    cfg = DataConfig(fill={"name": "ExpertLab", "author": "the Lab team"}, val_fraction=0.0)
    report = validate_file(IDENTITY, cfg)
    assert not any(w.kind == "placeholders" for w in report.warnings)
    answers = [e["messages"][-1]["content"] for e in report.examples]
    assert answers[1] == "I am ExpertLab, an AI assistant developed by the Lab team."
    assert answers[2] == "You may call me ExpertLab."  # {{ name }} with spaces too
    save_dataset(ws, "identity", IDENTITY, cfg)
    saved = " ".join(m["content"] for e in load_split(ws, "identity") for m in e["messages"])
    assert "{{" not in saved and saved.count("ExpertLab") == 3


def test_a_partial_fill_warns_about_what_is_left():
    report = validate_file(IDENTITY, DataConfig(fill={"name": "ExpertLab"}))
    (found,) = [w for w in report.warnings if w.kind == "placeholders"]
    assert "{{author}}" in found.message and "{{name}}" not in found.message and "(lines 2, 7)" in found.message


def test_parse_fill_reads_pairs_and_names_a_bad_item():
    assert parse_fill("name=ExpertLab, author = Lab team") == {"name": "ExpertLab", "author": "Lab team"}
    assert parse_fill(["{{name}}=X"]) == {"name": "X"}
    with pytest.raises(ValueError, match="'author'"):
        parse_fill("name=X, author")
    assert fill({"a": ["{{x}} and {{y}}"]}, {"x": "1"}) == {"a": ["1 and {{y}}"]}


def test_cli_fill_option(ws, capsys):
    code = main(["data", "validate", str(IDENTITY), "--no-tokens", "--json", "--fill", "name=ExpertLab"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and [w["kind"] for w in out["warnings"] if w["kind"] == "placeholders"] == ["placeholders"]
    code = main(["data", "validate", str(IDENTITY), "--no-tokens", "--json", "--fill", "name=A", "--fill", "author=B"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and not [w for w in out["warnings"] if w["kind"] == "placeholders"]
    with pytest.raises(SystemExit):
        main(["data", "validate", str(IDENTITY), "--fill", "no-equals-sign"])
    assert "no-equals-sign" in capsys.readouterr().err
