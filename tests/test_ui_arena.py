"""The Arena tab through its API and in a real browser: a battle's vote lands in SQLite, 20 clients voting at
once lose no vote, the leaderboard endpoint rates them, and Playwright runs a blind battle and a 3-question batch
evaluation with screenshots (test-artifacts/arena-battle.png, arena-eval.png)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from lab import db


def _votes(app_home):
    db.init(app_home / "lab.db")
    return db.rows(app_home / "lab.db", "SELECT * FROM votes ORDER BY id")


def test_battle_vote_through_gradio_client_lands_in_sqlite(client, app_home):
    before = len(_votes(app_home))
    pool = ["base", "base:embedded"]  # two ids over the same cached model: cheap, still a real battle
    out = client.predict(pool, "Name one primary colour.", 8, 0, -1, 0, api_name="/arena_battle")
    assert "Model A" in out[0] and "Model B" in out[1]
    reveal = client.predict(api_name="/arena_vote_b")  # buttons and state are not API outputs
    assert "saved" in reveal and "base" in reveal
    rows = _votes(app_home)
    assert len(rows) == before + 1
    vote = rows[-1]
    assert vote["winner"] == "b" and vote["blind"] == 1 and vote["question"] == "Name one primary colour."
    assert {vote["system_a"], vote["system_b"]} == set(pool) and vote["answer_a"] and vote["answer_b"]
    assert json.loads(vote["settings"])["max_new_tokens"] == 8
    assert "No finished battle" in client.predict(api_name="/arena_vote_a")  # one vote per battle


def test_twenty_clients_voting_at_once_lose_no_vote(app_url, app_home):
    from gradio_client import Client

    before = len(_votes(app_home))
    clients = [Client(app_url, verbose=False) for _ in range(20)]

    def vote(i: int) -> int:
        winner = ("a", "b", "tie", "both_bad")[i % 4]
        return clients[i].predict(f"load {i}?", "x", "y", f"ans a {i}", f"ans b {i}", winner,
                                  api_name="/arena_submit_vote")  # fmt: skip

    with ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(vote, range(20)))
    rows = _votes(app_home)
    assert len(set(ids)) == 20 and len(rows) == before + 20
    assert {r["question"] for r in rows} >= {f"load {i}?" for i in range(20)}
    board = client_board(app_url)
    assert "blind votes" in board[0]


def client_board(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False).predict(api_name="/arena_leaderboard")


def _open_arena(page, sub: str):
    page.get_by_role("tab", name="Arena").click()
    page.get_by_role("tab", name=sub).click()


def test_browser_blind_battle_and_small_batch_evaluation(page, shot, app_home):
    _open_arena(page, "Blind battle")
    battle = page.locator("#arena-battle")
    battle.get_by_label("Question").fill("What does a gearbox do?")
    battle.get_by_text("Generation settings").click()
    battle.get_by_label("number input for Max new tokens").fill("8")
    vote_button = page.get_by_role("button", name="Tie")
    assert vote_button.is_disabled()
    battle.get_by_role("button", name="Start battle").click()
    page.get_by_text("Both answers are in").wait_for(timeout=240_000)
    assert vote_button.is_enabled()
    vote_button.click()
    page.get_by_text("A was").wait_for()
    assert page.get_by_role("button", name="Tie").is_disabled()
    shot(page, "arena-battle")
    _open_arena(page, "Batch evaluation")
    ev = page.locator("#arena-eval")
    ev.get_by_label("Only the first N questions").fill("3")
    ev.get_by_text("Generation settings").click()
    ev.get_by_label("number input for Max new tokens").fill("8")
    ev.get_by_role("button", name="Run evaluation").click()
    page.get_by_text("finished:").wait_for(timeout=300_000)
    assert ev.get_by_text("Most correct answers on your data").is_visible()
    ev.get_by_role("gridcell", name="rag:sample").first.wait_for()  # the per-question table is filled
    shot(page, "arena-eval")
