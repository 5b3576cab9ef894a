"""The docs stay true to the code: generated references are current, every CLI option and setting has help,
links resolve, the package lists what requirements.txt pins, and no development-notebook wording returns."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from lab.cli import build_parser
from lab.config import DataConfig, GenConfig, RagConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FORBIDDEN = re.compile(r"stop [0-9]|my own|worktree|/work/", re.IGNORECASE)


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_current(tmp_path):
    out = tmp_path / "docs"
    for fresh in _generator().write(out):
        committed = ROOT / fresh.relative_to(tmp_path)
        assert committed.is_file(), f"{committed} is missing: run python scripts/gen_reference.py"
        assert committed.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
            f"{committed.relative_to(ROOT)} is stale: run python scripts/gen_reference.py"
        )


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["train", "eval", "showcase", "ask", "runs"])
def test_every_option_has_help(command):
    parser = _subparser(build_parser(), command)
    bare = [a.dest for a in parser._actions if a.help in (None, "") and a.help is not argparse.SUPPRESS]
    assert bare == []


@pytest.mark.parametrize("cls", [DataConfig, TrainConfig, RagConfig, GenConfig])
def test_every_setting_has_help(cls):
    assert [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")] == []


def test_debug_flag_is_defined():
    assert build_parser().parse_args(["--debug", "runs"]).debug is True


def test_package_dependencies_match_requirements():
    pins = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    pins = [p for p in pins if p and not p.startswith("#")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == pins


def test_sample_domain_is_found_through_the_package():
    from lab.storage import sample_dir

    root = sample_dir()
    assert (root / "eval.jsonl").is_file() and (root / "showcase" / "reference.json").is_file()
    assert [p for p in (ROOT / "lab").rglob("*.py") if "parents[2]" in p.read_text(encoding="utf-8")] == []


def _texts():
    yield ROOT / "README.md"
    yield from DOCS.rglob("*.md")
    yield from (ROOT / "lab").rglob("*.py")


def test_no_notebook_wording():
    hits = []
    for path in _texts():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert hits == []


def test_readme_is_a_short_product_page():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_relative_links_and_anchors_resolve():
    link = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")
    broken = []
    for path in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        for target, anchor in link.findall(path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            file = (path.parent / target) if target else path
            if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
                broken.append(f"{path.relative_to(ROOT)} -> {target}#{anchor}")
    assert broken == []


def test_training_child_imports_lab_without_pythonpath(ws, monkeypatch):
    """The child gets no PYTHONPATH from the app; started the way `_spawn` starts it, it still imports `lab`."""
    import subprocess
    import sys

    from lab import jobs
    from lab.catalog import DeviceFacts

    started = {}

    class Recorder:
        pid = 4242

        def __init__(self, cmd, **kwargs):
            started.update(cmd=cmd, **kwargs)

        def wait(self):
            return 0

    monkeypatch.delenv("PYTHONPATH", raising=False)
    run_dir = ws.dir("runs", "probe")
    run_dir.mkdir(parents=True)
    with monkeypatch.context() as patch:
        patch.setattr(jobs.subprocess, "Popen", Recorder)
        jobs._spawn(ws, run_dir, facts=DeviceFacts(cuda=False, count=0))
    assert "PYTHONPATH" not in started["env"]
    assert started["cmd"][:3] == [sys.executable, "-m", "lab.training"]
    probe = [sys.executable, "-m", "lab", "--help"]
    done = subprocess.run(probe, cwd=started["cwd"], env=started["env"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
