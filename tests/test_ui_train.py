"""Train tab through the launched app: gradio_client drives a short run and sees the chart move; a real browser
starts one from the form, watches the chart and saves test-artifacts/train-tab.png."""

from __future__ import annotations

import re
import time

import pytest

from lab.config import TrainConfig
from lab.training import plan as plan_mod
from lab.training import speed
from lab.ui import train_form, train_tab, train_view
from lab.ui.train_form import form_values


def _settings(name: str, **extra) -> list:
    values = {"dataset": "sample", "name": name, "max_steps": 50, "batch_size": 2, "max_length": 96} | extra
    return form_values(TrainConfig(**values))


def test_the_form_is_every_train_config_field_but_the_hidden_ones_typed_from_the_dataclass():
    shown = set(train_form.FIELDS) | set(train_form.NOT_IN_FORM)
    assert shown == set(TrainConfig().to_dict()) and not set(train_form.FIELDS) & set(train_form.NOT_IN_FORM)
    config = TrainConfig(name="x", dataset="sample", rank=4, dropout=0.1, epochs=0.5, packing=True, rag_index="idx")
    values = form_values(config)
    assert train_form.form_config(*values) == config
    # What the browser sends: numbers as floats or None (an emptied box), text with spaces, checkboxes as bools.
    raw = dict(zip(train_form.FIELDS, values, strict=True)) | {"rank": 8.0, "max_steps": None, "name": "  y  "}
    parsed = train_form.form_config(*raw.values())
    assert (parsed.rank, parsed.max_steps, parsed.name, parsed.packing) == (8, 0, "y", True)
    assert isinstance(parsed.rank, int) and isinstance(parsed.epochs, float)


def _rows(plot) -> list:
    """The data rows of a chart output (a plot, or an update carrying the plot under "value")."""
    plot = plot or {}
    return (plot.get("value", plot) or {}).get("data", [])


def _cancel(client, run_id: str) -> str:
    client.predict(run_id, api_name="/train_cancel")
    return client.predict(run_id, api_name="/train_refresh")[1]


def test_client_starts_a_run_and_sees_the_loss_chart_move(client):
    estimate = client.predict(*_settings("client-run"), api_name="/train_estimate")
    assert "memory" in estimate and "MB" in estimate
    bad = form_values(TrainConfig(dataset="sample", name="client-bad"))
    bad[train_form.FIELDS.index("rank")] = 0
    run_id, message = client.predict(*bad, api_name="/train_start")
    assert run_id == "" and "rank=0" in message
    run_id, message = client.predict(*_settings("client-run"), api_name="/train_start")
    assert run_id == "client-run", message
    seen = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline and len(seen) < 2:
            out = client.predict(run_id, api_name="/train_refresh")
            seen = [row for row in _rows(out[2]) if "loss" == row[2]]
            time.sleep(1)
        assert len(seen) >= 2, out[1]
        assert [row[0] for row in seen[:2]] == [1, 2] and out[4]
        assert out[6]["visible"] and "python -m lab train" in out[6]["value"]  # shown once a run is chosen
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
    fill("Evaluate every N steps (0 = off)", "2")
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(
        "() => /step 2\\//.test(document.body.innerText) || /step [3-9]\\//.test(document.body.innerText)",
        timeout=240_000,
    )
    text = page.inner_text("body")
    assert "tokens/s" in text and re.search(r"loss \d+\.\d{4}", text)
    page.wait_for_function("() => /eval loss \\d/.test(document.body.innerText)", timeout=240_000)
    page.wait_for_timeout(4000)  # a few more timer ticks so the charts finish drawing before the screenshot
    page.wait_for_function(  # the eval loss is drawn on the loss chart: its series is in the chart's legend
        "() => [...document.querySelectorAll('svg text')].some(t => t.textContent.startsWith('eval_loss'))",
        timeout=60_000,
    )
    shot(page, "train-tab-eval")
    strokes = page.evaluate("() => [...document.querySelectorAll('svg path')].map(p => p.getAttribute('stroke'))")
    assert train_view.PALETTE[1] in strokes, strokes  # and a line in its colour
    ticks = [t or "" for t in page.locator("[aria-label^='X-axis'] text").all_text_contents()]
    labels = [t for t in ticks if t.strip() and t.strip() != "step"]
    assert labels and all(re.fullmatch(r"\d+", t.strip()) for t in labels), labels  # whole steps only
    fill = page.locator(".lab-progress-fill").first  # a drawn bar: its filled part has a width and a colour
    assert fill.bounding_box()["width"] > 0 and "0, 0, 0, 0" not in fill.evaluate(
        "n => getComputedStyle(n).backgroundColor"
    )
    elapsed = page.locator("#train-log-table").get_by_role("gridcell", name=re.compile(r"^\d+:\d\d:\d\d$")).first
    elapsed.wait_for(timeout=30_000)  # the log table, its elapsed time as h:mm:ss
    box = page.locator(".train-log").first
    assert "FutureWarning" not in box.inner_text() and "step 2/" in box.inner_text()
    inner, outer = box.locator("pre").bounding_box(), box.bounding_box()
    assert abs((inner["y"] + inner["height"]) - (outer["y"] + outer["height"])) < 12  # scrolled to the bottom
    shot(page, "train-tab")
    page.get_by_role("button", name="Cancel (kill)").click()
    page.wait_for_function("() => document.body.innerText.includes('cancelled')", timeout=60_000)


