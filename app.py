"""ExpertLab: launch the Gradio app on the workspace named by LAB_HOME (default ./workspace).

The sample domain (dataset and document corpus) is installed into the workspace on first launch and the
embedded model is converted once into the model cache, so the first page shows a working lab. The sample
retrieval index is built in the background after launch (the Arena's `rag:sample` waits for it if asked first).
Binds to 127.0.0.1 unless `--host` (or GRADIO_SERVER_NAME) says otherwise; LAB_AUTH=user:password adds a login.
These server settings are read once, here (lab.ui.roles.ServerSettings), and passed to the app.
A workspace that cannot be opened (unwritable folder, damaged lab.db) stops the start with one clear line.
"""

import argparse
import sys
import threading

import lab.ui.spaces  # noqa: F401  (ZeroGPU: `spaces` must be imported before anything touches CUDA)
from lab import classroom, db, jobs
from lab.cache import ModelCache
from lab.data import ensure_sample_domain
from lab.errors import setup_logging, user_message
from lab.rag import ensure_sample_index
from lab.ui.app import build_app, launch
from lab.ui.roles import ServerSettings
from lab.ui.teacher_tab import class_mode_line
from lab.workspace import Workspace


def open_workspace() -> Workspace:
    """The workspace, its database checked, crash leftovers tidied, runs whose process died marked failed.

    Exits with one line (no traceback, no restart loop) when it cannot be opened.
    """
    setup_logging()
    try:
        ws = Workspace.from_env()
        db.init(ws.db_path)
        ws.clean_staging()
        jobs.reconcile(ws)
        return ws
    except Exception as exc:
        sys.exit(f"ExpertLab cannot start: {user_message(exc)}")


def parse_args() -> argparse.Namespace:
    """--host, --port and --class. Unknown arguments are left alone (a host that imports app.py)."""
    parser = argparse.ArgumentParser(description="ExpertLab app")
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; 0.0.0.0 = all)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or GRADIO_SERVER_PORT)")
    parser.add_argument("--class", dest="class_mode", action="store_true",
                        help="class mode: serve a room asking at once (LAB_CLASS=1, lab/classroom.py)")  # fmt: skip
    return parser.parse_known_args()[0]


def server_settings(args: argparse.Namespace) -> ServerSettings:
    """The settings from the flags and the environment, read before the app is built (a lab others can reach
    shows a notice and has no teacher without a login); a malformed LAB_AUTH stops the start with one line."""
    try:
        return ServerSettings.from_env(host=args.host, port=args.port)
    except ValueError as exc:
        sys.exit(f"ExpertLab cannot start: {exc}")


args = parse_args()
settings = server_settings(args)
if args.class_mode:
    classroom.turn_on()
ws = open_workspace()
ensure_sample_domain(ws)
cache = ModelCache(ws.model_cache)
demo = build_app(ws, cache, settings)

if __name__ == "__main__":
    if classroom.class_mode():
        print(class_mode_line(), flush=True)
    cache.resolve("embedded")  # convert the embedded model once, before the first request needs it
    threading.Thread(target=ensure_sample_index, args=(ws, cache), name="sample-index", daemon=True).start()
    launch(demo, ws)
