"""The Data tab: view formatters, the API through gradio_client against the launched app, and a real browser
that uploads a file, sees the report and saves test-artifacts/data-tab.png."""

from __future__ import annotations

import json
import uuid

import pytest

from lab.data import validate_bytes
from lab.ui import data_view
from lab.workspace import Workspace


def mixed_file(path):
    """40 good examples of varying length, then three bad lines."""
    rows = []
    for i in range(40):
        answer = " ".join(["The interval is"] + ["six months"] * (1 + i % 7)) + "."
        rows.append(
            json.dumps(
                {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": answer}]}
            )
        )
    rows += ['{"messages": [{"role": "narrator", "content": "x"}]}', "{broken", '{"messages": []}']
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_status_and_preview_formatters_escape_and_summarise(tmp_path):
    report = validate_bytes(mixed_file(tmp_path / "m.jsonl").read_bytes(), "m.jsonl")
    status = data_view.status_markdown(report)
    assert "not valid" in status and "`invalid_json` ×1" in status and "`unknown_role` ×1" in status
    assert data_view.error_rows(report)[0][:2] == [41, "unknown_role"]
    html = data_view.preview_html([("<|im_start|>user\n", None), ("a<b", "trained")], 0, 3, 7)
    assert "&lt;|im_start|&gt;" in html and "<mark" in html and "a&lt;b</mark>" in html and "line 7" in html


@pytest.mark.integration
def test_validate_save_and_bad_input_through_the_api(embedded_path, client, app_home, tmp_path):
    from gradio_client import handle_file

    ws = Workspace.open(app_home)
    path = mixed_file(tmp_path / "mixed.jsonl")
    status, errors, stats_md, _plot, report, preview = client.predict(
        handle_file(str(path)), "auto", "", "", "", "embedded", 1024, api_name="/data_validate"
    )
    assert "not valid" in status and report["valid"] is False and report["records"] == 43
    assert [(e["line"], e["kind"]) for e in report["errors"]] == [
        (41, "unknown_role"),
        (41, "no_assistant_message"),
        (42, "invalid_json"),
        (43, "empty_messages"),
    ]
    table = errors.get("value", errors)  # a visibility update carries the table under "value"
    assert errors.get("visible", True) is True and table["data"][0][0] == 41 and "trained" in preview
    assert "tokens per example" not in stats_md and "Estimate" not in stats_md  # invalid: no statistics
    assert not (_plot or {}).get("value") and (_plot or {}).get("visible", False) is False  # and no histogram
    assert "Warnings" not in status  # an invalid file's warnings come after its errors, not before them
    assert ("Warnings" in stats_md) == bool(report["warnings"])
    assert "Example 1 of 40 (line 1)" in preview and "Question 0?" in preview
    other = client.predict(5, "embedded", api_name="/data_preview")  # the session keeps the validated examples
    assert "Example 5 of 40 (line 5)" in other and "Question 4?" in other
    name = f"ui-{uuid.uuid4().hex[:6]}"
    saved, _ = client.predict(
        handle_file(str(path)), "auto", "", "", "", "embedded", 1024, name, 0.1, 0, False, api_name="/data_save"
    )
    assert "not valid" in saved and not ws.exists("datasets", name)
    items = [line for line in saved.splitlines() if line.startswith("- ")]
    assert items[:4] == [
        "- line 41 · `unknown_role`: message 1: role 'narrator' is not one of system, user, assistant, tool",
        "- line 41 · `no_assistant_message`: " + items[1].split(": ", 1)[1],
        "- line 42 · `invalid_json`: " + items[2].split(": ", 1)[1],
        "- line 43 · `empty_messages`: " + items[3].split(": ", 1)[1],
    ]
    assert saved.count("#") == 3  # one heading; the errors are list items, not part of it
    good = tmp_path / "good.csv"
    good.write_text("question,answer\n" + "".join(f"q{i},a{i}\n" for i in range(20)), encoding="utf-8")
    saved, table = client.predict(
        handle_file(str(good)), "auto", "", "", "", "embedded", 1024, name, 0.2, 5, False, api_name="/data_save"
    )
    assert "16 train / 4 validation" in saved and name in [row[0] for row in table["data"]]
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(bytes(range(256)) * 10)
    saved, _ = client.predict(
        handle_file(str(garbage)), "auto", "", "", "", "embedded", 1024, name, 0.2, 5, True, api_name="/data_save"
    )
    assert "binary" in saved and len((ws.dir("datasets", name) / "train.jsonl").read_text().splitlines()) == 16


@pytest.mark.integration
def test_corpus_upload_through_the_api(client, app_home, tmp_path):
    from gradio_client import handle_file

    ws = Workspace.open(app_home)
    doc = tmp_path / "guide.md"
    doc.write_text("# Guide\nSome text.", encoding="utf-8")
    bad = tmp_path / "scan.pdf"
    bad.write_bytes(b"%PDF-1.4 nothing readable")
    name = f"docs-{uuid.uuid4().hex[:6]}"
    status, table = client.predict(
        [handle_file(str(doc)), handle_file(str(bad))], name, False, api_name="/data_save_corpus"
    )
    assert "1 documents" in status and "scan.pdf" in status and [name, 1] in table["data"]
    status, _ = client.predict([handle_file(str(bad))], name + "x", False, api_name="/data_save_corpus")
    assert "no usable document" in status and not ws.exists("corpora", name + "x")


@pytest.mark.browser
def test_data_tab_upload_shows_the_report(embedded_path, page, shot, tmp_path):
    path = mixed_file(tmp_path / "support-chats.jsonl")
    page.get_by_role("tab", name="Data").click()
    page.locator("[role=tabpanel]:visible input[type=file]").first.set_input_files(str(path))
    page.get_by_text("support-chats.jsonl").first.wait_for()
    page.get_by_text("KB", exact=False).first.wait_for()  # the size appears once the upload has finished
    page.get_by_role("button", name="Validate", exact=True).click()
    page.get_by_text("support-chats.jsonl is not valid").wait_for()
    message = page.get_by_text("role 'narrator' is not one of system, user, assistant, tool").first
    message.wait_for()
    page.locator("mark", has_text="six months").first.wait_for()
    page.wait_for_timeout(500)
    assert page.get_by_text("tokens per example").count() == 0  # no statistics for an invalid file
    cell = message.bounding_box()
    frame = message.locator("xpath=ancestor::div[contains(@class, 'table-wrap')][1]").bounding_box()
    assert cell["x"] + cell["width"] <= frame["x"] + frame["width"] + 1  # the whole message column is visible
    assert shot(page, "data-tab").stat().st_size > 10_000


@pytest.mark.integration
def test_valid_file_shows_statistics_and_the_default_system_prompt(embedded_path, client, tmp_path):
    from gradio_client import handle_file

    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"A{i}."}]}
            for i in range(12)]  # fmt: skip
    path = tmp_path / "valid.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    status, errors, stats_md, plot, _report, preview = client.predict(
        handle_file(str(path)), "auto", "", "", "", "embedded", 512, api_name="/data_validate"
    )
    assert "is valid" in status and "tokens per example" in stats_md and "Estimate" in stats_md
    assert plot.get("visible", True) is True and plot.get("value", plot)
    assert "adds a default system prompt" in preview
    with_system = [{"messages": [{"role": "system", "content": "Be brief."}, *r["messages"]]} for r in rows]
    path.write_text("".join(json.dumps(r) + "\n" for r in with_system), encoding="utf-8")
    preview = client.predict(handle_file(str(path)), "auto", "", "", "", "embedded", 512, api_name="/data_validate")[5]
    assert "default system prompt" not in preview and "Be brief." in preview


@pytest.mark.browser
def test_data_tab_valid_file(embedded_path, page, shot, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"How long is interval {i}?"},
                          {"role": "assistant", "content": f"It is {i + 1} months."}]} for i in range(30)]  # fmt: skip
    path = tmp_path / "support-valid.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    page.get_by_role("tab", name="Data").click()
    page.locator("[role=tabpanel]:visible input[type=file]").first.set_input_files(str(path))
    page.get_by_text("KB", exact=False).first.wait_for()
    page.get_by_role("button", name="Validate", exact=True).click()
    page.get_by_text("support-valid.jsonl is valid").wait_for()
    page.get_by_text("tokens per example").wait_for()
    page.get_by_text("adds a default system prompt").wait_for()
    assert not page.get_by_label("Errors").first.is_visible()
    page.wait_for_timeout(500)
    shot(page, "data-tab-valid")
