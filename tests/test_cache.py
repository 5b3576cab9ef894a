"""The model cache: a lock per key never held during a load, fork safety, the device in the key, an LRU bounded
by (fake) free memory, and fine-tuned contestants sharing one base model through named LoRA adapters that answer
exactly as a separate copy of the base with the adapter did."""

from __future__ import annotations

import os
import signal
import threading
import weakref

import pytest

from lab.cache import ModelCache
from lab.config import GenConfig, TrainConfig
from lab.shared_base import BASE

QUESTIONS = ["What is the capital of France?", "Name one primary colour.", "2+2=?"]
GEN = GenConfig(max_new_tokens=10, batch_size=4)


class Gate:
    """A `make` that blocks until opened, counting how often it ran (a slow model load under our control)."""

    def __init__(self, value):
        self.value, self.calls = value, 0
        self.started, self.opened = threading.Event(), threading.Event()

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.opened.wait(20), "gate never opened"
        return self.value


def _in_thread(fn, *args):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    thread.start()
    return thread, out


def test_a_load_blocks_only_its_own_key_and_runs_once(tmp_path):
    cache = ModelCache(tmp_path)
    slow = Gate("slow")
    first, got_first = _in_thread(cache._get, ("thing", "a", ""), slow)
    assert slow.started.wait(10)
    other, got_other = _in_thread(cache._get, ("thing", "b", ""), lambda: "quick")
    other.join(5)
    assert got_other == ["quick"], "a load of another key waited for the slow one"
    second, got_second = _in_thread(cache._get, ("thing", "a", ""), Gate("second load"))
    second.join(0.3)
    assert second.is_alive(), "the same key must wait for its load in progress"
    slow.opened.set()
    first.join(5), second.join(5)
    assert got_first == ["slow"] and got_second == ["slow"] and slow.calls == 1


def test_weight_loads_run_one_at_a_time_but_a_tokenizer_does_not_wait(tmp_path):
    cache = ModelCache(tmp_path)
    slow = Gate("model")
    first, _ = _in_thread(cache._get, ("model", "a", "cpu"), slow)
    assert slow.started.wait(10)
    tokenizer, got_tokenizer = _in_thread(cache._get, ("tokenizer", "b"), lambda: "tok")
    tokenizer.join(5)
    assert got_tokenizer == ["tok"], "a tokenizer waited for a model load"
    embedder, got_embedder = _in_thread(cache._get, ("embedder", "c", "cpu"), lambda: "emb")
    embedder.join(0.3)
    assert embedder.is_alive(), "two weight loads ran at once"
    slow.opened.set()
    first.join(5), embedder.join(5)
    assert got_embedder == ["emb"]


def test_a_weight_load_that_loads_another_key_does_not_deadlock(tmp_path):
    cache = ModelCache(tmp_path)
    outer, got = _in_thread(cache._get, ("model", "a", "cpu"), lambda: cache._get(("adapter", "b", "cpu"), lambda: 2))
    outer.join(5)
    assert got == [2]


@pytest.mark.integration
def test_the_first_question_to_a_plain_and_a_rag_contestant_at_once_loads_both(ws, model_cache_dir):
    """A fresh app's first Arena question: a plain and a RAG contestant load the model, the embedder and the index
    in two threads at once, and both answer. (With weights loading two at a time, a workspace whose converted model
    ties its output layer to the embeddings failed both: "Cannot copy out of meta tensor".)"""
    from lab.arena import contestants, live
    from lab.data.store import ensure_sample_domain
    from lab.rag.index import ensure_sample_index

    ensure_sample_domain(ws)
    ensure_sample_index(ws, ModelCache(model_cache_dir))
    cache = ModelCache(model_cache_dir)
    makers = [lambda s=s: contestants.responder(ws, cache, s) for s in ("base", "rag:sample")]
    gen = GenConfig(max_new_tokens=4)
    *_, (answers, errors) = live.stream_many(makers, "What is checked first?", gen, 0.05, cache)
    assert errors == ["", ""] and all(a is not None and a.done for a in answers)


def test_a_failed_load_is_retried_by_the_next_caller(tmp_path):
    cache = ModelCache(tmp_path)

    def broken():
        raise OSError("disk gone")

    with pytest.raises(OSError):
        cache._get(("thing", "a", ""), broken)
    assert cache._get(("thing", "a", ""), lambda: 1) == 1


