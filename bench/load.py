"""Load test: concurrent gradio_client sessions against a launched app (loopback only; stops by itself).

Two modes. `class` (the default): a class where every session asks its own question (generated here, no two alike)
within `--spread` seconds, half of them as a side-by-side question and half as a blind battle (then a vote), two
contestants a question; it measures END-TO-END answer time per question (request sent -> both answers received)
p50/p95, answers per minute, errors, and votes sent vs stored in lab.db. With `--compare` it runs the class once per
LAB_BATCH value on a freshly launched app (batching off, then on) and prints a markdown before/after table.
`browse`: every session does `--rounds` rounds of cheap events (contestant list, leaderboard, dataset, index and
run lists), one side-by-side question, one blind battle and one vote, and reports the cheap events' latency while
generation runs (unqueued events are called the way a browser calls them, by a plain POST).

    .venv/bin/python bench/load.py                                  # class of 30, 64 new tokens, before/after
    .venv/bin/python bench/load.py --compare 1 --sessions 8          # batching on only, a small class
    .venv/bin/python bench/load.py --compare 1 --class               # the app in class mode (app.py --class)
    .venv/bin/python bench/load.py --mode browse --sessions 5 --rounds 2 --max-new-tokens 16
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CHEAP = ("/arena_contestants", "/arena_leaderboard", "/data_list", "/rag_refresh", "/train_runs")
PAIR = ["base", "rag:sample"]
QUESTIONS = ("What does the manual say about maintenance?", "Which part must be checked first?", "Who is it for?")
# Parts of the class's questions: generic wording, combined so that no two sessions ask the same thing.
OPENERS = ("What is", "How often should I check", "When should I replace", "Who may adjust", "Why would I clean",
           "Where do I find", "How do I test", "What limits apply to")  # fmt: skip
SUBJECTS = ("the main filter", "the cooling fan", "the brake pads", "the control cable", "the oil level",
            "the safety switch", "the mounting bolts", "the power supply", "the pressure sensor", "the drive belt",
            "the emergency stop", "the gearbox seal")  # fmt: skip
WINNERS = ("a", "b", "tie", "both_bad")
# How often a session polls its queued generation job. The sessions share the app's 2 cores: 30 threads polling
# every 50 ms took CPU from the server being measured; 0.2 s still resolves queue waits of seconds.
POLL_S = 0.2


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    cheap_s: list[float] = field(default_factory=list)
    cheap_during_gen_s: list[float] = field(default_factory=list)
    by_api: dict[str, list[float]] = field(default_factory=dict)
    gen_wait_s: list[float] = field(default_factory=list)
    gen_total_s: list[float] = field(default_factory=list)
    votes_sent: int = 0
    gen_in_flight: int = 0

    def add(self, name: str, value: float | str) -> None:
        with self.lock:
            if isinstance(value, str):
                self.errors.append(value)
            else:
                getattr(self, name).append(value)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_app(home: Path, port: int, log: Path, extra_env: dict[str, str] | None = None,
               flags: tuple[str, ...] = ()) -> subprocess.Popen:  # fmt: skip
    env = {**os.environ, "LAB_HOME": str(home), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env |= extra_env or {}
    env.pop("GRADIO_SERVER_NAME", None)
    command = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *flags]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/gradio_api/info", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the app at {url} was not ready after {timeout:.0f} s")


def battle_id_index(client) -> int:
    """Position of the hidden battle-id textbox among arena_battle's outputs."""
    returns = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/arena_battle"]["returns"]
    return next(i for i, r in enumerate(returns) if str(r.get("label", "")).startswith("Battle id"))


_UNQUEUED: dict[str, dict[str, int]] = {}


def unqueued(client, api: str) -> int | None:
    """The number of inputs of an endpoint the app runs outside the queue (`queue=False`), which a browser calls
    with a plain POST; None for a queued one. Read once per app from its config."""
    if client.src not in _UNQUEUED:
        deps = client.config["dependencies"]
        _UNQUEUED[client.src] = {d["api_name"]: len(d.get("inputs", [])) for d in deps if d.get("queue") is False}
    return _UNQUEUED[client.src].get(api.lstrip("/"))


