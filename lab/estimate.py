"""Time estimates as ranges: a long action's seconds from this machine's measured throughput, scaled by the load
other work puts on the CPU now, and the ETA of a running action from its measured progress; and the CPU thread count
torch's work uses, chosen from the same load (`pick_threads`, applied once where a long action starts).

Pure functions: the machine's facts (cores, load) come in as a `Machine`, so callers measure them once
(`machine_now`, about half a second) and tests pass their own. No I/O beyond `machine_now`; torch is touched only by
`apply_threads`.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass

from lab.errors import LabError

ASK_ABOVE_S = 600.0  # a stage estimated longer than this is started only after the user confirms
BUSY_FROM = 1.15  # a load factor from here on is said out loud
MEASURED_SPREAD = (0.8, 1.25)  # range around a time measured on this machine (idle)
GUESS_SPREAD = (0.7, 1.5)  # range around a default guess (nothing measured here yet)
# Each torch thread beyond the first adds this much of one thread's speed on an idle CPU (assumed for small models;
# `bench/estimate.py --threads` on an idle machine measures it: wall with 1 thread / wall with 2, minus 1).
PARALLEL_GAIN = 0.6
BUSY_WIDEN = 0.15  # a busy CPU's share changes while the action runs: the top widens by this per unit (up to 2)
MIN_FRACTION = 0.05  # from this much measured progress on, the ETA follows progress, not the prior guess
THREADS_ENV = "LAB_THREADS"  # the user's own CPU thread count for torch's work (else OMP_NUM_THREADS, else the policy)
FOR_GENERATION = ("LAB_GEN_THREADS", THREADS_ENV)  # the app's own generation: its own setting first


@dataclass(frozen=True)
class Machine:
    """The CPU an action runs on: `cores`, and `load`, the runnable threads of other work."""

    cores: int = 1
    load: float = 0.0

    @property
    def factor(self) -> float:
        return load_factor(self.load, self.cores)


def machine_now(own_threads: float = 0.0, samples: int = 10, every_s: float = 0.05) -> Machine:
    """This machine now: its cores and the runnable threads of other work (less `own_threads`, this process's own
    running work). On Linux the median of `samples` readings of the kernel's runnable count (/proc/loadavg, the
    reader itself left out): it sees work that started seconds ago, which the damped load average takes minutes
    to show; elsewhere the 1-minute load average."""
    counts = []
    for i in range(samples):
        count = _runnable()
        if count is None:
            break
        counts.append(count)
        if i + 1 < samples:
            time.sleep(every_s)
    if counts:
        load = float(statistics.median(counts))
    else:
        try:
            load = os.getloadavg()[0]
        except OSError:  # no load average on this platform: assume an idle machine
            load = 0.0
    return Machine(_cores(), max(0.0, load - own_threads))


def _cores() -> int:
    """The cores this process may run on (its CPU affinity: a container or `taskset` may allow fewer than the
    machine has), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _runnable(path: str = "/proc/loadavg") -> int | None:
    """Threads runnable now, besides the one reading ("0.52 0.58 0.59 3/467 1234": 3 runnable), or None."""
    try:
        with open(path, encoding="ascii") as f:
            return max(0, int(f.read().split()[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return None


def load_factor(load: float, cores: int) -> float:
    """How many times longer torch's work takes when `load` other runnable threads share the `cores` cores, run
    with `pick_threads`' count against the idle machine's run on every core. The scheduler shares fairly: the
    work's threads get min(1, cores / (threads + load)) of a core each, and threads add PARALLEL_GAIN of a core's
    speed each beyond the first (so 1.0 on an idle machine, 1 + load / cores when the load leaves every thread a
    whole core's share on a big machine, more when fewer threads run than the idle machine used)."""
    cores, load = max(cores, 1), max(0.0, load)
    threads = pick_threads(cores, load)
    share = min(1.0, cores / (threads + load))
    return max(1.0, _speedup(cores) / (_speedup(threads) * share))


def _speedup(threads: int) -> float:
    """How many times faster `threads` threads run torch's work than one thread on an idle machine."""
    return 1.0 + PARALLEL_GAIN * (max(threads, 1) - 1)


def pick_threads(cores: int, others: float) -> int:
    """Torch's intra-op thread count for work started now: the cores other runnable threads (`others`) leave free,
    at least 1. More threads than free cores makes torch's OpenMP workers wait on each other at every operation
    while the scheduler runs other work in their place, which slows small matrix products many times over."""
    taken = math.floor(max(0.0, others) + 0.5)  # a half-busy reading (median of two counts) rounds up
    return max(1, max(cores, 1) - taken)


def user_threads(
    env: Mapping[str, str] | None = None, names: tuple[str, ...] = (THREADS_ENV,)
) -> tuple[str, int] | None:
    """(variable, count) of the user's own thread setting: the first of `names`, then OMP_NUM_THREADS, that is
    set; None when none is. A malformed LAB_THREADS-style variable is refused; a malformed OMP_NUM_THREADS is
    left to torch (it ignores it)."""
    env = os.environ if env is None else env
    for name in (*names, "OMP_NUM_THREADS"):
        value = str(env.get(name) or "").strip()
        if not value:
            continue
        if value.isdigit() and int(value) >= 1:
            return name, int(value)
        if name != "OMP_NUM_THREADS":
            raise ThreadsError(
                f"{name}={value!r} must be a positive integer (e.g. 1), or unset to let the load decide"
            )
    return None


class ThreadsError(LabError):
    """A thread-count setting is not a positive integer; the message names the variable and its value."""


@dataclass(frozen=True)
class Threads:
    """The thread count torch's work uses and why: `source` is the variable the user set, or "load" (the policy)."""

    count: int
    source: str
    machine: Machine | None = None

    @property
    def why(self) -> str:
        if self.machine is None:
            return f"{self.source}={self.count}"
        m = self.machine
        return f"{self.count} of {m.cores} cores ({m.load:.1f} runnable threads of other work)"


def choose_threads(
    machine: Machine, env: Mapping[str, str] | None = None, names: tuple[str, ...] = (THREADS_ENV,)
) -> Threads:
    """The `Threads` for work started now on `machine`: the user's own setting wins, else `pick_threads`."""
    found = user_threads(env, names)
    if found:
        return Threads(found[1], found[0])
    return Threads(pick_threads(machine.cores, machine.load), "load", machine)


def apply_threads(machine: Machine | None = None, env: Mapping[str, str] | None = None,
                  names: tuple[str, ...] = (THREADS_ENV,)) -> Threads:  # fmt: skip
    """Choose the thread count (`machine` default: read now) and set torch's intra-op threads to it. A count from
    OMP_NUM_THREADS is left as torch read it at start; call once where a long action starts, not per step."""
    chosen = choose_threads(machine or (Machine() if user_threads(env, names) else machine_now()), env, names)
    if chosen.source != "OMP_NUM_THREADS":
        import torch

        if torch.get_num_threads() != chosen.count:
            torch.set_num_threads(chosen.count)
    return chosen


@dataclass(frozen=True)
class Estimate:
    """Seconds an action should take: the best guess and a range, with the load factor already applied."""

    seconds: float
    lo: float
    hi: float
    factor: float = 1.0

    @property
    def text(self) -> str:
        return range_text(self.lo, self.hi)

    @property
    def note(self) -> str:
        """ "the CPU is busy: estimate x1.8" when other work slows this action down, else ""."""
        return f"the CPU is busy: estimate x{self.factor:.1f}" if self.factor >= BUSY_FROM else ""

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.seconds + other.seconds, self.lo + other.lo, self.hi + other.hi,
                        max(self.factor, other.factor))  # fmt: skip

    def says(self) -> str:
        """ "about 2-3 min" plus the load note in brackets when there is one."""
        return f"{self.text} ({self.note})" if self.note else self.text


NOTHING = Estimate(0.0, 0.0, 0.0)


def estimate(idle_s: float, machine: Machine | None = None, measured: bool = True) -> Estimate:
    """The range for work that took (or should take) `idle_s` seconds on this machine when idle: scaled by the
    machine's load factor, narrower when `idle_s` was measured here than when it is a default guess, and wider at
    the top on a busy CPU (other work comes and goes)."""
    factor = (machine or Machine()).factor
    low, high = MEASURED_SPREAD if measured else GUESS_SPREAD
    seconds = max(0.0, idle_s) * factor
    return Estimate(seconds, seconds * low, seconds * high * (1 + BUSY_WIDEN * min(factor - 1, 2.0)), factor)


def idle_seconds(seconds: float, factor: float | None) -> float:
    """A time measured under load `factor` (recorded when it ran), as it would have been on the idle machine."""
    return seconds / max(factor or 1.0, 1.0)


def range_text(lo: float, hi: float) -> str:
    """ "about 40-60 s", "about 2-3 min", "about 1.2-1.5 h" (whole units, the top rounded up), or "a few seconds"."""
    if hi <= 5:
        return "a few seconds"
    if hi < 90:
        a, b = int(lo // 5 * 5), max(5, int(math.ceil(hi / 5) * 5))
        return f"about {a}-{b} s" if a < b else f"about {b} s"
    if hi < 90 * 60:
        a, b = max(1, int(lo // 60)), int(math.ceil(hi / 60))
        return f"about {a}-{b} min" if a < b else f"about {b} min"
    a, b = lo / 3600, hi / 3600
    return f"about {a:.1f}-{b:.1f} h"


def eta(elapsed_s: float, fraction: float, prior_left_s: float | None = None) -> float | None:
    """Seconds left of a running action: from measured progress (elapsed / fraction done) once MIN_FRACTION is
    done, before that the prior guess `prior_left_s` (None when there is none)."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction >= 1.0:
        return 0.0
    if fraction >= MIN_FRACTION and elapsed_s > 0:
        return elapsed_s * (1 - fraction) / fraction
    return prior_left_s


def drift(taken_s: float, expected_s: float) -> float:
    """How much slower (> 1) or faster (< 1) the finished work ran than estimated: later estimates are scaled by it
    (bounded to 0.5-4, so one odd stage cannot run away with the forecast)."""
    if expected_s <= 0 or taken_s <= 0:
        return 1.0
    return min(4.0, max(0.5, taken_s / expected_s))


def over_limit(est: Estimate, limit_s: float = ASK_ABOVE_S) -> bool:
    """Whether a stage is long enough to ask first: its best guess is above `limit_s` seconds."""
    return est.seconds > limit_s
