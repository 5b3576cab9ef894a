"""The layer rules of DESIGN.md, checked by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

LAB = Path(__file__).resolve().parent.parent / "lab"
HEAVY = {
    "torch",
    "transformers",
    "peft",
    "trl",
    "llama_index",
    "bitsandbytes",
    "datasets",
    "evaluate",
    "sentence_transformers",
    "qdrant_client",
    "accelerate",
    "matplotlib",
    "pandas",
}
# Higher number = higher layer; a module may import only from layers <= its own (same layer: no cycles checked).
LAYERS = {
    "ui": 5,
    "cli": 5,
    "arena": 4,
    "generation": 3,
    "jobs": 3,
    "training": 3,
    "rag": 3,
    "models": 2,
    "resolve": 2,
    "cache": 2,
    "shared_base": 2,
    "data": 2,
    "metrics": 1,
    "config": 0,
    "errors": 0,
    "cancel": 0,
    "workspace": 0,
    "db": 0,
    "storage": 0,
    "catalog": 2,
    "estimate": 0,
    "classroom": 0,
}


def _modules():
    for path in LAB.rglob("*.py"):
        rel = path.relative_to(LAB).with_suffix("")
        top = rel.parts[0] if rel.parts[0] != "__init__" else None
        yield path, top, ast.parse(path.read_text(encoding="utf-8"))


def _imports(tree, top_level_only=False):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            if node.module == "lab":
                yield from (f"lab.{a.name}" for a in node.names)


def test_only_ui_imports_gradio():
    offenders = [
        str(p)
        for p, top, tree in _modules()
        if top != "ui" and any(m.split(".")[0] == "gradio" for m in _imports(tree))
    ]
    assert offenders == []


def _is_evaluate_module(path: Path) -> bool:
    """A local `evaluate` metric module (lab/metrics/NAME/NAME.py): loaded only by `evaluate.load(path)`,
    which needs the `evaluate.Metric` base class at import time; `import lab` never imports it."""
    rel = path.relative_to(LAB).parts
    return len(rel) == 3 and rel[0] == "metrics" and rel[2] == f"{rel[1]}.py"


def test_heavy_libraries_are_imported_inside_functions():
    offenders = [
        (str(p), m)
        for p, _top, tree in _modules()
        for m in _imports(tree, top_level_only=True)
        if m.split(".")[0] in HEAVY and not _is_evaluate_module(p)
    ]
    assert offenders == []


def test_evaluate_modules_are_not_imported_by_the_package():
    importers = [p for p, _top, tree in _modules() for m in _imports(tree) if "expert_qa" in m]
    assert importers == []


def test_layer_order():
    bad = []
    for path, top, tree in _modules():
        if top not in LAYERS:
            continue
        for mod in _imports(tree):
            parts = mod.split(".")
            if parts[0] == "lab" and len(parts) > 1 and parts[1] in LAYERS and LAYERS[parts[1]] > LAYERS[top]:
                bad.append(f"{path.relative_to(LAB)} imports {mod}")
    assert bad == []


def test_every_module_has_a_docstring():
    missing = [str(p) for p, _top, tree in _modules() if not ast.get_docstring(tree)]
    assert missing == []
