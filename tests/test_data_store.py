"""Saved datasets: seeded split, atomic save, nothing written for bad input, existing datasets intact,
load_split / dataset_hash for training, and the sample domain install."""

from __future__ import annotations

import json

import pytest

from lab.config import DataConfig
from lab.data import (
    DataError,
    dataset_hash,
    dataset_meta,
    ensure_sample_domain,
    list_datasets,
    load_split,
    save_dataset,
    split_examples,
)
from lab.workspace import WorkspaceError


def example(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}


@pytest.fixture
def chat_file(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(example(i)) for i in range(40)) + "\n", encoding="utf-8")
    return path


def staging_left(ws) -> list[str]:
    return [p.name for kind in ("datasets", "corpora") for p in (ws.root / kind).iterdir() if p.name.startswith(".")]


def test_split_is_seeded_disjoint_and_keeps_duplicates_together():
    examples = [example(i) for i in range(50)] + [example(3)] * 4
    train, val = split_examples(examples, 0.2, seed=7)
    assert (train, val) == split_examples(examples, 0.2, seed=7)
    assert split_examples(examples, 0.2, seed=8) != (train, val)
    assert len(train) + len(val) == 54 and len(val) in (10, 14)
    keys = {json.dumps(e) for e in train}
    assert not keys & {json.dumps(e) for e in val}
    assert split_examples(examples[:1], 0.2, 1) == (examples[:1], [])
    assert len(split_examples(examples[:2], 0.1, 1)[1]) == 1


def test_save_and_load_a_dataset(ws, chat_file):
    meta = save_dataset(ws, "mine", chat_file, DataConfig(val_fraction=0.25, seed=3))
    folder = ws.dir("datasets", "mine")
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "train.jsonl", "val.jsonl"]
    assert meta["counts"] == {"train": 30, "val": 10} and meta["seed"] == 3 and meta["source"] == "chat.jsonl"
    train, val = load_split(ws, "mine"), load_split(ws, "mine", "val")
    assert len(train) == 30 and len(val) == 10
    assert sorted(e["messages"][0]["content"] for e in train + val) == sorted(f"q{i}" for i in range(40))
    assert dataset_hash(ws, "mine") == meta["data_hash"] == dataset_meta(ws, "mine")["data_hash"]
    assert [m["name"] for m in list_datasets(ws)] == ["mine"]


def test_load_split_from_a_path_validates_and_normalises(ws, chat_file, tmp_path):
    assert load_split(ws, str(chat_file)) == [example(i) for i in range(40)]
    assert load_split(ws, chat_file, "val") == []
    assert len(dataset_hash(ws, chat_file)) == 64
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1"):
        load_split(ws, bad)
    with pytest.raises(DataError, match="no dataset named 'nope'"):
        load_split(ws, "nope")
    with pytest.raises(DataError, match="split"):
        load_split(ws, chat_file, "test")


def test_bad_input_writes_nothing_and_keeps_existing_datasets(ws, chat_file, tmp_path):
    save_dataset(ws, "keep", chat_file)
    before = (ws.dir("datasets", "keep") / "train.jsonl").read_bytes()
    cases = {
        "garbage.jsonl": bytes(range(256)) * 8,
        "latin.jsonl": '{"messages": [{"role": "user", "content": "f\xfcr"}]}'.encode("latin-1"),
        "empty.jsonl": b"",
        "cols.csv": b"foo,bar\n1,2\n",
    }
    for name, raw in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(DataError, match=name):
            save_dataset(ws, "keep", path, overwrite=True)
        with pytest.raises(DataError):
            save_dataset(ws, "fresh", path)
    big = tmp_path / "big.jsonl"
    big.write_bytes(chat_file.read_bytes() * 50)
    with pytest.raises(DataError, match="over the 0.01 MB limit"):
        save_dataset(ws, "keep", big, DataConfig(max_upload_mb=0.01), overwrite=True)
    assert ws.list("datasets") == ["keep"] and staging_left(ws) == []
    assert (ws.dir("datasets", "keep") / "train.jsonl").read_bytes() == before


def test_existing_name_and_bad_name_are_refused_before_any_work(ws, chat_file):
    save_dataset(ws, "one", chat_file)
    with pytest.raises(WorkspaceError, match="already exists"):
        save_dataset(ws, "one", chat_file)
    with pytest.raises(WorkspaceError, match="not usable"):
        save_dataset(ws, "../escape", chat_file)
    meta = save_dataset(ws, "one", chat_file, DataConfig(seed=9), overwrite=True)
    assert dataset_meta(ws, "one")["seed"] == 9 == meta["seed"]


def test_failure_while_writing_leaves_the_old_dataset(ws, chat_file, monkeypatch):
    save_dataset(ws, "keep", chat_file)
    from lab.data import store

    def boom(path, examples):
        raise OSError("disk full")

    monkeypatch.setattr(store, "_write_jsonl", boom)
    with pytest.raises(OSError):
        save_dataset(ws, "keep", chat_file, overwrite=True)
    assert len(load_split(ws, "keep")) == 36 and staging_left(ws) == []


def test_ensure_sample_domain_is_idempotent(ws):
    ensure_sample_domain(ws)
    meta = dataset_meta(ws, "sample")
    assert meta["counts"]["train"] > meta["counts"]["val"] > 0
    docs = sorted(p.name for p in ws.dir("corpora", "sample").iterdir())
    assert len(docs) >= 15 and all(d.endswith(".md") for d in docs)
    ensure_sample_domain(ws)
    assert dataset_meta(ws, "sample") == meta


def test_the_sample_dataset_installs_on_first_use_outside_the_app(ws):
    """`python -m lab train --data sample` on a fresh workspace (no app launched) finds the shipped sample."""
    assert "sample" not in ws.list("datasets")
    rows = load_split(ws, "sample", "train")
    assert len(rows) == dataset_meta(ws, "sample")["counts"]["train"] > 0
    with pytest.raises(DataError, match="no dataset named 'other'"):
        load_split(ws, "other", "train")