def test_log_view_hides_library_noise_and_opens_at_the_newest_line():
    log = "\n".join([
        "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'.",
        "Loading weights: 100%|##########| 272/272 [00:00<00:00, 6360.11it/s]",
        "/x/modeling_utils.py:3303: FutureWarning: `is_gradient_checkpointing` is deprecated, removed in v6.",
        "  warnings.warn(",
        "step 1/74: epoch 0.03, loss 2.1700",
        "{'loss': '2.173', 'grad_norm': '1.067', 'learning_rate': '0', 'epoch': '0.02703'}",
        "step 1/74 {'step': 1, 'loss': 2.17, 'time': 1765000000.1}",
        "step 2/74: epoch 0.05, loss 2.9500",
        "RuntimeError: something real went wrong",
    ])  # fmt: skip
    assert train_view.clean_log(log).splitlines() == [
        "step 1/74: epoch 0.03, loss 2.1700",
        "step 2/74: epoch 0.05, loss 2.9500",
        "RuntimeError: something real went wrong",
    ]  # an older run's raw record echo (a dict with a Unix time) is left to the log table
    box = train_view.log_html(log)
    assert "column-reverse" in box and box.index("step 1/74") < box.index("step 2/74")  # newest at the bottom


def test_the_log_is_a_table_of_steps_with_elapsed_time_not_raw_records():
    from lab.training.engine import log_line

    started = 1_765_000_000.0
    records = [
        {"step": 1, "epoch": 0.0271, "time": started + 5.2, "loss": 2.1734, "learning_rate": 0.0002, "grad_norm": 1.0},
        {"step": 2, "epoch": 0.0541, "time": started + 3725.0, "eval_loss": 1.98771},
    ]
    rows = train_view.log_rows(records, started)
    assert train_view.LOG_HEADERS == ["step", "epoch", "loss", "eval loss", "learning rate", "grad norm", "elapsed"]
    assert rows == [
        [2, "0.05", "", "1.9877", "", "", "1:02:05"],  # newest first
        [1, "0.03", "2.1734", "", "2.00e-04", "1.000", "0:00:05"],
    ]
    assert train_view.log_rows(records)[-1][-1] == "0:00:00"  # no start known: time since the first record
    line = log_line({**records[0], "tokens_per_s": 812.4, "memory_mb": 1234.5})
    assert line == "epoch 0.03, loss 2.1734, lr 2.00e-04, grad norm 1.000, tokens/s 812, peak MB 1234"
    assert "{" not in line and "time" not in line


