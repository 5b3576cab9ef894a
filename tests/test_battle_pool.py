"""The blind battle's pool follows new work: its default is a spread of at most five contestants (base, the newest
index, the newest fine-tuned run, both together, the newest run trained for RAG with its own index), computed by a
pure function from fixture lists, read from a workspace by the times its adapters and indexes were written, and
read again by the launched app when a page loads, so a run made after the app started enters the pool without a
restart (gradio_client against the real app, with a real LoRA adapter saved into its workspace)."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request

import pytest

from lab.arena.pool import IndexFact, RunFact, battle_pool, default_pool, read_facts
from lab.config import TrainConfig
from lab.ui import arena_battle

SAMPLE = IndexFact("sample", -1.0)


@pytest.mark.parametrize(
    ("runs", "indexes", "pool"),
    [
        ([], [], ["base"]),
        ([], [SAMPLE], ["base", "rag:sample"]),  # a fresh workspace
        ([RunFact("r1", 5.0)], [SAMPLE], ["base", "rag:sample", "ft:r1", "ft+rag:r1:sample"]),
        ([RunFact("r1", 5.0)], [], ["base", "ft:r1"]),
        (  # the full spread: the newest of each kind, the run trained for RAG with its own (older) index
            [RunFact("old", 1.0), RunFact("new", 9.0), RunFact("for-rag", 4.0, "manual"), RunFact("x", 2.0, "notes")],
            [SAMPLE, IndexFact("manual", 3.0), IndexFact("notes", 7.0)],
            ["base", "rag:notes", "ft:new", "ft+rag:new:notes", "ft+rag:for-rag:manual"],
        ),
        (  # every run trained for RAG: the newest is both "newest run" and "newest run trained for RAG"
            [RunFact("a", 1.0, "manual"), RunFact("b", 2.0, "manual")],
            [SAMPLE, IndexFact("manual", 0.5), IndexFact("notes", 3.0)],
            ["base", "rag:notes", "ft:b", "ft+rag:b:notes", "ft+rag:b:manual"],
        ),
        (  # the index a run was trained for is gone: it reads the newest one (listed once)
            [RunFact("a", 1.0, "deleted")],
            [SAMPLE],
            ["base", "rag:sample", "ft:a", "ft+rag:a:sample"],
        ),
        ([RunFact("a", 1.0, "deleted")], [], ["base", "ft:a"]),  # and without any index: the run alone
        (
            [RunFact("b", 1.0), RunFact("a", 1.0)],
            [IndexFact("y", 2.0), IndexFact("x", 2.0)],
            ["base", "rag:y", "ft:b", "ft+rag:b:y"],
        ),  # equal times: the same pick every time  # fmt: skip
        ([], [SAMPLE, IndexFact("mine", 0.0)], ["base", "rag:mine"]),  # the sample is older than any built index
    ],
)
def test_default_pool_is_a_spread_of_the_newest_work(runs, indexes, pool):
    assert default_pool(runs, indexes) == pool
    assert default_pool(reversed(runs), reversed(indexes)) == pool  # the order of the lists does not matter
    assert len(default_pool(runs, indexes, size=2)) == min(2, len(pool))


def _run(ws, name: str, at: float, rag_index: str = "") -> None:
    """A finished run as the contestant list sees it: config.json and an adapter folder written at `at`."""
    folder = ws.dir("runs", name)
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    TrainConfig(name=name, dataset="x", rag_index=rag_index).save(folder / "config.json")
    os.utime(folder / "adapter", (at, at))


def _index(ws, name: str, at: float) -> None:
    folder = ws.dir("indexes", name)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    os.utime(folder / "meta.json", (at, at))


def test_the_pool_reads_the_workspace_newest_first(ws):
    from lab.data import ensure_sample_domain

    ensure_sample_domain(ws)
    assert battle_pool(ws) == ["base", "rag:sample"]
    _index(ws, "manual", 1000.0)
    _run(ws, "first", 2000.0)
    _run(ws, "tuned", 3000.0)
    _run(ws, "reader", 2500.0, rag_index="manual")
    runs, indexes = read_facts(ws, ["base", "ft:tuned", "ft:reader", "rag:manual", "rag:sample"])
    assert RunFact("reader", 2500.0, "manual") in runs and IndexFact("sample", -1.0) in indexes
    assert battle_pool(ws) == ["base", "rag:manual", "ft:tuned", "ft+rag:tuned:manual", "ft+rag:reader:manual"]
    _index(ws, "notes", 4000.0)  # new work moves the pool along
    assert battle_pool(ws)[:4] == ["base", "rag:notes", "ft:tuned", "ft+rag:tuned:notes"]


def test_a_pool_the_voter_edited_keeps_its_value_and_gains_the_new_choices(ws):
    _run(ws, "tuned", 3000.0)
    fresh = arena_battle.pool_update(ws, False, ["base:some/model"])
    assert fresh["value"] == ["base", "ft:tuned"] and fresh["choices"] == ["base", "ft:tuned", "base:some/model"]
    kept = arena_battle.pool_update(ws, True, [])
    assert kept["choices"] == ["base", "ft:tuned"] and "value" not in kept  # the voter's own pool stays as it is


@pytest.fixture
def new_run(app_home, cache):
    """A fine-tuned run saved into the launched app's workspace after it started (a real LoRA adapter over the
    embedded model, as training writes it); removed afterwards so other UI tests see the sample workspace."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lab.models import load_causal_lm

    folder = app_home / "runs" / "late-arrival"
    folder.mkdir(parents=True)
    try:
        torch.manual_seed(0)
        lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
        get_peft_model(load_causal_lm(cache.resolve("embedded").path), lora).save_pretrained(folder / "adapter")
        TrainConfig(name="late-arrival", dataset="sample").save(folder / "config.json")
        yield "late-arrival"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _pool_a_new_page_shows(client, app_url) -> list[str]:
    """The battle pool as a page opened now shows it, done as a browser does it: the value in the app's config,
    then whatever the page-load events put there."""
    with urllib.request.urlopen(f"{app_url}/config", timeout=30) as resp:
        config = json.loads(resp.read())
    (picker,) = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "battle-pool"]
    value = picker["props"]["value"]
    for dep in config["dependencies"]:
        if any(event == "load" for _, event in dep["targets"]) and picker["id"] in dep["outputs"]:
            out = client.predict(api_name=f"/{dep['api_name']}")
            out = out if len(dep["outputs"]) == 1 else out[dep["outputs"].index(picker["id"])]
            value = out.get("value", value) if isinstance(out, dict) else out
    return list(value)


@pytest.mark.integration
def test_a_run_made_after_the_app_started_enters_the_default_pool_without_a_restart(client, app_url, new_run):
    """The new run and its pairing with the newest index are in the default pool, not only among the choices."""
    assert _pool_a_new_page_shows(client, app_url) == [
        "base",
        "rag:sample",
        f"ft:{new_run}",
        f"ft+rag:{new_run}:sample",
    ]
    update = client.predict(api_name="/arena_battle_pool")  # the page-load event: the picker's choices and value
    assert set(update["value"]) <= {c[0] if isinstance(c, list | tuple) else c for c in update["choices"]}


@pytest.mark.integration
def test_the_launched_app_pool_is_the_sample_pair_on_a_fresh_workspace(client, app_url, app_home):
    assert not (app_home / "runs" / "late-arrival").exists()
    assert _pool_a_new_page_shows(client, app_url) == ["base", "rag:sample"]
