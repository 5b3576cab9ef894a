"""Test harness: the real app under the `spaces` package's own ZeroGPU patching, on this CPU build of torch.

On a ZeroGPU Space, `import spaces` (SPACES_ZERO_GPU=true) patches torch so the main process believes it has a
CUDA card, and every `spaces.GPU` call asks a device scheduler for a slot, then runs in a forked worker. Here:

- `install_cuda_shim()` gives this CPU wheel the four names the patching reads from a CUDA build
  (`torch.version.cuda`, `torch._C._cuda_init`, `torch._C._cuda_getCurrentRawStream`, and a picklable
  `torch.cuda._is_in_bad_fork`); everything else is the package's own code.
- `Scheduler` is a loopback stand-in for the device scheduler (SPACES_ZERO_DEVICE_API_URL): `/startup-report`
  200, `/schedule` grants a slot or refuses it the way the real one does (quota, illegal duration, no GPU),
  `/allow` and `/release` 200. It counts requests per path, so a test can assert that work asked for no slot.
- `run_worker_on_cpu()` replaces exactly two functions of `spaces`: `spaces.zero.torch.init` (the worker's own
  CUDA init: `torch.Tensor([0]).cuda()`) and `spaces.zero.torch.move` (copying the emulated "cuda" tensors onto
  the card). Both need a CUDA build; without them a granted slot's forked worker runs its task on the CPU.
- `launch_app()` starts app.py in a subprocess (`python tests/zerogpu.py app ...`) with those in place, so
  gradio_client drives it and the handlers run on gradio's worker threads, as on a Space.

Not verified here: a real CUDA worker (its init, the tensor move, the scheduler's real quotas and timing).
"""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

REPO = Path(__file__).resolve().parent.parent
GRANT = "grant"
# How the real scheduler refuses (spaces/zero/client.py `schedule`): 429 with quota infos, wait < 0 for a
# duration above the maximum, 503 when no GPU is free.
REFUSALS = {
    "quota": (429, {"left": 0, "wait": 600}),
    "duration": (429, {"left": 300, "wait": -1}),
    "no-gpu": (503, {"detail": "no GPU"}),
}


def not_in_bad_fork() -> bool:
    """Stands in for `torch.cuda._is_in_bad_fork` (a CUDA build's): spaces runs it in a forked pool, so it must
    pickle, i.e. be a module-level function."""
    return False


def no_cuda_init() -> None:
    """Stands in for `torch._C._cuda_init`; spaces keeps it to restore in its worker (`unpatch`)."""


def no_raw_stream(device: int = 0) -> int:
    """Stands in for `torch._C._cuda_getCurrentRawStream` (bitsandbytes reads it when CUDA looks available)."""
    return 0


def install_cuda_shim() -> None:
    """The four names a CUDA build has and `spaces`' ZeroGPU patching reads; call before `import spaces`."""
    import torch

    if torch.version.cuda is None:
        torch.version.cuda = "12.8"
    torch._C._cuda_init = no_cuda_init
    torch._C._cuda_getCurrentRawStream = no_raw_stream
    torch.cuda._is_in_bad_fork = not_in_bad_fork


def _worker_init_on_cpu(nvidia_uuid: str) -> None:
    """Replaces `spaces.zero.torch.init` in the forked worker: no CUDA card to initialise on this CPU."""


def _worker_move_on_cpu(callback=None) -> None:
    """Replaces `spaces.zero.torch.move` in the forked worker: the emulated tensors stay on the CPU."""


def run_worker_on_cpu() -> None:
    """Replace exactly `spaces.zero.torch.init` and `spaces.zero.torch.move` (see the module docstring)."""
    import spaces.zero.torch as zero_torch

    zero_torch.init = _worker_init_on_cpu
    zero_torch.move = _worker_move_on_cpu


