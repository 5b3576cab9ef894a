"""Classroom: with LAB_AUTH, only the teacher account may export and reset the votes and delete runs, evaluations
and indexes (the handlers refuse everyone else, and the panel is hidden from them); and one person's battle is
theirs alone (per-browser state: another session cannot vote on it)."""

from __future__ import annotations

import csv
import re

import pytest

from lab.arena import battles, evaluation
from lab.workspace import Workspace


def _votes(ws, n: int) -> None:
    for i in range(n):
        bid = battles.start_battle(ws.db_path, f"question {i}?", "base", "rag:sample")
        battles.finish_battle(ws.db_path, bid, f"answer a{i}", f"answer b{i}")
        battles.vote(ws.db_path, bid, "a")


@pytest.fixture()
def classroom(tmp_path, monkeypatch, cache):
    from gradio_client import Client

    from lab.ui.app import build_app, launch

    users = tmp_path / "class.txt"
    users.write_text("teach:t-pw\nstu:s-pw\n")
    monkeypatch.setenv("LAB_AUTH", str(users))
    monkeypatch.delenv("LAB_TEACHERS", raising=False)
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    ws = Workspace.open(tmp_path / "home")
    _votes(ws, 3)
    result = {"status": "finished", "systems": [], "questions": []}
    eval_id = evaluation.save_evaluation(ws, result, "qa.jsonl", "eval-to-delete")
    demo = build_app(ws, cache)
    launch(demo, ws, server_port=None, prevent_thread_lock=True, quiet=True)
    url = demo.local_url.rstrip("/")
    try:
        teacher = Client(url, auth=("teach", "t-pw"), verbose=False)
        student = Client(url, auth=("stu", "s-pw"), verbose=False)
        yield ws, teacher, student, eval_id
    finally:
        demo.close()


def test_only_the_teacher_exports_resets_and_deletes(classroom):
    ws, teacher, student, eval_id = classroom
    from types import SimpleNamespace

    from lab.ui import teacher_tab
    from lab.ui.roles import ServerSettings

    settings = ServerSettings.from_env()  # the classroom's LAB_AUTH
    assert teacher_tab.visible_for(settings, SimpleNamespace(username="stu")).visible is False  # the page-load event
    assert teacher_tab.visible_for(settings, SimpleNamespace(username="teach")).visible is True

    file, status = student.predict(api_name="/teacher_export_votes")
    assert file is None and "only a teacher account" in status
    status, _ = student.predict(True, api_name="/teacher_reset_votes")
    assert "only a teacher account" in status and len(battles.load_votes(ws.db_path)) == 3
    status, _ = student.predict("evaluation", eval_id, api_name="/teacher_delete")
    assert "only a teacher account" in status and ws.exists("evals", eval_id)
    status, _ = student.predict("sample", api_name="/rag_delete")
    assert "only a teacher account" in status

    file, status = teacher.predict(api_name="/teacher_export_votes")
    with open(file, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["question"] for r in rows] == ["question 0?", "question 1?", "question 2?"] and "3 votes" in status
    status, _ = teacher.predict(False, api_name="/teacher_reset_votes")
    assert "confirmation" in status and len(battles.load_votes(ws.db_path)) == 3  # not without the tick
    status, _ = teacher.predict(True, api_name="/teacher_reset_votes")
    assert "Deleted 3 votes" in status and battles.load_votes(ws.db_path) == []
    status, _ = teacher.predict("evaluation", eval_id, api_name="/teacher_delete")
    assert "Deleted evaluation" in status and not ws.exists("evals", eval_id)
    assert eval_id not in {r["id"] for r in evaluation.list_evaluations(ws)}


def test_a_battle_belongs_to_the_session_that_started_it(client):
    from gradio_client import Client

    other = Client(client.src, verbose=False)
    outputs = client.predict(["base", "rag:sample"], "What does the manual say about safety?", 8, 0.0, -1.0, 0,
                             api_name="/arena_battle")  # fmt: skip
    assert any(isinstance(o, str) and len(o) == 16 for o in outputs)  # the hidden battle id came back
    refused = other.predict(api_name="/arena_vote_a")
    assert "No finished battle" in refused[0]  # the other browser has no battle of its own
    saved = client.predict(api_name="/arena_vote_a")
    assert "saved" in saved[0]


def test_teachers_are_named_or_the_first_account_and_everyone_without_a_login():
    from types import SimpleNamespace

    from lab.ui.roles import NotAllowed, ServerSettings

    assert ServerSettings.from_env({}).is_teacher(SimpleNamespace(username=None))  # one user on localhost
    settings = ServerSettings.from_env({"LAB_AUTH": "ann:1", "LAB_TEACHERS": "bea, cy"})
    assert settings.teachers() == {"bea", "cy"}
    assert not settings.is_teacher(SimpleNamespace(username="ann")) and settings.is_teacher(
        SimpleNamespace(username="cy")
    )
    settings = ServerSettings.from_env({"LAB_AUTH": "ann:1"})
    assert settings.teachers() == {"ann"}
    with pytest.raises(NotAllowed, match="only a teacher account may reset"):
        settings.require_teacher(SimpleNamespace(username="zed"), "reset the votes")


