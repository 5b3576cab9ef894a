"""Typed results: a rate with its interval written one way (long, short, note, interval; n=0, 0 %, 100 %), the
one metrics table and how summaries read through it, and the interval whiskers every rate chart draws."""

from __future__ import annotations

import pytest

from lab.arena import scoring
from lab.metrics.rate import Rate, format_rate
from lab.metrics.table import CHART_KEYS, METRICS, label, metric, pool_size, present


@pytest.mark.parametrize(
    ("rate", "long", "short", "note", "interval"),
    [
        (Rate(0.625, 0.5, 0.73, 60), "62% (95% CI 50-73%, n=60)", "62% [50-73]", "95% CI 50-73%, n=60", "50-73%"),
        (Rate(0.0, 0.0, 0.0, 12), "0% (95% CI 0-0%, n=12)", "0% [0-0]", "95% CI 0-0%, n=12", "0-0%"),
        (Rate(1.0, 1.0, 1.0, 8), "100% (95% CI 100-100%, n=8)", "100% [100-100]", "95% CI 100-100%, n=8", "100-100%"),
        (Rate(0.5, None, None, 4), "50% (n=4)", "50%", "n=4", "-"),
        (Rate(0.25), "25%", "25%", "", "-"),
        (Rate(None, None, None, 0), "n/a (n=0)", "-", "n=0", "-"),
        (Rate(0.0, 0.0, 0.0, 0), "n/a (n=0)", "-", "n=0", "-"),  # no questions: no rate, whatever the value says
        (Rate(None), "n/a (n=0)", "-", "n=0", "-"),
    ],
)
def test_one_function_writes_a_rate_in_every_style(rate, long, short, note, interval):
    assert format_rate(rate) == long and format_rate(rate, "long") == long
    assert format_rate(rate, "short") == short
    assert format_rate(rate, "note") == note
    assert format_rate(rate, "interval") == interval


def test_a_rate_is_read_from_a_summary_with_the_count_of_its_question_pool():
    s = {"n": 12, "n_answerable": 8, "n_unanswerable": 4, "correct_rate": 0.5, "correct_rate_ci": [0.25, 0.75],
         "hallucination_rate": 0.25, "hallucination_rate_ci": None, "groundedness": 0.9}  # fmt: skip
    assert Rate.of(s, "correct_rate") == Rate(0.5, 0.25, 0.75, 8)
    assert Rate.of(s, "hallucination_rate") == Rate(0.25, None, None, 4)
    assert Rate.of(s, "groundedness").n == 12 and Rate.of(s, "correct_rate", n=3).n == 3
    assert Rate.of({}, "correct_rate") == Rate(None, None, None, None)
    assert format_rate(Rate.of(s, "correct_rate")) == "50% (95% CI 25-75%, n=8)"


def test_the_metrics_table_covers_every_summary_value_once_in_a_fixed_order():
    keys = [m.key for m in METRICS]
    assert len(keys) == len(set(keys))
    summarized = set(scoring.RATES) | set(scoring.MEANS)
    assert set(keys) <= summarized  # every listed metric is one the scoring computes
    assert summarized - set(keys) == {"retrieval_rr"}  # the reciprocal rank is kept in results, not shown
    assert keys[:2] == ["correct_rate", "wrong_rate"] and label("hallucination_rate") == "hallucination"
    assert not metric("hallucination_rate").higher_is_better and metric("correct_rate").higher_is_better
    assert all(pool_size({"n": 3, "n_answerable": 2, "n_unanswerable": 1}, k) in (1, 2, 3) for k in keys)
    for key, (_, over_answerable) in scoring.RATES.items():
        assert metric(key).pool == ("answerable" if over_answerable else "unanswerable")
    assert CHART_KEYS == ("correct_rate", "hallucination_rate", "exact_match", "token_f1", "rouge_l", "similarity")
    with pytest.raises(KeyError, match="no metric 'accuracy'; known: correct_rate"):
        metric("accuracy")


def test_only_metrics_some_contestant_has_are_present():
    systems = [{"correct_rate": 0.5, "hallucination_rate": None}, {"correct_rate": None, "token_f1": 0.2}]
    assert [m.key for m in present(systems)] == ["correct_rate", "token_f1"]
    assert [m.key for m in present(systems, ("token_f1", "hallucination_rate"))] == ["token_f1"]


def test_interval_whiskers_are_distances_from_the_value_never_negative():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lab.metrics.charts import ci_bars, ci_whiskers

    rates = [Rate(0.5, 0.25, 0.75, 8), Rate(0.0, 0.0, 0.1, 4), Rate(None), Rate(0.4, 0.45, 0.5, 3)]
    below, above = ci_whiskers(rates)
    assert below == pytest.approx([25, 0, 0, 0]) and above == pytest.approx([25, 10, 0, 10])
    fig, (up, across) = plt.subplots(1, 2)
    bars = ci_bars(up, range(4), rates, color="C0", label="x")
    assert [b.get_height() for b in bars] == pytest.approx([50, 0, 0, 40]) and bars.get_label() == "x"
    side = ci_bars(across, [0, 1], rates[:2], horizontal=True)
    assert [b.get_width() for b in side] == pytest.approx([50, 0])
    plt.close(fig)
