"""How well the answer matcher agrees with hand labels, and what it changes in the shipped reference comparison.

Reads data/labels/matcher-labels.jsonl (one answer per line, labelled correct / wrong / abstained by reading
the question, the gold answer and the answer) and scores every answer with `lab.metrics.scoring.category`:
percent agreement, Cohen's kappa, the confusion table and the disagreements. With --reference it also
re-scores the stored answers of data/showcase/reference.json and reports the verdicts that change and each
contestant's correct and made-up answer rates before and after (the file itself is not rewritten).
Usage: .venv/bin/python bench/matcher_agreement.py [LABELS] [--reference [PATH]] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.metrics import scoring as sc  # noqa: E402

LABELS = ROOT / "data" / "labels" / "matcher-labels.jsonl"
REFERENCE = ROOT / "data" / "showcase" / "reference.json"
CLASSES = ("correct", "wrong", "abstained")
TO_LABEL = {sc.CORRECT: "correct", sc.WRONG: "wrong", sc.HALLUCINATION: "wrong", sc.SKIPPED: "abstained",
            sc.IDK: "abstained"}  # fmt: skip


def load(path: Path = LABELS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def verdict(row: dict) -> str:
    """The matcher's verdict on a labelled answer, in the labels' three classes."""
    return TO_LABEL[sc.category(row["answer"], row["gold"], row.get("aliases"), row.get("answerable", True))]


def kappa(pairs: list[tuple[str, str]]) -> float:
    """Cohen's kappa of (label, verdict) pairs."""
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(left[c] * right[c] for c in CLASSES) / (n * n)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def agreement(rows: list[dict]) -> dict:
    """Percent agreement, kappa, the confusion table (label -> verdict -> count) and the disagreeing rows."""
    pairs = [(r["label"], verdict(r)) for r in rows]
    confusion = {a: {b: sum(p == (a, b) for p in pairs) for b in CLASSES} for a in CLASSES}
    wrong = [r | {"matcher": v} for r, (lab, v) in zip(rows, pairs, strict=True) if lab != v]
    return {"n": len(rows), "agree": len(rows) - len(wrong), "percent": 100 * (len(rows) - len(wrong)) / len(rows),
            "kappa": kappa(pairs), "confusion": confusion, "disagreements": wrong}  # fmt: skip


def reference_changes(path: Path = REFERENCE) -> dict:
    """The reference's stored verdicts against today's matcher, and each contestant's rates from both."""
    rows = json.loads(path.read_text(encoding="utf-8"))["questions"]
    changed, rates = [], {}
    for r in rows:
        new = sc.category(r["prediction"], r["answer"], r.get("aliases"), r["answerable"])
        if new != r["category"]:
            changed.append({"id": r["id"], "system": r["system"], "stored": r["category"], "now": new})
        rates.setdefault(r["system"], []).append((r["answerable"], r["category"], new))
    return {"n": len(rows), "changed": changed, "rates": {s: _rates(v) for s, v in rates.items()}}


def _rates(rows: list[tuple[bool, str, str]]) -> dict:
    answerable = [(old, new) for ok, old, new in rows if ok]
    unanswerable = [(old, new) for ok, old, new in rows if not ok]
    return {
        "correct": [sum(x[i] == sc.CORRECT for x in answerable) / len(answerable) for i in (0, 1)],
        "made_up": [sum(x[i] == sc.HALLUCINATION for x in unanswerable) / len(unanswerable) for i in (0, 1)],
    }


def _print(result: dict, ref: dict | None) -> None:
    print(f"{result['agree']}/{result['n']} agree ({result['percent']:.1f} %), Cohen's kappa {result['kappa']:.3f}")
    print("label \\ matcher  " + "  ".join(f"{c:>9}" for c in CLASSES))
    for a in CLASSES:
        print(f"{a:>15}  " + "  ".join(f"{result['confusion'][a][b]:>9}" for b in CLASSES))
    for r in result["disagreements"]:
        print(f"- {r['id']} {r['contestant']}: label {r['label']}, matcher {r['matcher']}: {r['reason']}")
    if ref:
        print(f"\nreference: {len(ref['changed'])} of {ref['n']} verdicts change")
        for c in ref["changed"]:
            print(f"- {c['id']} {c['system']}: {c['stored']} -> {c['now']}")
        for s, v in ref["rates"].items():
            print(f"{s}: correct {v['correct'][0]:.1%} -> {v['correct'][1]:.1%}, "
                  f"made-up {v['made_up'][0]:.1%} -> {v['made_up'][1]:.1%}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("labels", nargs="?", type=Path, default=LABELS)
    ap.add_argument("--reference", nargs="?", type=Path, const=REFERENCE, default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args(argv)
    result = agreement(load(args.labels))
    ref = reference_changes(args.reference) if args.reference else None
    if args.json:
        print(json.dumps({"agreement": result, "reference": ref}, indent=1, ensure_ascii=False))
    else:
        _print(result, ref)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
