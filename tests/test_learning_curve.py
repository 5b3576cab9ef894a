"""The learning curve's orchestration with a scripted trainer and evaluator: seeded nested subsets of the training
split, the 100% point on the comparison's own run (reused when finished), cancellation between points, the saved
evaluation and its card row; and the CLI's confirm step."""

from __future__ import annotations

import json

import pytest

from lab.arena import learning_curve as lc
from lab.arena.timing import Forecast
from lab.config import DataConfig
from lab.data import load_split, save_dataset
from lab.estimate import Estimate, Machine
from tests.fakes import ScriptedEvaluator, ScriptedTrainer

# A second domain (a bakery), nothing like the sample's wording: 20 rows, 4 held out.
FACTS = [(f"How long does loaf {i} bake?", f"Loaf {i} bakes for {20 + i} minutes.") for i in range(20)]


def _dataset(ws, tmp_path, name="bakery"):
    path = tmp_path / "bakery.jsonl"
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    save_dataset(ws, name, path, DataConfig(val_fraction=0.2, seed=1))
    return name


def _evalset(tmp_path, taught=8):
    rows = [{"id": f"t{i}", "question": f"Bake time of loaf {i}?", "answer": f"{20 + i} minutes", "group": "taught",
             "answerable": True} for i in range(taught)]  # fmt: skip
    rows.append({"id": "d1", "question": "Oven brand?", "answer": "Ovenix", "group": "documents_only"})
    rows.append({"id": "u1", "question": "Owner's age?", "answer": "-", "answerable": False, "group": "unanswerable"})
    path = tmp_path / "bakery-eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _plan(inputs):
    """A fixed forecast (the real one asks the training planner, which reads the model)."""
    one = Estimate(10.0, 8.0, 12.0)
    return Forecast([(s, label, one) for s, label in lc.stage_list(inputs)], Machine(2, 0.0), 8)


def _inputs(ws, tmp_path, **extra):
    return lc.CurveInputs(dataset=_dataset(ws, tmp_path), qa=_evalset(tmp_path), index="bakeidx", bootstrap=200,
                          **extra)  # fmt: skip


def test_points_train_on_seeded_nested_shares_and_the_curve_is_saved_with_its_card_row(ws, tmp_path):
    inputs = _inputs(ws, tmp_path, seed=3)
    trainer, evaluator = ScriptedTrainer(), ScriptedEvaluator({"25%": 2, "50%": 4, "100%": 8, "RAG": 6})
    seen = []
    result = lc.run_curve(ws, None, inputs, seen.append, trainer=trainer, evaluator=evaluator, plan=_plan(inputs))

    full = load_split(ws, "bakery", "train")
    datasets = [c.dataset for c in trainer.configs]
    assert datasets[2] == "bakery" and trainer.configs[2].name.startswith("start-plain-")  # the comparison's run
    small, half = (load_split(ws, d, "train") for d in datasets[:2])
    assert (len(small), len(half)) == (4, 8) and all(r in half for r in small) and all(r in full for r in half)
    assert small == lc.subset(full, 0.25, 3) and load_split(ws, datasets[0], "val") == load_split(ws, "bakery", "val")
    assert all(c.epochs == 1.0 and c.rank == 16 for c in trainer.configs)  # the plain quick preset, one schedule
    assert [label for _, label in evaluator.asked] == ["25%", "50%", "100%", "RAG"]
    assert evaluator.asked[3][0] == "rag:bakeidx" and evaluator.asked[0][0] == f"ft:{trainer.configs[0].name}"

    c = result["curve"]
    assert [c["cells"][k]["value"] for k in ("25%", "50%", "100%")] == [0.25, 0.5, 1.0]
    assert c["flat"]["value"] == 0.75 and c["questions"] == 8  # only the taught-fact questions
    assert c["cells"]["25%"]["hi"] < c["cells"]["100%"]["lo"] and lc.trend(c) == "up"
    assert [s["stage"] for s in c["stages"]] == [s for s, _ in lc.stage_list(inputs)]
    assert seen and seen[-1].number == seen[-1].total == 7

    saved = lc.latest(ws, "bakery")
    assert saved["id"].startswith(lc.PREFIX) and saved["curve"]["cells"] == c["cells"]
    assert {s["system"] for s in saved["systems"]} == {"25%", "50%", "100%", "RAG"}
    from lab.arena.decision import card

    row = next(r for r in card(saved, curve=saved["curve"], bootstrap=200)["rows"] if r["key"] == "learning_curve")
    assert "more data helps" in row["sentence"] and "RAG answers 75%" in row["sentence"] and row["winner"] is None


def test_overlapping_intervals_say_no_trend_and_a_rerun_reuses_every_finished_run(ws, tmp_path):
    inputs = _inputs(ws, tmp_path)
    evaluator = ScriptedEvaluator({"25%": 4, "50%": 5, "100%": 5, "RAG": 2})
    lc.run_curve(ws, None, inputs, trainer=ScriptedTrainer(), evaluator=evaluator, plan=_plan(inputs))
    again = ScriptedTrainer()
    result = lc.run_curve(ws, None, inputs, trainer=again, evaluator=evaluator, plan=_plan(inputs))
    assert again.configs == [] and all(s.get("reused") for s in result["curve"]["stages"] if "train" in s["stage"])
    assert lc.NO_TREND in result["curve"]["sentence"] and "slope" not in result["curve"]["sentence"]


