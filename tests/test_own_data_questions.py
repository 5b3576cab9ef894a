"""Own data is asked its own questions, in the Arena and in `python -m lab eval`: a fine-tuned contestant on an own
dataset gets that dataset's held-out questions, sample contestants the sample's set, and an own index with no
dataset behind it a clear error before any model loads."""

from __future__ import annotations

import json

import pytest
from fakes import Scripted

from lab.arena import evaluation
from lab.arena.questions import QuestionsError, default_questions
from lab.cli import main
from lab.config import RagConfig, TrainConfig
from lab.data.evalset import read_evalset, sample_evalset_path


def _own_run(ws, tmp_path, run: str, dataset: str, rows: int = 30) -> None:
    """Dataset `dataset` of made-up part facts saved in the workspace, and run `run`'s config.json naming it."""
    from lab.data import save_dataset

    turns = [(f"What is part {i} made of?", f"Part {i} is made of alloy {i}.") for i in range(rows)]
    chats = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in turns]
    path = tmp_path / f"{dataset}.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in chats), encoding="utf-8")
    save_dataset(ws, dataset, path, overwrite=True)
    ws.dir("runs", run).mkdir(parents=True)
    TrainConfig(name=run, dataset=dataset).save(ws.dir("runs", run) / "config.json")


def _own_index(ws, name: str, corpus: str) -> None:
    """Index `name`'s config.json, built from corpus `corpus` (no vectors: the question choice reads the config)."""
    ws.dir("indexes", name).mkdir(parents=True)
    RagConfig(name=name, corpus=corpus).save(ws.dir("indexes", name) / "config.json")


def test_question_choice_held_out_for_own_runs_sample_for_the_sample_error_for_an_own_index(ws, tmp_path):
    _own_run(ws, tmp_path, "mine", "parts")
    path, said = default_questions(ws, ["base", "ft:mine", "ft+rag:mine:sample"])
    items = read_evalset(path)
    assert items and all(it.question.startswith("What is part") for it in items)
    assert f"{len(items)} questions held out from dataset 'parts'" in said
    assert not {it.question for it in read_evalset(sample_evalset_path(ws))} & {it.question for it in items}
    path, said = default_questions(ws, ["base", "rag:sample"])
    assert path == str(sample_evalset_path(ws)) and "sample" in said
    _own_index(ws, "manuals", "manuals")
    with pytest.raises(QuestionsError, match="rag:manuals reads your own documents.*evaluation JSONL"):
        default_questions(ws, ["base", "rag:manuals"])


def _recording_evaluation(monkeypatch) -> list[str]:
    """Replace the evaluation `lab eval` runs with scripted contestants on the file it was given (no model loads);
    returns the list of question files it was asked to use."""
    asked: list[str] = []

    def evaluate(ws, cache, qa, systems, gen, limit, progress, **_):
        asked.append(qa)
        items = read_evalset(qa)[: limit or None]
        return evaluation.run_evaluation(items, {s: Scripted(s, {}) for s in systems}, gen, bootstrap=20)

    monkeypatch.setattr(evaluation, "evaluate_in_workspace", evaluate)
    return asked


def test_cli_eval_asks_a_fine_tuned_contestant_its_own_held_out_questions(ws, tmp_path, monkeypatch, capsys):
    _own_run(ws, tmp_path, "mine", "parts")
    asked = _recording_evaluation(monkeypatch)
    assert main(["eval", "--systems", "base,ft:mine", "--no-save", "--bootstrap", "20"]) == 0
    assert len(asked) == 1 and asked[0] != str(sample_evalset_path(ws))
    items = read_evalset(asked[0])
    assert items and all(it.question.startswith("What is part") for it in items)
    assert f"questions: {len(items)} questions held out from dataset 'parts'" in capsys.readouterr().err


def test_cli_eval_refuses_an_own_index_without_a_dataset_before_evaluating(ws, monkeypatch, capsys):
    _own_index(ws, "manuals", "manuals")
    asked = _recording_evaluation(monkeypatch)
    assert main(["eval", "--systems", "base,rag:manuals", "--no-save"]) == 2
    err = capsys.readouterr().err
    assert "rag:manuals reads your own documents" in err and "evaluation JSONL" in err
    assert asked == []  # refused before any question was asked (or any model loaded)


def test_cli_eval_keeps_an_explicit_question_file_and_the_sample_set_for_sample_contestants(ws, monkeypatch):
    asked = _recording_evaluation(monkeypatch)
    assert main(["eval", "--systems", "base,rag:sample", "--no-save", "--limit", "3", "--bootstrap", "20"]) == 0
    qa = ws.root / "mine.jsonl"
    qa.write_text(json.dumps({"question": "What is part 1 made of?", "answer": "alloy 1"}) + "\n", encoding="utf-8")
    _own_index(ws, "manuals", "manuals")
    assert main(["eval", "--qa", str(qa), "--systems", "rag:manuals", "--no-save", "--bootstrap", "20"]) == 0
    assert asked == [str(sample_evalset_path(ws)), str(qa)]


def test_the_evidence_pack_reproduces_own_questions_with_lab_eval_not_a_temporary_file(ws, tmp_path):
    from lab.arena.report import commands

    _own_run(ws, tmp_path, "mine", "parts")
    held_out, _ = default_questions(ws, ["ft:mine"])
    result = {"qa": held_out, "systems": [{"system": "ft:mine"}], "gen": {"max_new_tokens": 8}, "id": "e1"}
    assert commands(result)[0] == "python -m lab eval --systems ft:mine --max-new-tokens 8"
    assert commands(result | {"qa": "/data/mine.jsonl"})[0].startswith("python -m lab eval --qa /data/mine.jsonl ")
