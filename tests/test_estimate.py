"""Honest time: estimates are ranges from this machine's measured stage times, scaled (and said to be scaled) when
other work shares the CPU; the ETA of a running stage follows its measured progress; a stage estimated over ten
minutes is confirmed first (Start tab: a second click; CLI: --yes). Pure functions with the machine's facts passed
in: no model is loaded."""

from __future__ import annotations

import time

import pytest

from lab.arena import showcase
from lab.arena.timing import DEFAULT_S, SLOW_CPU, Forecast, Plan, stage_estimate, stage_idle_s
from lab.estimate import ASK_ABOVE_S, Estimate, Machine, drift, estimate, eta, load_factor, range_text

IDLE, BUSY = Machine(cores=2, load=0.0), Machine(cores=2, load=2.0)  # BUSY: two spinning threads beside the work


def test_the_load_factor_is_one_when_idle_and_grows_with_other_runnable_threads():
    assert load_factor(0.0, 2) == 1.0 and IDLE.factor == 1.0
    assert BUSY.factor > 2.0  # two busy threads on two cores: the work gets one thread, and 2/3 of a core for it
    assert 1.0 < load_factor(2.0, 16) < 1.2  # the same load on a big machine barely matters
    assert load_factor(-1.0, 2) == 1.0


def test_an_estimate_is_a_range_scaled_by_the_load_and_says_so():
    idle = estimate(100.0, IDLE)
    assert idle.lo < idle.seconds == 100.0 < idle.hi and idle.note == ""
    busy = estimate(100.0, BUSY)
    assert busy.seconds == pytest.approx(100.0 * BUSY.factor) and busy.lo > idle.lo
    assert busy.hi / busy.seconds > idle.hi / idle.seconds  # wider at the top: other work comes and goes
    assert busy.note == f"the CPU is busy: estimate x{BUSY.factor:.1f}" and busy.note in busy.says()
    guess = estimate(100.0, IDLE, measured=False)
    assert guess.hi - guess.lo > idle.hi - idle.lo  # nothing measured here yet: a wider range


@pytest.mark.parametrize(
    ("lo", "hi", "text"),
    [(40, 60, "about 40-60 s"), (100, 170, "about 1-3 min"), (130, 175, "about 2-3 min"), (9 * 60, 14.2 * 60,
     "about 9-15 min"), (3 * 3600, 4.5 * 3600, "about 3.0-4.5 h"), (0, 0.4, "a few seconds")],
)  # fmt: skip
def test_ranges_read_in_whole_units(lo, hi, text):
    assert range_text(lo, hi) == text


def test_the_eta_follows_measured_progress_not_the_prior_guess():
    assert eta(60.0, 0.5, prior_left_s=900.0) == pytest.approx(60.0)
    assert eta(30.0, 0.25) == pytest.approx(90.0)
    assert eta(1.0, 0.01, prior_left_s=120.0) == 120.0  # too little progress to measure: the estimate stands
    assert eta(5.0, 1.0, prior_left_s=120.0) == 0.0
    assert drift(200.0, 100.0) == 2.0 and drift(1000.0, 1.0) == 4.0 and drift(0.0, 10.0) == 1.0


def test_a_stage_estimate_comes_from_the_last_comparison_taken_back_to_an_idle_machine():
    plan = Plan(answers=12, steps={"plain": 37})
    prior = {
        "eval:RAG": {"stage": "eval:RAG", "seconds": 63.0, "answers": 40, "factor": 2.0},  # measured under load
        "train:plain": {"stage": "train:plain", "seconds": 62.0, "steps": 37},
    }
    idle, measured = stage_idle_s("eval:RAG", prior, plan)
    assert measured and idle == pytest.approx(DEFAULT_S["load"] + (31.5 - DEFAULT_S["load"]) / 40 * 12)
    assert stage_idle_s("train:plain", prior, plan) == (pytest.approx(62.0), True)
    assert stage_estimate("train:plain", prior, plan, BUSY).seconds == pytest.approx(62.0 * BUSY.factor)
    default, measured = stage_idle_s("eval:base", {}, plan)
    assert not measured and default == pytest.approx(DEFAULT_S["load"] + DEFAULT_S["answer"] * 12)
    slow = stage_idle_s("eval:base", {}, Plan(answers=12, fast_cpu=False))[0]
    assert slow == pytest.approx(DEFAULT_S["load"] + SLOW_CPU * DEFAULT_S["answer"] * 12)
    assert stage_idle_s("train:plain", {}, Plan(steps={"plain": 37}, measured_train_s={"plain": 30.0}))[0] == 55.0
    assert stage_idle_s("index", {}, Plan(reused={"index"}))[0] < 1.0  # its product exists: only read


