"""Live pickers: every dataset, corpus, index, run and contestant picker reads its choices when a page loads, when
its tab is opened and after the actions that change them, keeping the user's selection while it exists. The shared
helper (lab.ui.common.picker_update) on a temp workspace; the launched app through gradio_client (a corpus and a
dataset saved through the Data tab after the app started are offered by the RAG and Train pickers a newly loaded
page shows, without a restart or Refresh); and a real browser that saves a corpus in Data, opens the RAG tab and
finds it in the corpus picker (test-artifacts/live-pickers-rag.png)."""

from __future__ import annotations

import json
import shutil
import urllib.request
import uuid

import pytest

DOC = "# Pitch bearings\n\nThe pitch bearing grease is replaced every 12 months with 2 kg of EP2 grease.\n"


def _corpus(ws, name: str) -> None:
    from lab.corpus import save_corpus

    path = ws.root / f"{name}.md"
    path.write_text(DOC, encoding="utf-8")
    save_corpus(ws, name, [str(path)])


def test_the_helper_reads_the_workspace_now_and_keeps_a_selection_that_still_exists(ws):
    from lab.ui.common import Picker, picker_update

    corpora = Picker("corpora")
    assert picker_update(ws, corpora)["choices"] == []
    _corpus(ws, "manuals")
    update = picker_update(ws, corpora, "manuals")
    assert "manuals" in update["choices"] and update["value"] == "manuals"  # saved after the first read: offered
    assert picker_update(ws, corpora, "gone")["value"] is None  # a deleted choice is dropped
    assert picker_update(ws, Picker("corpora", typed=True), "/some/folder")["value"] == "/some/folder"
    first = Picker("corpora", default=lambda c: c[0])
    assert picker_update(ws, first, "gone")["value"] == "manuals"
    multi = picker_update(ws, Picker("corpora"), ["manuals", "gone"])
    assert multi["value"] == ["manuals"]  # a multi-picker keeps the picked items that still exist
    lead = picker_update(ws, Picker("indexes", lead=("",)), "")
    assert lead["choices"][0] == "" and "sample" in lead["choices"] and lead["value"] == ""


def test_the_side_by_side_default_follows_new_work(ws):
    from lab.config import TrainConfig
    from lab.data import ensure_sample_domain
    from lab.ui import arena_tab

    ensure_sample_domain(ws)
    assert arena_tab.side_update(ws, False, None, [])["value"] == ["base", "rag:sample"]  # a fresh workspace
    folder = ws.dir("runs", "tuned")
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    TrainConfig(name="tuned", dataset="x").save(folder / "config.json")
    fresh = arena_tab.side_update(ws, False, ["base"], [])
    assert fresh["value"][:3] == ["base", "rag:sample", "ft:tuned"]  # the new run is in the default pick
    kept = arena_tab.side_update(ws, True, ["ft:tuned"], ["base:some/model"])
    assert kept["value"] == ["ft:tuned"] and "base:some/model" in kept["choices"]


def _picker_a_new_page_shows(client, app_url, elem_label: str):
    """A picker (found by its label) as a page opened now shows it: its choices and value in the app's config,
    then whatever the page-load events put there (as the browser runs them)."""
    with urllib.request.urlopen(f"{app_url}/config", timeout=30) as resp:
        config = json.loads(resp.read())
    (picker,) = [c for c in config["components"] if c.get("props", {}).get("label") == elem_label]
    props = picker["props"]
    choices, value = [c[0] if isinstance(c, list) else c for c in props.get("choices", [])], props.get("value")
    for dep in config["dependencies"]:
        if any(event == "load" for _, event in dep["targets"]) and picker["id"] in dep["outputs"]:
            inputs = [_value(config, i) for i in dep["inputs"]]
            out = client.predict(*inputs, api_name=f"/{dep['api_name']}")
            out = out if len(dep["outputs"]) == 1 else out[dep["outputs"].index(picker["id"])]
            if isinstance(out, dict):
                choices = [c[0] if isinstance(c, list) else c for c in out.get("choices", choices)]
                value = out.get("value", value)
    return choices, value


