"""Assemble the four tabs into one Blocks app and launch it.

Each tab module exposes `build(ws, cache)`, called inside its `gr.Tab`; tabs share the workspace and the
one ModelCache created at start. Every event carries an explicit api_name so gradio_client can drive it.
"""

from __future__ import annotations

import gradio as gr

from lab.models import ModelCache
from lab.ui import arena_tab, data_tab, rag_tab, train_tab
from lab.workspace import Workspace

TABS = (("Data", data_tab), ("Train", train_tab), ("RAG", rag_tab), ("Arena", arena_tab))
MAX_FILE_SIZE = "200mb"

INTRO = (
    "# ExpertLab\n"
    "To make a model an expert on your domain: **fine-tune** it, give it **retrieval (RAG)**, or **both**? "
    "Bring your data in **Data**, fine-tune in **Train**, index documents in **RAG**, and compare the four "
    "approaches with blind votes and scores in **Arena**."
)


def build_app(ws: Workspace, cache: ModelCache) -> gr.Blocks:
    with gr.Blocks(title="ExpertLab") as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            for label, module in TABS:
                with gr.Tab(label, id=label.lower()):
                    module.build(ws, cache)
    return demo


def launch(demo: gr.Blocks, ws: Workspace, **kwargs) -> tuple:
    """Launch with the workspace readable for file downloads and a bounded upload size."""
    demo.queue(default_concurrency_limit=4)
    return demo.launch(
        theme=gr.themes.Soft(),
        allowed_paths=[str(ws.root)],
        max_file_size=MAX_FILE_SIZE,
        **kwargs,
    )