def test_cancel_between_points_saves_nothing_and_the_next_run_goes_on_from_the_finished_point(ws, tmp_path):
    inputs = _inputs(ws, tmp_path)
    evaluator = ScriptedEvaluator({"25%": 1, "50%": 2, "100%": 3, "RAG": 2})
    trainer = ScriptedTrainer()
    stop = lambda: len(evaluator.asked) >= 1  # noqa: E731  (asked to stop once the first point is measured)
    result = lc.run_curve(ws, None, inputs, should_stop=stop, trainer=trainer, evaluator=evaluator,
                          plan=_plan(inputs))  # fmt: skip
    assert result["status"] == "cancelled" and result["points"] == [0.25]
    assert len(trainer.configs) == 1 and lc.latest(ws) is None

    stopped = ScriptedTrainer(cancel_at=1)  # a training cancelled from inside ends the curve too
    assert lc.run_curve(ws, None, inputs, trainer=stopped, evaluator=evaluator, plan=_plan(inputs))["status"] == (
        "cancelled"
    )
    assert [c.dataset for c in stopped.configs] == [trainer.configs[0].dataset.replace("-25-", "-50-")]

    rest = ScriptedTrainer()
    done = lc.run_curve(ws, None, inputs, trainer=rest, evaluator=evaluator, plan=_plan(inputs))
    assert done["status"] == "finished" and [c.dataset for c in rest.configs][-1] == "bakery"
    assert len(rest.configs) == 2  # 25% was reused


def test_questions_without_taught_facts_are_refused_by_name(ws, tmp_path):
    inputs = _inputs(ws, tmp_path)
    path = tmp_path / "docs-only.jsonl"
    path.write_text(json.dumps({"question": "Oven brand?", "answer": "Ovenix", "group": "documents_only"}) + "\n")
    with pytest.raises(lc.CurveError, match="bakery"):
        lc.taught_questions(ws, lc.CurveInputs(dataset=inputs.dataset, qa=str(path)))


def test_cli_refuses_a_curve_estimated_over_ten_minutes_without_yes(ws, tmp_path, monkeypatch, capsys):
    from lab.cli import main

    inputs = _inputs(ws, tmp_path)
    long = Forecast([(s, label, Estimate(400.0, 300.0, 500.0)) for s, label in lc.stage_list(inputs)], Machine(2), 8)
    monkeypatch.setattr(lc, "forecast", lambda ws, inp, machine=None: long)
    called = []
    monkeypatch.setattr(lc, "run_curve", lambda *a, **k: called.append(1))
    code = main(["curve", "--dataset", "bakery", "--qa", inputs.qa])
    err = capsys.readouterr().err
    assert code == 2 and not called and "--yes" in err and "Fine-tuning on 25%" in err


def test_a_comparison_on_the_same_dataset_shows_the_saved_curve_in_its_card_columns(ws, tmp_path):
    from lab.arena.costs import card_for

    inputs = _inputs(ws, tmp_path)
    evaluator = ScriptedEvaluator({"25%": 2, "50%": 4, "100%": 8, "RAG": 6})
    saved = lc.run_curve(ws, None, inputs, trainer=ScriptedTrainer(), evaluator=evaluator, plan=_plan(inputs))
    names = {"100%": "fine-tuned", "RAG": "RAG"}
    rows = [r | {"system": names[r["system"]]} for r in saved["questions"] if r["system"] in names]
    comparison = {"questions": rows, "showcase": {"inputs": {"dataset": "bakery"}},
                  "contestants": {"fine-tuned": {"kind": "ft", "run": saved["curve"]["runs"]["100%"]},
                                  "RAG": {"kind": "rag", "index": "bakeidx"}}}  # fmt: skip
    row = next(r for r in card_for(ws, comparison, bootstrap=200)["rows"] if r["key"] == "learning_curve")
    assert row["cells"]["RAG"]["value"] == 0.75
    assert (
        row["cells"]["fine-tuned"]["text"].startswith("25%: 25% (")
        and "100%: 100%" in row["cells"]["fine-tuned"]["text"]
    )
    evaluation = {k: v for k, v in comparison.items() if k != "showcase"}  # the dataset from its run's config
    assert any(r["key"] == "learning_curve" for r in card_for(ws, evaluation, bootstrap=200)["rows"])
    other = dict(comparison, showcase={"inputs": {"dataset": "another"}}, contestants={})
    assert not any(r["key"] == "learning_curve" for r in card_for(ws, other, bootstrap=200)["rows"])


def test_the_100_point_reuses_a_finished_run_of_the_same_preset_and_data_under_any_name(ws, tmp_path):
    from lab.data import dataset_hash

    inputs = _inputs(ws, tmp_path)
    folder = ws.dir("runs", "my-quick-run")
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    lc.plain_config("bakery").replace(name="my-quick-run").save(folder / "config.json")
    (folder / "status.json").write_text(json.dumps({"data_hash": dataset_hash(ws, "bakery")}))
    trainer = ScriptedTrainer()
    result = lc.run_curve(ws, None, inputs, trainer=trainer, evaluator=ScriptedEvaluator({}), plan=_plan(inputs))
    assert result["curve"]["runs"]["100%"] == "my-quick-run" and [c.dataset for c in trainer.configs] == [
        lc.subset_name("bakery", 0.25, 0),
        lc.subset_name("bakery", 0.5, 0),
    ]
    (folder / "status.json").write_text(json.dumps({"data_hash": "other data"}))  # the dataset changed since
    assert lc.run_name(ws, "bakery", 1.0, 0).startswith("start-plain-")
