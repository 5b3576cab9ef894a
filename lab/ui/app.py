"""Assemble the tabs (Start first, selected by default) into one Blocks app and launch it.

Each tab module exposes `build(ws, cache)`, called inside its `gr.Tab`; tabs share the workspace and the
one ModelCache created at start. Every event carries an explicit api_name so gradio_client can drive it.
"""

from __future__ import annotations

import os
import warnings

import gradio as gr

from lab.cache import ModelCache
from lab.ui import arena_tab, data_tab, rag_tab, start_tab, train_tab
from lab.ui.common import apply_gen_threads
from lab.ui.roles import AUTH_ENV, HOST_ENV, LOOPBACK, SHARE_ENV, public_without_login, read_auth
from lab.workspace import Workspace

TABS = (("Start", start_tab), ("Data", data_tab), ("Train", train_tab), ("RAG", rag_tab), ("Arena", arena_tab))
MAX_FILE_SIZE = "200mb"
LOCALHOST = "127.0.0.1"
PRIVATE = ("lab.db", "lab.db-wal", "lab.db-shm", "datasets", "corpora", "runs", "indexes", "evals", "models", "tmp")

INTRO = (
    "# ExpertLab\n"
    "To make a model an expert on your domain: **fine-tune** it, give it **retrieval (RAG)**, or **both**? "
    "**Start** runs the whole comparison in one click and shows the latest result; then bring your own data in "
    "**Data**, fine-tune in **Train**, index documents in **RAG**, and compare the approaches with blind votes "
    "and scores in **Arena**."
)
PUBLIC_NOTE = (
    "**A shared, public lab without logins:** every visitor sees the datasets, documents, runs, indexes and "
    "evaluations stored here, so do not upload anything private. For your own data, run ExpertLab on your machine "
    "(two commands, see the README) or set `LAB_AUTH` for a login."
)


def build_app(ws: Workspace, cache: ModelCache) -> gr.Blocks:
    with gr.Blocks(title="ExpertLab") as demo:
        gr.Markdown(INTRO)
        if public_without_login():
            gr.Markdown(PUBLIC_NOTE, elem_id="public-note")
        with gr.Tabs(selected=TABS[0][0].lower()):
            for label, module in TABS:
                with gr.Tab(label, id=label.lower()):
                    module.build(ws, cache)
    return demo


def launch(demo: gr.Blocks, ws: Workspace, **kwargs) -> tuple:
    """Launch serving only the downloads folder (plus Gradio's temp dir), with bounded uploads.

    Binds to 127.0.0.1 unless `server_name` or GRADIO_SERVER_NAME asks for more; LAB_AUTH turns on a login.
    """
    apply_gen_threads()
    demo.queue(default_concurrency_limit=4)
    host = kwargs.pop("server_name", None) or os.environ.get(HOST_ENV) or LOCALHOST
    os.environ[HOST_ENV] = host  # the teacher role reads where the lab can be reached (roles.public_without_login)
    if kwargs.get("share"):
        os.environ[SHARE_ENV] = "true"
    auth = kwargs.pop("auth", None) or read_auth(os.environ.get(AUTH_ENV, ""))
    if host not in LOOPBACK and not auth:
        warnings.warn(
            f"serving on {host} without a login: anyone who can reach this machine can use the lab; "
            f"set {AUTH_ENV}=user:password (or a file of such lines) to require one",
            stacklevel=2,
        )
    return demo.launch(
        theme=gr.themes.Soft(),
        server_name=host,
        auth=auth or None,
        allowed_paths=[str(ws.downloads)],
        blocked_paths=[str(ws.root / p) for p in PRIVATE],
        max_file_size=MAX_FILE_SIZE,
        **kwargs,
    )
