"""Datasets saved by `datasets`: a save_to_disk folder, parquet and jsonl shard folders, and a hub dataset id read
from datasets' own cache with the hub offline; the same validation, counts and line (row) errors as a file, in
the library, the CLI (`data validate PATH_OR_ID --split`) and on save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli import main
from lab.config import DataConfig
from lab.data import DataError, load_split, save_dataset, validate_file

GLAIVE = Path(__file__).parent / "fixtures" / "formats" / "glaive_tools.json"


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """A private datasets cache (local folders are converted into it) and the hub offline."""
    import datasets.config

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return cache


def _rows(good: int = 12, bad: bool = True) -> list[dict]:
    """Chat rows for a datasets.Dataset; the last one (row good+1) has no assistant message."""
    rows = [
        {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
        for i in range(good)
    ]
    return rows + ([{"messages": [{"role": "user", "content": "no answer"}]}] if bad else [])


def _glaive_rows() -> list[dict]:
    """The glaive fixture's three good conversations, with `tools` as a JSON string throughout (one type)."""
    rows = json.loads(GLAIVE.read_text(encoding="utf-8"))[:3]
    return [{**r, "tools": r["tools"] if isinstance(r["tools"], str) else json.dumps(r["tools"])} for r in rows]


def test_save_to_disk_folder_validates_with_row_numbers_as_lines(tmp_path):
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_list(_rows()), "test": Dataset.from_list(_rows(3, bad=False))}).save_to_disk(
        str(folder)
    )
    report = validate_file(folder)
    assert report.source == "saved [train]" and report.format == "chat" and report.records == 13
    assert [(e.line, e.kind) for e in report.errors] == [(13, "no_assistant_message")]
    assert len(report.examples) == 12
    test = validate_file(folder, DataConfig(split="test"))
    assert test.valid and test.records == 3
    with pytest.raises(DataError, match="no split 'validation'.*train, test"):
        validate_file(folder, DataConfig(split="validation"))


def test_single_dataset_folder_and_tool_records_keep_their_calls(tmp_path, ws):
    """Arrow gives every nested object every other's keys (None where missing): they are not errors."""
    from datasets import Dataset

    folder = tmp_path / "glaive-saved"
    Dataset.from_list(_glaive_rows()).save_to_disk(str(folder))
    report = validate_file(folder)
    assert report.valid and report.format == "sharegpt" and report.records == 3 and report.lines == [1, 2, 3]
    meta = save_dataset(ws, "glaive-disk", folder, DataConfig(val_fraction=0.0))
    assert meta["counts"] == {"train": 3, "val": 0} and meta["source"] == "glaive-saved [train]"
    first = next(e for e in load_split(ws, "glaive-disk") if e["messages"][0]["role"] == "system")
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert first["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"city": "Lisbon", "unit": "C"}


def test_chat_rows_with_optional_keys_through_arrow_are_not_errors(tmp_path):
    from datasets import Dataset

    rows = _rows(11, bad=False) + [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1}]}
    ]
    folder = tmp_path / "weights"
    Dataset.from_list(rows).save_to_disk(str(folder))
    report = validate_file(folder)
    assert report.valid and len(report.examples) == 12 and report.examples[-1]["messages"][1]["weight"] == 1


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_shard_folders_validate_by_split(tmp_path, kind):
    from datasets import Dataset

    folder = tmp_path / f"{kind}-shards"
    folder.mkdir()
    rows = _rows()
    shards = {"train-00000-of-00002": rows[:7], "train-00001-of-00002": rows[7:], "test": _rows(4, bad=False)}
    for stem, part in shards.items():
        target = str(folder / f"{stem}.{kind}")
        if kind == "parquet":
            Dataset.from_list(part).to_parquet(target)
        else:
            Dataset.from_list(part).to_json(target, lines=True)
    report = validate_file(folder)
    assert report.records == 13 and len(report.examples) == 12
    assert [(e.line, e.kind) for e in report.errors] == [(13, "no_assistant_message")]
    assert validate_file(folder, DataConfig(split="test")).valid


def _hub_cache(cache: Path, repo_id: str, rows: list[dict], tmp_path: Path) -> None:
    """A hub dataset as datasets caches it after a download: <cache>/<owner>___<name>/<config>/<version>/<hash>/,
    written by datasets' own json builder from local rows."""
    from datasets import Dataset
    from datasets.packaged_modules.json.json import Json

    source = tmp_path / "hub-rows.jsonl"
    Dataset.from_list(rows).to_json(str(source), lines=True)
    owner, name = repo_id.split("/")
    builder = Json(
        cache_dir=str(cache),
        data_files={"train": str(source)},
        dataset_name=name,
        config_name="default",
        config_id="default",
        hash="0123456789abcdef",
    )
    builder.download_and_prepare()
    (cache / name).rename(cache / f"{owner}___{name}")


def test_hub_id_is_read_from_the_datasets_cache_offline(tmp_path, datasets_cache, ws, capsys):
    _hub_cache(datasets_cache, "acme/tool-demo", _glaive_rows(), tmp_path)
    report = validate_file("acme/tool-demo")
    assert report.source == "acme/tool-demo [train]" and report.format == "sharegpt"
    assert report.valid and report.records == 3
    code = main(["data", "validate", "acme/tool-demo", "--split", "train", "--no-tokens", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["valid"] and out["records"] == 3 and out["source"] == "acme/tool-demo [train]"
    code = main(["data", "validate", "acme/tool-demo", "--split", "test", "--no-tokens"])
    assert code == 2 and "no split 'test'" in capsys.readouterr().err


def test_an_unknown_hub_id_offline_names_it_and_a_missing_file_stays_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="'nobody/nothing'.*datasets cache"):
        validate_file("nobody/nothing")
    with pytest.raises(DataError, match="no such file"):
        validate_file(str(tmp_path / "missing" / "train.jsonl"))


@pytest.mark.integration
def test_cli_import_of_a_saved_folder(tmp_path, ws, capsys):
    from datasets import Dataset

    folder = tmp_path / "clean"
    Dataset.from_list(_rows(bad=False)).save_to_disk(str(folder))
    code = main(["data", "import", str(folder), "--name", "from-disk", "--split", "train", "--val-fraction", "0.25"])
    assert code == 0 and "9 train / 3 val" in capsys.readouterr().out