@pytest.mark.parametrize(
    "env", [{"SPACE_ID": "someone/expertlab"}, {"GRADIO_SERVER_NAME": "0.0.0.0"}, {"GRADIO_SHARE": "True"}]
)
def test_a_lab_others_can_reach_without_a_login_has_no_teacher(env):
    from types import SimpleNamespace

    from lab.ui.roles import NotAllowed, ServerSettings

    visitor = SimpleNamespace(username=None)
    assert ServerSettings.from_env({}).is_teacher(visitor)  # this computer only: its one user
    settings = ServerSettings.from_env(env)
    assert settings.public_without_login()
    assert not settings.is_teacher(visitor)  # a Space visitor may not read others' votes or delete shared work
    with pytest.raises(NotAllowed, match="nobody may export the votes .* set LAB_AUTH"):
        settings.require_teacher(visitor, "export the votes")
    with_login = ServerSettings.from_env({**env, "LAB_AUTH": "ann:1"})  # a login brings the teacher account back
    assert with_login.is_teacher(SimpleNamespace(username="ann")) and not with_login.public_without_login()


def test_host_flag_wins_over_the_environment_and_a_bad_login_or_port_is_named():
    from lab.errors import LabError
    from lab.ui.roles import ServerSettings

    settings = ServerSettings.from_env({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7000"}, host="::1")
    assert (settings.host, settings.port, settings.public_without_login()) == ("::1", 7000, False)
    assert ServerSettings.from_env({}, port=8000).port == 8000
    with pytest.raises(LabError, match="LAB_AUTH"):
        ServerSettings.from_env({"LAB_AUTH": "no-colon"})
    with pytest.raises(LabError, match="GRADIO_SERVER_PORT"):
        ServerSettings.from_env({"GRADIO_SERVER_PORT": "http"})


def test_browser_teacher_tab_exports_the_votes(page, shot):
    """Without LAB_AUTH everyone is the teacher: the tab shows its controls and an export gives a CSV file."""
    page.get_by_role("tab", name="Arena").click()
    page.get_by_role("tab", name="Teacher").click()
    panel = page.locator("#arena-teacher")
    assert panel.get_by_text("Teacher controls").is_visible()
    panel.get_by_role("button", name="Export all votes (CSV)").click()
    panel.get_by_text("Exported").wait_for()
    from playwright.sync_api import expect

    expect(panel).to_contain_text(re.compile(r"votes-\d{8}-\d{6}\s*\.csv"))  # name, extension: two spans
    assert panel.get_by_role("button", name="Reset votes").is_visible()
    shot(page, "arena-teacher")


def _notes(demo) -> list[str]:
    """The public-lab notices the page shows."""
    return [
        b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "public-note" and b.visible is True
    ]


def test_a_public_lab_without_a_login_warns_that_uploads_are_shared(tmp_path):
    from lab.cache import ModelCache
    from lab.ui.app import PUBLIC_NOTE, build_app
    from lab.ui.roles import ServerSettings

    ws, cache = Workspace.open(tmp_path / "home"), ModelCache(tmp_path / "models")
    assert _notes(build_app(ws, cache, ServerSettings.from_env({}))) == []  # this computer only: nothing to warn
    space = ServerSettings.from_env({"SPACE_ID": "someone/expertlab"})
    assert _notes(build_app(ws, cache, space)) == [PUBLIC_NOTE]


def test_launch_with_a_share_link_from_python_shows_the_notice_and_has_no_teacher(tmp_path, monkeypatch):
    """Before: launch(share=True) served a public link while the page built earlier showed no notice."""
    from types import SimpleNamespace

    from lab.cache import ModelCache
    from lab.ui.app import PUBLIC_NOTE, build_app, launch

    for key in ("LAB_AUTH", "SPACE_ID", "GRADIO_SERVER_NAME", "GRADIO_SHARE"):
        monkeypatch.delenv(key, raising=False)
    ws = Workspace.open(tmp_path / "home")
    demo = build_app(ws, ModelCache(tmp_path / "models"))
    assert _notes(demo) == []
    served = {}
    monkeypatch.setattr(demo, "launch", lambda **kwargs: served.update(kwargs))  # no share link from a test
    launch(demo, ws, share=True)
    assert served["share"] is True and _notes(demo) == [PUBLIC_NOTE]
    assert not demo.lab_settings.is_teacher(SimpleNamespace(username=None))


def test_launch_on_a_public_address_from_python_serves_the_notice(tmp_path, monkeypatch):
    """The page's own config (what a browser renders) carries the notice when launch is given a public address."""
    import json
    import urllib.request

    from lab.cache import ModelCache
    from lab.ui.app import PUBLIC_NOTE, build_app, launch

    for key in ("LAB_AUTH", "SPACE_ID", "GRADIO_SERVER_NAME", "GRADIO_SHARE"):
        monkeypatch.delenv(key, raising=False)
    ws = Workspace.open(tmp_path / "home")
    demo = build_app(ws, ModelCache(tmp_path / "models"))
    with pytest.warns(UserWarning, match="without a login"):
        launch(demo, ws, server_name="0.0.0.0", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        port = demo.local_url.rstrip("/").rsplit(":", 1)[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as resp:
            config = json.load(resp)
        shown = [c["props"] for c in config["components"] if c["props"].get("elem_id") == "public-note"]
        assert [(p.get("value"), p.get("visible")) for p in shown] == [(PUBLIC_NOTE, True)]
    finally:
        demo.close()