def call_cheap(client, api: str, *args) -> object:
    """Call an event the way the browser does: a plain POST for unqueued events, the queue otherwise. Inputs not
    given (session State) are sent as null, as the browser sends them; the server fills in the session's value."""
    inputs = unqueued(client, api)
    if inputs is None:
        return client.predict(*args, api_name=api)
    data = [*args, *[None] * (inputs - len(args))]
    body = json.dumps({"data": data, "session_hash": client.session_hash}).encode()
    url = urllib.parse.urljoin(client.src, client.api_prefix) + "run" + api
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())["data"]


def timed(stats: Stats, client, api: str, *args):
    """A cheap event: its latency goes to cheap_s (and cheap_during_gen_s while generation is in flight)."""
    busy = stats.gen_in_flight > 0
    t0 = time.perf_counter()
    with stats.lock:
        stats.sent += 1
    try:
        call_cheap(client, api, *args)
    except Exception as exc:  # noqa: BLE001 - every failure is counted and printed
        stats.add("errors", f"{api}: {type(exc).__name__}: {str(exc)[:120]}")
        return
    elapsed = time.perf_counter() - t0
    stats.add("cheap_s", elapsed)
    with stats.lock:
        stats.by_api.setdefault(api, []).append(elapsed)
    if busy or stats.gen_in_flight > 0:
        stats.add("cheap_during_gen_s", elapsed)


def generate(stats: Stats, client, api: str, *args):
    """A generation event: queue wait (submit -> processing starts) and total time; returns the outputs."""
    from gradio_client.utils import Status

    WAITING = (Status.STARTING, Status.JOINING_QUEUE, Status.IN_QUEUE, Status.SENDING_DATA)  # noqa: N806
    with stats.lock:
        stats.sent += 1
        stats.gen_in_flight += 1
    t0 = time.perf_counter()
    started = None
    try:
        job = client.submit(*args, api_name=api)
        while not job.done():
            code = job.status().code
            if started is None and code not in WAITING:
                started = time.perf_counter()
            time.sleep(POLL_S)
        result = job.result()
    except Exception as exc:  # noqa: BLE001
        stats.add("errors", f"{api}: {type(exc).__name__}: {str(exc)[:120]}")
        return None
    finally:
        with stats.lock:
            stats.gen_in_flight -= 1
    end = time.perf_counter()
    stats.add("gen_wait_s", (started or end) - t0)
    stats.add("gen_total_s", end - t0)
    return result


def session(n: int, url: str, args, stats: Stats, deadline: float) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False)
        bid_at = battle_id_index(client)
    except Exception as exc:  # noqa: BLE001
        stats.add("errors", f"session {n} connect: {type(exc).__name__}: {exc}")
        return
    gen = (args.max_new_tokens, 0.0, -1.0, 0)  # max new tokens, temperature, abstain below, focus sentences
    for r in range(args.rounds):
        if time.time() > deadline:
            return
        question = QUESTIONS[(n + r) % len(QUESTIONS)]
        for api in CHEAP:
            timed(stats, client, api)
        generate(stats, client, "/arena_side_by_side", PAIR, question, *gen)
        out = generate(stats, client, "/arena_battle", PAIR, question, *gen)
        battle = out[bid_at] if out else ""
        for api in CHEAP[:2]:
            timed(stats, client, api)
        if not battle:
            stats.add("errors", f"session {n}: arena_battle returned no battle id (status: {out and out[8]!r})")
            continue
        with stats.lock:
            stats.sent += 1
        try:
            client.predict(battle, WINNERS[(n + r) % 4], api_name="/arena_submit_vote")
            with stats.lock:
                stats.votes_sent += 1
        except Exception as exc:  # noqa: BLE001
            stats.add("errors", f"vote: {type(exc).__name__}: {str(exc)[:120]}")


def stored_votes(home: Path | None) -> int | None:
    if home is None or not (home / "lab.db").is_file():
        return None
    with sqlite3.connect(home / "lab.db") as conn:
        return conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]


