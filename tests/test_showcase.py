"""The whole comparison (lab.arena.showcase) on the real engine with tiny settings: a cancelled run keeps its
finished stages, the next run reuses them and finishes, a third run does no work at all (no new run, no new
evaluation), the CLI exits 0 with a verdict and a table; plus the stratified question subset."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lab import jobs
from lab.arena import evaluation, reference, showcase
from lab.data.evalset import EvalItem, stratified

TINY = dict(
    questions=4,
    max_new_tokens=4,
    train={"epochs": 1.0, "max_steps": 1, "eval_steps": 0},
    bootstrap=20,
    contestants=["base", "fine-tuned"],
)  # fmt: skip  (the CLI test below asks for the same)


def test_stratified_subset_keeps_every_group_in_proportion():
    items = [EvalItem(f"a{i}", "q", "a", group="g1") for i in range(60)]
    items += [EvalItem(f"b{i}", "q", "a", group="g2") for i in range(30)]
    items += [EvalItem(f"c{i}", "q", "I don't know", answerable=False) for i in range(3)]
    picked = stratified(items, 20, seed=1)
    ids = [it.id[0] for it in picked]
    assert len(picked) == 20 and ids.count("c") >= 1 and ids.count("a") > ids.count("b") > ids.count("c")
    assert picked == [it for it in items if it in picked]  # file order kept
    assert stratified(items, 20, seed=1) == picked  # seeded
    assert stratified(items, 0) == items


def test_examples_are_answered_by_everyone_one_per_group_first_disagreements_first():
    rows = []
    for qid, group, cats in (("q1", "g1", "cc"), ("q2", "g1", "cw"), ("q3", "g2", "ww"), ("q4", "g3", "cw")):
        for system, cat in zip(("A", "B"), cats, strict=True):
            rows.append({"id": qid, "system": system, "group": group, "category": cat, "question": qid,
                         "answer": "x", "prediction": f"{system} says {qid}"})  # fmt: skip
    rows.append({"id": "q5", "system": "A", "group": "g4", "category": "w", "question": "q5", "answer": "x",
                 "prediction": "only A"})  # fmt: skip
    result = {"systems": [{"system": "A"}, {"system": "B"}], "questions": rows}
    picked = reference.examples(result, 3)
    assert [p["id"] for p in picked] == ["q2", "q4", "q3"]  # q5 lacks B; q2 beats q1 in g1 (they disagree)
    assert picked[0]["answers"]["B"] == {"prediction": "B says q2", "category": "w"}


def test_the_shipped_reference_is_built_from_saved_evaluations_and_shown_until_a_workspace_has_its_own(tmp_path):
    import json

    from lab.config import GenConfig
    from lab.generation import Answer
    from lab.ui import start_view

    class Fixed:
        def __init__(self, text):
            self.text = text

        def answer_many(self, questions, gen):
            return [Answer(self.text, [{"text": "long passage " * 50, "source": "a.md", "score": 0.5}], 0.1, 5, 3)
                    for _ in questions]  # fmt: skip

    items = [EvalItem(f"q{i}", f"question {i}?", "blue", group="g") for i in range(6)]
    items.append(EvalItem("u", "unknowable?", "I don't know", answerable=False))
    both = evaluation.run_evaluation(items, {"rag:sample": Fixed("blue"), "base": Fixed("red")}, GenConfig(),
                                     bootstrap=20)  # fmt: skip
    parts = [("base", "base", both), ("RAG", "rag:sample", both)]
    ref = reference.reference_from(parts, showcase.Inputs(questions=0, bootstrap=20), "Measured on a test.")
    assert [s["system"] for s in ref["systems"]] == ["base", "RAG"]
    rag = next(s for s in ref["systems"] if s["system"] == "RAG")
    assert rag["correct_rate"] == 1.0 and ref["showcase"]["contestants"] == {"base": "base", "RAG": "rag:sample"}
    assert all(set(p) == {"source", "score"} for r in ref["questions"] for p in r["passages"])  # texts dropped
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(ref))
    loaded = reference.reference(path)
    assert loaded["verdict"] and start_view.heading_md(loaded).startswith("### Reference comparison")
    assert "7 questions" in start_view.heading_md(loaded)
    with pytest.raises(showcase.ShowcaseError, match="no answers of 'ft:x'"):
        reference.reference_from([("ft", "ft:x", both)], showcase.Inputs(), "")
    assert reference.reference(tmp_path / "missing.json") is None


@pytest.fixture(scope="module")
def home(tmp_path_factory, model_cache_dir):
    from lab.data import ensure_sample_domain
    from lab.workspace import Workspace

    root = tmp_path_factory.mktemp("showcase") / "home"
    ws = Workspace.open(root)
    (ws.root / "models").rmdir()
    (ws.root / "models").symlink_to(model_cache_dir, target_is_directory=True)
    ensure_sample_domain(ws)
    return ws


def _counts(ws):
    return len(jobs.list_runs(ws)), len(evaluation.list_evaluations(ws))


def test_cancel_keeps_finished_stages_and_the_next_runs_reuse_them(home, cache, monkeypatch):
    monkeypatch.setenv("LAB_HOME", str(home.root))
    seen = []

    def stop_at_second_contestant():
        return any(u.stage == "eval:fine-tuned" for u in seen)

    inputs = showcase.Inputs(**TINY)
    first = showcase.run_showcase(home, cache, inputs, seen.append, stop_at_second_contestant)
    assert first["run"]["status"] == "cancelled"
    done = {s["stage"]: s for s in first["run"]["stages"]}
    assert list(done) == ["validate", "index", "train:plain", "eval:base"]
    assert showcase.latest(home) is None  # no comparison written for a cancelled run
    assert [s["system"] for s in first["systems"]] == ["base"]  # what finished is shown
    assert all(u.overall_eta_s is None or u.overall_eta_s >= 0 for u in seen)
    runs, evals = _counts(home)
    assert runs == 1 and evals == 1

    second = showcase.run_showcase(home, cache, inputs)
    stages = {s["stage"]: s for s in second["run"]["stages"]}
    assert second["run"]["status"] == "finished" and second["status"] == "finished"
    assert stages["train:plain"]["reused"] and stages["eval:base"]["reused"]
    assert stages["train:plain"]["run"] == done["train:plain"]["run"]
    assert not stages["eval:fine-tuned"]["reused"] and not stages["verdict"]["reused"]
    assert [s["system"] for s in second["systems"]] == ["base", "fine-tuned"]
    assert second["showcase"]["contestants"]["fine-tuned"] == f"ft:{done['train:plain']['run']}"
    assert len({r["id"] for r in second["questions"]}) == 4 and second["verdict"]
    assert showcase.latest(home)["id"] == second["id"]
    runs, evals = _counts(home)
    assert runs == 1 and evals == 3  # two contestants + the comparison

    third = showcase.run_showcase(home, cache, inputs)
    assert all(s["reused"] for s in third["run"]["stages"]) and _counts(home) == (1, 3)
    assert third["id"] == second["id"] and third["systems"] == second["systems"]

    changed = showcase.run_showcase(home, cache, showcase.Inputs(**{**TINY, "max_new_tokens": 5}))
    stages = {s["stage"]: s for s in changed["run"]["stages"]}
    assert stages["train:plain"]["reused"] and not stages["eval:base"]["reused"]  # new generation settings
    assert _counts(home) == (1, 6)


@pytest.mark.integration
def test_cli_exits_0_with_verdict_and_table(home):
    env = {**os.environ, "LAB_HOME": str(home.root), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lab", "showcase", "--questions", "4", "--max-new-tokens", "4", "--max-steps", "1",
           "--bootstrap", "20", "--contestants", "base,fine-tuned"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "correct" in out.stdout and "fine-tuned" in out.stdout and "Most correct" in out.stdout
    assert "Stage" not in out.stdout and "reused" in out.stderr  # progress goes to stderr
    bad = subprocess.run([*cmd[:4], "--docs", "no-such-corpus"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "no-such-corpus" in bad.stderr


def test_on_a_cpu_the_default_comparison_leaves_training_for_rag_out_and_all_puts_it_in(monkeypatch):
    import lab.models

    monkeypatch.setattr(lab.models, "device", lambda: "cpu")
    assert showcase.default_contestants() == ("base", "fine-tuned", "RAG", "fine-tuned + RAG")
    default = [stage for stage, _, _ in showcase._stage_list([])]
    assert "train:plain" in default and "train:rag" not in default
    full = [stage for stage, _, _ in showcase._stage_list(["all"])]
    assert "train:rag" in full and "eval:trained for RAG + RAG" in full
    monkeypatch.setattr(lab.models, "device", lambda: "cuda")
    assert showcase.default_contestants() == showcase.ALL_CONTESTANTS


def test_the_shipped_reference_holds_every_contestant_and_says_how_it_was_measured():
    ref = reference.reference()
    assert ref is not None and "Measured on" in ref["reference"]
    assert [s["system"] for s in ref["systems"]] == list(showcase.ALL_CONTESTANTS)
    assert ref["showcase"]["questions"] == 123 and "Fine-tuning for RAG" in ref["verdict"]


def test_the_showcase_shortens_plain_fine_tuning_but_training_for_rag_keeps_its_presets_epochs():
    from lab.training.plan import PRESETS

    inputs = showcase.Inputs()
    plain = showcase._train_config(inputs, "quick CPU demo", False)
    rag = showcase._train_config(inputs, "quick CPU demo (RAG)", True)
    assert plain.epochs == showcase.SHOWCASE_TRAIN["epochs"] < PRESETS["quick CPU demo"]["epochs"]
    assert rag.epochs == PRESETS["quick CPU demo (RAG)"]["epochs"] and rag.eval_steps == 0
    short = showcase._train_config(
        showcase.Inputs(train={"epochs": 1.0, "max_steps": 3}), "quick CPU demo (RAG)", True
    )
    assert short.max_steps == 3  # a step budget still applies to both
