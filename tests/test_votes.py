"""Votes as training data: the Arena's blind votes exported as SFT chat JSONL and as preference pairs, with their
metadata, round-tripping through the data validator and the DPO pairs reader."""

from __future__ import annotations

import json

import pytest

from lab.arena import battles, votes
from lab.config import TrainConfig
from lab.training import prefs

# (question, system_a, system_b, answer_a, answer_b, winner)
BATTLES = [
    ("How long does the glue cure?", "ft:r1", "base", "It cures in 24 hours [1].", "Glue is sticky.", "a"),
    ("Which valve is red?", "base", "rag:docs", "No idea.", "The intake valve is red (source: v.md).", "b"),
    ("Who signs the permit?", "ft:r1", "rag:docs", "The site lead.", "The site lead signs it.", "tie"),
    ("What voltage is the bus?", "base", "ft:r1", "Purple.", "Banana.", "both_bad"),
    ("How long does the glue cure?", "ft:r2", "rag:x", "It cures in 24 hours [1].", "Glue is sticky.", "a"),
    ("Is the door alarmed?", "rag:docs", "base", "Yes, it is.", "Yes, it is.", "a"),
]


def cast(ws, rows=BATTLES):
    """Each battle issued, answered and voted through lab.arena.battles (the Arena's own path)."""
    for question, a, b, answer_a, answer_b, winner in rows:
        bid = battles.start_battle(ws.db_path, question, a, b, {"max_new_tokens": 8})
        battles.finish_battle(ws.db_path, bid, answer_a, answer_b)
        battles.vote(ws.db_path, bid, winner)


def lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_votes_export_winning_answers_and_pairs_with_counts_and_metadata(ws, tmp_path):
    cast(ws)
    done = votes.export(ws, tmp_path / "out", now=0)
    pairs = lines(done.pairs)
    assert pairs == [
        {"prompt": "How long does the glue cure?", "chosen": "It cures in 24 hours.", "rejected": "Glue is sticky."},
        {"prompt": "Which valve is red?", "chosen": "The intake valve is red.", "rejected": "No idea."},
    ]  # the passage marks removed; the repeat (same texts, other contestants) written once
    sft = lines(done.sft)
    assert [r["messages"][1]["content"] for r in sft] == ["It cures in 24 hours.", "The intake valve is red."]
    meta = json.loads(votes.meta_path(done.pairs).read_text())
    assert meta["records"] == 2 and meta["votes"] == 6 and meta["exported_at"] == "1970-01-01T00:00:00Z"
    assert meta["left_out"] == {"tie": 1, "both_bad": 1, "identical": 1, "empty": 0, "not_blind": 0, "repeats": 1}
    assert meta["contestants"] == ["base", "ft:r1", "ft:r2", "rag:docs", "rag:x"]
    assert meta["wins"] == {"ft:r1": 1, "rag:docs": 1}
    assert meta["question_set"] == ["How long does the glue cure?", "Which valve is red?"]
    assert json.loads(votes.meta_path(done.sft).read_text())["kind"] == "sft"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in done.files)


def test_the_export_round_trips_through_the_validator_and_the_pairs_reader(ws, tmp_path):
    from lab.data import validate_file

    cast(ws)
    done = votes.export(ws, tmp_path / "out")
    report = validate_file(done.sft)
    assert report.valid and len(report.examples) == 2 and not report.errors
    assert report.examples[0]["messages"][0] == {"role": "user", "content": "How long does the glue cure?"}
    read = prefs.read_pairs(done.pairs)
    assert [p["chosen"][0]["content"] for p in read] == ["It cures in 24 hours.", "The intake valve is red."]
    assert read[0]["prompt"] == [{"role": "user", "content": "How long does the glue cure?"}]


def test_a_vote_that_was_not_blind_is_left_out_and_counted(ws, tmp_path):
    q = ("Which valve is red?", "base", "rag:docs", "No idea.", "The intake valve is red.", "b")
    cast(ws, [q, q])  # the second battle repeats an answer the first vote revealed: stored as not blind
    done = votes.export(ws, tmp_path / "out")
    assert done.counts["pairs"] == 1 and done.counts["left_not_blind"] == 1


def test_votes_export_cli_writes_the_files_and_the_summary(ws, tmp_path, capsys):
    from lab.cli import main

    cast(ws)
    assert main(["votes", "export", "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "6 votes: 2 preference pairs, 2 winning answers; left out: tie 1, both bad 1, identical 1, repeats 1" in out
    assert (tmp_path / "cli" / votes.PREFS_FILE).is_file() and (tmp_path / "cli" / "votes-sft.meta.json").is_file()


def test_default_export_goes_to_the_served_downloads_folder(ws):
    cast(ws)
    done = votes.export(ws)
    assert done.folder.parent == ws.downloads / "votes" and done.pairs.is_file()


def test_training_on_the_votes_uses_a_fresh_export_and_no_votes_is_a_clear_error(ws):
    config = TrainConfig(method="dpo", prefs=prefs.VOTES)
    with pytest.raises(prefs.PrefsError, match="vote A or B"):
        votes.for_training(ws, config)
    cast(ws)
    resolved = votes.for_training(ws, config)
    assert resolved.prefs.endswith(votes.PREFS_FILE) and len(prefs.read_pairs(resolved.prefs)) == 2
    assert votes.for_training(ws, TrainConfig(dataset="x")).prefs == ""  # not dpo: unchanged


def test_the_arena_export_button_offers_the_four_files(ws):
    from lab.ui import arena_votes
    from lab.ui.roles import ServerSettings

    class Request:  # a local lab without a login: its one user may export
        username = None

    cast(ws)
    summary, files = arena_votes.export(ws, ServerSettings.from_env({}), Request())
    assert summary.startswith("6 votes: 2 preference pairs, 2 winning answers")
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == sorted(
        ["votes-sft.jsonl", "votes-prefs.jsonl", "votes-sft.meta.json", "votes-prefs.meta.json"]
    )
    assert all(f.startswith(str(ws.downloads)) for f in files)  # served from the downloads folder only
