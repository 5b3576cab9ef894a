"""`Summary`: one contestant's scores, typed; its saved form keeps the keys, order and values results.json had."""

from __future__ import annotations

import json

from lab.arena.scoring import MEANS, RATES, summaries, summarize_all
from lab.arena.summary import Summary
from lab.metrics import scoring as sc
from lab.metrics.rate import Rate

CATEGORIES = (sc.CORRECT, sc.WRONG, sc.IDK, sc.HALLUCINATION, sc.CORRECT)


def _rows() -> list[dict]:
    rows = []
    for system in ("base", "rag:x"):
        for i in range(10):
            row = {"system": system, "answerable": i % 3 != 0, "category": CATEGORIES[i % len(CATEGORIES)]}
            row |= {
                "latency_s": 0.5 + i / 10,
                "completion_tokens": 10 + i,
                "group": "ab"[i % 2] if system == "base" else "",
            }
            row |= {m: (i % 4) / 4 for m in MEANS if system != "base" or not m.startswith("retrieval")}
            rows.append(row)
    return rows


def test_the_saved_form_has_the_keys_in_the_order_results_json_holds():
    base, rag = summarize_all(_rows(), ["base", "rag:x"], bootstrap=50)
    metrics = [k for name in (*RATES, *MEANS) for k in (name, f"{name}_ci")]
    speed = ["latency_p50", "latency_p95", "tokens_per_s"]
    assert list(rag) == ["system", "n", "n_answerable", "n_unanswerable", *metrics, *speed]
    assert list(base) == [*list(rag), "by_group"] and list(base["by_group"]) == ["a", "b"]
    assert list(base["by_group"]["a"]) == list(rag)[1:]  # a group's summary names no system
    assert base["retrieval_hit"] is None and base["retrieval_hit_ci"] is None  # no passages, no value


def test_a_summary_reads_back_to_the_same_json_and_its_rates():
    saved = summarize_all(_rows(), ["base", "rag:x"], bootstrap=50)
    back = [Summary.from_dict(json.loads(json.dumps(s))).to_dict() for s in saved]
    assert json.dumps(back) == json.dumps(saved)
    typed = summaries(_rows(), ["base", "rag:x"], bootstrap=50)
    assert [s.to_dict() for s in typed] == saved
    base = typed[0]
    assert base.system == "base" and base.by_group["a"].system is None
    assert base.rate("correct_rate") == Rate.of(saved[0], "correct_rate")
    assert base.rate("idk_rate").n == base.n_unanswerable and base.rate("groundedness").n == base.n
