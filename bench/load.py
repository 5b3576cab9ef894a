"""Load test: N concurrent gradio_client sessions against a launched app (loopback only; stops by itself).

Launches `app.py` on 127.0.0.1 with a fresh LAB_HOME (or uses --url), then every session does `--rounds` rounds of:
browse (cheap, non-generation events: contestant list, leaderboard, dataset list, index list, run list), one
side-by-side question (generation), one blind battle (generation) and one vote on the battle id the server issued.
Unqueued events (`queue=False`: the read-only lists) are called the way a browser calls them, by a
plain POST; queued ones through gradio_client. Prints requests sent, errors, p50/p95 latency of the non-generation
events (overall and while generation is queued), p50/p95 queue wait of the generation events, and votes sent vs
stored in lab.db.

    .venv/bin/python bench/load.py                   # 30 sessions, 1 round, 16 new tokens
    .venv/bin/python bench/load.py --sessions 5 --rounds 2
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
CHEAP = ("/arena_contestants", "/arena_leaderboard", "/data_list", "/rag_refresh", "/train_runs")
PAIR = ["base", "rag:sample"]
QUESTIONS = ("What does the manual say about maintenance?", "Which part must be checked first?", "Who is it for?")
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


def launch_app(home: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "LAB_HOME": str(home), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env.pop("GRADIO_SERVER_NAME", None)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


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
    print(f"generation events: n={len(stats.gen_wait_s)} queue wait p50 {stats_s(stats.gen_wait_s, 0.5)} "
          f"p95 {stats_s(stats.gen_wait_s, 0.95)}; total p50 {stats_s(stats.gen_total_s, 0.5)}")  # fmt: skip
    lost = None if stored is None else stats.votes_sent - stored
    print(f"votes sent {stats.votes_sent}, stored {stored if stored is not None else '?'}, lost {lost}")
    ok = not stats.errors and lost in (0, None) and (pct(during, 0.95) < 1.0 if during else True)
    print("goal (0 errors, 0 votes lost, non-generation p95 < 1 s under generation):", "met" if ok else "NOT met")
    return 0 if ok else 1


def stats_s(values: list[float], q: float) -> str:
    return f"{pct(values, q):.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1, help="rounds per session (bounded)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--deadline", type=float, default=900, help="no new round starts after this many seconds")
    parser.add_argument("--grace", type=float, default=600, help="then wait this long for rounds in flight")
    parser.add_argument("--url", default="", help="an app already running on loopback (default: launch one)")
    parser.add_argument("--home", default="", help="LAB_HOME for the launched app (default: a temp folder)")
    args = parser.parse_args(argv)
    proc, home = None, Path(args.home) if args.home else None
    if args.url:
        if not args.url.startswith(("http://127.0.0.1", "http://localhost")):
            raise SystemExit("--url must be a loopback address (127.0.0.1 or localhost)")
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
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def warm(url: str) -> None:
    """One question before the clock starts, so model loading and the sample index build are not measured."""
    from gradio_client import Client

    print("warming up (model load, sample index)...", flush=True)
    Client(url, verbose=False).predict(PAIR, QUESTIONS[0], 8, 0.0, -1.0, 0, api_name="/arena_side_by_side")


if __name__ == "__main__":
    sys.exit(main())
