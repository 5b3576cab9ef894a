"""The evidence pack: a self-contained HTML report of an evaluation and a zip that reproduces it.

`write_pack(ws, result, folder)` writes report.html (the decision card, charts as embedded PNG images, the
verdict, a per-question drill-down; no external links, no scripts) and evidence.zip (the results JSON with the
card, the card alone, the contestants' run and index configs, hashes of the questions, data and indexes, library
versions, the machine and the commands that reproduce it). `card_table_html` and `format_cell` are the card's one
rendering, shared with the UI. No gradio here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from lab.arena import costs
from lab.arena.verdict import headline
from lab.config import EVAL_GEN_FLAGS
from lab.errors import LabError
from lab.metrics.charts import ci_bars
from lab.metrics.rate import Rate
from lab.workspace import Workspace

SHORT = {"taught": "correct: taught facts", "documents": "correct: facts only in documents",
         "unanswerable": "says I don't know", "made_up": "made-up answers"}  # fmt: skip
STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;width:100%}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.win{background:#e6f4ea;font-weight:600}td.why{color:#555;font-size:.9em}
small{color:#666}details{margin:.3em 0}img{max-width:100%}code{background:#f5f5f5}
"""


# --- formatting shared by every rendering of the card ---------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.0f}"


def format_cell(cell: dict[str, Any]) -> str:
    """A card cell as text: "38% (27-51%)" for a rate, "0.78 s (0.70-0.85)" for a measured value with an
    interval, "120 s" for a one-time cost, its `text` ("no sources") when it has no value."""
    if cell.get("value") is None:
        return cell.get("text") or "n/a"
    unit = cell.get("unit")
    if unit is None:
        ci = f" ({_pct(cell['lo'])}-{_pct(cell['hi'])})" if cell.get("lo") is not None else ""
        return f"{_pct(cell['value'])}{ci}"
    ci = f" ({_num(cell['lo'])}-{_num(cell['hi'])})" if cell.get("lo") is not None else ""
    return f"{_num(cell['value'])} {unit}{ci}"


def _inline(text: str) -> str:
    """Escaped text with **bold** kept as <b>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text, quote=False))


def card_table_html(card: dict[str, Any]) -> str:
    """The card as an HTML table: a row per criterion, a column per contestant, the winner's cell marked,
    each row's sentence under it. Every cell carries its value (`data-value`) for checking."""
    systems = card["systems"]
    head = "".join(f"<th>{html.escape(s)}<br><small>{html.escape(card['kinds'].get(s) or '')}</small></th>"
                   for s in systems)  # fmt: skip
    out = [f'<table class="card"><tr><th>Criterion</th>{head}</tr>']
    for row in card["rows"]:
        cells = []
        for s in systems:
            cell = row["cells"].get(s, {})
            value = "" if cell.get("value") is None else repr(float(cell["value"]))
            cls = ' class="win"' if row.get("winner") == s else ""
            mark = " &#9733;" if row.get("winner") == s else ""
            attrs = f'data-row="{html.escape(row["key"])}" data-system="{html.escape(s)}" data-value="{value}"'
            cells.append(f"<td{cls} {attrs}>{html.escape(format_cell(cell))}{mark}</td>")
        title = f"{html.escape(row['criterion'])}<br><small>{html.escape(row.get('meaning') or '')}</small>"
        out.append(f"<tr><th>{title}</th>{''.join(cells)}</tr>")
        out.append(f'<tr><td class="why" colspan="{len(systems) + 1}">{_inline(row["sentence"])}</td></tr>')
    out.append("</table>")
    return "\n".join(out)


def retrieval_html(card: dict[str, Any]) -> str:
    """The retrieval x answer table of each contestant reading passages."""
    words = {True: "yes", False: "no", None: "unknown"}
    parts = []
    for system, rows in card.get("retrieval", {}).items():
        body = "".join(
            f"<tr><td>{words[r['source_retrieved']]}</td><td>{words[r['answer_in_passages']]}</td>"
            f"<td>{r['correct']}</td><td>{r['wrong']}</td><td>{r['skipped']}</td></tr>"
            for r in rows
        )
        parts.append(
            f"<h4>{html.escape(system)}</h4><table><tr><th>right source retrieved</th><th>answer in the passages</th>"
            f"<th>correct</th><th>wrong</th><th>abstained</th></tr>{body}</table>"
        )
    return "\n".join(parts)


def verdict_html(markdown: str) -> str:
    lines = [ln[2:] if ln.startswith("- ") else ln for ln in (markdown or "").splitlines() if ln.strip()]
    return "<ul>" + "".join(f"<li>{_inline(ln)}</li>" for ln in lines) + "</ul>"


