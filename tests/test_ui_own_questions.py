"""The Start tab on the user's own data without an evaluation file: Run never compares it on the sample's
questions; the tab builds the own-data set (held-out, generated, unanswerable), shows it in an editable table for
review with a download, takes the edited table or a re-uploaded file, and says which questions it holds.

The own data here is a fictional ferry line's notes, unrelated to the sample's wind turbines."""

from __future__ import annotations

import json
import uuid

from lab.data.evalset import read_evalset, sample_evalset_path
from lab.ui import start_tab

DOCS = {
    "harbour.md": "# Harbour\n\nThe ferry Nordlys leaves pier 3 at 07:40 every weekday.",
    "engine.md": "# Engine\n\nThe main engine is serviced every 1,200 running hours by the crew chief.",
    "tickets.md": "# Tickets\n\nA single adult ticket costs 38 kroner. A bicycle costs 12 kroner extra.",
}


def _own_data(ws, tmp_path, tag: str) -> tuple[str, str]:
    from lab.corpus import save_corpus
    from lab.data import save_dataset

    folder = tmp_path / f"docs-{tag}"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    save_corpus(ws, f"ferry-{tag}", sorted(folder.iterdir()))
    turns = [(f"Which berth does boat {i} use?", f"Boat {i} uses berth {i + 10}.") for i in range(20)]
    chats = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in turns]
    path = tmp_path / f"crew-{tag}.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in chats), encoding="utf-8")
    save_dataset(ws, f"crew-{tag}", path)
    return f"crew-{tag}", f"ferry-{tag}"


def _value(out):
    """A component's value from a client result: an update's value, a file's path."""
    while isinstance(out, dict) and ("value" in out or "path" in out):
        out = out.get("value", out.get("path"))
    return out


def test_run_on_own_data_without_a_file_does_not_start_on_the_sample_s_questions(ws, tmp_path):
    dataset, corpus = _own_data(ws, tmp_path, "a")
    view = start_tab.RunView("progress", "button", "armed", [], "switch")
    for data, docs in ((dataset, corpus), ("sample", corpus), (dataset, "sample")):
        out = list(start_tab._on_run(ws, None, None, data, docs, "", 0, ["base", "RAG"], None, view=view))
        assert (
            len(out) == 1 and "needs its own questions" in out[0]["progress"] and "Run the whole" in out[0]["progress"]
        )
    assert not ws.list("evals") and not ws.list("runs") and not ws.list("indexes")  # nothing started


def test_the_review_table_round_trips_and_names_a_bad_row():
    from lab.data.evalset import EvalItem, EvalSetError
    from lab.ui import evalset_view

    items = [EvalItem("crew-1", "Which berth does boat 1 use?", "Boat 1 uses berth 11.", group="held-out"),
             EvalItem("gen-1", "Which pier does Nordlys leave from?", "pier 3", [], "harbour.md", True, "documents"),
             EvalItem("gen-u1", "How often is the engine serviced?", "I don't know", [], None, False, "unanswerable",
                      "engine.md")]  # fmt: skip
    table = evalset_view.review_table(items)
    assert table["headers"] == list(evalset_view.COLUMNS)
    assert evalset_view.items_from_table(table) == items
    edited = [list(r) for r in table["data"]]
    edited[1][3] = "Pier 3"  # an edited answer
    edited[0][2] = ""  # a cleared question deletes its row
    edited[2][4] = "false"  # a checkbox sent as text
    back = evalset_view.items_from_table(edited)
    assert [it.id for it in back] == ["gen-1", "gen-u1"] and back[0].answer == "Pier 3" and not back[1].answerable
    edited[1][3] = ""
    try:
        evalset_view.items_from_table(edited)
    except EvalSetError as exc:
        assert "line 1" in str(exc) and "'answer' must be a non-empty string" in str(exc)
    else:
        raise AssertionError("an empty answer was accepted")
    note = evalset_view.review_note(items, "embedded", dropped=2)
    assert "3 questions" in note and "1 held-out, 1 documents, 1 unanswerable" in note and "engine.md" in note
    assert "rough" in note and "2 generated questions dropped" in note


def test_own_data_without_a_file_builds_a_set_for_review_never_the_sample_s(client, app_home, tmp_path):
    from gradio_client import handle_file

    from lab.workspace import Workspace

    ws = Workspace.open(app_home)
    dataset, corpus = _own_data(ws, tmp_path, uuid.uuid4().hex[:6])
    client.predict("sample", "sample", api_name="/start_pickers")  # the pickers now offer the new data
    progress, note, review, download, qa = client.predict(dataset, corpus, 2, api_name="/start_own_build")
    rows = _value(review)["data"]
    assert rows and "rough" in note and "held-out" in note
    sample = {it.question for it in read_evalset(sample_evalset_path(ws))}
    built = read_evalset(_value(download))
    assert read_evalset(_value(qa)) == built  # the evaluation-file slot now holds the built set
    assert [it.question for it in built] == [r[2] for r in rows] and not sample & {it.question for it in built}
    assert {it.group for it in built} <= {"held-out", "documents", "unanswerable"}
    assert sum(it.group == "held-out" for it in built) >= 1
    for it in built:
        if it.group == "documents":
            assert len(it.answer.split()) <= 8 and it.answer.lower() in DOCS[it.source].lower()
    progress, *_ = client.predict(dataset, corpus, None, 0, ["base"], api_name="/start_run")
    assert "needs its own questions" in progress  # Run without a file never starts on the sample's questions
    from lab.ui import evalset_view

    rows[0][3] = "Berth 10, edited"  # the reviewer's edit, taken by "Use the edited questions"
    _, note, review, download, qa = client.predict({"headers": list(evalset_view.COLUMNS), "data": rows},
                                                   api_name="/start_own_use")  # fmt: skip
    used = read_evalset(_value(qa))
    assert used[0].answer == "Berth 10, edited" and f"{len(rows)} questions" in note
    again = tmp_path / "edited-again.jsonl"  # a downloaded file edited outside the app and uploaded again
    again.write_text("".join(json.dumps(it.to_dict()) + "\n" for it in used[:2]), encoding="utf-8")
    _, note, review, *_ = client.predict(handle_file(str(again)), api_name="/start_own_upload")
    assert "2 questions" in note and "will be asked" in note