def test_the_quick_look_asks_twelve_questions_keeping_every_group():
    from lab.data import ensure_sample_domain
    from lab.data.evalset import read_evalset, sample_evalset_path, stratified
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    ensure_sample_domain(ws)
    inputs = showcase.quick_look(showcase.Inputs(dataset="mine", contestants=["base"]))
    assert inputs.quick and inputs.questions == showcase.QUICK_QUESTIONS == 12 and inputs.dataset == "mine"
    every = read_evalset(sample_evalset_path(ws))
    picked = stratified(every, inputs.questions, inputs.seed)
    strata = {(it.group, it.answerable) for it in every}
    assert len(picked) == 12 and {(it.group, it.answerable) for it in picked} == strata


def _forecast(*seconds: float, machine: Machine = IDLE) -> Forecast:
    stages = [(f"s{i}", f"stage {i}", estimate(s, machine)) for i, s in enumerate(seconds)]
    return Forecast(stages, machine, 12)


def test_a_stage_over_ten_minutes_asks_for_a_second_click_with_the_estimate_on_the_button():
    from lab.ui import start_view

    short, long = _forecast(30.0, 200.0), _forecast(30.0, ASK_ABOVE_S + 60)
    assert start_view.ask_first(short, "", "k") == ""
    label = start_view.ask_first(long, "", "k")
    assert label.startswith("Run anyway (est. ") and label.endswith("min)")
    assert start_view.ask_first(long, "k", "k") == ""  # the second click on the same inputs starts it
    assert start_view.ask_first(long, "k", "other inputs") == label
    assert "stage 1" in start_view.ask_md(long, label) and "Not started" in start_view.ask_md(long, label)
    assert start_view.ask_first(_forecast(400.0, machine=BUSY), "", "k")  # idle it fits; on a busy CPU it does not


def test_the_cli_prints_the_estimate_and_runs_a_long_stage_only_with_yes(capsys):
    from lab.cli.showcase import _confirm

    with pytest.raises(showcase.ShowcaseError, match="add --yes"):
        _confirm(_forecast(30.0, ASK_ABOVE_S + 60), yes=False)
    assert "stage 1: about" in capsys.readouterr().err
    _confirm(_forecast(30.0, ASK_ABOVE_S + 60), yes=True)
    _confirm(_forecast(30.0), yes=False)


def test_the_forecast_adds_the_stages_and_names_reused_ones():
    plan = Forecast([("index", "Index", estimate(0.5)), ("eval:base", "Evaluating base", estimate(60.0))], IDLE, 12,
                    {"index"})  # fmt: skip
    assert plan.total.seconds == pytest.approx(60.5) and plan.lines()[0] == "Index: reused"
    assert plan.lines()[1].startswith("Evaluating base: about")


def test_the_run_eta_follows_measured_progress_and_the_overall_eta_the_drift(tmp_path):
    from lab.workspace import Workspace

    seen = []
    run = showcase._Run(Workspace.open(tmp_path), None, showcase.Inputs(contestants=["base"]), seen.append, None,
                        machine=IDLE)  # fmt: skip
    run.number, run.stage_started = 1, time.time() - 60.0  # validate, half done after a minute
    run.report(0.5, "halfway")
    assert seen[-1].stage_eta_s == pytest.approx(60.0, abs=2.0)  # not the 15 s default guess
    later = sum(run.expected(s) for s, _, _ in run.stages[1:])
    assert seen[-1].overall_eta_s == pytest.approx(60.0 + later, abs=2.0)
    run.expected_done, run.taken_done = 10.0, 30.0  # the finished stages ran 3x slower than estimated
    run.report(0.5, "halfway")
    assert seen[-1].overall_eta_s == pytest.approx(60.0 + 3 * later, abs=2.0)


def test_a_training_estimate_is_a_range_that_scales_with_the_load_on_a_cpu_only():
    from lab.training import preflight

    plan = {"time_s": 120.0, "time_source": "measured speed of the last finished run(s)", "device": "cpu"}
    idle, busy = preflight.time_range(plan, IDLE), preflight.time_range(plan, BUSY)
    assert idle["time_range"] == "about 1-3 min" and idle["load_note"] == ""
    assert busy["time_lo_s"] == pytest.approx(BUSY.factor * idle["time_lo_s"])
    assert f"x{BUSY.factor:.1f}" in busy["load_note"]
    gpu = preflight.time_range({**plan, "device": "cuda:0"}, BUSY)
    assert gpu["load_note"] == "" and gpu["time_lo_s"] == idle["time_lo_s"]
    rough = preflight.time_range({**plan, "time_source": "rough guess from the model size"}, IDLE)
    assert rough["time_hi_s"] - rough["time_lo_s"] > idle["time_hi_s"] - idle["time_lo_s"]


