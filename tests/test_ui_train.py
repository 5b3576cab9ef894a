"""Train tab through the launched app: gradio_client drives a short run and sees the chart move; a real browser
starts one from the form, watches the chart and saves test-artifacts/train-tab.png."""

from __future__ import annotations

import re
import time

import pytest

from lab.config import TrainConfig
from lab.ui.train_tab import form_values


def _settings(name: str, **extra) -> list:
    return form_values(TrainConfig(dataset="sample", name=name, max_steps=50, batch_size=2, max_length=96, **extra))


def _cancel(client, run_id: str) -> str:
    client.predict(run_id, api_name="/train_cancel")
    return client.predict(run_id, api_name="/train_refresh")[1]


def test_client_starts_a_run_and_sees_the_loss_chart_move(client):
    estimate = client.predict(*_settings("client-run"), api_name="/train_estimate")
    assert "memory" in estimate and "MB" in estimate
    bad = form_values(TrainConfig(dataset="sample"))
    bad[6] = 0  # rank
    run_id, message = client.predict(*bad, api_name="/train_start")
    assert run_id == "" and "rank=0" in message
    run_id, message = client.predict(*_settings("client-run"), api_name="/train_start")
    assert run_id == "client-run", message
    seen = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline and len(seen) < 2:
            out = client.predict(run_id, api_name="/train_refresh")
            seen = [row for row in (out[2] or {}).get("data", []) if "loss" == row[2]]
            time.sleep(1)
        assert len(seen) >= 2, out[1]
        assert [row[0] for row in seen[:2]] == [1, 2] and out[4] and "python -m lab train" in out[6]
    finally:
        final = _cancel(client, run_id)
    assert "cancelled" in final


@pytest.mark.browser
def test_browser_starts_a_run_and_watches_the_chart(page, shot):
    page.get_by_role("tab", name="Train").click()

    def fill(label: str, value: str):
        page.get_by_label(label).locator("visible=true").fill(value)

    fill("Run name", f"browser-{int(time.time())}")
    fill("Max steps (0 = use epochs)", "50")
    page.get_by_text("Advanced settings").click()
    fill("Batch size", "2")
    fill("Max length (tokens)", "96")
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(
        "() => /step 2\\//.test(document.body.innerText) || /step [3-9]\\//.test(document.body.innerText)",
        timeout=240_000,
    )
    text = page.inner_text("body")
    assert "tokens/s" in text and re.search(r"loss \d+\.\d{4}", text)
    page.wait_for_timeout(4000)  # a few more timer ticks so the charts finish drawing before the screenshot
    shot(page, "train-tab")
    page.get_by_role("button", name="Cancel (kill)").click()
    page.wait_for_function("() => document.body.innerText.includes('cancelled')", timeout=60_000)