def _progress_info(tmp_path, state="running", step=0, total=10, stop=False):
    if stop:
        (tmp_path / "STOP").touch()
    status = {"state": state, "step": step, "total_steps": total, "started": time.time() - 30}
    return {"id": "r1", "state": state, "status": status, "run_dir": str(tmp_path)}


@pytest.mark.parametrize("step, percent", [(0, 0), (4, 40), (10, 100)])
def test_the_progress_bar_is_a_drawn_bar_readable_at_0_mid_and_100_percent(tmp_path, step, percent):
    text = train_view.progress_md(_progress_info(tmp_path, step=step), [])
    assert "<progress" not in text and "[ ]" not in text
    assert f"aria-valuenow='{percent}'" in text and f"width:{percent}%" in text  # the filled part
    assert f"{percent} % · step {step} of 10" in text  # the number is written, whatever the bar's width


def test_stop_says_it_skips_the_evaluation_and_the_stopping_line_goes_once_stopped(tmp_path):
    stopping = train_view.progress_md(_progress_info(tmp_path, step=3, stop=True), [])
    assert "Stopping after the current step" in stopping and "no final evaluation" in stopping
    stopped = train_view.progress_md(_progress_info(tmp_path, state="stopped", step=3, stop=True), [])
    assert "Stopping" not in stopped and "Stopped at step 3: checkpoint and adapter saved" in stopped


def test_stop_writes_to_the_view_the_timer_rewrites_so_no_stale_stopping_line_stays(ws, cache):
    from lab.ui.app import build_app

    demo = build_app(ws, cache)
    outputs = {fn.api_name: {id(b) for b in fn.outputs} for fn in demo.fns.values() if fn.api_name}
    for action in ("train_stop", "train_cancel", "train_resume"):
        assert outputs[action] <= outputs["train_refresh"], action


def test_eval_loss_is_the_loss_chart_s_second_series_even_when_measured_once():
    records = [{"step": s, "loss": 2.0 - 0.1 * s} for s in range(1, 6)] + [{"step": 5, "eval_loss": 1.7}]
    loss, _, _ = train_view.chart_frames(records)
    level = loss[loss["series"] == "eval_loss"]
    assert list(level["step"]) == [0, 5] and list(level["value"]) == [1.7, 1.7]  # a line of two points shows
    periodic = records + [{"step": 3, "eval_loss": 1.8}]
    loss, _, _ = train_view.chart_frames(periodic)
    assert sorted(loss[loss["series"] == "eval_loss"]["step"]) == [3, 5]


def _fake_run(runs, name, base="embedded", state="finished", runtime=100.0, tokens_total=20000.0, steps=10):
    folder = runs / name
    folder.mkdir(parents=True)
    TrainConfig(name=name, base_model=base, dataset="x").save(folder / "config.json")
    status = {"state": state, "ended": time.time(), "estimate": {"tokens_total": tokens_total, "steps": steps},
              "metrics": {"runtime_s": runtime, "steps": steps, "tokens_per_s": 999.0}}  # fmt: skip
    (folder / "status.json").write_text(__import__("json").dumps(status), encoding="utf-8")


def test_time_estimate_uses_the_measured_speed_of_finished_runs(tmp_path):
    runs = tmp_path / "runs"
    assert speed.measured_throughput(runs, TrainConfig()) is None
    _fake_run(runs, "a", runtime=100.0)  # 200 estimate-tokens/s
    _fake_run(runs, "other-model", base="/models/other", runtime=1.0)
    _fake_run(runs, "failed", state="failed", runtime=1.0)
    found = speed.measured_throughput(runs, TrainConfig())
    assert found["tokens_per_s"] == 200.0 and "a" in found["source"] and "other-model" not in found["source"]
    (runs / speed.CALIBRATION).write_text('{"embedded|qlora": {"tokens_per_s": 50.0, "at": 0}}', encoding="utf-8")
    calibrated = speed.measured_throughput(runs, TrainConfig(method="qlora"))
    assert calibrated["tokens_per_s"] == 50.0 and "calibrated" in calibrated["source"]