def test_a_forked_child_can_use_the_cache_while_another_thread_is_mid_load(tmp_path):
    cache = ModelCache(tmp_path)
    cache._get(("thing", "ready", ""), lambda: "kept")  # the per-key protocol every kind uses
    slow = Gate("parent's")
    loader, _ = _in_thread(cache._get, ("thing", "a", ""), slow)
    assert slow.started.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: a deadlock is cut short by the alarm and reads as a failure
        signal.alarm(10)
        ok = (
            cache._get(("thing", "a", ""), lambda: "child's") == "child's"
            and cache._get(("thing", "b", ""), lambda: "b") == "b"
            and cache._get(("thing", "ready", ""), lambda: "reloaded") == "kept"
        )
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    slow.opened.set()
    loader.join(5)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child could not use the cache"
    assert cache._get(("thing", "a", ""), lambda: "again") == "parent's"


class FakeCard:
    """Named fake of one device's memory: `total` bytes, each generator model in the cache takes `per_model`."""

    def __init__(self, total: int, per_model: int):
        self.total, self.per_model, self.cache = total, per_model, None
        self.asked: list[str] = []

    def __call__(self, dev: str) -> int:
        self.asked.append(dev)
        models = [k for k in self.cache.keys() if k[0] == "model"]
        return self.total - self.per_model * len(models)


@pytest.fixture(scope="module")
def three_models(embedded_path, tmp_path_factory):
    """Three model folders (links to the embedded model's files) that the cache sees as three models."""
    from pathlib import Path

    from lab.cache import weights_bytes

    root = tmp_path_factory.mktemp("three")
    folders = []
    for name in "abc":
        folder = root / name
        folder.mkdir()
        for f in Path(embedded_path).iterdir():
            (folder / f.name).symlink_to(f)
        folders.append(str(folder))
    return folders, weights_bytes(embedded_path)


@pytest.mark.integration
def test_least_recently_used_generator_is_dropped_when_free_memory_runs_low(model_cache_dir, three_models):
    folders, size = three_models
    card = FakeCard(total=3 * size, per_model=size)  # room for two loaded models and a third while it loads
    cache = ModelCache(model_cache_dir, free_bytes=card, margin_bytes=0)
    card.cache = cache
    a = weakref.ref(cache.model(folders[0]))
    b = weakref.ref(cache.model(folders[1]))
    assert cache.model(folders[0]) is a()  # a is now more recent than b
    cache.model(folders[2])
    loaded = {k[1] for k in cache.keys() if k[0] == "model"}
    assert loaded == {folders[0], folders[2]} and b() is None  # b dropped and freed, a kept
    assert set(card.asked) == {"cpu"}
    cache.model(folders[1])
    assert {k[1] for k in cache.keys() if k[0] == "model"} == {folders[2], folders[1]}


@pytest.mark.integration
def test_release_generators_frees_every_model_but_keeps_tokenizers(model_cache_dir):
    cache = ModelCache(model_cache_dir)
    model = weakref.ref(cache.model("embedded"))
    cache.tokenizer("embedded")
    assert cache.release_generators() == 1
    assert model() is None and [k[0] for k in cache.keys()] == ["tokenizer"]


@pytest.mark.integration
def test_the_device_is_part_of_the_key_and_asked_per_call(model_cache_dir, monkeypatch):
    from lab import models

    cache = ModelCache(model_cache_dir)
    on_cpu = cache.model("embedded")
    monkeypatch.setattr(models, "device", lambda: "meta")  # a call that runs elsewhere (no weights in memory)
    elsewhere = cache.model("embedded")
    assert elsewhere is not on_cpu and elsewhere.device.type == "meta"
    monkeypatch.setattr(models, "device", lambda: "cpu")
    assert cache.model("embedded") is on_cpu
    assert {k[-1] for k in cache.keys() if k[0] == "model"} == {"cpu", "meta"}


