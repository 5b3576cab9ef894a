"""Hugging Face ZeroGPU glue: `gpu(duration=...)` for GPU-bound event handlers, and training in a GPU slot.

On a ZeroGPU Space (SPACES_ZERO_GPU=true, which is what the `spaces` package itself reads) a GPU is attached
only while a function decorated with `spaces.GPU` runs, in a forked worker, for at most the requested duration.
`gpu(duration=fn)` applies `spaces.GPU` with a duration computed from the call's own arguments (e.g. questions x
contestants), clamped to what one slot allows; anywhere else it returns the function unchanged (the `spaces`
package is a no-op off ZeroGPU, and it may be absent altogether). Handlers must be decorated before launch.
`slot_training` gives `lab.jobs.start` the hooks that refuse a run longer than one slot and train a shorter one
inline, inside a slot (a background training process never gets the GPU on ZeroGPU).

This module must be imported before anything initialises CUDA (app.py imports it first): `spaces` refuses to start
on ZeroGPU otherwise. It must not load models or touch the workspace itself (the inline run does, through
`lab.training.engine.main`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from lab.errors import LabError

try:  # first, before torch touches CUDA (on ZeroGPU this import patches torch)
    import spaces
except ImportError:  # not installed: every wrapper is a pass-through
    spaces = None

log = logging.getLogger(__name__)

ZERO_GPU_ENV = "SPACES_ZERO_GPU"
SLOT_ENV = "LAB_ZEROGPU_SLOT_S"
# The longest slot requested here. ZeroGPU's own maximum is not documented and has varied (a few minutes; longer
# requests fail with "illegal duration"); 120 s is accepted for every account. LAB_ZEROGPU_SLOT_S overrides it.
DEFAULT_SLOT_S = 120
MIN_SLOT_S = 10
LOAD_OVERHEAD_S = 20.0  # loading the model onto the GPU inside the slot before any work starts


class ZeroGpuError(LabError):
    """Work that cannot fit in one ZeroGPU slot; the message says what would fit."""


def on_zero_gpu(env: Mapping[str, str] | None = None) -> bool:
    """True on a ZeroGPU Space: SPACES_ZERO_GPU is 1/t/true (the `spaces` package's own test)."""
    env = os.environ if env is None else env
    return (env.get(ZERO_GPU_ENV) or "").strip().lower() in ("1", "t", "true")


def slot_seconds(env: Mapping[str, str] | None = None) -> int:
    """The longest GPU slot this app requests (LAB_ZEROGPU_SLOT_S, else DEFAULT_SLOT_S)."""
    env = os.environ if env is None else env
    raw = (env.get(SLOT_ENV) or "").strip()
    try:
        value = int(float(raw)) if raw else DEFAULT_SLOT_S
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %d", SLOT_ENV, raw, DEFAULT_SLOT_S)
        value = DEFAULT_SLOT_S
    return max(MIN_SLOT_S, value)


def clamp_duration(seconds: float, env: Mapping[str, str] | None = None) -> int:
    """A duration ZeroGPU accepts: at least MIN_SLOT_S, at most one slot."""
    return int(min(slot_seconds(env), max(MIN_SLOT_S, round(seconds))))


def answers_duration(n_answers: int, seconds_per_answer: float = 0.5) -> float:
    """Seconds to budget for generating `n_answers` answers (batched), plus loading the model."""
    return LOAD_OVERHEAD_S + max(0, n_answers) * seconds_per_answer


def gpu(duration: Callable[..., float] | float = 60) -> Callable[[Callable], Callable]:
    """Decorator: run the function under `spaces.GPU` on ZeroGPU, with `duration` seconds (a number, or a
    callable given the call's own arguments) clamped to one slot; elsewhere the function itself is returned."""

    def seconds(*args: Any, **kwargs: Any) -> int:
        wanted = duration(*args, **kwargs) if callable(duration) else duration
        return clamp_duration(float(wanted))

    def wrap(fn: Callable) -> Callable:
        if spaces is None:
            if on_zero_gpu():
                log.warning("%s is set but the `spaces` package is not installed: %s runs without a GPU slot",
                            ZERO_GPU_ENV, fn.__name__)  # fmt: skip
            return fn
        return spaces.GPU(duration=seconds)(fn)  # `fn` itself off ZeroGPU; a wrapper marked `zerogpu` on it

    return wrap


def slot_training(env: Mapping[str, str] | None = None) -> dict[str, Callable]:
    """`lab.jobs.start` hooks for a ZeroGPU Space, where a background process would never get the GPU: `admit`
    refuses a run that does not fit one slot (`refuse_long_training`), `run_inline` trains it in this process
    inside `spaces.GPU` for the estimated time, on a thread that carries the request's context (ZeroGPU reads the
    visitor's quota from it), so the event returns at once and the run view follows the run as usual."""
    budget: dict[str, float] = {}

    def admit(config, plan: Mapping[str, Any]) -> None:
        refuse_long_training(config, plan, env)
        budget["s"] = float(plan.get("time_s") or 0.0) + LOAD_OVERHEAD_S

    def run_inline(run_dir) -> threading.Thread:
        context, seconds = contextvars.copy_context(), budget.get("s", slot_seconds(env))
        args = (train_in_slot, run_dir, seconds)
        thread = threading.Thread(target=context.run, args=args, daemon=True, name="zerogpu-train")
        thread.start()
        return thread

    return {"admit": admit, "run_inline": run_inline}


def refuse_long_training(config, plan: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    """On ZeroGPU, raise ZeroGpuError when the run's estimated time (`plan`, from lab.training.plan.estimate /
    lab.jobs.check: `time_s`, `steps`) plus loading the model exceeds one slot; the message says how many steps
    fit. Anywhere else, or when it fits, do nothing."""
    if not on_zero_gpu(env):
        return
    slot = slot_seconds(env)
    time_s, steps = float(plan.get("time_s") or 0.0), int(plan.get("steps") or 0)
    if time_s + LOAD_OVERHEAD_S <= slot:
        return
    per_step = time_s / max(steps, 1)
    fits = int((slot - LOAD_OVERHEAD_S) / per_step) if per_step > 0 else 0
    advice = f"set max_steps to {fits} or fewer" if fits >= 1 else "use a smaller model, a shorter max_length or batch"
    raise ZeroGpuError(
        f"training {config.base_model or 'embedded'!r} for {steps} steps needs about {time_s / 60:.1f} min of GPU "
        f"({plan.get('time_source') or 'estimate'}), but one ZeroGPU slot is {slot} s including about "
        f"{LOAD_OVERHEAD_S:.0f} s to load the model: {advice}, or train on a Space with a dedicated GPU or on your "
        "own GPU"
    )


def _train(run_dir, seconds: float) -> int:
    """The training child's work (`lab.training.engine.main`), run in this process; `seconds` sizes the slot."""
    from lab.training.engine import main  # loads models only when a run starts

    return main(run_dir)


train_in_slot = gpu(duration=lambda run_dir, seconds: seconds)(_train)  # decorated at import, as ZeroGPU requires
