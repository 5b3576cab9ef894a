"""The answer matcher against hand labels (a regression guard), and each of its rules on examples written here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lab.metrics import scoring as sc

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "data" / "labels" / "matcher-labels.jsonl"
MEASURED_AGREE = 166  # of 168 labelled answers (docs/experiments/2026-12-07-matcher-agreement.md)
MEASURED_KAPPA = 0.979


def _bench():
    spec = importlib.util.spec_from_file_location("matcher_agreement", ROOT / "bench" / "matcher_agreement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labels_file_is_a_stratified_hand_labelled_sample():
    rows = _bench().load(LABELS)
    assert len(rows) >= 150
    assert len({r["contestant"] for r in rows}) == 5
    assert {r["label"] for r in rows} == {"correct", "wrong", "abstained"}
    assert all(r["reason"].strip() and r["question"].strip() and r["gold"].strip() for r in rows)
    assert len({(r["id"], r["contestant"]) for r in rows}) == len(rows)


def test_matcher_agrees_with_the_labels_at_least_as_well_as_measured():
    bench = _bench()
    result = bench.agreement(bench.load(LABELS))
    assert result["agree"] >= MEASURED_AGREE, result["disagreements"]
    assert result["kappa"] >= MEASURED_KAPPA - 1e-3
    assert sum(sum(row.values()) for row in result["confusion"].values()) == result["n"]


def test_kappa_is_one_for_perfect_agreement_and_zero_at_chance():
    bench = _bench()
    assert bench.kappa([("correct", "correct"), ("wrong", "wrong")]) == 1.0
    chance = [("correct", "correct"), ("correct", "wrong"), ("wrong", "correct"), ("wrong", "wrong")]
    assert bench.kappa(chance) == pytest.approx(0.0)


def test_cli_prints_agreement_and_reference_changes(capsys):
    assert _bench().main(["--reference"]) == 0
    out = capsys.readouterr().out
    assert "Cohen's kappa" in out and "verdicts change" in out


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("The pump delivers 40 % more flow.", "correct"),
        ("The pump delivers 40 percent.", "correct"),
        ("It is 40.", "correct"),  # a bare number: no unit to contradict
        ("The pump runs at 40 °C.", "wrong"),  # the gold's number with another unit
        ("The pump runs at 40 kg and 40 % flow.", "correct"),  # the gold's unit is there too
    ],
)
def test_a_gold_number_with_a_different_unit_is_not_credited(prediction, expected):
    assert sc.category(prediction, "40 %", ["40%", "40 percent"], True) == expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("Store the samples for 6 weeks.", "correct"),
        ("Store them for 6 weeks or 8 weeks.", "wrong"),  # "A or B"
        ("Store them for 8 weeks or 6 weeks.", "wrong"),
        ("Store them for 6 or 8 weeks.", "wrong"),
        ("Usually 8 weeks, sometimes 6 weeks.", "wrong"),  # another candidate named first
        ("Store them for 6 weeks, 2 weeks longer than the old rule.", "correct"),  # the gold is stated first
        ("Store them for 6 weeks at 4 °C.", "correct"),  # other numbers of other kinds do not count
    ],
)
def test_candidate_values_of_the_gold_kind(prediction, expected):
    assert sc.category(prediction, "6 weeks", ["six weeks"], True) == expected


def test_candidates_before_the_number_use_the_gold_words_around_it():
    assert sc.category("Grade B is required.", "Grade B", [], True) == "correct"
    assert sc.category("You need class 3 clearance.", "class 3", [], True) == "correct"
    assert sc.category("You need class 3 or class 4 clearance.", "class 3", [], True) == "wrong"
    assert sc.category("You need class 3 or 4 clearance.", "class 3", [], True) == "wrong"


def test_decimal_point_and_minus_sign_are_kept():
    assert sc.normalize("Mix 2.5 litres at -10 °C, serial AB-12.") == "mix 2.5 litres at -10 °c serial ab12"
    assert sc.category("Add 25 ml.", "2.5 ml", [], True) == "wrong"
    assert sc.category("Add 2.5 ml.", "2.5 ml", [], True) == "correct"
    assert sc.category("Keep it above 10 °C.", "-10 °C", [], True) == "wrong"
    assert sc.category("Keep it above -10 °C.", "-10 °C", [], True) == "correct"


def test_thousands_separators_still_match():
    assert sc.category("The limit is 12,500 rpm.", "12500 rpm", [], True) == "correct"
    assert sc.category("The limit is 12500 rpm.", "12,500 rpm", [], True) == "correct"
    assert sc.quantities("about 12,500 rpm or 3 °C") == [(12500.0, "rpm"), (3.0, "°c")]


def test_non_numeric_golds_and_abstentions_are_unchanged():
    assert sc.category("The valve is coloured red or blue.", "red", [], True) == "correct"  # words: no rule
    assert sc.category("I don't know.", "6 weeks", [], True) == "skipped"
    assert sc.category("I don't know.", "I don't know", [], False) == "idk"
