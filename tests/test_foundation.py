"""Config validation, the workspace's atomic saves and names, and the SQLite layer."""

from __future__ import annotations

import threading

import pytest

from lab import db
from lab.config import ConfigError, GenConfig, RagConfig, TrainConfig
from lab.workspace import Workspace, WorkspaceError, check_name, slugify


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (TrainConfig, "rank", 0),
        (TrainConfig, "learning_rate", -1.0),
        (TrainConfig, "method", "full"),
        (RagConfig, "overlap", 300),
        (GenConfig, "max_new_tokens", 0),
    ],
)
def test_invalid_settings_name_the_field_and_value(cls, field, value):
    with pytest.raises(ConfigError) as err:
        cls(**{field: value})
    assert f"{field}={value!r}" in str(err.value)


def test_config_round_trips_through_json_and_yaml(tmp_path):
    cfg = TrainConfig(name="r1", rank=8, alpha=16, max_steps=5)
    for suffix in (".json", ".yaml"):
        path = cfg.save(tmp_path / f"c{suffix}")
        assert TrainConfig.load(path) == cfg


def test_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_dict({"rnak": 3})


def test_names_are_checked():
    assert check_name("my-run_1.0") == "my-run_1.0"
    for bad in ("", "../etc", "a/b", ".hidden", "x" * 65):
        with pytest.raises(WorkspaceError):
            check_name(bad)
    assert slugify("My Data (v2).jsonl") == "My-Data-v2"


def test_atomic_dir_keeps_old_item_on_failure(tmp_path):
    ws = Workspace.open(tmp_path)
    with ws.atomic_dir("datasets", "d1") as stage:
        (stage / "train.jsonl").write_text("old")
    with pytest.raises(RuntimeError), ws.atomic_dir("datasets", "d1", overwrite=True) as stage:
        (stage / "train.jsonl").write_text("half")
        raise RuntimeError("boom")
    assert (ws.dir("datasets", "d1") / "train.jsonl").read_text() == "old"
    assert ws.list("datasets") == ["d1"]
    assert not list((ws.root / "datasets").glob(".*"))


def test_atomic_dir_refuses_to_overwrite_by_default(tmp_path):
    ws = Workspace.open(tmp_path)
    with ws.atomic_dir("corpora", "c"):
        pass
    with pytest.raises(WorkspaceError, match="already exists"), ws.atomic_dir("corpora", "c"):
        pass


def test_sqlite_concurrent_writers_lose_nothing(tmp_path):
    path = db.init(tmp_path / "lab.db")

    def vote(i):
        with db.connect(path) as conn:
            conn.execute(
                "INSERT INTO votes (created_at, question, system_a, system_b, answer_a, answer_b, winner) "
                "VALUES (?, ?, 'a', 'b', 'x', 'y', 'tie')",
                (float(i), f"q{i}"),
            )

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.rows(path, "SELECT COUNT(*) AS n FROM votes")[0]["n"] == 20
