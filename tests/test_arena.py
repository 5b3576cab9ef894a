"""Arena engine with fakes: Bradley-Terry order and intervals, issued battles and their one vote in SQLite,
eval-set validation, contestant ids and missing runs/indexes, batch evaluation with a scripted responder, verdict,
save/list/export, cancel."""

from __future__ import annotations

import json
import random

import pytest
from fakes import Scripted, eval_items

from lab.arena import battles, contestants, evaluation
from lab.arena.leaderboard import leaderboard
from lab.config import GenConfig
from lab.data.evalset import EvalItem, EvalSetError, parse_evalset
from lab.generation import Answer, Responder


def _battles(strengths: dict[str, float], n: int, seed: int = 1) -> list[dict]:
    rng, votes = random.Random(seed), []
    for _ in range(n):
        a, b = rng.sample(sorted(strengths), 2)
        p = 1 / (1 + 10 ** (strengths[b] - strengths[a]))
        r = rng.random()
        winner = "tie" if abs(r - p) < 0.05 else ("a" if r < p else "b")
        votes.append({"system_a": a, "system_b": b, "winner": winner})
    return votes


def test_bradley_terry_order_intervals_and_ranks():
    board = leaderboard(_battles({"strong": 1.0, "mid": 0.0, "weak": -1.0, "mid2": 0.0}, 600), bootstrap=100)
    rows = {r["name"]: r for r in board["rows"]}
    assert [r["name"] for r in board["rows"]][0] == "strong" and board["rows"][-1]["name"] == "weak"
    # true gaps are 400 rating points; the fit recovers them within the interval
    assert rows["strong"]["ci"][0] <= rows["strong"]["rating"] <= rows["strong"]["ci"][1]
    assert 250 < rows["strong"]["rating"] - rows["mid"]["rating"] < 550
    assert rows["strong"]["rank"] == 1 and rows["weak"]["rank"] == 4
    assert rows["mid"]["rank"] == rows["mid2"]["rank"] == 2  # overlapping intervals share a rank
    assert board["rows"] == leaderboard(_battles({"strong": 1.0, "mid": 0.0, "weak": -1.0, "mid2": 0.0}, 600))["rows"]
    i, j = board["names"].index("strong"), board["names"].index("weak")
    assert board["win_rate"][i][j] > 0.8 and board["win_rate"][i][j] + board["win_rate"][j][i] == pytest.approx(1)
    assert 0 < board["tie_rate"] < 0.2


def test_ties_and_both_bad_are_half_a_win_each():
    votes = [{"system_a": "x", "system_b": "y", "winner": w} for w in ("tie", "both_bad", "a", "b")]
    board = leaderboard(votes, bootstrap=20)
    assert board["rows"][0]["rating"] == pytest.approx(board["rows"][1]["rating"], abs=0.1)
    assert board["tie_rate"] == 0.5


def test_a_vote_needs_an_issued_finished_battle_and_stores_what_the_server_generated(ws):
    with pytest.raises(battles.BattleError, match="not issued by this server"):
        battles.vote(ws.db_path, "0" * 16, "a")  # no database yet
    bid = battles.start_battle(ws.db_path, "q?", "base", "rag:x", {"max_new_tokens": 8})
    with pytest.raises(battles.BattleError, match="still generating"):
        battles.vote(ws.db_path, bid, "a")
    battles.finish_battle(ws.db_path, bid, "A text", "B text")
    with pytest.raises(battles.BattleError, match="not issued by this server"):
        battles.vote(ws.db_path, "0" * 16, "a")
    with pytest.raises(ValueError, match="winner 'c'"):
        battles.vote(ws.db_path, bid, "c")
    row = battles.vote(ws.db_path, bid, "b")
    with pytest.raises(battles.BattleError, match=f"already has its vote \\(#{row['vote_id']}\\)"):
        battles.vote(ws.db_path, bid, "a")
    votes = battles.load_votes(ws.db_path)
    assert [(v["id"], v["winner"], v["system_a"], v["system_b"]) for v in votes] == [
        (row["vote_id"], "b", "base", "rag:x")
    ]
    assert votes[0]["answer_a"] == "A text" and json.loads(votes[0]["settings"]) == {"max_new_tokens": 8}
    assert battles.get_battle(ws.db_path, bid)["status"] == "voted"
    void = battles.start_battle(ws.db_path, "q?", "base", "rag:x")
    battles.fail_battle(ws.db_path, void)
    battles.finish_battle(ws.db_path, void, "late", "late")  # a failed battle stays failed
    with pytest.raises(battles.BattleError, match="failed"):
        battles.vote(ws.db_path, void, "a")
    assert len(battles.load_votes(ws.db_path, blind_only=False)) == 1


