"""The rag tab (placeholder until its issue lands)."""

from __future__ import annotations

import gradio as gr


def build(ws, cache) -> None:
    gr.Markdown("Coming soon.")
