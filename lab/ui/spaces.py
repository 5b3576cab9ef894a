"""Hugging Face ZeroGPU glue: `gpu(duration=...)` for GPU-bound event handlers, and training in a GPU slot.

On a ZeroGPU Space (SPACES_ZERO_GPU=true, which is what the `spaces` package itself reads) a GPU is attached
only while a function decorated with `spaces.GPU` runs, in a forked worker, for at most the requested duration.
`gpu(duration=fn)` applies `spaces.GPU` with a duration computed from the call's own arguments (e.g. questions x
contestants), clamped to what one slot allows; anywhere else it returns the function unchanged (the `spaces`
package is a no-op off ZeroGPU, and it may be absent altogether). Handlers must be decorated before launch.
The wrapped function marks the slot's worker process (`lab.models.mark_gpu_call`, a flag of that forked process),
so `lab.models.device()` says "cuda" there and "cpu" everywhere else on ZeroGPU (the main process only emulates
CUDA, on one thread).
`slot_training` gives `lab.jobs.start` the hooks that refuse a run longer than one slot and train a shorter one
inline, inside a slot (a background training process never gets the GPU on ZeroGPU); a slot the scheduler refuses
(quota, duration, no GPU) or loses marks the run failed with the reason.

This module must be imported before anything initialises CUDA (app.py imports it first): `spaces` refuses to start
on ZeroGPU otherwise. It must not load models or touch the workspace itself (the inline run does, through
`lab.training.engine.main`).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from lab.errors import LabError
from lab.models import ZERO_GPU_ENV, mark_gpu_call, on_zero_gpu

try:  # first, before torch touches CUDA (on ZeroGPU this import patches torch)
    import spaces
except ImportError:  # not installed: every wrapper is a pass-through
    spaces = None

log = logging.getLogger(__name__)

SLOT_ENV = "LAB_ZEROGPU_SLOT_S"
# The longest slot requested here. ZeroGPU's own maximum is not documented and has varied (a few minutes; longer
# requests fail with "illegal duration"); 120 s is accepted for every account. LAB_ZEROGPU_SLOT_S overrides it.
DEFAULT_SLOT_S = 120
MIN_SLOT_S = 10
LOAD_OVERHEAD_S = 20.0  # loading the model onto the GPU inside the slot before any work starts


class ZeroGpuError(LabError):
    """Work that cannot fit in one ZeroGPU slot; the message says what would fit."""


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


def gpu(
    duration: Callable[..., float] | float = 60, prepare: Callable[..., Any] | None = None
) -> Callable[[Callable], Callable]:
    """Decorator: run the function under `spaces.GPU` on ZeroGPU, with `duration` seconds (a number, or a
    callable given the call's own arguments) clamped to one slot; elsewhere the function itself is returned.
    `prepare`, given the same arguments, runs first in this process, before the slot is requested (e.g.
    `prefetch`: a download inside the slot would spend its seconds and could be cut off by its end)."""

    def seconds(*args: Any, **kwargs: Any) -> int:
        wanted = duration(*args, **kwargs) if callable(duration) else duration
        return clamp_duration(float(wanted))

    def wrap(fn: Callable) -> Callable:
        if spaces is None:
            if on_zero_gpu():
                log.warning("%s is set but the `spaces` package is not installed: %s runs without a GPU slot",
                            ZERO_GPU_ENV, fn.__name__)  # fmt: skip
            return fn
        if not spaces.config.Config.zero_gpu:
            return fn  # what spaces.GPU itself returns off ZeroGPU
        slotted = spaces.GPU(duration=seconds)(in_slot(fn))  # a wrapper marked `zerogpu`
        return slotted if prepare is None else prepared_first(prepare, slotted, inspect.isgeneratorfunction(fn))

    return wrap


def prepared_first(prepare: Callable[..., Any], slotted: Callable, generator: bool) -> Callable:
    """`slotted` (a `spaces.GPU` wrapper) called after `prepare(*args, **kwargs)` in the calling process; a
    generator stays a generator (gradio streams it)."""
    if generator:

        @functools.wraps(slotted)
        def prepared_gen(*args: Any, **kwargs: Any):
            prepare(*args, **kwargs)
            yield from slotted(*args, **kwargs)

        return prepared_gen

    @functools.wraps(slotted)
    def prepared(*args: Any, **kwargs: Any):
        prepare(*args, **kwargs)
        return slotted(*args, **kwargs)

    return prepared


def prefetch(ws, cache, specs) -> list[str]:
    """Resolve, in this process and on the CPU, every contestant's base model (a hub model is downloaded once, the
    embedded one converted once) and its index's embedder; returns the model folders. Best effort: a contestant
    that cannot be resolved is skipped here and reports its error from the slot as before."""
    folders = []
    for spec in [specs] if isinstance(specs, str) else list(specs or []):
        folders += _prefetch_one(ws, cache, spec)
    return folders


def _not_prefetched(spec: str, message: str) -> list:
    log.info("not prefetched: %s (%s)", spec, message)  # the slot reports it with its own message
    return []


def _prefetch_one(ws, cache, spec: str) -> list[str]:
    """The folders of one contestant's base model and index embedder, resolved; [] when it cannot be."""
    from lab.arena import contestants
    from lab.config import RagConfig, TrainConfig
    from lab.resolve import resolve_embedder
    from lab.training import CONFIG
    from lab.ui.common import shows_errors

    @shows_errors(lambda message: _not_prefetched(spec, message))
    def resolve() -> list[str]:
        c = contestants.parse(spec)
        run_config = ws.dir("runs", c.run) / CONFIG if c.run else None
        base = TrainConfig.load(run_config).base_model if run_config and run_config.is_file() else c.model
        found = [cache.resolve(base).path]
        if c.index:
            index_config = ws.dir("indexes", c.index) / "config.json"
            embed = RagConfig.load(index_config).embed_model if index_config.is_file() else RagConfig.embed_model
            found.append(resolve_embedder(embed).path)
        return found

    return resolve()