class Scheduler:
    """The ZeroGPU device scheduler on 127.0.0.1: `mode` is GRANT or a key of REFUSALS; `counts[path]` counts
    requests; `scheduled` keeps each /schedule query (durationSeconds, taskId, ...)."""

    def __init__(self) -> None:
        self.mode = GRANT
        self.counts: Counter[str] = Counter()
        self.scheduled: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="zerogpu-scheduler")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def reset(self, mode: str = GRANT) -> None:
        with self._lock:
            self.mode = mode
            self.counts.clear()
            self.scheduled.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, query: dict[str, str]) -> tuple[int, dict | None]:
        with self._lock:
            self.counts[path] += 1
            if path != "/schedule":
                return (200, None) if path in ("/startup-report", "/allow", "/release") else (404, None)
            self.scheduled.append(query)
            if self.mode in REFUSALS:
                return REFUSALS[self.mode]
            token = f"allow-{len(self.scheduled)}"
            return 200, {"idle": False, "nvidiaIndex": 0, "nvidiaUUID": "GPU-loopback", "allowToken": token}

    def _handler(self):
        scheduler = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                parsed = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                status, body = scheduler._answer(parsed.path, query)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        return Handler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(home: Path, scheduler_url: str, port: int, tmp: Path) -> dict[str, str]:
    """The environment of a ZeroGPU Space for app.py: SPACES_ZERO_GPU, the scheduler's URL, LAB_HOME, the port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACES_", "LAB_", "ZEROGPU_", "GRADIO_"))}
    env.update(
        SPACES_ZERO_GPU="true",
        SPACES_ZERO_DEVICE_API_URL=scheduler_url,
        ZEROGPU_OFFLOAD_DIR=str(tmp / "offload"),
        LAB_HOME=str(home),
        GRADIO_SERVER_PORT=str(port),
        GRADIO_TEMP_DIR=str(tmp / "gradio"),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    if os.environ.get("ZEROGPU_TEST_DUMP_AFTER"):
        env["ZEROGPU_TEST_DUMP_AFTER"] = os.environ["ZEROGPU_TEST_DUMP_AFTER"]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def launch_app(home: Path, scheduler: Scheduler, tmp: Path, worker_on_cpu: bool = True, timeout: float = 240):
    """app.py under the ZeroGPU patching in a subprocess; returns (Popen, base url, log path) once it answers."""
    port = free_port()
    log = tmp / "app.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "app", "--port", str(port)]
    if worker_on_cpu:
        cmd.append("--worker-on-cpu")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=app_env(home, scheduler.url, port, tmp), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited ({proc.returncode}): {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/gradio_api/info", timeout=5) as resp:
                if resp.status == 200:
                    return proc, url, log
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the app did not answer in {timeout}s: {log.read_text(errors='replace')[-3000:]}")


def dump_stacks_in_forked_children() -> None:
    """With ZEROGPU_TEST_DUMP_AFTER=N set, every forked child (a slot's worker) writes all its threads' stacks to
    stderr (the app's log) N seconds after the fork and again every N seconds: the way to find the lock a hung
    worker waits on."""
    after = float(os.environ.get("ZEROGPU_TEST_DUMP_AFTER") or 0)
    if after > 0:
        import faulthandler

        os.register_at_fork(after_in_child=lambda: faulthandler.dump_traceback_later(after, repeat=True))


def stop_app(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main(argv: list[str]) -> None:
    """`python tests/zerogpu.py app [--worker-on-cpu] [app.py arguments]`: the shim, `import spaces` (which
    patches torch), optionally the two worker replacements, then app.py as __main__."""
    if not argv or argv[0] != "app":
        sys.exit("usage: python tests/zerogpu.py app [--worker-on-cpu] [--port N]")
    import zerogpu  # this file as an importable module, so the shim's functions pickle by name

    zerogpu.install_cuda_shim()
    import spaces  # noqa: F401  (the ZeroGPU patching, as on a Space)

    dump_stacks_in_forked_children()
    rest = [a for a in argv[1:] if a != "--worker-on-cpu"]
    if "--worker-on-cpu" in argv:
        zerogpu.run_worker_on_cpu()
    sys.argv = [str(REPO / "app.py"), *rest]
    runpy.run_path(str(REPO / "app.py"), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