# --- charts ---------------------------------------------------------------------------------------------------


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def charts(card: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, base64 PNG): the knowledge rows as bars with their intervals, and the abstention curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    rows = [r for r in card["rows"] if r["key"] in ("taught", "documents", "unanswerable", "made_up")]
    if rows:
        fig, ax = plt.subplots(figsize=(9, 3.5))
        width = 0.8 / max(len(card["systems"]), 1)
        for i, s in enumerate(card["systems"]):
            cells = [r["cells"].get(s, {}) for r in rows]
            rates = [Rate(c.get("value"), c.get("lo"), c.get("hi")) for c in cells]
            ci_bars(ax, [j + i * width for j in range(len(rows))], rates, width=width, label=s)
        names = [SHORT.get(r["key"], r["key"]) for r in rows]
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))], names, fontsize=8)
        ax.set_ylabel("% of questions (95% CI)")
        ax.legend(fontsize=7)
        out.append(("Where the knowledge lives, and made-up answers", _png(fig)))
        plt.close(fig)
    curves = next((r.get("curves") for r in card["rows"] if r["key"] == "made_up"), None) or {}
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for s, points in curves.items():
            ax.plot([100 * (p["hallucination_rate"] or 0) for p in points],
                    [100 * (p["correct_rate"] or 0) for p in points], marker=".", label=s)  # fmt: skip
        ax.set_xlabel("made-up answers on unanswerable questions (%)")
        ax.set_ylabel("correct on answerable questions (%)")
        ax.legend(fontsize=7)
        out.append(('Abstention curve: each point one threshold for saying "I don\'t know"', _png(fig)))
        plt.close(fig)
    return out


# --- per-question drill-down ----------------------------------------------------------------------------------


def drill_down_html(result: dict[str, Any]) -> str:
    """One collapsible block per question: its gold answer and every contestant's answer, category, sources."""
    by_id: dict[str, list[dict]] = {}
    for r in result.get("questions", []):
        by_id.setdefault(r["id"], []).append(r)
    parts = []
    for qid, rows in by_id.items():
        first = rows[0]
        group = f" [{first.get('group')}]" if first.get("group") else ""
        body = "".join(
            f"<tr><td>{html.escape(r['system'])}</td><td>{html.escape(str(r.get('prediction', '')))}</td>"
            f"<td>{html.escape(r['category'])}</td>"
            f"<td>{html.escape(', '.join(str(p.get('source')) for p in r.get('passages') or []))}</td></tr>"
            for r in rows
        )
        parts.append(
            f"<details><summary>{html.escape(qid)}{html.escape(group)}: {html.escape(first['question'])} "
            f"&mdash; gold: <b>{html.escape(first['answer'])}</b></summary><table><tr><th>contestant</th>"
            f"<th>answer</th><th>category</th><th>sources</th></tr>{body}</table></details>"
        )
    return "\n".join(parts)


# --- the report -----------------------------------------------------------------------------------------------