def test_the_progress_view_draws_a_real_bar_and_quotes_the_first_estimate():
    from lab.ui import start_view

    u = showcase.Update("eval:base", "Evaluating base", 4, 8, 0.0, 30.0, 90.0, "loading base")
    text = start_view.progress_md(u, Estimate(100.0, 80.0, 125.0, 2.0))
    assert "role='progressbar'" in text and "aria-valuenow='0'" in text and "`[" not in text
    assert "estimated at the start: about 1-3 min (the CPU is busy: estimate x2.0)" in text


def test_the_load_is_read_from_the_kernels_runnable_count_without_the_reader(tmp_path):
    from lab.estimate import _runnable, machine_now

    path = tmp_path / "loadavg"
    path.write_text("0.52 0.58 0.59 3/467 1234\n")
    assert _runnable(str(path)) == 2
    assert _runnable(str(tmp_path / "missing")) is None
    now = machine_now(samples=2, every_s=0.0)
    assert now.cores >= 1 and now.load >= 0.0


def test_torch_gets_the_cores_other_work_leaves_free_and_at_least_one():
    from lab.estimate import pick_threads

    assert pick_threads(2, 0.0) == 2  # idle: every core
    assert pick_threads(2, 1.0) == 1 and pick_threads(2, 2.0) == 1 and pick_threads(2, 7.0) == 1
    assert pick_threads(16, 2.0) == 14 and pick_threads(16, 0.4) == 16 and pick_threads(16, 0.5) == 15
    assert pick_threads(1, 0.0) == 1 and pick_threads(0, -1.0) == 1


def test_the_users_own_thread_setting_wins_over_the_load():
    from lab.estimate import THREADS_ENV, ThreadsError, choose_threads, user_threads

    assert choose_threads(BUSY, {}).count == 1 and choose_threads(IDLE, {}).count == 2
    assert choose_threads(IDLE, {}).source == "load" and "2 of 2 cores" in choose_threads(IDLE, {}).why
    mine = choose_threads(BUSY, {THREADS_ENV: "2", "OMP_NUM_THREADS": "1"})
    assert (mine.count, mine.source, mine.why) == (2, THREADS_ENV, f"{THREADS_ENV}=2")
    assert choose_threads(IDLE, {"OMP_NUM_THREADS": "1"}).count == 1
    assert choose_threads(IDLE, {"LAB_GEN_THREADS": "1"}, names=("LAB_GEN_THREADS", THREADS_ENV)).count == 1
    assert user_threads({"OMP_NUM_THREADS": "many"}) is None  # torch ignores it too
    with pytest.raises(ThreadsError, match=f"{THREADS_ENV}='0'"):
        user_threads({THREADS_ENV: "0"})


def test_applying_the_policy_sets_torchs_threads_unless_omp_num_threads_chose_them():
    torch = pytest.importorskip("torch")
    from lab.estimate import apply_threads

    before = torch.get_num_threads()
    try:
        assert apply_threads(BUSY, {}).count == 1 and torch.get_num_threads() == 1
        assert apply_threads(IDLE, {"LAB_THREADS": "2"}).count == 2 and torch.get_num_threads() == 2
        torch.set_num_threads(1)
        assert apply_threads(IDLE, {"OMP_NUM_THREADS": "3"}).source == "OMP_NUM_THREADS"
        assert torch.get_num_threads() == 1  # torch read OMP_NUM_THREADS itself at start: left as it is
    finally:
        torch.set_num_threads(before)


def test_the_load_factor_with_the_policy_counts_the_threads_it_leaves_the_work():
    from lab.estimate import PARALLEL_GAIN

    one_busy = load_factor(1.0, 2)  # one thread left to the work, with a whole core
    assert one_busy == pytest.approx(1 + PARALLEL_GAIN)
    assert load_factor(2.0, 2) == pytest.approx((1 + PARALLEL_GAIN) * 3 / 2)  # one thread, 2/3 of a core
    assert load_factor(2.0, 16) == pytest.approx((1 + 15 * PARALLEL_GAIN) / (1 + 13 * PARALLEL_GAIN))
    assert load_factor(0.0, 2) == 1.0 and load_factor(0.0, 1) == 1.0 and load_factor(3.0, 1) == pytest.approx(4.0)


