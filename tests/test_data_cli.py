"""`python -m lab data ...`: exit codes, the --json schema, import / corpus / list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli import main

REPO = Path(__file__).resolve().parent.parent
GOOD = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(12)
    ]
    good.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD) + "\n{oops\n" + json.dumps({"messages": []}) + "\n", encoding="utf-8")
    return good, bad


def run_json(capsys, *argv) -> tuple[int, dict]:
    code = main(["data", "validate", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_validate_json_schema_and_exit_codes(ws, files, capsys):
    good, bad = files
    code, out = run_json(capsys, str(bad), "--no-tokens")
    assert code == 1 and out["valid"] is False and out["records"] == 3
    assert out["errors"] == [
        {"line": 2, "kind": "invalid_json", "message": out["errors"][0]["message"]},
        {"line": 3, "kind": "empty_messages", "message": "'messages' is an empty list"},
    ]
    assert isinstance(out["warnings"], list) and isinstance(out["stats"], dict)
    code, out = run_json(capsys, str(good), "--no-tokens")
    assert code == 0 and out["valid"] is True and out["stats"]["examples"] == 12


@pytest.mark.integration
def test_validate_counts_tokens_with_the_embedded_tokenizer(ws, files, capsys, embedded_path):
    code, out = run_json(capsys, str(files[0]), "--max-length", "8")
    assert code == 0 and out["stats"]["tokens"]["min"] > out["stats"]["assistant_tokens"]["min"] >= 1
    assert out["stats"]["over_max_length"] == 12
    assert [w["kind"] for w in out["warnings"] if w["kind"] == "too_long"] == ["too_long"]


def test_validate_text_output_and_format_flag(ws, files, capsys):
    assert main(["data", "validate", str(files[1]), "--no-tokens"]) == 1
    text = capsys.readouterr().out
    assert "NOT VALID" in text and "line 2: [invalid_json]" in text
    assert main(["data", "validate", str(files[0]), "--no-tokens", "--format", "alpaca"]) == 1
    assert "missing_field" in capsys.readouterr().out


def test_import_list_and_corpus(ws, files, capsys, tmp_path, embedded_path):
    good, bad = files
    assert main(["data", "import", str(good), "--name", "mine", "--val-fraction", "0.25", "--seed", "1"]) == 0
    assert "9 train / 3 val" in capsys.readouterr().out
    assert main(["data", "import", str(bad), "--name", "broken"]) == 1
    assert "line 2" in capsys.readouterr().err and ws.list("datasets") == ["mine"]
    assert main(["data", "import", str(good), "--name", "mine"]) == 2  # exists: a one-line error
    assert "already exists" in capsys.readouterr().err
    doc = tmp_path / "a.md"
    doc.write_text("# A\ntext", encoding="utf-8")
    empty = tmp_path / "b.txt"
    empty.write_text("", encoding="utf-8")
    assert main(["data", "corpus", str(doc), str(empty), "--name", "docs"]) == 0
    captured = capsys.readouterr()
    assert "1 documents" in captured.out and "b.txt" in captured.err
    assert main(["data", "corpus", str(empty), "--name", "none"]) == 1
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert "mine" in listing and "docs" in listing and "none" not in listing


def test_module_entry_point_exit_code(tmp_path, files):
    env = {**os.environ, "LAB_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "lab", "data", "validate", str(files[1]), "--no-tokens", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["errors"][0]["line"] == 2


def test_validate_names_the_system_prompt_the_chat_template_adds(ws, files, capsys, embedded_path):
    """The embedded model's template adds its own system turn to examples without one: the report says so, in
    text and JSON; an example file that brings its own system message gets no note."""
    from lab.cache import ModelCache
    from lab.data.stats import template_default_system

    added = template_default_system(GOOD, ModelCache(ws.model_cache).tokenizer("embedded"))
    assert added
    assert main(["data", "validate", str(files[0])]) == 0
    text = capsys.readouterr().out
    assert "chat template adds this system prompt" in text and repr(added[:40])[1:-1] in text
    code, out = run_json(capsys, str(files[0]))
    assert code == 0 and out["template_default_system"] == added
    own = ws.root / "own.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, *GOOD["messages"]]}] * 12
    own.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert main(["data", "validate", str(own)]) == 0
    assert "chat template adds" not in capsys.readouterr().out
