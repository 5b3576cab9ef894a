"""Model resolution and the embedded model conversion (GGUF -> cached safetensors)."""

from __future__ import annotations

import pytest

from lab import models, resolve
from lab.models import ModelError
from lab.resolve import resolve_embedder, resolve_model


def _greedy(model, tok, prompt: str, n: int = 12) -> str:
    import torch

    ids = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    return tok.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.integration
def test_cached_model_matches_gguf_greedy_output(cache, embedded_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = resolve.embedded_gguf()
    ref = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ref_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    cached, tok = cache.model("embedded"), cache.tokenizer("embedded")
    prompt = "Name three primary colours."
    assert _greedy(cached, tok, prompt) == _greedy(ref, ref_tok, prompt)
    assert (models.Path(embedded_path) / "model.safetensors").is_file()


def test_embedded_resolves_to_cache_folder(embedded_path, model_cache_dir):
    resolved = resolve_model("embedded", model_cache_dir)
    assert resolved.source == "embedded" and resolved.path == embedded_path
    assert resolve_model("", model_cache_dir).path == embedded_path


def test_local_folder_wins(embedded_path, model_cache_dir):
    resolved = resolve_model(embedded_path, model_cache_dir)
    assert resolved.source == "local" and resolved.path == embedded_path


def test_folder_without_config_is_named(tmp_path, model_cache_dir):
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path), model_cache_dir)


def test_unreachable_hub_id_is_one_clear_sentence(model_cache_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as err:
        resolve_model("some-org/not-a-real-model", model_cache_dir)
    message = str(err.value)
    assert "'some-org/not-a-real-model'" in message and "cannot be reached" in message and "\n" not in message


def test_embedded_embedder_comes_from_wheel():
    resolved = resolve_embedder("embedded")
    assert resolved.source == "embedded" and resolved.path.endswith("model")


def test_missing_wheel_falls_back_to_hub_then_fails_clearly(model_cache_dir, monkeypatch):
    monkeypatch.setattr(resolve, "embedded_gguf", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HuggingFaceTB/SmolLM2-135M-Instruct"):
        resolve_model("embedded", model_cache_dir / "elsewhere")


@pytest.mark.integration
def test_model_cache_shares_and_releases(cache):
    first = cache.tokenizer("embedded")
    assert cache.tokenizer("embedded") is first
    key = ("tokenizer", cache.resolve("embedded").path)
    assert cache.release(key) == 1
    assert cache.tokenizer("embedded") is not first


@pytest.mark.integration
def test_embedded_embedder_gives_unit_vectors(cache):
    vecs = cache.embedder().encode(["gearbox oil temperature", "gearbox oil heat"], normalize_embeddings=True)
    assert vecs.shape == (2, 384)
    assert float(vecs[0] @ vecs[1]) > 0.5


@pytest.mark.slow
def test_a_forked_child_can_take_the_import_and_conversion_locks_another_thread_held():
    """A ZeroGPU worker is a fork of a threaded app: a module lock held by another thread at the fork is fresh in
    the child (before, `import_libraries` in the child blocked for good)."""
    import os
    import threading

    held, done = threading.Event(), threading.Event()

    def hold():
        with models._IMPORT_LOCK, resolve._CONVERT_LOCK:
            held.set()
            done.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: both locks must be free
        ok = models._IMPORT_LOCK.acquire(timeout=5) and resolve._CONVERT_LOCK.acquire(timeout=5)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    done.set()
    holder.join(10)
    assert os.waitstatus_to_exitcode(status) == 0
