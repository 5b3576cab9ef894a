"""Class mode (lab.classroom, `app.py --class`): 32 answers decode together and a CPU with native bf16 serves in
bfloat16, unless the user set those themselves; the Teacher tab says whether it is on; and the first use of an
index embeds its passage sentences ahead, so a class's RAG answers encode only their question."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lab import classroom
from lab.arena.contestants import warm_ahead
from lab.generation import batcher
from lab.generation.focus import MemoEmbedder, focus_passages, index_sentences, warm_index
from lab.models import serving_dtype
from lab.ui.teacher_tab import class_mode_line
from tests.fakes import MemoEmbedderSpy

REPO = Path(__file__).resolve().parent.parent
CHUNKS = [
    {"text": "The pump is checked every week. The filter is replaced every 500 hours."},
    {"text": "The filter is replaced every 500 hours.\nA red lamp means the pressure is too low."},
]


@pytest.fixture
def plain_env(monkeypatch):
    for name in ("LAB_CLASS", "LAB_BATCH_SIZE", "LAB_SERVE_DTYPE", "SPACES_ZERO_GPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("lab.catalog.cpu_has_bf16", lambda: True)
    monkeypatch.setattr("lab.models.device", lambda env=None: "cpu")
    return monkeypatch


def test_class_mode_is_read_from_lab_class():
    assert not classroom.class_mode({})
    assert classroom.class_mode({"LAB_CLASS": "1"}) and classroom.class_mode({"LAB_CLASS": " Yes "})
    assert not classroom.class_mode({"LAB_CLASS": "0"})
    env: dict = {}
    classroom.turn_on(env)
    assert classroom.class_mode(env)


def test_class_mode_decodes_32_rows_and_serves_bf16_on_a_bf16_cpu(plain_env):
    assert batcher.max_batch() == 16 and serving_dtype() == "auto"
    plain_env.setenv("LAB_CLASS", "1")
    assert batcher.max_batch() == 32 and serving_dtype() == "bfloat16"
    assert "32 answers decode together, computed in bfloat16" in class_mode_line()


def test_the_users_own_settings_win_over_class_mode(plain_env):
    plain_env.setenv("LAB_CLASS", "1")
    plain_env.setenv("LAB_BATCH_SIZE", "8")
    plain_env.setenv("LAB_SERVE_DTYPE", "float32")
    assert batcher.max_batch() == 8 and serving_dtype() == "float32"
    assert "8 answers decode together, computed in float32" in class_mode_line()


def test_class_mode_keeps_float32_on_a_cpu_without_bf16_and_auto_on_a_gpu(plain_env):
    plain_env.setenv("LAB_CLASS", "1")
    plain_env.setattr("lab.catalog.cpu_has_bf16", lambda: False)
    assert serving_dtype() == "auto" and "float32 (this CPU has no native bf16)" in class_mode_line()
    plain_env.setattr("lab.catalog.cpu_has_bf16", lambda: True)
    plain_env.setattr("lab.models.device", lambda env=None: "cuda")
    assert serving_dtype() == "auto" and "the card's half precision" in class_mode_line()


def test_class_mode_changes_nothing_on_zerogpu(plain_env):
    plain_env.setenv("LAB_CLASS", "1")
    plain_env.setenv("SPACES_ZERO_GPU", "true")
    assert serving_dtype() == "auto"
    assert "not batched here" in class_mode_line()


def test_the_summary_says_how_to_turn_class_mode_on(plain_env):
    assert "python app.py --class" in class_mode_line()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_app_py_class_starts_the_app_in_class_mode(tmp_path, model_cache_dir):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(model_cache_dir, target_is_directory=True)
    env = {**os.environ, "LAB_HOME": str(home), "PYTHONPATH": str(REPO), "LAB_SERVE_DTYPE": "float32"}
    env.pop("LAB_CLASS", None)
    proc = subprocess.Popen([sys.executable, "app.py", "--class", "--port", str(_free_port())], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        lines = []
        for line in proc.stdout:  # the line comes before the server starts; read until it (or the end)
            lines.append(line)
            if "Class mode" in line or len(lines) > 400:
                break
        assert any("Class mode is on: up to 32 answers decode together, computed in float32" in x for x in lines), (
            "".join(lines[-40:])
        )
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_index_sentences_are_distinct_in_order_and_bounded():
    every = index_sentences(CHUNKS)
    assert every == ["The pump is checked every week.", "The filter is replaced every 500 hours.",
                     "A red lamp means the pressure is too low."]  # fmt: skip
    assert index_sentences(CHUNKS, limit=2) == every[:2]


def test_after_warming_an_index_focusing_encodes_only_the_question():
    embedder = MemoEmbedderSpy()
    assert warm_index(embedder, CHUNKS, block=2) == 3 and len(embedder.encoded) == 3
    focus_passages("How often is the filter replaced?", CHUNKS, MemoEmbedder(embedder), keep=1)
    assert embedder.encoded[3:] == ["How often is the filter replaced?"]


class _Index:
    name = "manual"

    def __init__(self):
        self.embedder, self.chunks = MemoEmbedderSpy(), CHUNKS


def test_class_mode_warms_an_index_once_in_the_background(plain_env):
    index = _Index()
    assert warm_ahead(index) is None and not index.embedder.encoded  # class mode off: answers embed lazily
    plain_env.setenv("LAB_CLASS", "1")
    thread = warm_ahead(index)
    thread.join(timeout=30)
    assert len(index.embedder.memo) == 3 and warm_ahead(index) is None


def test_the_teacher_panel_says_whether_class_mode_is_on(plain_env, ws, cache):
    import gradio as gr

    from lab.ui import teacher_tab
    from lab.ui.roles import ServerSettings

    def shown() -> str:
        with gr.Blocks() as demo:
            teacher_tab.build(ws, cache, ServerSettings())
        line = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "teacher-class-mode")
        return line.value

    assert "Class mode is off" in shown()
    plain_env.setenv("LAB_CLASS", "1")
    assert shown().startswith("Class mode is on: up to 32 answers")