@pytest.mark.slow
def test_the_training_child_records_the_threads_it_chose(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lab.estimate import THREADS_ENV

    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)  # no config: the child fails right after choosing its threads
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", THREADS_ENV)}
    done = subprocess.run([sys.executable, "-m", "lab.training", str(run)], cwd=Path(__file__).resolve().parent.parent,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    status = json.loads((run / "status.json").read_text())
    assert done.returncode == 1 and status["state"] == "failed", done.stderr[-2000:]
    assert 1 <= status["threads"] <= (os.cpu_count() or 1) and "cores" in status["threads_why"]
    assert f"torch threads: {status['threads_why']}" in done.stderr


def test_a_run_trained_on_a_busy_cpu_counts_at_its_idle_speed(tmp_path):
    import json

    from lab.config import TrainConfig
    from lab.training import speed

    run = tmp_path / "runs" / "busy"
    run.mkdir(parents=True)
    TrainConfig(name="busy", dataset="x").save(run / "config.json")
    status = {"state": "finished", "ended": 1.0, "load_factor": 2.4, "estimate": {"tokens_total": 2000.0, "steps": 10},
              "metrics": {"runtime_s": 100.0, "steps": 10}}  # fmt: skip
    (run / "status.json").write_text(json.dumps(status))
    found = speed.measured_throughput(tmp_path / "runs", TrainConfig(), device="cpu")
    assert found["tokens_per_s"] == pytest.approx(20.0 * 2.4)  # 20 tokens/s under a load factor of 2.4


def test_the_rough_cpu_guess_scales_with_a_speed_probe():
    from lab.training.plan import QLORA_SLOWDOWN, fallback_rate
    from lab.training.speed import PROBE_EFFICIENCY, probed_rate

    params = 134_515_008
    assert probed_rate(params, "lora", 1e11) == pytest.approx(1e11 * PROBE_EFFICIENCY / (6 * params))
    assert probed_rate(params, "lora", 2e11) == pytest.approx(2 * probed_rate(params, "lora", 1e11))
    assert probed_rate(2 * params, "lora", 1e11) == pytest.approx(probed_rate(params, "lora", 1e11) / 2)
    assert probed_rate(params, "qlora", 1e11) == pytest.approx(QLORA_SLOWDOWN * probed_rate(params, "lora", 1e11))
    assert probed_rate(params, "lora", 0.0) == 0.0 and fallback_rate(params, "lora", "cpu") > 0


def test_the_plan_is_typed_and_its_json_form_keeps_the_old_keys(tmp_path):
    from lab.training import preflight
    from lab.training.plan import TrainPlan

    plan = TrainPlan(memory_mb={"weights": 500.0, "total": 900.0}, steps=40, time_s=120.0, device="cpu",
                     time_source="calibrated on this machine", n_train=300, n_val=20, model_dir="/m")  # fmt: skip
    old_keys = {"n_train", "n_val", "model_dir", "memory_mb", "lora_params", "base_params", "steps", "tokens_total",
                "mean_tokens", "time_s", "time_source", "time_s_cpu", "device", "time_range", "time_lo_s",
                "time_hi_s", "load_note"}  # fmt: skip
    assert set(plan.to_dict()) == old_keys and plan["steps"] == 40 and plan.get("missing") is None
    assert plan.memory_total_mb == 900.0 and plan.measured and not TrainPlan(time_source="rough guess ...").measured
    assert TrainPlan.from_dict({**plan.to_dict(), "unknown": 1}) == plan
    warned = preflight.plan_warnings(plan, available_mb=100.0)
    assert len(warned) == 1 and "900 MB" in warned[0] and "100 MB" in warned[0]
    assert preflight.plan_warnings(plan, available_mb=10_000.0) == ()
    assert TrainPlan(warnings=("w",)).to_dict()["warnings"] == ["w"]
    left = preflight.remaining_plan({"estimate": plan.to_dict()}, tmp_path / "checkpoint-10")
    assert isinstance(left, TrainPlan) and left.steps == 30 and left.time_s == pytest.approx(90.0)


@pytest.mark.integration
def test_a_fresh_workspace_times_training_from_a_remembered_speed_probe(ws, embedded_path):
    import json

    from lab import jobs
    from lab.config import TrainConfig
    from lab.data import ensure_sample_domain
    from lab.training import plan as plan_mod
    from lab.training import speed

    ensure_sample_domain(ws)
    config = plan_mod.apply_preset(TrainConfig(dataset="sample", base_model=embedded_path), "quick CPU demo")
    first = jobs.check(ws, config)
    assert "speed probe of this CPU" in first.time_source and first.time_range.startswith("about ")
    saved_path = ws.root / "runs" / speed.CALIBRATION
    saved = json.loads(saved_path.read_text())
    (probe,) = [k for k in saved if k.startswith("probe|")]
    saved[probe] |= {"flops": 1e11, "factor": 1.0}  # as if read on a quiet CPU
    saved_path.write_text(json.dumps(saved))
    again = jobs.check(ws, config)
    rate = speed.probed_rate(again.base_params, "lora", 1e11)
    assert again.time_s == pytest.approx(again.tokens_total / rate) and again.time_s != first.time_s