@pytest.mark.integration
def test_memory_estimate_models_the_process(embedded_path):
    config = plan_mod.apply_preset(TrainConfig(dataset="sample"), "quick CPU demo")
    est = plan_mod.estimate(config, embedded_path, 293, 80.0)
    mb = est["memory_mb"]
    assert mb["libraries"] >= 400 and 450 < mb["weights"] < 600  # torch + libraries, float32 135M weights
    # measured on this machine: the quick preset peaks at 2.9-3.0 GB resident (README, Train section)
    assert 2900 / 1.3 <= mb["total"] <= 2900 * 1.3
    longer = plan_mod.estimate(config.replace(max_length=512), embedded_path, 293, 80.0, max_tokens=400)
    assert longer["memory_mb"]["activations"] > 4 * mb["activations"]


@pytest.mark.integration
def test_calibration_times_real_steps_and_its_peak_matches_the_estimate(tmp_path, embedded_path):
    config = TrainConfig(dataset="x", batch_size=8, max_length=256)
    found = speed.calibrate(tmp_path / "runs", config, embedded_path, 80.0)
    assert found["tokens_per_s"] > 0 and found["peak_mb"] > 1000
    assert speed.measured_throughput(tmp_path / "runs", config)["tokens_per_s"] == found["tokens_per_s"]
    estimated = plan_mod.estimate(config, embedded_path, 100, 80.0)["memory_mb"]["total"]
    # a 3-step child's resident peak varies between runs and machines (3.0-4.4 GB seen; highest on a float32-only CPU,
    # allocator arenas), so this checks the estimate against it within 1.7x (the bug it guards against was 2.2x);
    # the 1.3x goal is checked on a whole quick-preset run (README: 2807 MB estimated, 3296 MB measured)
    assert found["peak_mb"] / 1.7 <= estimated <= found["peak_mb"] * 1.7


