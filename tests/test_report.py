"""The evidence pack: a self-contained HTML page (no external links, images embedded) whose numbers equal the
card in the zip's JSON, and `python -m lab report` writing it from a results file or a saved evaluation."""

from __future__ import annotations

import json
import re
import zipfile

from lab.arena import report
from lab.arena.evaluation import save_evaluation
from lab.cli import main
from tests.test_decision import _items, _result, _rows


def _evaluation():
    items = _items(24) + _items(0, unanswerable=8)
    parts = {"reader": _rows("reader", items, set(range(0, 32, 2))), "memo": _rows("memo", items, set(range(9)))}
    for i, row in enumerate(parts["reader"]):  # a passage reader that decided abstention by probability
        row |= {"p_idk": (i % 10) / 10, "answer_category": row["category"]}
    parts["memo"][0]["prediction"] = 'See https://example.org/x <a href="https://example.org">here</a>'
    return _result(parts, {"reader": {"kind": "rag", "index": "gone"}, "memo": {"kind": "ft", "run": "gone"}})


CELL = re.compile(
    r'<td(?: class="win")? data-row="([^"]+)" data-system="([^"]+)" data-value="([^"]*)">([^<]*?)(?: &#9733;)?</td>'
)


def test_html_is_self_contained_and_its_numbers_equal_the_json(tmp_path):
    result = _evaluation()
    paths = report.write_pack(None, result, tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    tags = re.findall(r"<[a-z][^>]*>", page, re.I)  # escaped text (an answer's markup) is no tag
    attrs = [a for t in tags for a in re.findall(r"""\b(?:href|src|action)\s*=\s*["']?([^"' >]*)""", t, re.I)]
    assert attrs and all(a.startswith("data:image/png;base64,") for a in attrs)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "url(" not in page.lower()
    assert page.count('src="data:image/png;base64,') == 2  # the knowledge bars and the abstention curves
    assert "&lt;a href=" in page  # an answer's markup is shown as text
    with zipfile.ZipFile(paths["zip"]) as zf:
        names = set(zf.namelist())
        card = json.loads(zf.read("card.json"))
        saved = json.loads(zf.read("results.json"))
        commands = zf.read("commands.txt").decode()
        versions = json.loads(zf.read("versions.json"))
    assert {"results.json", "card.json", "hashes.json", "versions.json", "commands.txt", "report.html"} <= names
    assert saved["card"] == card and "python -m lab eval" in commands and "python -m lab report" in commands
    assert versions["python"] and versions["machine"]
    cells = CELL.findall(page)
    rows = {r["key"]: r for r in card["rows"]}
    assert len(cells) == sum(len(card["systems"]) for _ in card["rows"])
    for key, system, value, text in cells:
        cell = rows[key]["cells"][system]
        assert text == report.format_cell(cell)
        if cell.get("value") is None:
            assert value == ""
            continue
        assert float(value) == cell["value"]
        if cell.get("unit") is None:
            assert text.startswith(f"{100 * cell['value']:.0f}%")
    knowledge = rows["documents"]["cells"]["reader"]
    assert knowledge["value"] == sum(r["category"] == "correct" for r in result["questions"]
                                     if r["system"] == "reader" and r["answerable"]) / 24  # fmt: skip
    for sentence in card["recommendation"]:
        assert report._inline(sentence) in page


def test_cli_report_writes_the_pack_from_a_file_and_a_saved_evaluation(tmp_path, ws, monkeypatch, capsys):
    monkeypatch.setenv("LAB_HOME", str(ws.root))
    result = _evaluation()
    path = tmp_path / "results.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    assert main(["report", str(path), "--out", str(tmp_path / "a"), "--bootstrap", "100"]) == 0
    assert (tmp_path / "a" / "report.html").is_file() and (tmp_path / "a" / "evidence.zip").is_file()
    eval_id = save_evaluation(ws, result, "set.jsonl")
    assert main(["report", eval_id, "--bootstrap", "100"]) == 0
    assert (ws.downloads / "reports" / eval_id / "report.html").is_file()
    assert main(["report", "no-such-eval"]) == 2
    assert "no evaluation or results file 'no-such-eval'" in capsys.readouterr().err
