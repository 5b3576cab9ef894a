"""Assemble the tabs (Start first, selected by default) into one Blocks app and launch it.

Each tab's builder is called inside its `gr.Tab` as `build(demo, ws, cache, settings)`: the app's Blocks (its
page-load events go through the Blocks' own `load`), the workspace, the one ModelCache created at start and the
ServerSettings (lab.ui.roles). Every event carries an explicit api_name so gradio_client can drive it.
"""

from __future__ import annotations

import warnings

import gradio as gr

from lab.cache import ModelCache
from lab.ui import arena_tab, data_tab, rag_tab, start_tab, train_tab
from lab.ui.common import apply_gen_threads
from lab.ui.roles import AUTH_ENV, LOOPBACK, ServerSettings, read_auth  # noqa: F401 (read_auth: part of this API)
from lab.workspace import Workspace

TABS = (
    ("Start", start_tab.build),
    ("Data", data_tab.build),
    ("Train", train_tab.build),
    ("RAG", rag_tab.build),
    ("Arena", arena_tab.build),
)
MAX_FILE_SIZE = "200mb"
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


def build_app(ws: Workspace, cache: ModelCache, settings: ServerSettings | None = None) -> gr.Blocks:
    """The app for `settings` (default: read from the environment); `launch` serves it with them."""
    settings = settings or ServerSettings.from_env()
    with gr.Blocks(title="ExpertLab") as demo:
        gr.Markdown(INTRO)
        note = gr.Markdown(PUBLIC_NOTE, elem_id="public-note", visible=settings.public_without_login())
        with gr.Tabs(selected=TABS[0][0].lower()):
            for label, builder in TABS:
                with gr.Tab(label, id=label.lower()):
                    builder(demo, ws, cache, settings)
    demo.lab_settings, demo.lab_public_note = settings, note  # read by launch
    return demo


def launch(demo: gr.Blocks, ws: Workspace, **kwargs) -> tuple:
    """Launch serving only the downloads folder (plus Gradio's temp dir), with bounded uploads.

    Serves with the app's ServerSettings (see build_app); `server_name`, `server_port`, `share` and `auth` given
    here win and are recorded in them, so a share link or a public address asked for from Python makes the lab
    public (the notice shows, nobody is a teacher without a login). Warns when the lab is reachable beyond this
    computer without a login."""
    apply_gen_threads()
    demo.queue(default_concurrency_limit=4)
    settings = serving(demo, kwargs)
    if settings.host not in LOOPBACK and not settings.login:
        warnings.warn(
            f"serving on {settings.host} without a login: anyone who can reach this machine can use the lab; "
            f"set {AUTH_ENV}=user:password (or a file of such lines) to require one",
            stacklevel=2,
        )
    return demo.launch(
        theme=gr.themes.Soft(),
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.users or None,
        allowed_paths=[str(ws.downloads)],
        blocked_paths=[str(ws.root / p) for p in PRIVATE],
        max_file_size=MAX_FILE_SIZE,
        **kwargs,
    )


def serving(demo: gr.Blocks, kwargs: dict) -> ServerSettings:
    """The app's settings updated with launch's own `server_name`, `server_port`, `share` and `auth` (taken out of
    `kwargs`), and the public-lab notice shown or hidden to match."""
    settings = getattr(demo, "lab_settings", None) or ServerSettings.from_env()
    settings.host = kwargs.pop("server_name", None) or settings.host
    settings.port = kwargs.pop("server_port", None) or settings.port
    settings.share = bool(kwargs.pop("share", None)) or settings.share
    settings.users = list(kwargs.pop("auth", None) or settings.users)
    note = getattr(demo, "lab_public_note", None)
    if note is not None:
        note.visible = settings.public_without_login()  # gradio reads the page's config again in launch
    return settings
