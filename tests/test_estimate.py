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
    assert BUSY.factor == pytest.approx(2.0)  # two busy threads on two cores: the work gets half the CPU
    assert load_factor(2.0, 16) == pytest.approx(1.125)  # the same load on a big machine barely matters
    assert load_factor(-1.0, 2) == 1.0


def test_an_estimate_is_a_range_scaled_by_the_load_and_says_so():
    idle = estimate(100.0, IDLE)
    assert idle.lo < idle.seconds == 100.0 < idle.hi and idle.note == ""
    busy = estimate(100.0, BUSY)
    assert busy.seconds == pytest.approx(200.0) and busy.lo > idle.lo
    assert busy.hi / busy.seconds > idle.hi / idle.seconds  # wider at the top: other work comes and goes
    assert busy.note == "the CPU is busy: estimate x2.0" and busy.note in busy.says()
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
    assert stage_estimate("train:plain", prior, plan, BUSY).seconds == pytest.approx(124.0)
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
    from lab.ui import start_tab

    short, long = _forecast(30.0, 200.0), _forecast(30.0, ASK_ABOVE_S + 60)
    assert start_tab.ask_first(short, "", "k") == ""
    label = start_tab.ask_first(long, "", "k")
    assert label.startswith("Run anyway (est. ") and label.endswith("min)")
    assert start_tab.ask_first(long, "k", "k") == ""  # the second click on the same inputs starts it
    assert start_tab.ask_first(long, "k", "other inputs") == label
    assert "stage 1" in start_tab.ask_md(long, label) and "Not started" in start_tab.ask_md(long, label)
    assert start_tab.ask_first(_forecast(400.0, machine=BUSY), "", "k")  # idle it fits; on a busy CPU it does not


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
    from lab import jobs

    plan = {"time_s": 120.0, "time_source": "measured speed of the last finished run(s)", "device": "cpu"}
    idle, busy = jobs.time_range(plan, IDLE), jobs.time_range(plan, BUSY)
    assert idle["time_range"] == "about 1-3 min" and idle["load_note"] == ""
    assert busy["time_lo_s"] == pytest.approx(2 * idle["time_lo_s"]) and "x2.0" in busy["load_note"]
    gpu = jobs.time_range({**plan, "device": "cuda:0"}, BUSY)
    assert gpu["load_note"] == "" and gpu["time_lo_s"] == idle["time_lo_s"]
    rough = jobs.time_range({**plan, "time_source": "rough guess from the model size"}, IDLE)
    assert rough["time_hi_s"] - rough["time_lo_s"] > idle["time_hi_s"] - idle["time_lo_s"]


def test_the_progress_view_draws_a_real_bar_and_quotes_the_first_estimate():
    from lab.ui import start_tab

    u = showcase.Update("eval:base", "Evaluating base", 4, 8, 0.0, 30.0, 90.0, "loading base")
    text = start_tab.progress_md(u, Estimate(100.0, 80.0, 125.0, 2.0))
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
