"""`python -m lab index prompt`: the passages and the exact prompt the Arena's `rag:INDEX` contestant sends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lab.cli import main

DOCS = Path(__file__).resolve().parent.parent / "data" / "docs"
QUESTION = "Which alarm follows a lightning strike?"


@pytest.fixture
def small_index(ws, cache, tmp_path) -> str:
    from lab.config import RagConfig
    from lab.rag import build_index

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("08-blade-inspection.md", "13-lightning-protection.md"):
        shutil.copy(DOCS / name, folder / name)
    build_index(ws, RagConfig(name="small", corpus=str(folder)), cache)
    return "small"


def _arena_prompt(ws, cache, name: str, top_k: int, focus: int) -> str:
    """What the Arena's contestant itself sends (its own retrieval and messages, the generator's template)."""
    from lab.arena.contestants import responder
    from lab.config import GenConfig
    from lab.generation.engine import _prompt_text

    arena = responder(ws, cache, f"rag:{name}")
    gen = GenConfig(top_k=top_k, focus_sentences=focus)
    return _prompt_text(arena.tok, arena._messages(QUESTION, arena._retrieve([QUESTION], gen)[0], gen))


def test_the_cli_prints_the_prompt_the_arena_sends(ws, cache, small_index, capsys):
    assert main(["index", "prompt", small_index, QUESTION, "--top-k", "3", "--focus", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompt"] == _arena_prompt(ws, cache, small_index, 3, 2)
    assert len(out["passages"]) == 3 and all(p["source"].endswith(".md") for p in out["passages"])
    assert main(["index", "prompt", small_index, QUESTION, "--focus", "0"]) == 0
    text = capsys.readouterr().out
    assert _arena_prompt(ws, cache, small_index, 5, 0) in text and "#1 " in text
