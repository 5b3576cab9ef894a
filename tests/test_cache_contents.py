"""The model cache holds models, tokenizers and embedders only: cancel requests, open index handles and batchers
live in their own registries (lab.cancel, lab.rag.registry, lab.generation.batchers), and releasing a model
still frees it."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import threading
import time
import weakref
from pathlib import Path

import pytest

from lab.cancel import Cancellations
from lab.generation.batchers import BatcherRegistry
from lab.rag.registry import IndexRegistry

DOCS = Path(__file__).resolve().parent.parent / "data" / "docs"
MODEL_KINDS = {"tokenizer", "model", "adapter", "embedder"}


class Owner:
    """Stands for a model cache: the registry keeps it weakly."""


class Base:
    """Stands for a loaded base model: the batcher registry keys it weakly."""


def test_cancel_requests_are_per_name_and_per_workspace(tmp_path):
    builds = Cancellations(tmp_path / "a", "index-build")
    other_ws = Cancellations(tmp_path / "b", "index-build")
    other_kind = Cancellations(tmp_path / "a", "evaluation")
    builds.start("idx")
    assert not builds.requested("idx")
    builds.request(" idx ")  # the name as typed in a form
    assert builds.requested("idx") and not builds.requested("other")
    assert not other_ws.requested("idx") and not other_kind.requested("idx")
    builds.start("idx")  # a new build of the same name starts uncancelled
    assert not builds.requested("idx")


def test_a_cancel_requested_in_the_parent_reaches_a_forked_worker(tmp_path):
    builds = Cancellations(tmp_path, "index-build")
    builds.start("idx")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: waits for the request, exits 0 once it sees it
        signal.alarm(10)
        os.read(read, 1)
        os._exit(0 if builds.requested("idx") else 3)
    builds.request("idx")
    os.write(write, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_index_handle_is_reused_per_build_and_cache_and_dropped_on_delete():
    registry, cache, other = IndexRegistry(), Owner(), Owner()
    made: list[str] = []

    def make(label: str):
        return lambda: made.append(label) or label

    assert registry.get("/i/a", "b1", cache, make("a1")) == "a1"
    assert registry.get("/i/a", "b1", cache, make("again")) == "a1"
    assert registry.get("/i/a", "b2", cache, make("a2")) == "a2"  # a new build replaces the old handle
    assert registry.get("/i/a", "b2", other, make("other")) == "other"  # another cache opens its own
    assert registry.folders() == ["/i/a"]
    assert registry.drop("/i/a") and not registry.drop("/i/a")
    assert made == ["a1", "a2", "other"]


def test_one_index_opens_once_for_concurrent_callers():
    registry, cache = IndexRegistry(), Owner()
    opened, started = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow():
        calls.append(1)
        started.set()
        opened.wait(5)
        return "index"

    out: list = []
    threads = [threading.Thread(target=lambda: out.append(registry.get("/i/a", "b", cache, slow))) for _ in range(3)]
    for t in threads:
        t.start()
    assert started.wait(5)
    opened.set()
    for t in threads:
        t.join(5)
    assert out == ["index"] * 3 and calls == [1]


def test_one_batcher_per_base_and_it_goes_with_the_base():
    registry = BatcherRegistry()
    base, other = Base(), Base()
    first = registry.get(base, 16, 0.1, object)
    assert registry.get(base, 16, 0.1, object) is first
    assert registry.get(other, 16, 0.1, object) is not first
    assert registry.get(base, 8, 0.1, object) is not first  # other settings, another batcher
    assert len(registry) == 3
    del base
    gc.collect()
    assert len(registry) == 1


@pytest.fixture
def small_docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("08-blade-inspection.md", "13-lightning-protection.md"):
        shutil.copy(DOCS / name, folder / name)
    return folder


def _wait_idle(batcher, timeout: float = 30) -> None:
    """Until the batcher's worker thread has ended (it keeps its last batch's rows while it waits for more)."""
    end = time.monotonic() + timeout
    while batcher._worker is not None and time.monotonic() < end:
        time.sleep(0.1)


@pytest.mark.integration
def test_the_cache_holds_only_models_after_a_build_a_cancel_and_a_batched_answer(ws, model_cache_dir, small_docs):
    from lab.cache import ModelCache
    from lab.config import GenConfig, RagConfig
    from lab.generation import ModelResponder
    from lab.generation.batchers import BATCHERS
    from lab.generation.engine import batcher_for
    from lab.rag import RagError, build_index, delete_index, list_indexes, open_index
    from lab.ui import rag_tab

    cache = ModelCache(model_cache_dir)
    build_index(ws, RagConfig(name="kept", corpus=str(small_docs)), cache)
    index = open_index(ws, "kept", cache)
    assert open_index(ws, "kept", cache) is index  # the handle is shared, from the index registry
    report = rag_tab.checked_progress(ws, "doomed", lambda fraction, desc: None)
    rag_tab.request_cancel(ws, "doomed")
    with pytest.raises(RagError, match="build of 'doomed' cancelled"):
        build_index(ws, RagConfig(name="doomed", corpus=str(small_docs)), cache, progress=report)
    assert "doomed" not in list_indexes(ws)

    responder = ModelResponder("base", cache.generator("embedded"), cache.tokenizer("embedded"))
    batcher = batcher_for(responder.model)
    answer = responder.answer_batched("What is 3 + 4?", GenConfig(max_new_tokens=4), batcher, "s1", lambda a: None)
    assert answer.done and batcher.batches == 1
    assert {key[0] for key in cache.keys()} <= MODEL_KINDS

    base = weakref.ref(cache.shared("embedded"))
    batchers = len(BATCHERS)
    _wait_idle(batcher)
    del responder, batcher, answer
    assert cache.release_generators() >= 1
    gc.collect()
    assert base() is None, "a released model is still held"
    assert len(BATCHERS) == batchers - 1  # its batcher went with it
    delete_index(ws, "kept")