# -- fine-tuned contestants on one base ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapters(embedded_path, tmp_path_factory):
    """Two tiny LoRA adapters with random (non-zero) B weights, saved in PEFT's format: {name: folder}."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lab.models import load_causal_lm

    root, out = tmp_path_factory.mktemp("adapters"), {}
    for seed, (name, targets) in enumerate({"alpha": ["q_proj", "v_proj"], "beta": ["v_proj", "o_proj"]}.items()):
        torch.manual_seed(seed)
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
        get_peft_model(load_causal_lm(embedded_path), lora).save_pretrained(root / name / "adapter")
        out[name] = root / name / "adapter"
    return out


@pytest.fixture(scope="module")
def separate_answers(embedded_path, adapters, cache):
    """Answers of each adapter on its own fresh copy of the base (how contestants were built before sharing)."""
    from peft import PeftModel

    from lab.generation import ModelResponder
    from lab.models import load_causal_lm

    tok, out = cache.tokenizer("embedded"), {}
    for name, folder in adapters.items():
        model = PeftModel.from_pretrained(load_causal_lm(embedded_path), str(folder)).eval()
        out[name] = [a.text for a in ModelResponder(name, model, tok).answer_many(QUESTIONS, GEN)]
        out[name + "_bytes"] = _storage_bytes(model)
        del model
    out["base"] = [
        a.text for a in ModelResponder("base", load_causal_lm(embedded_path), tok).answer_many(QUESTIONS, GEN)
    ]
    return out


def _storage_bytes(*models) -> int:
    """Bytes of distinct tensor storages behind the models' parameters and buffers (shared weights count once)."""
    seen: dict[int, int] = {}
    for model in models:
        for t in [*model.parameters(), *model.buffers()]:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


@pytest.fixture
def ft_ws(ws, adapters):
    for name, folder in adapters.items():
        run = ws.dir("runs", name)
        run.mkdir(parents=True)
        (run / "adapter").symlink_to(folder, target_is_directory=True)
        TrainConfig(name=name, dataset="x").save(run / "config.json")
    return ws


def _model_of(responder):
    """The torch module a responder generates with (the shared base, or its own PEFT copy)."""
    model = responder.model
    return model.shared.model if hasattr(model, "shared") else model


@pytest.mark.integration
def test_two_finetuned_contestants_share_one_base_and_answer_exactly_as_before(
    ft_ws, model_cache_dir, separate_answers
):
    from lab.arena import contestants

    cache = ModelCache(model_cache_dir)
    base = contestants.responder(ft_ws, cache, "base")
    alpha = contestants.responder(ft_ws, cache, "ft:alpha")
    beta = contestants.responder(ft_ws, cache, "ft:beta")
    for name, responder in (("alpha", alpha), ("beta", beta), ("base", base)):
        assert [a.text for a in responder.answer_many(QUESTIONS, GEN)] == separate_answers[name], name
    assert separate_answers["alpha"] != separate_answers["base"] != separate_answers["beta"]  # adapters matter
    assert list(beta.stream(QUESTIONS[2], GEN))[-1].text == separate_answers["beta"][2]  # generated in a thread
    one_copy = _storage_bytes(cache.model("embedded"))
    shared = _storage_bytes(_model_of(base), _model_of(alpha), _model_of(beta))
    separate = separate_answers["alpha_bytes"] + separate_answers["beta_bytes"]
    assert shared == one_copy and shared < 0.55 * separate  # one base plus two sets of LoRA weights
    assert contestants.responder(ft_ws, cache, "ft:alpha").model is alpha.model  # cached


@pytest.mark.integration
def test_a_batch_mixing_base_and_two_adapters_equals_each_answered_alone(ft_ws, model_cache_dir, adapters):
    from lab.arena import contestants
    from lab.generation import plain_messages
    from lab.generation.engine import generate_batch

    cache = ModelCache(model_cache_dir)
    tok = cache.tokenizer("embedded")
    alone = {}
    for spec in ("base", "ft:alpha", "ft:beta"):
        model = contestants.responder(ft_ws, cache, spec).model
        alone[spec] = [t for t, _, _ in generate_batch(model, tok, [plain_messages(q) for q in QUESTIONS], GEN)]
    shared = cache.shared("embedded")
    rows = [(q, spec) for q in QUESTIONS for spec in ("base", "ft:alpha", "ft:beta")]
    names = {"base": BASE, "ft:alpha": contestants.responder(ft_ws, cache, "ft:alpha").model.name}
    names["ft:beta"] = contestants.responder(ft_ws, cache, "ft:beta").model.name
    convs, wide = [plain_messages(q) for q, _ in rows], GenConfig(max_new_tokens=10, batch_size=len(rows))
    mixed = generate_batch(shared, tok, convs, wide, adapter_names=[names[s] for _, s in rows])
    for (q, spec), (text, _, _) in zip(rows, mixed, strict=True):
        assert text == alone[spec][QUESTIONS.index(q)], (q, spec)