def in_slot(fn: Callable) -> Callable:
    """`fn` marking its process as inside a GPU slot (lab.models.device then says "cuda" where the card is).
    `spaces.GPU` runs it only in the slot's forked worker, which serves nothing else, so the mark stays set there;
    a generator stays a generator (spaces wraps the two kinds differently)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def marked_gen(*args: Any, **kwargs: Any):
            mark_gpu_call()
            yield from fn(*args, **kwargs)

        return marked_gen

    @functools.wraps(fn)
    def marked(*args: Any, **kwargs: Any):
        mark_gpu_call()
        return fn(*args, **kwargs)

    return marked


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
        from lab.jobs import inline_thread_name

        context, seconds = contextvars.copy_context(), budget.get("s", slot_seconds(env))
        args = (train_or_fail, run_dir, seconds)
        thread = threading.Thread(target=context.run, args=args, daemon=True, name=inline_thread_name(run_dir))
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


def slot_failure(exc: BaseException) -> str:
    """One sentence naming why a GPU slot call failed: `spaces` raises gr.Error with a title ("ZeroGPU quota
    exceeded", "ZeroGPU illegal duration", "ZeroGPU worker error") and a message; anything else by its type."""
    title = getattr(exc, "title", None) or type(exc).__name__
    text = " ".join(str(getattr(exc, "message", None) or exc).split()) or "no details"
    return f"no GPU slot for this run ({title}: {text})"


def train_or_fail(run_dir, seconds: float) -> int | None:
    """`train_in_slot`, marking the run failed with the reason when the slot is refused (quota, duration, no GPU)
    or lost before the training wrote a final state itself."""
    from lab.training import FINAL_STATES, read_status, write_status

    try:
        return train_in_slot(run_dir, seconds)
    except Exception as exc:
        log.warning("training %s in a GPU slot failed: %s", run_dir, exc)
        if read_status(run_dir).get("state") not in FINAL_STATES:
            write_status(run_dir, state="failed", error=slot_failure(exc), ended=time.time())
        return None


def _train(run_dir, seconds: float) -> int:
    """The training child's work (`lab.training.engine.main`), run in this process; `seconds` sizes the slot."""
    from lab.training.engine import main  # loads models only when a run starts

    return main(run_dir)


train_in_slot = gpu(duration=lambda run_dir, seconds: seconds)(_train)  # decorated at import, as ZeroGPU requires