def report(stats: Stats, seconds: float, stored: int | None, sessions: int) -> int:
    def ms(values, q):
        return f"{1000 * pct(values, q):.0f} ms"

    print(f"sessions {sessions}, wall time {seconds:.0f} s")
    print(f"requests sent {stats.sent}, errors {len(stats.errors)}")
    for line in stats.errors[:10]:
        print(f"  error: {line}")
    print(f"non-generation events: n={len(stats.cheap_s)} p50 {ms(stats.cheap_s, 0.5)} p95 {ms(stats.cheap_s, 0.95)}")
    for api, values in sorted(stats.by_api.items()):
        print(f"  {api}: n={len(values)} p50 {ms(values, 0.5)} p95 {ms(values, 0.95)}")
    during = stats.cheap_during_gen_s
    print(f"  while generation was queued or running: n={len(during)} p50 {ms(during, 0.5)} p95 {ms(during, 0.95)}")
    print(f"generation events: n={len(stats.gen_total_s)} end to end p50 {stats_s(stats.gen_total_s, 0.5)} "
          f"p95 {stats_s(stats.gen_total_s, 0.95)}")  # fmt: skip
    lost = None if stored is None else stats.votes_sent - stored
    print(f"votes sent {stats.votes_sent}, stored {stored if stored is not None else '?'}, lost {lost}")
    ok = not stats.errors and lost in (0, None) and (pct(during, 0.95) < 1.0 if during else True)
    print("goal (0 errors, 0 votes lost, non-generation p95 < 1 s under generation):", "met" if ok else "NOT met")
    return 0 if ok else 1


def stats_s(values: list[float], q: float) -> str:
    return f"{pct(values, q):.1f} s"


# -- the class: every session asks its own question once ----------------------------------------------------------


def class_questions(n: int, seed: int = 0) -> list[str]:
    """`n` distinct questions made from OPENERS x SUBJECTS (shuffled by `seed`)."""
    import random

    pairs = [(o, s) for o in OPENERS for s in SUBJECTS]
    if n > len(pairs):
        raise SystemExit(f"at most {len(pairs)} distinct questions (--sessions {n})")
    random.Random(seed).shuffle(pairs)
    questions = [f"{o} {s}?" for o, s in pairs[:n]]
    assert len(set(questions)) == n
    return questions


@dataclass
class ClassResult:
    """One class run: per question its kind, end-to-end seconds and answers received; errors; votes."""

    label: str
    sessions: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: {"side": [], "battle": []})
    answers: int = 0
    first_sent: float = float("inf")
    last_done: float = 0.0
    errors: list[str] = field(default_factory=list)
    votes_sent: int = 0
    votes_stored: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def all_times(self) -> list[float]:
        return self.times["side"] + self.times["battle"]

    @property
    def per_minute(self) -> float:
        span = self.last_done - self.first_sent
        return 60 * self.answers / span if span > 0 else 0.0

    @property
    def lost(self) -> int | None:
        return None if self.votes_stored is None else self.votes_sent - self.votes_stored

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


def side_answers(out, names: list[str]) -> int:
    """How many of the side-by-side columns hold a finished answer (not an error, not still waiting)."""
    columns = [str(c or "") for c in (out[1 : 1 + len(names)] if out else [])]
    unfinished = ("**Error:**", "*waiting...*", "*(generating...)*", "Ask a question")
    return sum(bool(c) and not any(u in c for u in unfinished) for c in columns)


def ui_settings(max_new_tokens: int) -> tuple:
    """The generation settings a student sends without touching them (the UI's defaults, lab.ui.common.GEN_FIELDS
    order), with `max_new_tokens`."""
    from lab.config import GenConfig

    d = GenConfig()
    return max_new_tokens, d.temperature, d.abstain_below, d.focus_sentences, d.idk_above


