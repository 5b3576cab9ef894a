"""Answer categories and per-answer metrics on hand-worked cases; bootstrap intervals are seeded."""

from __future__ import annotations

import pytest

from lab.metrics import scoring as sc
from lab.metrics.stats import bootstrap_ci, percentile, rate_with_ci


@pytest.mark.parametrize(
    ("prediction", "answerable", "expected"),
    [
        ("The torque is 3,600 Nm [1].", True, "correct"),  # thousands separator and citation ignored
        ("It is 3600 NM.", True, "correct"),
        ("I don't know.", True, "skipped"),  # the period must not turn a skip into a wrong answer
        ("i dont know", True, "skipped"),
        ("It is 36 Nm.", True, "wrong"),  # "36" is not the whole-word answer "3600"
        ("I don't know.", False, "idk"),
        ("I DON'T KNOW", False, "idk"),
        ("The shares trade in Oslo.", False, "hallucination"),
    ],
)
def test_categories(prediction, answerable, expected):
    answer = "3,600 Nm" if answerable else "I don't know"
    assert sc.category(prediction, answer, ["3600 Nm"] if answerable else [], answerable) == expected


def test_alias_counts_as_correct():
    assert sc.category("About 97.5 percent.", "97.5 %", ["97.5 percent"], True) == "correct"


def test_normalize_drops_case_punctuation_articles_whitespace():
    assert sc.normalize("  The  Answer: I don't know.  ") == "answer i dont know"


def test_exact_match_f1_rouge_on_hand_worked_case():
    refs = ["the red bolt"]
    assert sc.exact_match("Red bolt.", refs) == 1.0
    # pred tokens [red, bolt, is, loose], ref [red, bolt]: precision 2/4, recall 2/2 -> F1 = 2*.5*1/1.5 = 2/3
    assert sc.token_f1("red bolt is loose", refs) == pytest.approx(2 / 3)
    # LCS of [bolt, red] and [red, bolt] is 1: p = r = 1/2 -> ROUGE-L 0.5 (order matters, unlike F1 = 1)
    assert sc.rouge_l("bolt red", refs) == pytest.approx(0.5)
    assert sc.token_f1("bolt red", refs) == pytest.approx(1.0)
    assert sc.rouge_l("nothing here", refs) == 0.0


def test_groundedness_and_retrieval_rank():
    passages = ["Tighten the M42 bolts to 3600 Nm with the hydraulic wrench."]
    assert sc.groundedness("Tighten to 3600 Nm.", passages) == 1.0
    assert sc.groundedness("Use 500 Nm and glue.", passages) == pytest.approx(1 / 4)  # 500, nm, use, glue: nm only
    assert sc.groundedness("I don't know.", passages) is None
    assert sc.retrieval_rank("b.md", ["docs/a.md", "a.md", "B.md"]) == 2  # deduplicated by file name
    assert sc.retrieval_rank("c.md", ["a.md"]) == 0
    assert sc.retrieval_rank(None, ["a.md"]) is None


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    ci = bootstrap_ci(values, 500, seed=3)
    assert ci == bootstrap_ci(values, 500, seed=3)
    assert ci[0] < 0.7 < ci[1]
    assert rate_with_ci([True, False])["rate"] == 0.5
    assert percentile([1, 2, 3, 4], 50) == 2.5


def test_evaluate_module_loads_by_path_offline():
    from lab import metrics

    metric = metrics.load("expert_qa")
    out = metric.compute(
        predictions=["It is 3,600 Nm.", "I don't know."],
        references=["3600 Nm", "I don't know"],
        aliases=[[], []],
        answerable=[True, False],
    )
    assert out["categories"] == ["correct", "idk"]
    assert out["correct_rate"] == 0.5 and out["idk_rate"] == 0.5
