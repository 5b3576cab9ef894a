"""The Arena's "Votes as data" sub-tab: the blind votes exported as training data (work is in lab.arena.votes) and
offered for download. Event: arena_export_votes (a teacher's action where the lab has a login, like the Teacher
tab's CSV export). Errors become a status line and a toast, never a traceback.
"""

from __future__ import annotations

import gradio as gr

from lab.arena import votes
from lab.ui.common import fail, shows_errors
from lab.ui.roles import ServerSettings

INTRO = (
    "**Export votes** writes the blind A/B votes as two files, each with a metadata file (question set, contestants, "
    "counts): `votes-sft.jsonl`, the winning answers as chat JSONL (import it in **Data** to fine-tune on them), and "
    "`votes-prefs.jsonl`, `{prompt, chosen, rejected}` pairs for a **Preferences (DPO)** run in **Train**. Ties, "
    '"both bad", votes that were not blind and identical answers are left out and counted; the RAG prompt\'s '
    "citations and source notes are removed from the answers (the exported question carries no passages)."
)


def build(ws, settings: ServerSettings) -> None:
    gr.Markdown(INTRO)
    button = gr.Button("Export votes", variant="primary")
    summary = gr.Markdown()
    files = gr.File(label="Exported files", file_count="multiple", interactive=False, elem_id="arena-votes-export")

    def on_export(request: gr.Request):
        return export(ws, settings, request)

    button.click(on_export, None, [summary, files], api_name="arena_export_votes")


@shows_errors(lambda message: (fail(message), None))
def export(ws, settings: ServerSettings, request) -> tuple[str, list[str] | None]:
    """(summary line, the exported files) or (the refusal, None)."""
    settings.require_teacher(request, "export the votes")
    done = votes.export(ws)
    return done.summary().replace(str(done.folder), f"`{done.folder.name}`"), [str(p) for p in done.files]