def test_simultaneous_votes_on_one_battle_store_exactly_one(ws):
    from concurrent.futures import ThreadPoolExecutor

    bid = battles.start_battle(ws.db_path, "q?", "x", "y")
    battles.finish_battle(ws.db_path, bid, "a", "b")

    def attempt(i: int) -> str:
        try:
            return f"ok {battles.vote(ws.db_path, bid, battles.WINNERS[i % 4])['vote_id']}"
        except battles.BattleError as exc:
            return str(exc)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(16)))
    assert sum(r.startswith("ok") for r in results) == 1
    assert all("already has its vote" in r for r in results if not r.startswith("ok"))
    assert len(battles.load_votes(ws.db_path)) == 1


def test_pick_pair_is_two_different_contestants_on_random_sides():
    seen = {battles.pick_pair(["base", "rag:x", "ft:r"], random.Random(s)) for s in range(40)}
    assert all(a != b for a, b in seen) and ("base", "rag:x") in seen and ("rag:x", "base") in seen
    with pytest.raises(ValueError, match="at least two"):
        battles.pick_pair(["base", "base"])


@pytest.mark.parametrize(
    ("generated", "shown"),
    [
        ("Tower bolts take 3,600 Nm [1].", "Tower bolts take 3,600 Nm."),
        ("According to the passages [2], the limit is 12 m/s.", "The limit is 12 m/s."),
        ("The passage mentions that the check is every 48 months [1, 3].", "The check is every 48 months."),
        ("1. (source: 15-scada.md) Fifteen alarms.\nbased on the context: none", "1. Fifteen alarms.\nNone"),
        ("From the text: yes", "Yes"),
        ("In 1998 the company was founded.", "In 1998 the company was founded."),  # no passage word: untouched
        ("In the text of the contract, x applies.", "In the text of the contract, x applies."),
        ("I don't know", "I don't know"),
    ],
)
def test_blind_text_hides_what_says_a_side_read_passages_and_nothing_else(generated, shown):
    assert battles.blind_text(generated) == shown


def test_malformed_eval_file_reports_every_bad_line():
    text = "\n".join(
        [
            '{"question": "ok?", "answer": "yes"}',
            "{not json",
            '{"question": "", "answer": "x"}',
            '{"question": "q", "answer": "a", "answerable": "no", "aliases": "a"}',
            "[1, 2]",
        ]
    )
    with pytest.raises(EvalSetError) as err:
        parse_evalset(text, "set.jsonl")
    lines = " | ".join(err.value.errors)
    for expected in ("line 2: not valid JSON", "line 3: 'question'", "line 4: 'aliases'", "line 4: 'answerable'"):
        assert expected in lines
    assert "line 5: expected a JSON object" in lines and "line 1" not in lines
    items = parse_evalset('{"question": "q", "answer": "a"}\n\n{"id": "x", "question": "r", "answer": "b"}')
    assert [(i.id, i.answerable, i.group) for i in items] == [("line-1", True, None), ("x", True, None)]


def test_contestant_ids_and_clear_errors_for_missing_things(ws, cache):
    assert contestants.parse("ft+rag:run1:docs") == contestants.Contestant("ft+rag:run1:docs", "ft+rag", run="run1",
                                                                           index="docs")  # fmt: skip
    assert contestants.parse("base").model == "embedded"
    for bad in ("ft:", "rag", "ft+rag:onlyrun", "gpt"):
        with pytest.raises(contestants.ContestantError, match="not understood"):
            contestants.parse(bad)
    with pytest.raises(contestants.ContestantError, match="run 'gone' has no adapter"):
        contestants.responder(ws, cache, "ft:gone")
    with pytest.raises(contestants.ContestantError, match="index 'gone' does not exist"):
        contestants.responder(ws, cache, "rag:gone")