def ask_once(n: int, client, bid_at: int, question: str, args, result: ClassResult) -> None:
    """Session n's one question: a side-by-side question (even n) or a blind battle and its vote (odd n), with the
    UI's default settings."""
    gen = ui_settings(args.max_new_tokens)
    kind = "battle" if n % 2 else "side"
    t0 = time.perf_counter()
    with result.lock:
        result.first_sent = min(result.first_sent, t0)
    try:
        if kind == "side":
            out = client.predict(PAIR, question, *gen, api_name="/arena_side_by_side")
            got = side_answers(out, PAIR)
        else:
            out = client.predict(PAIR, question, *gen[:2], api_name="/arena_battle")
            got = 2 if out and out[bid_at] and all(out[:2]) else 0
    except Exception as exc:  # noqa: BLE001 - every failure is counted and printed
        result.error(f"session {n} {kind}: {type(exc).__name__}: {str(exc)[:120]}")
        return
    done = time.perf_counter()
    if got < len(PAIR):
        result.error(f"session {n} {kind}: {got} of {len(PAIR)} answers ({str(out)[:160]})")
    with result.lock:
        result.answers += got
        result.last_done = max(result.last_done, done)
        if got == len(PAIR):
            result.times[kind].append(done - t0)
    if kind == "battle" and got:
        try:
            client.predict(out[bid_at], WINNERS[n % 4], api_name="/arena_submit_vote")
            with result.lock:
                result.votes_sent += 1
        except Exception as exc:  # noqa: BLE001
            result.error(f"session {n} vote: {type(exc).__name__}: {str(exc)[:120]}")


def run_class(url: str, args, label: str) -> ClassResult:
    """Connect every session first, then start session i at i * spread / sessions seconds; wait for all."""
    from gradio_client import Client

    result = ClassResult(label, args.sessions)
    questions = class_questions(args.sessions, args.seed)
    clients = []
    for n in range(args.sessions):
        try:
            clients.append(Client(url, verbose=False))
        except Exception as exc:  # noqa: BLE001
            result.error(f"session {n} connect: {type(exc).__name__}: {exc}")
            clients.append(None)
    bid_at = battle_id_index(next(c for c in clients if c is not None))
    t0 = time.perf_counter()
    threads = []
    for n, client in enumerate(clients):
        if client is None:
            continue
        delay = t0 + n * args.spread / max(1, args.sessions) - time.perf_counter()
        time.sleep(max(0.0, delay))
        t = threading.Thread(target=ask_once, args=(n, client, bid_at, questions[n], args, result), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout=max(1.0, t0 + args.spread + args.grace - time.perf_counter()))
    if unfinished := sum(t.is_alive() for t in threads):
        result.error(f"{unfinished} questions unanswered after {args.spread + args.grace:.0f} s")
    return result


def class_report(result: ClassResult) -> None:
    t = result.all_times
    print(f"[{result.label}] {result.sessions} questions, {len(t)} answered in full, {result.answers} answers, "
          f"errors {len(result.errors)}")  # fmt: skip
    for line in result.errors[:10]:
        print(f"  error: {line}")
    print(f"  end-to-end answer time p50 {stats_s(t, 0.5)} p95 {stats_s(t, 0.95)} (side by side p95 "
          f"{stats_s(result.times['side'], 0.95)}, battle p95 {stats_s(result.times['battle'], 0.95)})")  # fmt: skip
    stored = "?" if result.votes_stored is None else result.votes_stored
    print(f"  answers per minute {result.per_minute:.1f}; votes sent {result.votes_sent}, stored {stored}, "
          f"lost {result.lost}", flush=True)  # fmt: skip


def table(results: list[ClassResult]) -> str:
    rows = [
        ("questions answered in full", lambda r: f"{len(r.all_times)} of {r.sessions}"),
        ("end-to-end answer time p50", lambda r: stats_s(r.all_times, 0.5)),
        ("end-to-end answer time p95", lambda r: stats_s(r.all_times, 0.95)),
        ("answers per minute", lambda r: f"{r.per_minute:.1f}"),
        ("errors", lambda r: str(len(r.errors))),
        ("votes sent / stored", lambda r: f"{r.votes_sent} / {'?' if r.votes_stored is None else r.votes_stored}"),
    ]
    lines = ["| measure | " + " | ".join(r.label for r in results) + " |", "|---" * (len(results) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f(r) for r in results) + " |" for name, f in rows]
    return "\n".join(lines)


SETTINGS = ("LAB_CLASS", "LAB_SERVE_DTYPE", "LAB_BATCH_SIZE", "LAB_BATCH_MODE", "LAB_GEN_THREADS")


def settings_named(args) -> str:
    """The serving settings this run changes (`--class` and the environment), for the table's column label."""
    named = ["app.py --class"] if args.class_mode else []
    named += [f"{k}={os.environ[k]}" for k in SETTINGS if os.environ.get(k)]
    return "".join(f", {n}" for n in named)


