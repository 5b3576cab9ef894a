"""Train on preferences: the pairs reader's line errors, a DPO run's checks, and (integration, embedded model) a short
DPO run through lab.jobs that changes the adapter and ends with a higher reward margin than it started."""

from __future__ import annotations

import json
import resource
import threading
import time

import pytest

from lab.config import ConfigError, TrainConfig
from lab.training import ADAPTER, prefs, read_progress, read_status

COLOURS = ("red", "blue", "green", "amber", "violet", "teal")


def write_pairs(path, n: int = 24):
    """A seeded fixture: the chosen answer states a colour, the rejected one is the same evasive line every time."""
    rows = [
        {
            "prompt": f"Which colour is crate {i}?",
            "chosen": f"Crate {i} is {COLOURS[i % len(COLOURS)]}.",
            "rejected": "no no no no no no no no",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pairs_as_strings_or_messages_become_trl_conversations(tmp_path):
    path = tmp_path / "p.jsonl"
    messages = {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
        "chosen": [{"role": "assistant", "content": "Hello."}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    path.write_text(json.dumps({"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}) + "\n\n" + json.dumps(messages))
    first, second = prefs.read_pairs(path)
    assert first["prompt"] == [{"role": "user", "content": "Q?"}]
    assert first["chosen"] == [{"role": "assistant", "content": "Yes."}]
    assert first["rejected"] == [{"role": "assistant", "content": "No."}]
    assert second == messages


@pytest.mark.parametrize(
    "line, error",
    [
        ('{"prompt": "Q?", "chosen": "A."}', "line 2: missing rejected"),
        ('{"prompt": "Q?", "chosen": "A.", "rejected": "A."}', "line 2: chosen and rejected are the same"),
        ('{"prompt": "", "chosen": "A.", "rejected": "B."}', "line 2: 'prompt' is empty"),
        ("not json", "p.jsonl line 2: not JSON"),
        ('{"prompt": "Q?", "chosen": [{"role": "user", "content": "A."}], "rejected": "B."}',
         "line 2: 'chosen' must end with an assistant message"),
    ],
)  # fmt: skip
def test_a_bad_pair_is_an_error_naming_its_line(tmp_path, line, error):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "Q?", "chosen": "A.", "rejected": "B."}) + "\n" + line + "\n")
    with pytest.raises(prefs.PrefsError, match=error):
        prefs.read_pairs(path)


def test_dpo_settings_are_checked():
    assert TrainConfig(method="dpo", prefs="x.jsonl").beta == 0.1
    with pytest.raises(ConfigError, match="beta=0"):
        TrainConfig(method="dpo", beta=0)
    with pytest.raises(ConfigError, match="lora, qlora or dpo"):
        TrainConfig(method="ppo")


def test_a_dpo_run_without_pairs_or_for_rag_is_refused_before_it_starts(ws, tmp_path):
    from lab import jobs

    with pytest.raises(prefs.PrefsError, match="prefs is empty"):
        jobs.start(ws, TrainConfig(method="dpo"))
    with pytest.raises(prefs.PrefsError, match="no such file"):
        jobs.start(ws, TrainConfig(method="dpo", prefs=str(tmp_path / "missing.jsonl")))
    with pytest.raises(jobs.JobError, match="rag_index='docs'"):
        jobs.start(ws, TrainConfig(method="dpo", prefs=str(write_pairs(tmp_path / "p.jsonl")), rag_index="docs"))
    assert ws.list("runs") == []


def _lora_b(run_dir):
    from safetensors.torch import load_file

    weights = load_file(str(run_dir / ADAPTER / "adapter_model.safetensors"))
    return {k: v for k, v in weights.items() if "lora_B" in k}


@pytest.mark.integration
def test_dpo_run_changes_the_adapter_and_raises_the_reward_margin(ws, tmp_path, embedded_path, capsys):
    from lab import jobs
    from lab.arena import contestants

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    config = TrainConfig(name="prefer", method="dpo", prefs=str(pairs), batch_size=2, max_length=48, max_steps=4,
                         learning_rate=5e-4, warmup_ratio=0.0, scheduler="constant", logging_steps=1,
                         target_modules="attention")  # fmt: skip
    plan = jobs.check(ws, config)
    assert plan["n_train"] == 24 and plan["steps"] == 4 and plan["memory_mb"]["total"] > 0
    started, before = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    run_id = jobs.start(ws, config)
    info = jobs.wait(ws, run_id, timeout=600)
    for reaper in [t for t in threading.enumerate() if t.name == f"reap-{info['status'].get('pid')}"]:
        reaper.join(60)  # the child exits after its final status: reaped, its CPU time is counted
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    with capsys.disabled():
        print(f"\nDPO run: {time.time() - started:.1f} s wall, "
              f"{used.ru_utime + used.ru_stime - before.ru_utime - before.ru_stime:.1f} s CPU, "
              f"peak RSS {info['status'].get('metrics', {}).get('peak_memory_mb')} MB")  # fmt: skip
    run_dir = ws.dir("runs", run_id)
    assert info["state"] == "finished", info["status"].get("error")
    margins = [r["reward_margin"] for r in read_progress(run_dir) if "reward_margin" in r]
    assert len(margins) == 4 and margins[-1] > margins[0]
    assert all("reward_chosen" in r and "reward_rejected" in r and "loss" in r for r in read_progress(run_dir))
    assert any(v.abs().sum() > 0 for v in _lora_b(run_dir).values())  # LoRA B starts at zero: trained
    assert not (run_dir / ADAPTER / "ref").exists() and (run_dir / prefs.RUN_FILE).is_file()
    status = read_status(run_dir)
    assert status["n_pairs"] == 24 and len(status["data_hash"]) == 64 and status["metrics"]["reward_margin"] > 0
    assert f"ft:{run_id}" in contestants.available(ws)
    assert "--prefs" in (run_dir / "README.md").read_text()
    assert jobs.list_runs(ws)[0]["method"] == "dpo"

    # continued from that run: TRL's frozen copy of the parent's adapter is the reference; only the result is saved
    from lab.training import engine

    child = ws.dir("runs", "prefer2")
    child.mkdir()
    config.replace(name="prefer2", from_run=run_id, max_steps=2).save(child / "config.json")
    prefs.write_run_file(child, prefs.read_pairs(pairs))
    assert engine.train(child)["state"] == "finished"
    parent, after = _lora_b(run_dir), _lora_b(child)
    assert parent.keys() == after.keys() and any(not parent[k].equal(after[k]) for k in parent)
    assert not (child / ADAPTER / "ref").exists()


def test_the_train_tab_charts_a_dpo_run_s_rewards_and_leaves_the_chart_alone_for_others():
    from lab.ui.train_tab import reward_plot

    dpo = [{"step": s, "loss": 0.5, "reward_margin": m, "reward_chosen": m / 2, "reward_rejected": -m / 2}
           for s, m in ((1, 0.0), (2, 1.5))]  # fmt: skip
    plot = reward_plot(dpo, total_steps=4)
    rows = plot.value["data"]
    assert len(rows) == 6 and {r[2] for r in rows} == {"reward_margin", "reward_chosen", "reward_rejected"}
    assert plot.visible and plot.x_lim == [0, 10]
    assert reward_plot([{"step": 1, "loss": 2.0}]) == {"__type__": "update"}  # a fine-tuning run: no update (skip)