def _wait_state(client, run_id: str, states: tuple[str, ...], timeout: float = 600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = client.predict(run_id, api_name="/train_refresh")
        if any(f": {s}" in out[1] for s in states):
            return out
        time.sleep(1)
    raise AssertionError(out[1])


@pytest.mark.integration
def test_client_finished_run_measured_time_rounding_eval_loss_and_lineage(client):
    tiny = dict(max_steps=2, batch_size=2, max_length=64, eval_steps=1)
    run_id, message = client.predict(*_settings("tiny-parent", **tiny), api_name="/train_start")
    assert run_id == "tiny-parent", message
    out = _wait_state(client, run_id, ("finished", "failed"))
    assert ": finished" in out[1], out[1]
    assert re.search(r"time: estimated [\d.]+ (s|min), measured [\d.]+ (s|min)", out[1])
    series = {row[2] for row in _rows(out[2])}
    assert out[2].get("x_lim") == [0, 10]  # whole-step axis: at least 10 steps wide
    assert {"loss", "eval_loss"} <= series  # eval loss is drawn on the loss chart
    estimate = client.predict(*_settings("x"), api_name="/train_estimate")
    assert "measured speed of the last finished run(s) of this model" in estimate and "tiny-parent" in estimate
    table, _ = client.predict(api_name="/train_runs")
    row = next(r for r in table["data"] if r[0] == "tiny-parent")
    loss = row[table["headers"].index("train loss")]
    assert loss == round(loss, 3) and isinstance(row[table["headers"].index("tok/s")], int)
    assert client.predict("tiny-parent", "embedded", api_name="/train_parent_base") == "embedded"
    child = _settings("tiny-child", max_steps=1, batch_size=2, max_length=64, from_run="tiny-parent")
    run_id, message = client.predict(*child, api_name="/train_start")
    assert run_id == "tiny-child", message
    out = _wait_state(client, run_id, ("finished", "failed"))
    assert "continued from run `tiny-parent`" in out[1], out[1]
    table, _ = client.predict(api_name="/train_runs")
    row = next(r for r in table["data"] if r[0] == "tiny-child")
    assert row[table["headers"].index("parent run")] == "tiny-parent"


@pytest.mark.integration
def test_client_stop_says_it_is_saving_until_it_has(client):
    run_id, message = client.predict(*_settings("client-stop", batch_size=2, max_length=64), api_name="/train_start")
    assert run_id == "client-stop", message
    deadline = time.time() + 300
    while time.time() < deadline and "step **0/" in client.predict(run_id, api_name="/train_refresh")[1]:
        time.sleep(1)
    said = client.predict(run_id, api_name="/train_stop")
    assert "Stopping" in said and "saving a checkpoint and the adapter" in said and "no final evaluation" in said
    first = client.predict(run_id, api_name="/train_refresh")[1]
    assert "Stopping after the current step" in first or "checkpoint and adapter saved" in first
    final = _wait_state(client, run_id, ("stopped", "failed"))[1]
    assert "Stopped at step" in final and "checkpoint and adapter saved" in final and "Stopping" not in final
    assert "eval loss" not in final  # no evaluation ran after Stop (the run has no periodic ones)


@pytest.mark.integration
def test_client_previews_rag_training_data(client):
    html = client.predict(*_settings("x", rag_index="sample", distractor_share=0.3), api_name="/train_rag_preview")
    counts = {label: int(n) for label, n in re.findall(r"<td>([^<]+)</td><td[^>]*><b>(\d+)</b>", html)}
    total = counts.pop("total training examples")
    assert total == sum(counts.values()) and total > 0, html
    assert next(n for label, n in counts.items() if label.startswith("distractor copies")) > 0
    assert "A rewritten example" in html and "Passages:" in html and "<mark" in html
    plain = client.predict(*_settings("x"), api_name="/train_rag_preview")
    assert "choose an index" in plain


def test_model_picker_lists_the_catalog_with_estimates_that_follow_length_and_batch():
    short = train_form.model_choices(256, 2, "embedded")
    long = train_form.model_choices(2048, 8, "embedded")
    assert short.value == long.value == "embedded"  # the pick survives a size change
    labels = {value: label for label, value in short.choices}
    assert "embedded" in labels and "Qwen/Qwen2.5-1.5B-Instruct" in labels and len(labels) >= 6
    assert "(length 256, batch 2)" in labels["embedded"] and "QLoRA ~" in labels["embedded"]

    def lora_gb(choices, hub_id):
        label = dict((v, k) for k, v in choices)[hub_id]
        return float(re.search(r"LoRA ~([\d.]+) GB", label).group(1))

    assert lora_gb(long.choices, "microsoft/Phi-3-mini-4k-instruct") > lora_gb(
        short.choices, "microsoft/Phi-3-mini-4k-instruct"
    )
    assert "Apache-2.0" in train_form.model_note("Qwen/Qwen2.5-0.5B-Instruct") and "preset" in train_form.model_note(
        "embedded"
    )
    assert "not in the curated list" in train_form.model_note("/models/my-own")


def test_every_chart_update_names_its_series_so_a_later_eval_loss_is_drawn():
    first = train_tab._plots([{"step": 1, "loss": 2.0}])[0]
    later = train_tab._plots([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.9}, {"step": 2, "eval_loss": 1.8}])[0]
    assert first.color_map == {"loss": train_view.PALETTE[0]}
    assert later.color_map == {"loss": train_view.PALETTE[0], "eval_loss": train_view.PALETTE[1]}
    assert first.colors_in_legend == ["loss"] and later.colors_in_legend == ["loss", "eval_loss"]  # drawn anew