def report_html(result: dict[str, Any], card: dict[str, Any], title: str = "ExpertLab evidence pack") -> str:
    """The whole self-contained page."""
    images = "".join(f'<h3>{html.escape(t)}</h3><img alt="{html.escape(t)}" src="data:image/png;base64,{b}">'
                     for t, b in charts(card))  # fmt: skip
    recommendation = "".join(f"<li>{_inline(s)}</li>" for s in card["recommendation"])
    about = html.escape(result.get("reference") or (result.get("showcase") or {}).get("question_source") or "")
    machine = f"Written on {html.escape(card['machine'])}." if card.get("machine") else ""
    ident = f" <code>{html.escape(str(result['id']))}</code>" if result.get("id") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Evaluation{ident}: {len(card["systems"])} contestants,
{len({r["id"] for r in result.get("questions", [])})} questions. {about}</p>
<p><small>Places of questions: {html.escape(card["places_how"])}. {machine}</small></p>
<h2>Decision card</h2>
{card_table_html(card)}
<h2>Recommendation</h2><ul>{recommendation}</ul>
<p>{html.escape(card["sample_size"])}</p>
<h2>Where errors come from (contestants reading passages)</h2>
{retrieval_html(card)}
<h2>Charts</h2>
{images}
<h2>Verdict</h2>
<p>{_inline(headline(result)).replace(chr(10) + chr(10), "</p><p>")}</p>
{verdict_html(result.get("verdict") or "")}
<h2>Every question</h2>
{drill_down_html(result)}
</body></html>
"""


def commands(result: dict[str, Any]) -> list[str]:
    """The commands that reproduce the evaluation, then this report."""
    out = []
    inputs = (result.get("showcase") or {}).get("inputs")
    if inputs:
        train = inputs.get("train") or {}
        cmd = (f"python -m lab showcase --data {inputs.get('dataset')} --docs {inputs.get('corpus')} "
               f"--questions {inputs.get('questions')} --max-new-tokens {inputs.get('max_new_tokens')} "
               f"--epochs {train.get('epochs', 1.0)} --max-steps {train.get('max_steps', 0) or 0} "
               f"--bootstrap {inputs.get('bootstrap')}")  # fmt: skip
        cmd += f" --qa {inputs['qa']}" if inputs.get("qa") else ""
        labels = (result.get("showcase") or {}).get("contestants") or {}
        cmd += f' --contestants "{",".join(labels)}"' if labels else ""
        out.append(cmd)
    else:
        systems = ",".join(s["system"] for s in result.get("systems", []))
        gen = result.get("gen") or {}
        flags = " ".join(f"--{k.replace('_', '-')} {gen[k]}" for k in EVAL_GEN_FLAGS if k in gen)
        out.append(f"python -m lab eval {_qa_flag(result.get('qa') or '')}--systems {systems} {flags}")
    out.append(f"python -m lab report {result.get('id') or 'EVAL'}")
    return out


def _qa_flag(qa: str) -> str:
    """`--qa FILE ` for an evaluation file; nothing when none is recorded or the file is one the lab held out of a
    dataset (tmp evalsets/held-out-*), since `python -m lab eval` without --qa chooses those questions again."""
    path = Path(qa)
    chosen = not qa or (path.parent.name == "evalsets" and path.name.startswith("held-out-"))
    return "" if chosen else f"--qa {qa} "


def _hashes(ws: Workspace | None, result: dict[str, Any]) -> dict[str, Any]:
    """sha256 of the question file, the dataset's hash, each index's fingerprint, build id and file hashes."""
    out: dict[str, Any] = {}
    qa = result.get("qa") or ((result.get("showcase") or {}).get("inputs") or {}).get("qa")
    if qa and Path(qa).is_file():
        out["questions_file"] = {qa: costs.sha256_file(Path(qa))}
    if ws is None:
        return out
    dataset = ((result.get("showcase") or {}).get("inputs") or {}).get("dataset")
    if dataset:
        try:
            from lab.data import dataset_hash

            out["dataset"] = {dataset: dataset_hash(ws, dataset)}
        except (OSError, ValueError, LabError) as exc:  # a dataset not in this workspace has no hash to give
            out["dataset"] = {dataset: f"not available here ({type(exc).__name__})"}
    for info in (result.get("contestants") or {}).values():
        index = (info or {}).get("index")
        folder = costs._folder(ws, "indexes", index or "")
        if folder and (folder / "meta.json").is_file():
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            files = {p.name: costs.sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
            out.setdefault("indexes", {})[index] = {"fingerprint": meta.get("fingerprint"),
                                                    "build_id": meta.get("build_id"), "files": files}  # fmt: skip
    return out


def _configs(ws: Workspace | None, result: dict[str, Any]) -> dict[str, str]:
    """{zip path: text} of the run and index configs the contestants name."""
    out = {}
    if ws is None:
        return out
    for info in (result.get("contestants") or {}).values():
        for kind, key in (("runs", "run"), ("indexes", "index")):
            folder = costs._folder(ws, kind, (info or {}).get(key) or "")
            if folder and (folder / "config.json").is_file():
                out[f"configs/{kind}/{folder.name}.json"] = (folder / "config.json").read_text(encoding="utf-8")
    return out


def write_pack(
    ws: Workspace | None, result: dict[str, Any], folder: Path, card: dict | None = None
) -> dict[str, Path]:
    """Write report.html and evidence.zip into `folder`; returns their paths ("html", "zip")."""
    card = card or costs.card_for(ws, result)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    page = report_html(result, card)
    html_path, zip_path = folder / "report.html", folder / "evidence.zip"
    html_path.write_text(page, encoding="utf-8")
    files = {
        "results.json": json.dumps(result | {"card": card}, indent=1, default=str),
        "card.json": json.dumps(card, indent=1, default=str),
        "hashes.json": json.dumps(_hashes(ws, result), indent=1),
        "versions.json": json.dumps(costs.versions() | {"machine": costs.machine()}, indent=1),
        "commands.txt": "\n".join(commands(result)) + "\n",
        "report.html": page,
    } | _configs(ws, result)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return {"html": html_path, "zip": zip_path}


def pack_for_download(ws: Workspace, result: dict[str, Any], card: dict | None = None) -> dict[str, Path]:
    """The evidence pack written under the workspace's downloads folder (the one the app serves)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(result.get("id") or "evaluation"))[:80]
    return write_pack(ws, result, ws.downloads / "reports" / name, card)
