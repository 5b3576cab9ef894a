"""The Data tab's fields for the new formats, through the launched app's API: a saved dataset folder with its
split instead of an upload, and placeholders filled before validating and saving. The new fields come last, so
callers that pass only the older ones keep working (tests/test_ui_data.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from lab.workspace import Workspace

IDENTITY = Path(__file__).parent / "fixtures" / "formats" / "identity.json"
SETTINGS = ("auto", "", "", "", "embedded", 1024)


@pytest.mark.integration
def test_saved_folder_and_split_through_the_api(client, tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [
        {"conversations": [{"from": "human", "value": f"question {i}"}, {"from": "gpt", "value": f"answer {i}"}]}
        for i in range(12)
    ]
    folder = tmp_path / "sharegpt-saved"
    DatasetDict({"train": Dataset.from_list(rows), "dev": Dataset.from_list(rows[:3])}).save_to_disk(str(folder))
    status, _e, _s, _p, report, preview = client.predict(
        None, *SETTINGS, str(folder), "dev", "", api_name="/data_validate"
    )
    assert report["valid"] and report["records"] == 3 and report["source"] == "sharegpt-saved [dev]"
    assert "sharegpt format" in status and "question 0" in preview
    status, *_ = client.predict(None, *SETTINGS, str(folder), "nope", "", api_name="/data_validate")
    assert "no split 'nope'" in status and "train, dev" in status
    status, *_ = client.predict(None, *SETTINGS, "", "train", "", api_name="/data_validate")
    assert "saved dataset folder or hub dataset id" in status


@pytest.mark.integration
def test_fill_field_fills_placeholders_before_validating_and_saving(client, app_home):
    from gradio_client import handle_file

    ws = Workspace.open(app_home)
    source = handle_file(str(IDENTITY))
    report = client.predict(source, *SETTINGS, "", "train", "", api_name="/data_validate")[4]
    assert [w["kind"] for w in report["warnings"]][0] == "placeholders"
    fill = "name=ExpertLab, author=Lab team"
    report = client.predict(source, *SETTINGS, "", "train", fill, api_name="/data_validate")[4]
    assert "placeholders" not in [w["kind"] for w in report["warnings"]]
    status, *_ = client.predict(source, *SETTINGS, "", "train", "name", api_name="/data_validate")
    assert "'name'" in status and "name=value" in status
    name = f"identity-{uuid.uuid4().hex[:6]}"
    saved, _table = client.predict(source, *SETTINGS, name, 0.0, 0, False, "", "train", fill, api_name="/data_save")
    assert "5 train / 0 validation" in saved
    text = (ws.dir("datasets", name) / "train.jsonl").read_text(encoding="utf-8")
    assert "{{" not in text and "ExpertLab" in text and json.loads(text.splitlines()[0])["messages"]
