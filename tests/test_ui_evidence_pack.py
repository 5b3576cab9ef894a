"""The Arena's Evidence pack button in a real browser: after a 2-question batch evaluation it offers report.html
and evidence.zip for download, and the card shows the sample index's build time (screenshot
test-artifacts/arena-eval-pack.png)."""

from __future__ import annotations


def test_browser_evidence_pack_after_a_batch_evaluation(page, shot):
    page.get_by_role("tab", name="Arena").click()
    page.get_by_role("tab", name="Batch evaluation").click()
    ev = page.locator("#arena-eval")
    ev.get_by_label("Only the first N questions").fill("2")
    ev.get_by_text("Generation settings").click()
    ev.get_by_label("number input for Max new tokens").fill("8")
    ev.get_by_role("button", name="Run evaluation").click()
    page.get_by_text("finished:").wait_for(timeout=600_000)  # a shared, busy CPU
    assert ev.get_by_text("The decision card").is_visible()
    ev.get_by_role("button", name="Evidence pack (HTML + zip)").click()
    box = ev.locator("#arena-eval-pack-files")
    box.wait_for(timeout=120_000)  # hidden until a pack is written
    box.get_by_text("evidence").first.wait_for()
    names = "".join(box.inner_text().split())  # the box splits a name from its extension
    assert "report.html" in names and "evidence.zip" in names
    assert "Index build time (one-time)" in ev.inner_text()  # the card's one-time rows: rag:sample's index
    shot(page, "arena-eval-pack")
