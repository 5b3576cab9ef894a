"""The Arena tab through its API and in a real browser: a battle's vote lands in SQLite, a vote must name a
battle the server issued (forged ids and second votes refused), 20 clients voting at once lose no vote, the
leaderboard endpoint rates them and explains the rating, and Playwright runs a 3-question batch evaluation
(no empty tables before results, the real answer count in the progress line, a per-question table without
sideways scrolling) with a screenshot (test-artifacts/arena-eval.png)."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client.exceptions import AppError

from lab import db
from lab.arena import battles
from lab.ui import arena_view as view


def _votes(app_home):
    db.init(app_home / "lab.db")
    return db.rows(app_home / "lab.db", "SELECT * FROM votes ORDER BY id")


def test_battle_vote_through_gradio_client_lands_in_sqlite(client, app_home):
    before = len(_votes(app_home))
    pool = ["base", "base:embedded"]  # two ids over the same cached model: cheap, still a real battle
    side_a, side_b, info_a, info_b, status, note, battle_id = client.predict(
        pool, "Name one primary colour.", 8, 0, -1, 0, api_name="/arena_battle"
    )
    assert side_a and side_b and info_a == info_b == note == "" and "vote" in status and battle_id
    issued = db.rows(app_home / "lab.db", "SELECT * FROM battles WHERE id = ?", (battle_id,))[0]
    assert issued["status"] == "ready" and {issued["system_a"], issued["system_b"]} == set(pool)
    reveal, info_a, info_b = client.predict(api_name="/arena_vote_b")  # the battle in this session's state
    assert "saved" in reveal and f"Model A was {view.name_html(issued['system_a'])}" in info_a  # friendly, id small
    rows = _votes(app_home)
    assert len(rows) == before + 1
    vote = rows[-1]
    assert vote["winner"] == "b" and vote["blind"] == 1 and vote["question"] == "Name one primary colour."
    assert (vote["system_a"], vote["answer_a"], vote["answer_b"]) == tuple(
        issued[k] for k in ("system_a", "answer_a", "answer_b")
    )
    assert side_a in {battles.battle_text(vote["answer_a"], cut=c) for c in (True, False)}  # shown normalised
    assert json.loads(vote["settings"])["max_new_tokens"] == 8
    assert "No finished battle" in client.predict(api_name="/arena_vote_a")[0]  # one vote per battle
    with pytest.raises(AppError, match="already has its vote"):  # nor a second one through the API
        client.predict(battle_id, "a", api_name="/arena_submit_vote")
    assert len(_votes(app_home)) == before + 1


def test_api_vote_must_name_a_battle_the_server_issued_once(client, app_home):
    before = len(_votes(app_home))
    for forged in ("", "0123456789abcdef", "1 OR 1=1"):
        with pytest.raises(AppError, match="not issued by this server"):
            client.predict(forged, "a", api_name="/arena_submit_vote")
    *_, battle_id = client.predict(["base", "base:embedded"], "Name a planet.", 8, 0, -1, 0, api_name="/arena_battle")
    with pytest.raises(AppError, match="winner 'left'"):
        client.predict(battle_id, "left", api_name="/arena_submit_vote")
    vote_id = client.predict(battle_id, "tie", api_name="/arena_submit_vote")
    with pytest.raises(AppError, match=f"already has its vote \\(#{vote_id}\\)"):
        client.predict(battle_id, "a", api_name="/arena_submit_vote")
    rows = _votes(app_home)
    assert len(rows) == before + 1 and rows[-1]["id"] == vote_id and rows[-1]["winner"] == "tie"
    issued = db.rows(app_home / "lab.db", "SELECT * FROM battles WHERE id = ?", (battle_id,))[0]
    assert {k: rows[-1][k] for k in ("question", "system_a", "system_b", "answer_a", "answer_b")} == {
        k: issued[k] for k in ("question", "system_a", "system_b", "answer_a", "answer_b")
    }  # the server's record of the battle, not anything the caller sent


def test_twenty_clients_voting_at_once_lose_no_vote_and_double_none(app_url, app_home):
    from gradio_client import Client

    before = len(_votes(app_home))
    home = app_home / "lab.db"
    issued = [battles.start_battle(home, f"load {i}?", "x", "y") for i in range(20)]
    shared = battles.start_battle(home, "shared?", "x", "y")
    for bid in [*issued, shared]:
        battles.finish_battle(home, bid, "ans a", "ans b")
    clients = [Client(app_url, verbose=False, httpx_kwargs={"timeout": 120}) for _ in range(20)]  # a busy CPU

    def vote(i: int) -> tuple[int, str]:
        own = clients[i].predict(issued[i], battles.WINNERS[i % 4], api_name="/arena_submit_vote")
        try:
            return own, str(clients[i].predict(shared, "a", api_name="/arena_submit_vote"))
        except AppError as exc:
            return own, str(exc)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(vote, range(20)))
    rows = _votes(app_home)
    assert len({own for own, _ in results}) == 20 and len(rows) == before + 21
    assert sum("already has its vote" in shared for _, shared in results) == 19  # the shared battle: one vote
    assert {r["question"] for r in rows} >= {f"load {i}?" for i in range(20)} | {"shared?"}
    board = client_board(app_url)
    assert "blind votes" in board[0]


def client_board(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False).predict(api_name="/arena_leaderboard")


def _open_arena(page, sub: str):
    page.get_by_role("tab", name="Arena").click()
    page.get_by_role("tab", name=sub).click()


def test_browser_small_batch_evaluation(page, shot):
    _open_arena(page, "Batch evaluation")
    ev = page.locator("#arena-eval")
    assert ev.locator("#arena-eval-questions").is_hidden() and ev.locator("#arena-eval-summary").is_hidden()
    assert ev.get_by_text("No results yet").is_visible()  # no dummy headers before there is anything to show
    contestants = ev.locator("#arena-eval-pick .token").count()
    ev.get_by_label("Only the first N questions").fill("3")
    ev.get_by_text("Generation settings").click()
    ev.get_by_label("number input for Max new tokens").fill("8")
    ev.get_by_role("button", name="Run evaluation").click()
    ev.get_by_text(f"of {3 * contestants} answers").first.wait_for()  # questions x contestants, not 0/1
    page.get_by_text("finished:").wait_for(timeout=600_000)  # a shared, busy CPU
    assert ev.get_by_text("Most correct answers:").is_visible()
    table = ev.locator("#arena-eval-questions")
    table.get_by_role("gridcell", name="RAG (rag:sample)").first.wait_for()  # filled, by friendly name with the id
    assert ev.locator("#arena-eval-summary").is_visible()
    assert ev.get_by_text("Questions: the sample domain's held-out questions").is_visible()  # says which were used
    shot(page, "arena-eval")
    for box in (table, ev.locator("#arena-eval-summary")):
        wide = box.evaluate(  # a scrolling container wider than its box, or a cell whose text is cut off
            "el => [...el.querySelectorAll('*')].filter(n => n.scrollWidth > n.clientWidth + 2 && "
            "(['auto', 'scroll'].includes(getComputedStyle(n).overflowX) || n.innerText.trim()))"
            ".map(n => `${n.tagName}.${n.className} ${n.scrollWidth}>${n.clientWidth}: ${n.innerText.slice(0, 40)}`)"
        )
        assert wide == []  # every column wraps instead of scrolling sideways or being cut off at the right


def test_browser_leaderboard_explains_the_rating_and_is_there_when_opened(page, shot):
    _open_arena(page, "Leaderboard")
    board = page.locator("#arena-leaderboard")
    assert board.get_by_text("1000 is the average").is_visible() and board.get_by_text("bootstrap").is_visible()
    board.get_by_text(re.compile(r"No blind votes yet|\d+ blind votes?;")).first.wait_for(timeout=30_000)  # no Refresh
    shot(page, "arena-leaderboard")


def test_browser_a_catalog_model_joins_the_contestant_pickers(page, shot):
    """The Arena's model picker adds a catalog model (with its GPU estimate) as a `base:MODEL` contestant."""
    import re

    _open_arena(page, "Side by side")
    page.locator("#arena-add-model input").click()
    option = page.get_by_role("option", name=re.compile(r"Qwen2\.5-0\.5B-Instruct · answering ~[\d.]+ GB"))
    option.click()
    page.locator("#arena-side-pick input").click()
    page.get_by_role("option", name="base:Qwen/Qwen2.5-0.5B-Instruct").wait_for()
    shot(page, "arena-add-model")
    page.keyboard.press("Escape")
    _open_arena(page, "Blind battle")
    page.locator("#battle-pool input").click()
    page.get_by_role("option", name="base:Qwen/Qwen2.5-0.5B-Instruct").wait_for()  # every picker, not just one
