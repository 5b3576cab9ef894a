"""Shared fixtures: temp workspaces, the embedded model cache (converted once per session), a launched app
for gradio_client tests, and a Playwright page in Debian's chromium that saves screenshots.

Environment is set before gradio is imported anywhere: GRADIO_TEMP_DIR, no analytics, hub offline. Tier marks
come from the fixtures a test uses (tests/tiers.py); a session that deselects `integration` (`make test-fast`)
makes any model load fail, in this process and in its Python children.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import tiers

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="expertlab-tests-"))
os.environ.setdefault("GRADIO_TEMP_DIR", str(_SESSION_TMP / "gradio"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("LAB_CLASS", None)  # class mode changes batch sizes and dtypes; its tests turn it on themselves

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


def pytest_configure(config):
    if tiers.is_fast(config.getoption("markexpr")):
        tiers.install_guard()
        guard = tiers.child_guard_dir(_SESSION_TMP / "fast-tier-guard")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH")) if p)
        os.environ[tiers.GUARD_ENV] = "fast"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_unconfigure(config):
    """The session's temp folder (converted models, app homes, hub caches: gigabytes) goes with the session."""
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tier marks by fixture: a test that uses a model-loading fixture is `integration`, a browser page `browser`."""
    for item in items:
        for mark in tiers.tier_marks(getattr(item, "fixturenames", ())):
            if mark not in {m.name for m in item.iter_markers()}:
                item.add_marker(mark)


@pytest.fixture
def ws(tmp_path, monkeypatch, model_cache_dir):
    """A fresh, empty workspace in a temp dir (LAB_HOME points at it); model cache shared per session."""
    from lab.workspace import Workspace

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    workspace = Workspace.open(tmp_path / "home")
    (workspace.root / "models").rmdir()
    (workspace.root / "models").symlink_to(model_cache_dir, target_is_directory=True)
    return workspace


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    path = _SESSION_TMP / "models"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def cache(model_cache_dir):
    """One ModelCache for the whole session: the embedded model is converted and loaded once."""
    from lab.cache import ModelCache

    return ModelCache(model_cache_dir)


@pytest.fixture(scope="session")
def embedded_path(cache) -> str:
    """Folder of the converted embedded generator (safetensors)."""
    return cache.resolve("embedded").path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/gradio_api/info", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app at {url} did not become ready in {timeout}s")


@pytest.fixture(scope="session")
def app_home(model_cache_dir) -> Path:
    """LAB_HOME of the launched app (sample domain installed), shared by UI tests."""
    home = _SESSION_TMP / "app-home"
    (home / "models").parent.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(model_cache_dir, target_is_directory=True)
    return home


@pytest.fixture(scope="session")
def app_url(app_home, cache):
    """The real app, launched once per session on a free port; yields its base URL."""
    from lab.data import ensure_sample_domain
    from lab.ui.app import build_app, launch
    from lab.workspace import Workspace

    os.environ["LAB_HOME"] = str(app_home)
    workspace = Workspace.open(app_home)
    ensure_sample_domain(workspace)
    demo = build_app(workspace, cache)
    port = _free_port()
    launch(demo, workspace, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url)
    yield url
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser page on the launched app; `shot(name)` saves test-artifacts/NAME.png."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(app_url)
    pg.wait_for_selector("text=ExpertLab")
    yield pg
    context.close()


@pytest.fixture
def shot():
    ARTIFACTS.mkdir(exist_ok=True)

    def save(pg, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    return save


HUB_TEST_ID = "ExpertLabTest/SmolLM2-135M-Instruct"  # a hub-style id no hub has: only the cache fixture holds it


@pytest.fixture(scope="session")
def hf_home(embedded_path) -> Path:
    """An HF_HOME whose hub cache holds the converted embedded model under HUB_TEST_ID and under the embedded
    model's own hub id, in huggingface_hub's layout (tests/hubcache.py; blobs are hard links, not copies)."""
    from hubcache import lay_model

    from lab.resolve import EMBEDDED_GENERATOR_HUB_ID

    home = _SESSION_TMP / "hf-home"
    for repo_id in (HUB_TEST_ID, EMBEDDED_GENERATOR_HUB_ID):
        lay_model(home, repo_id, Path(embedded_path))
    return home


@pytest.fixture
def hub_offline_env(hf_home, monkeypatch) -> Path:
    """HF_HOME = the cache fixture and HF_HUB_OFFLINE=1 for this test (and the training children it starts)."""
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return hf_home
