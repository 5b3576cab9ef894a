"""How long each stage of the whole comparison should take on this machine, before and while it runs.

A stage's idle time comes from the last comparison here that did that work (its seconds per answer or per training
step, taken back to an idle machine by the load factor recorded with it), else from a measured training throughput
(lab.jobs.check), else from a default for a 2-core CPU. lab.estimate turns it into a range under the load now and
follows measured progress during the run. Pure functions of the records and plan they are given; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.estimate import NOTHING, Estimate, Machine, estimate, idle_seconds

# Defaults (seconds) for a 2-core CPU with bf16 instructions; a CPU without them runs about SLOW_CPU times longer.
# Eval stages: a model load, then seconds per answer (RAG prompts carry passages, so they take longer).
DEFAULT_S = {"validate": 15.0, "index": 8.0, "verdict": 1.0, "startup": 25.0, "load": 3.0, "answer": 0.33,
             "answer_rag": 0.7, "step": 1.0, "step_rag": 7.3}  # fmt: skip
# (step_rag is per step planned on the dataset's own rows; training for RAG runs about 1.5 times as many)
SLOW_CPU = 2.4
REUSED_S = 0.5  # a stage whose product exists only reads it


@dataclass
class Plan:
    """What the stages will do, known before they start: `answers` per eval stage, `steps` per training kind,
    `measured_train_s` (training seconds from this machine's measured throughput, where one exists), the stages
    whose product already exists (`reused`), and whether the CPU has bf16 instructions (`fast_cpu`)."""

    answers: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    measured_train_s: dict[str, float] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)
    fast_cpu: bool = True


def prior_times(records: list[dict]) -> dict[str, dict]:
    """The stage records of a comparison that did the work (not reused), by stage."""
    return {s["stage"]: s for s in records if not s.get("reused")}


def stage_idle_s(stage: str, prior: dict[str, dict], plan: Plan) -> tuple[float, bool]:
    """(idle seconds, whether they come from a measurement on this machine) for one stage of `plan`."""
    if stage in plan.reused:
        return REUSED_S, True
    kind, _, which = stage.partition(":")
    last = prior.get(stage)
    unit, now = {"train": ("steps", plan.steps.get(which)), "eval": ("answers", plan.answers)}.get(kind, ("", None))
    if last:
        took = idle_seconds(float(last["seconds"]), last.get("factor"))
        done = last.get("planned_steps") or last.get("steps") if kind == "train" else last.get(unit)
        if done and now:  # per planned step: training for RAG runs more steps than planned on the dataset's rows
            fixed = min(took, DEFAULT_S["startup"] if kind == "train" else DEFAULT_S["load"])  # does not scale
            return fixed + (took - fixed) / done * now, True
        return took, True
    if kind == "train" and which in plan.measured_train_s:
        return DEFAULT_S["startup"] + plan.measured_train_s[which], True
    slow = 1.0 if plan.fast_cpu else SLOW_CPU
    if kind == "train":
        per = DEFAULT_S["step_rag" if which == "rag" else "step"]
        return DEFAULT_S["startup"] + slow * per * plan.steps.get(which, 40), False
    if kind == "eval":
        per = DEFAULT_S["answer_rag" if "RAG" in which else "answer"]
        return DEFAULT_S["load"] + slow * per * plan.answers, False
    return slow * DEFAULT_S.get(kind, 1.0), False


def stage_estimate(stage: str, prior: dict[str, dict], plan: Plan, machine: Machine) -> Estimate:
    idle, measured = stage_idle_s(stage, prior, plan)
    return estimate(idle, machine, measured)


@dataclass
class Forecast:
    """The comparison's stages with their estimates, before it starts."""

    stages: list[tuple[str, str, Estimate]]
    machine: Machine
    questions: int = 0
    reused: set[str] = field(default_factory=set)

    @property
    def total(self) -> Estimate:
        out = NOTHING
        for _, _, est in self.stages:
            out = out + est
        return Estimate(out.seconds, out.lo, out.hi, self.machine.factor)

    def long_stages(self, limit_s: float) -> list[tuple[str, str, Estimate]]:
        """The stages estimated above `limit_s` seconds (the ones to confirm before starting)."""
        return [s for s in self.stages if s[2].seconds > limit_s]

    def lines(self) -> list[str]:
        """One line per stage: its label and range ("reused" when its product exists)."""
        return [f"{label}: {'reused' if stage in self.reused else est.text}" for stage, label, est in self.stages]