@pytest.mark.integration
def test_concurrent_answers_from_two_adapters_do_not_mix(ft_ws, model_cache_dir, separate_answers):
    from lab.arena import contestants

    cache = ModelCache(model_cache_dir)
    responders = {n: contestants.responder(ft_ws, cache, f"ft:{n}") for n in ("alpha", "beta")}
    results: dict[str, list] = {"alpha": [], "beta": []}

    def ask(name):
        for _ in range(2):
            results[name].append([a.text for a in responders[name].answer_many(QUESTIONS, GEN)])

    threads = [threading.Thread(target=ask, args=(n,)) for n in responders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for name in responders:
        assert results[name] == [separate_answers[name]] * 2, name


@pytest.mark.integration
def test_release_unloads_one_adapter_and_the_last_one_restores_the_plain_base(
    ft_ws, model_cache_dir, separate_answers
):
    from lab.arena import contestants

    cache = ModelCache(model_cache_dir)
    beta = contestants.responder(ft_ws, cache, "ft:beta")
    contestants.responder(ft_ws, cache, "ft:alpha")
    shared = cache.shared("embedded")
    assert len(shared.names()) == 2
    assert contestants.release(ft_ws, cache, "ft:alpha") == 1
    assert contestants.release(ft_ws, cache, "ft:alpha") == 0
    assert len(shared.names()) == 1
    assert [a.text for a in beta.answer_many(QUESTIONS, GEN)] == separate_answers["beta"]
    assert contestants.release(ft_ws, cache, "ft:beta") == 1
    assert shared.names() == [] and shared.peft is None
    assert not any("lora" in type(m).__name__.lower() for m in shared.model.modules())
    base = contestants.responder(ft_ws, cache, "base")
    assert [a.text for a in base.answer_many(QUESTIONS, GEN)] == separate_answers["base"]


@pytest.mark.integration
def test_starting_a_training_run_frees_the_apps_generators_first(ws, model_cache_dir):
    from lab.ui import train_tab
    from lab.ui.train_form import form_values

    cache = ModelCache(model_cache_dir)
    model = weakref.ref(cache.model("embedded"))
    run_id, message = train_tab._on_start(ws, cache, *form_values(TrainConfig(name="x", dataset="no-such-data")))
    assert run_id == "" and "no-such-data" in message  # refused, yet the memory was handed back first
    assert model() is None and not [k for k in cache.keys() if k[0] == "model"]


@pytest.mark.integration
def test_rows_of_two_adapters_joining_between_steps_equal_each_answered_alone(ft_ws, model_cache_dir, adapters):
    """Continuous batching (lab.generation.stepper) with fine-tuned contestants over one base: each row decodes
    with its own adapter while rows join and leave, and gets the answer it gets alone."""
    from lab.arena import contestants
    from lab.generation import plain_messages
    from lab.generation.engine import Row, generate_rows
    from lab.generation.stepper import Stepper

    cache = ModelCache(model_cache_dir)
    tok = cache.tokenizer("embedded")
    models = {spec: contestants.responder(ft_ws, cache, spec).model for spec in ("base", "ft:alpha", "ft:beta")}
    rows = [Row(models[spec], tok, plain_messages(q), GEN) for q in QUESTIONS for spec in models]
    alone = [generate_rows([r])[0] for r in rows]
    stepper, out, step = Stepper(cache.shared("embedded")), {}, 0
    while len(out) < len(rows):
        out.update(stepper.add([(i, r) for i, r in enumerate(rows) if i == step]))  # one row joins per step
        out.update(stepper.step())
        step += 1
    assert [out[i] for i in range(len(rows))] == alone
    assert any(len({alone[3 * k + j][0] for j in range(3)}) > 1 for k in range(len(QUESTIONS)))  # adapters matter
