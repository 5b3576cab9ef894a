"""Build data/showcase/reference.json (the comparison the Start tab shows until a workspace has its own) from
evaluation results saved by `python -m lab eval --out FILE.json`.

    .venv/bin/python data/showcase/build.py --note "Measured on ..." \
        "base=base@eval5.json" "fine-tuned=ft:plain@eval5.json" ... [--out data/showcase/reference.json]

Each part is LABEL=CONTESTANT_ID@RESULT.json (the label is what the Start tab shows).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    from lab.arena import reference, showcase

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", help="LABEL=CONTESTANT_ID@RESULT.json")
    parser.add_argument("--note", required=True, help="how and where it was measured (shown on the Start tab)")
    parser.add_argument("--out", default=str(reference.REFERENCE))
    args = parser.parse_args()
    parts = []
    for part in args.parts:
        label, _, rest = part.partition("=")
        spec, _, path = rest.rpartition("@")
        parts.append((label, spec, json.loads(Path(path).read_text(encoding="utf-8"))))
    inputs = showcase.Inputs(questions=0, max_new_tokens=parts[0][2].get("gen", {}).get("max_new_tokens", 48))
    result = reference.reference_from(parts, inputs, args.note)
    Path(args.out).write_text(json.dumps(result, separators=(",", ":"), default=str), encoding="utf-8")
    print(f"wrote {args.out}: {len(result['systems'])} contestants, {result['showcase']['questions']} questions")
    print(result["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
