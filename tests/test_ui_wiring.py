"""How the UI is wired: page loads go through the app Blocks' own `load`, and every control that sets a config
field explains it with that field's help (the text the CLI's --help and the config reference show). Builds the
app's components without loading any model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr
import pytest

from lab.config import DataConfig, GenConfig, RagConfig, TrainConfig, field_help

LAB = Path(__file__).resolve().parent.parent / "lab"
PAGE_LOADS = {"start_latest", "start_estimate", "start_pickers", "train_pickers", "rag_pickers", "arena_pickers",
              "arena_battle_pool", "teacher_visible"}  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from lab.workspace import Workspace

    return Workspace.open(tmp_path_factory.mktemp("home"))


def _labelled(demo: gr.Blocks) -> dict[str, list]:
    found: dict[str, list] = {}
    for block in demo.blocks.values():
        if getattr(block, "label", None):
            found.setdefault(block.label, []).append(block)
    return found


def test_page_loads_are_registered_on_the_app_blocks_with_their_api_names(workspace):
    from lab.ui.app import build_app
    from lab.ui.roles import ServerSettings

    demo = build_app(workspace, None, ServerSettings())
    loads = {f.api_name: f.targets for f in demo.fns.values() if f.api_name in PAGE_LOADS}
    assert set(loads) == PAGE_LOADS
    assert all(targets == [(demo._id, "load")] for targets in loads.values()), loads
    private = [p.relative_to(LAB) for p in LAB.rglob("*.py") if "root_block" in p.read_text(encoding="utf-8")]
    assert private == []  # Gradio's private Context.root_block is not used for page loads


def test_train_form_controls_show_their_config_fields_help(workspace):
    from lab.ui import train_form

    with gr.Blocks():
        _, form = train_form._form(workspace)
    shown = {name: c.info for name, c in zip(train_form.FIELDS, form, strict=True)}
    assert shown == {name: field_help(TrainConfig, name) for name in train_form.FIELDS}
    assert all(shown.values())


def test_generation_controls_show_their_config_fields_help():
    from lab.ui.common import GEN_FIELDS, gen_controls

    with gr.Blocks():
        controls = gen_controls()
    assert [c.info for c in controls] == [field_help(GenConfig, name) for name in GEN_FIELDS]


@pytest.mark.parametrize(
    ("tab", "expected"),
    [
        ("data_tab", {"Split": (DataConfig, "split"), "Fill placeholders": (DataConfig, "fill"),
                      "Format": (DataConfig, "format"), "Question column": (DataConfig, "question_column"),
                      "Answer column": (DataConfig, "answer_column"),
                      "System column (optional)": (DataConfig, "system_column"),
                      "Max length (tokens)": (DataConfig, "max_length"),
                      "Validation fraction": (DataConfig, "val_fraction"), "Split seed": (DataConfig, "seed")}),
        ("rag_tab", {"Index name": (RagConfig, "name"), "Chunker": (RagConfig, "chunker"),
                     "Corpus (saved name or folder path)": (RagConfig, "corpus"),
                     "Chunk size (tokens)": (RagConfig, "chunk_size"), "Overlap (tokens)": (RagConfig, "overlap"),
                     "Embedding model (embedded or a local folder)": (RagConfig, "embed_model"),
                     "Hybrid retrieval by default (dense + BM25)": (RagConfig, "hybrid"),
                     "Top k": (RagConfig, "top_k"), "Similarity cutoff": (RagConfig, "similarity_cutoff"),
                     "Focus: sentences kept (as the Arena's slider; 0 = whole passages)": (GenConfig,
                                                                                          "focus_sentences")}),
    ],
)  # fmt: skip
def test_tab_controls_show_their_config_fields_help(workspace, tab, expected):
    import importlib

    from lab.ui.roles import ServerSettings

    module = importlib.import_module(f"lab.ui.{tab}")
    with gr.Blocks() as demo:
        module.build(demo, workspace, None, ServerSettings())
    labelled = _labelled(demo)
    for label, (cls, name) in expected.items():
        assert name in {f.name for f in dataclasses.fields(cls)}
        assert [c.info for c in labelled[label]] == [field_help(cls, name)], label


def _whiskers(ax, horizontal: bool = False) -> list[tuple[float, float]]:
    """(low end, high end) of each whisker drawn on `ax`, in drawing order."""
    from matplotlib.collections import LineCollection

    spans = []
    for lines in (c for c in ax.collections if isinstance(c, LineCollection)):
        for (x0, y0), (x1, y1) in lines.get_segments():
            ends = (x0, x1) if horizontal else (y0, y1)
            spans.append((round(min(ends), 6), round(max(ends), 6)))
    return spans


def test_start_and_arena_charts_draw_each_rate_with_its_own_interval():
    """Both charts draw through charts.ci_bars: a whisker spans the rate's interval, and a rate without an
    interval has none (not a line down to 0)."""
    from lab.ui import arena_view, start_view

    systems = [
        {"system": "rag", "correct_rate": 0.5, "correct_rate_ci": [0.4, 0.7], "hallucination_rate": 0.2,
         "hallucination_rate_ci": [0.1, 0.3], "n_answerable": 10, "n_unanswerable": 5},
        {"system": "ft", "correct_rate": 0.6, "hallucination_rate": 0.3, "n_answerable": 10, "n_unanswerable": 5},
    ]  # fmt: skip
    fig = start_view.chart({"systems": systems})
    assert _whiskers(fig.axes[0], horizontal=True) == [(40.0, 70.0), (60.0, 60.0)]  # correct: an interval, then none
    assert _whiskers(fig.axes[1], horizontal=True) == [(10.0, 30.0), (30.0, 30.0)]
    arena = arena_view.bar_chart({"systems": systems})
    spans = _whiskers(arena.axes[0])
    assert spans[0] == (40.0, 70.0) and spans[len(arena_view.CHART_METRICS)] == (60.0, 60.0)


def test_a_view_lists_its_outputs_in_field_order_and_maps_names_to_components():
    from lab.ui.common import View

    @dataclasses.dataclass(frozen=True)
    class Shown(View):
        status: gr.Markdown
        sides: list
        state: gr.State

    with gr.Blocks():
        status, a, b, state = gr.Markdown(), gr.Textbox(), gr.Textbox(), gr.State()
    shown = Shown(status, [a, b], state)
    assert shown.outputs() == [status, a, b, state]  # the API's order
    assert shown.updates(status="x", sides=["1", "2"]) == {status: "x", a: "1", b: "2"}  # the state is left alone
    with pytest.raises(ValueError):
        shown.updates(sides=["only one"])  # a list field takes one value per component