def _value(config, component_id):
    (comp,) = [c for c in config["components"] if c["id"] == component_id]
    return comp.get("props", {}).get("value")


@pytest.fixture
def saved_corpus(client, app_home, tmp_path):
    """A corpus saved through the Data tab's API after the app started; removed afterwards."""
    from gradio_client import handle_file

    doc = tmp_path / "pitch.md"
    doc.write_text(DOC, encoding="utf-8")
    name = f"live-{uuid.uuid4().hex[:6]}"
    status, _ = client.predict([handle_file(str(doc))], name, False, api_name="/data_save_corpus")
    assert "1 documents" in status
    yield name
    shutil.rmtree(app_home / "corpora" / name, ignore_errors=True)


def test_a_corpus_saved_in_data_is_offered_by_the_rag_picker_of_a_new_page(client, app_url, saved_corpus):
    choices, _ = _picker_a_new_page_shows(client, app_url, "Corpus (saved name or folder path)")
    assert saved_corpus in choices


def test_opening_the_rag_tab_keeps_the_chosen_corpus_and_index(client, saved_corpus):
    corpus, index = client.predict(saved_corpus, "sample", api_name="/rag_refresh")
    assert corpus["value"] == saved_corpus and index["value"] == "sample"
    assert saved_corpus in [c[0] if isinstance(c, list) else c for c in corpus["choices"]]


@pytest.fixture
def saved_dataset(embedded_path, client, app_home, tmp_path):
    """A dataset saved through the Data tab's API after the app started; removed afterwards."""
    from gradio_client import handle_file

    good = tmp_path / "late.csv"
    good.write_text("question,answer\n" + "".join(f"q{i},a{i}\n" for i in range(10)), encoding="utf-8")
    name = f"late-{uuid.uuid4().hex[:6]}"
    saved, _ = client.predict(
        handle_file(str(good)), "auto", "", "", "", "embedded", 1024, name, 0.2, 0, False, api_name="/data_save"
    )
    assert "saved" in saved
    yield name
    shutil.rmtree(app_home / "datasets" / name, ignore_errors=True)


def test_a_dataset_saved_in_data_is_offered_by_the_train_picker_of_a_new_page(client, app_url, saved_dataset):
    choices, value = _picker_a_new_page_shows(client, app_url, "Dataset")
    assert saved_dataset in choices and value == "sample"  # offered; the default pick is unchanged


@pytest.mark.browser
def test_a_corpus_saved_in_data_appears_in_the_rag_picker(page, shot, app_home, tmp_path):
    doc = tmp_path / "grease.md"
    doc.write_text(DOC, encoding="utf-8")
    name = f"browser-{uuid.uuid4().hex[:6]}"
    try:
        page.get_by_text("Time on this machine").first.wait_for()  # the page's load events have answered
        page.get_by_role("tab", name="Data").click()
        page.get_by_text("Documents for RAG").first.wait_for()  # the Data tab is rendered before the upload
        page.get_by_label("Corpus name").fill(name)
        page.locator("[role=tabpanel]:visible input[type=file][multiple]").set_input_files(str(doc))
        page.get_by_text("grease.md").first.wait_for()
        page.get_by_role("button", name="Save corpus").click()
        page.get_by_text(f"{name}").first.wait_for()
        page.get_by_role("tab", name="RAG").click()
        picker = page.get_by_label("Corpus (saved name or folder path)")
        picker.click()
        option = page.get_by_role("option", name=name)
        option.wait_for(timeout=15_000)
        option.click()
        page.wait_for_timeout(300)
        shot(page, "live-pickers-rag")
        assert picker.input_value() == name
    finally:
        shutil.rmtree(app_home / "corpora" / name, ignore_errors=True)