def test_batch_evaluation_scores_summarises_and_explains(ws):
    good = Scripted("rag:x", {f"colour {i}?": "It is blue [1]." for i in range(8)})
    bad = Scripted("base", {f"colour {i}?": "red" for i in range(8)} | {"price 0?": "100 euro"})
    assert isinstance(good, Responder)
    result = evaluation.run_evaluation(
        eval_items(), {"rag:x": good, "base": bad}, GenConfig(batch_size=5), bootstrap=200
    )
    by = {s["system"]: s for s in result["systems"]}
    assert by["rag:x"]["correct_rate"] == 1.0 and by["base"]["correct_rate"] == 0.0
    assert by["base"]["wrong_rate"] == 1.0 and by["base"]["hallucination_rate"] == 0.25
    assert by["rag:x"]["idk_rate"] == 1.0 and by["rag:x"]["retrieval_hit"] == 1.0
    assert by["base"]["hallucination_rate_ci"][0] <= 0.25 <= by["base"]["hallucination_rate_ci"][1]
    assert by["rag:x"]["by_group"]["taught"]["correct_rate"] == 1.0
    assert good.calls == 3  # 12 questions in batches of 5
    assert "**rag:x** answers more questions correctly than **base** by 100 points" in result["verdict"]
    assert "Only 12 questions" in result["verdict"]
    eval_id = evaluation.save_evaluation(ws, result, "set.jsonl")
    assert [r["id"] for r in evaluation.list_evaluations(ws)] == [eval_id]
    assert evaluation.load_evaluation(ws, eval_id)["systems"] == json.loads(json.dumps(result["systems"]))
    csv_text = (ws.dir("evals", eval_id) / "questions.csv").read_text()
    assert csv_text.count("\n") == 1 + 24 and "docs/a.md (0.80)" in csv_text
    assert {p.name for p in evaluation.export_paths_for(result)} == {"results.json", "questions.csv", "summary.csv"}
    assert evaluation.compare(ws, [eval_id])[0]["correct_rate"] in (1.0, 0.0)


def test_verdict_calls_overlapping_results_a_tie():
    same = {f"colour {i}?": ("blue" if i % 2 else "red") for i in range(8)}
    other = {f"colour {i}?": ("blue" if i % 4 == 1 else "red") for i in range(8)}
    result = evaluation.run_evaluation(
        eval_items(), {"a": Scripted("a", same), "b": Scripted("b", other)}, GenConfig(), bootstrap=200
    )
    assert "**b** and **a** cannot be told apart" in result["verdict"]


def test_cancel_stops_between_batches_and_keeps_partial_results():
    r = Scripted("x", {})
    stop_after = iter([False, True])
    result = evaluation.run_evaluation(
        eval_items(), {"x": r}, GenConfig(batch_size=4), should_stop=lambda: next(stop_after)
    )
    assert result["status"] == "cancelled" and len(result["questions"]) == 4 and r.calls == 1
    assert "cancelled" in result["verdict"]


def test_the_abstention_curve_re_decides_every_answer_from_its_recorded_probability(monkeypatch):
    from lab.arena.scoring import idk_curve, question_row
    from lab.generation import IDK as DONT_KNOW
    from lab.generation import ModelResponder, engine

    items = [EvalItem("a1", "Torque of bolt A?", "40 Nm"), EvalItem("a2", "Colour of valve B?", "red"),
             EvalItem("u1", "Price of C?", "", answerable=False)]  # fmt: skip
    texts = ["It is 40 Nm [1].", "It is blue [1].", "It costs 9 euro [1]."]  # correct, wrong, hallucination

    def fake_generate(model, tok, convs, gen, decide_idk=False, idk_probs=None):
        assert decide_idk and idk_probs is not None  # a passage reader records, never forces
        idk_probs[:] = [0.3, 0.6, 0.8]
        return [(t, 10, 4) for t in texts]

    monkeypatch.setattr(engine, "generate_batch", fake_generate)

    class Index:
        def retrieve(self, question, top_k=None):
            return [type("P", (), {"text": "bolt 40 Nm valve blue costs 9 euro", "source": "s.md", "score": 0.9})()]

    rag = ModelResponder("rag:x", None, None, Index())
    answers = rag.answer_many(
        [it.question for it in items], GenConfig(idk_above=0.5, focus_sentences=0, support_below=0)
    )
    assert [a.text for a in answers] == [texts[0], DONT_KNOW + ".", DONT_KNOW + "."]  # 0.6 and 0.8 are over 0.5
    assert answers[1].alt == texts[1] and answers[0].alt == "" and answers[2].p_idk == 0.8
    rows = [question_row(it, a, "rag:x") for it, a in zip(items, answers, strict=True)]
    assert [r["category"] for r in rows] == ["correct", "skipped", "idk"]
    curve = {round(p["threshold"], 2): p for p in idk_curve(rows)}
    assert (curve[0.95]["correct_rate"], curve[0.95]["hallucination_rate"]) == (0.5, 1.0)  # nobody abstains
    assert (curve[0.5]["correct_rate"], curve[0.5]["hallucination_rate"]) == (0.5, 0.0)  # as evaluated
    assert (curve[0.25]["correct_rate"], curve[0.25]["hallucination_rate"]) == (0.0, 0.0)  # everybody abstains
    plain = [question_row(items[0], Answer("40 Nm", system="base"), "base")]
    assert idk_curve(plain) == [] and "p_idk" not in plain[0]  # a contestant that does not read passages
