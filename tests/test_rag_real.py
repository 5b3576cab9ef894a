"""The real embedded embedder on the sample domain: retrieval quality on data/eval.jsonl and the CLI twin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.rag import ensure_sample_index, index_info, open_index
from lab.rag.evaluate import load_questions, retrieval_metrics
from lab.workspace import Workspace

EVAL = Path(__file__).resolve().parent.parent / "data" / "eval.jsonl"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def home(tmp_path_factory, model_cache_dir) -> Path:
    """One workspace for the module with the sample index built once (default settings, real embedder)."""
    root = tmp_path_factory.mktemp("rag-real") / "home"
    ws = Workspace.open(root)
    (ws.root / "models").rmdir()
    (ws.root / "models").symlink_to(model_cache_dir, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def sample(home, cache):
    ws = Workspace.open(home)
    report = ensure_sample_index(ws, cache)
    assert report is not None and report.stats["documents"] >= 10
    return open_index(ws, "sample", cache)


def test_sample_domain_hit_rate_at_5(sample):
    questions = load_questions(EVAL)
    assert len(questions) >= 80 and all(q["answerable"] for q in questions)
    dense = retrieval_metrics(sample, questions, k=5, hybrid=False)
    assert dense["hit_rate"] >= 0.8, dense
    assert 0 < dense["mrr"] <= dense["hit_rate"]
    passages = sample.retrieve(questions[0]["question"], 5)
    assert len(passages) == 5 and all(a.score >= b.score for a, b in zip(passages, passages[1:], strict=False))


def test_cli_query_eval_list_delete(home, sample, monkeypatch, capsys, tmp_path):
    from lab.cli import main

    monkeypatch.setenv("LAB_HOME", str(home))
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Pumps\n\nThe coolant pump P-7 is replaced every 9 years.", encoding="utf-8")
    (folder / "b.txt").write_bytes(b"\xff\xfe not utf8")
    assert (
        main(["index", "build", "--docs", str(folder), "--name", "tiny", "--chunk-size", "64", "--overlap", "8"]) == 0
    )
    out = capsys.readouterr().out
    assert "chunks: 1" in out and "skipped b.txt:" in out
    assert main(["index", "query", "tiny", "When is the coolant pump replaced?", "-k", "1", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["source"] == "a.md" and "9 years" in hits[0]["text"]
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(EVAL.read_text(encoding="utf-8").splitlines(keepends=True)[:12]), encoding="utf-8")
    assert main(["index", "eval", "sample", "--qa", str(qa), "--json"]) == 0
    modes = json.loads(capsys.readouterr().out)
    assert [m["mode"] for m in modes] == ["dense", "hybrid"] and 5 <= modes[0]["n"] < 12
    assert main(["index", "list"]) == 0 and "tiny\t1 documents" in capsys.readouterr().out
    assert main(["index", "delete", "tiny"]) == 0
    assert main(["index", "query", "tiny", "x"]) == 2
    assert "no index named 'tiny'" in capsys.readouterr().err
    assert index_info(Workspace.open(home), "sample")["stats"]["chunks"] > 0
