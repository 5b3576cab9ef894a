"""Test tiers: marks come from the fixtures a test uses, and in the fast tier (`make test-fast`) a model load
fails with a message that says what to do, in the test process and in the Python children it starts; the full
run is not guarded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiers

REPO = Path(__file__).resolve().parent.parent
GUARD_SAYS = "this test loads a model, which the fast tier (make test-fast) forbids"

CONFTEST = """
import importlib.util

spec = importlib.util.spec_from_file_location("expertlab_conftest", {conftest!r})
real = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real)
pytest_configure, pytest_collection_modifyitems = real.pytest_configure, real.pytest_collection_modifyitems
model_cache_dir, cache, embedded_path, browser = real.model_cache_dir, real.cache, real.embedded_path, real.browser
"""

TESTS = """
import subprocess, sys

def test_loads_a_model():
    from lab.models import load_causal_lm
    load_causal_lm("/no/such/model")

def test_a_child_that_loads_a_model_is_refused_too():
    code = "from lab.models import load_causal_lm; load_causal_lm('/no/such/model')"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode != 0
    print("CHILD:", child.stderr.strip().splitlines()[-1])

def test_uses_the_cache(cache):
    pass

def test_uses_a_browser(browser):
    pass

def test_plain():
    pass
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n  integration\n  browser\n  slow\n")
    (tmp_path / "conftest.py").write_text(CONFTEST.format(conftest=str(REPO / "tests" / "conftest.py")))
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(TESTS))
    return tmp_path


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]))
    env.pop(tiers.GUARD_ENV, None)  # this session may itself be the fast tier
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", "--rootdir", str(project), *args]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)


def test_marks_come_from_the_fixture_closure():
    assert tiers.tier_marks(["tmp_path", "ws", "model_cache_dir"]) == []
    assert tiers.tier_marks(["ws", "cache"]) == ["integration"]
    assert tiers.tier_marks(["page", "app_url", "cache", "browser"]) == ["integration", "browser"]
    assert tiers.is_fast(tiers.FAST_EXPR) and tiers.is_fast("not   integration")
    assert not tiers.is_fast("integration") and not tiers.is_fast(None) and not tiers.is_fast("not browser")


def test_the_fast_tier_deselects_by_fixture_and_refuses_model_loads_here_and_in_children(tmp_path):
    project = _project(tmp_path)
    picked = _pytest(project, "--collect-only", "-m", "integration")
    assert "test_uses_the_cache" in picked.stdout and "test_uses_a_browser" not in picked.stdout, picked.stdout
    assert "2/5 tests collected" not in picked.stdout and "1/5 tests collected" in picked.stdout, picked.stdout
    run = _pytest(project, "-m", tiers.FAST_EXPR)
    out = run.stdout
    assert run.returncode == 1 and "1 failed, 2 passed, 2 deselected" in out, out
    refused = f"AutoModelForCausalLM.from_pretrained('/no/such/model'): {GUARD_SAYS}"
    assert refused in out and f"CHILD: tiers.ModelLoadInFastTier: {refused}" in out, out


@pytest.mark.slow  # a second pytest session that imports transformers; it is about the full run anyway
def test_the_full_run_is_not_guarded(tmp_path):
    run = _pytest(_project(tmp_path), "-k", "test_loads_a_model")
    assert run.returncode == 1 and "1 failed" in run.stdout and GUARD_SAYS not in run.stdout, run.stdout
    assert "/no/such/model" in run.stdout  # transformers itself looked for the folder