def goal_met(r: ClassResult) -> bool:
    times = r.all_times
    return bool(times) and pct(times, 0.95) <= 30 and r.per_minute >= 80 and not r.errors and r.lost in (0, None)


def class_mode(args) -> int:
    """One app launch per LAB_BATCH value in --compare, on one LAB_HOME (the model converted and the sample index
    built once); votes stored are counted per run."""
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="expertlab-load-"))
    results = []
    for value in [v.strip() for v in args.compare.split(",") if v.strip()]:
        label = f"batching {'off' if value == '0' else 'on'} (LAB_BATCH={value}{settings_named(args)})"
        port, log = free_port(), home.parent / f"{home.name}-app-batch{value}.log"
        proc = launch_app(home, port, log, {"LAB_BATCH": value}, ("--class",) if args.class_mode else ())
        url = f"http://127.0.0.1:{port}"
        print(f"{label}: app.py on {url} (LAB_HOME={home}, log {log})", flush=True)
        try:
            wait_ready(url, proc)
            warm(url)
            before = stored_votes(home) or 0
            result = run_class(url, args, label)
            time.sleep(0.5)
            result.votes_stored = (stored_votes(home) or 0) - before
        finally:
            stop(proc)
        class_report(result)
        results.append(result)
    print(f"\n{args.sessions} sessions, one question each within {args.spread:.0f} s, {args.max_new_tokens} new "
          f"tokens, contestants {' and '.join(PAIR)}\n")  # fmt: skip
    print(table(results))
    ok = goal_met(results[-1])
    print("\ngoal (p95 <= 30 s, >= 80 answers a minute, 0 errors, 0 votes lost):", "met" if ok else "NOT met")
    return 0 if ok else 1


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def browse_mode(args) -> int:
    proc, home = None, Path(args.home) if args.home else None
    if args.url:
        url = args.url.rstrip("/")
    else:
        home = home or Path(tempfile.mkdtemp(prefix="expertlab-load-"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = launch_app(home, port, home.parent / f"{home.name}-app.log")
        print(f"launched app.py on {url} (LAB_HOME={home}, log {home.parent / f'{home.name}-app.log'})", flush=True)
    try:
        wait_ready(url, proc)
        warm(url)
        stats, t0 = Stats(), time.time()
        threads = [
            threading.Thread(target=session, args=(i, url, args, stats, t0 + args.deadline), daemon=True)
            for i in range(args.sessions)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1.0, t0 + args.deadline + args.grace - time.time()))
        unfinished = sum(t.is_alive() for t in threads)
        if unfinished:
            print(f"{unfinished} sessions still waiting after the deadline + grace: reported as they stand")
            stats.add("errors", f"{unfinished} sessions unfinished at the deadline")
        time.sleep(0.5)
        return report(stats, time.time() - t0, stored_votes(home), args.sessions)
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("class", "browse"), default="class")
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--spread", type=float, default=30, help="class: the questions start within this many s")
    parser.add_argument("--compare", default="0,1", help="class: LAB_BATCH values, one app launch each, in order")
    parser.add_argument("--seed", type=int, default=0, help="class: which distinct questions are asked")
    parser.add_argument("--class", dest="class_mode", action="store_true", help="class: launch app.py --class")
    parser.add_argument("--rounds", type=int, default=1, help="browse: rounds per session (bounded)")
    parser.add_argument("--deadline", type=float, default=900, help="browse: no new round starts after this many s")
    parser.add_argument("--grace", type=float, default=600, help="then wait this long for questions in flight")
    parser.add_argument("--url", default="", help="browse: an app already running on loopback (default: launch)")
    parser.add_argument("--home", default="", help="LAB_HOME for the launched app (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.url and not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SystemExit("--url must be a loopback address (127.0.0.1 or localhost)")
    return class_mode(args) if args.mode == "class" else browse_mode(args)


def warm(url: str) -> None:
    """One question before the clock starts, so model loading and the sample index build are not measured."""
    from gradio_client import Client

    print("warming up (model load, sample index)...", flush=True)
    Client(url, verbose=False).predict(PAIR, QUESTIONS[0], 8, 0.0, -1.0, 0, api_name="/arena_side_by_side")


if __name__ == "__main__":
    sys.exit(main())
