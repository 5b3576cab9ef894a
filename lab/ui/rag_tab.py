"""The RAG tab: build a named index from a corpus (progress bar, statistics, per-file problems), list and delete
indexes, inspect retrieval (top-k chunks with scores, sources and the question's words highlighted, plus the
full prompt a RAG contestant would send), and measure it (hit rate@k and MRR, dense vs hybrid, chunk-size sweep).

All work is done by lab.rag and the formatting by lab.ui.rag_view; this module builds the components and wires
the events. The full prompt is built by the Arena's own RAG responder (lab.generation.ModelResponder: same
retrieval, focus and character limits), so the two cannot drift. Every event has an api_name (rag_build,
rag_cancel, rag_refresh, rag_info, rag_delete, rag_query, rag_eval, rag_sweep; the corpus and index pickers are
read again on page load, rag_pickers, and when the tab opens); errors become a status message and a toast.
"""

from __future__ import annotations

import html

import gradio as gr

from lab.cancel import Cancellations
from lab.config import GenConfig, RagConfig
from lab.corpus import list_corpora
from lab.generation.prompt import arena_prompt
from lab.rag import RagError, build_index, delete_index, index_info, list_indexes, open_index
from lab.storage import sample_dir
from lab.ui.common import (
    QUESTION_HINT,
    READ_ONLY,
    Picker,
    config_help,
    fail,
    fail_with,
    follow_workspace,
    picker_update,
    shows_errors,
    this_tab,
)
from lab.ui.rag_view import (
    chunk_sizes,
    metrics_markdown,
    misses_markdown,
    passages_html,
    questions_path,
    stats_markdown,
)
from lab.ui.roles import ServerSettings
from lab.workspace import SAMPLE

SAMPLE_QA = sample_dir() / "eval.jsonl"
NO_INDEX = "choose or build an index first: pick one in the Index list, or build one from a corpus on the left"


def _index_choices(ws) -> list[str]:
    names = list_indexes(ws)
    return names if SAMPLE in names else [*names, SAMPLE]  # sample is built on first use


def default_index(ws) -> str:
    """The index the picker starts on: the sample when it exists or can be built, else the first one built."""
    choices = _index_choices(ws)
    return SAMPLE if SAMPLE in choices else choices[0]


@shows_errors(lambda message: f"(the Arena's prompt could not be built: {message})")
def full_prompt(cache, index, question: str, gen: GenConfig) -> str:
    """The prompt the Arena's `rag:INDEX` contestant sends (`lab.generation.prompt.arena_prompt`)."""
    return arena_prompt(index, question, gen, cache.tokenizer("embedded"))[1]


def _first_index(choices: list[str]) -> str | None:
    return SAMPLE if SAMPLE in choices else (choices[0] if choices else None)


CORPUS_PICKER = Picker("corpora", typed=True)
INDEX_PICKER = Picker("indexes", default=_first_index)


def build(demo, ws, cache, settings: ServerSettings) -> None:
    tab = this_tab()
    gr.Markdown(
        "## Retrieval (RAG)\nIndex your documents, see what the retriever finds for a question, and measure it. "
        "Vectors live in an embedded Qdrant (nothing to start) or a Qdrant server; rebuilding a changed corpus "
        "re-embeds only the documents whose content changed."
    )
    with gr.Row():
        with gr.Column(scale=1):
            corpus = gr.Dropdown(list_corpora(ws), label="Corpus (saved name or folder path)", allow_custom_value=True,
                                 info=config_help(RagConfig, "corpus"))  # fmt: skip
            name = gr.Textbox("my-index", label="Index name", info=config_help(RagConfig, "name"))
            chunker = gr.Radio(list(RagConfig.CHUNKERS), value=RagConfig.chunker, label="Chunker",
                               info=config_help(RagConfig, "chunker"))  # fmt: skip
            with gr.Row():
                size = gr.Number(RagConfig.chunk_size, label="Chunk size (tokens)", precision=0,
                                 info=config_help(RagConfig, "chunk_size"))  # fmt: skip
                overlap = gr.Number(RagConfig.overlap, label="Overlap (tokens)", precision=0,
                                    info=config_help(RagConfig, "overlap"))  # fmt: skip
            embed = gr.Textbox(RagConfig.embed_model, label="Embedding model (embedded or a local folder)",
                               info=config_help(RagConfig, "embed_model"))  # fmt: skip
            store = gr.Textbox("", label="Qdrant server URL (empty = embedded; key from QDRANT_API_KEY)",
                               info=config_help(RagConfig, "store_url"))  # fmt: skip
            hybrid = gr.Checkbox(False, label="Hybrid retrieval by default (dense + BM25)",
                                 info=config_help(RagConfig, "hybrid"))  # fmt: skip
            with gr.Row():
                build_btn = gr.Button("Build index", variant="primary")
                cancel = gr.Button("Cancel build", variant="secondary")
        with gr.Column(scale=1):
            with gr.Row():
                index = gr.Dropdown(
                    _index_choices(ws), label="Index", value=lambda: default_index(ws), allow_custom_value=True
                )
                refresh = gr.Button("↻ Refresh", size="sm")
                delete = gr.Button("Delete", variant="stop", size="sm")
            status = gr.Markdown(lambda: _on_info(ws, default_index(ws))[0])
    query_hybrid = _inspect_and_measure(ws, cache, index)
    build_args = [corpus, name, chunker, size, overlap, embed, store, hybrid]
    build_btn.click(_on_build(ws, cache), build_args, [status, index], api_name="rag_build")
    cancel.click(lambda n: request_cancel(ws, n), name, status, api_name="rag_cancel")
    refresh.click(
        lambda c, i: _refresh(ws, c, i), [corpus, index], [corpus, index], api_name="rag_refresh", **READ_ONLY
    )
    index.change(lambda n: _on_info(ws, n), index, [status, query_hybrid], api_name="rag_info")

    def on_delete(name, request: gr.Request):
        return _on_delete(ws, cache, settings, name, request)

    delete.click(on_delete, index, [status, index], api_name="rag_delete")
    opened = [tab.select] if tab else []  # corpora saved in Data, indexes built elsewhere
    follow_workspace(demo, ws, {corpus: CORPUS_PICKER, index: INDEX_PICKER}, opened, api_name="rag_pickers")


def _inspect_and_measure(ws, cache, index) -> gr.Checkbox:
    """The Inspect and Measure sub-tabs; returns the Inspect hybrid checkbox (it follows the chosen index)."""
    with gr.Tab("Inspect"):
        with gr.Row():
            question = gr.Textbox(label="Question", scale=4, placeholder=QUESTION_HINT)
            k = gr.Slider(1, 20, value=5, step=1, label="Top k", scale=1, info=config_help(RagConfig, "top_k"))
            hybrid = gr.Checkbox(False, label="Hybrid (dense + BM25)", scale=1, info=config_help(RagConfig, "hybrid"))
            cutoff = gr.Slider(0, 1, value=0, step=0.05, label="Similarity cutoff", scale=1,
                               info=config_help(RagConfig, "similarity_cutoff"))  # fmt: skip
        search = gr.Button("Retrieve", variant="primary")
        hits = gr.HTML()
        with gr.Row():
            focus = gr.Slider(0, 12, value=GenConfig.focus_sentences, step=1, scale=1,
                              label="Focus: sentences kept (as the Arena's slider; 0 = whole passages)",
                              info=config_help(GenConfig, "focus_sentences"))  # fmt: skip
            gr.Markdown(
                f"The prompt below is exactly what the Arena's `rag:INDEX` contestant sends: its own retrieval (top "
                f"k above, the index's default mode, no cutoff), the focus sentences, each passage cut to "
                f"{GenConfig.context_chars} characters, rendered with the generator's chat template."
            )
        prompt = gr.Textbox(label="Full prompt the Arena sends", lines=12, buttons=["copy"])
    with gr.Tab("Measure"):
        with gr.Row():
            upload = gr.File(label="Evaluation file (JSONL with question and source)", file_types=[".jsonl"],
                             type="filepath")  # fmt: skip
            with gr.Column():
                qa = gr.Textbox(str(SAMPLE_QA) if SAMPLE_QA.is_file() else "",
                                label="...or a file path (used when nothing is uploaded)")  # fmt: skip
                mk = gr.Slider(1, 20, value=5, step=1, label="k")
                sizes = gr.Textbox("128, 256, 512", label="Chunk sizes to sweep")
        with gr.Row():
            evaluate = gr.Button("Evaluate dense vs hybrid", variant="primary")
            sweep = gr.Button("Sweep chunk sizes")
        scores = gr.Markdown()
        chart = gr.LinePlot(x="chunk_size", y="hit_rate", color="mode", label="Hit rate@k by chunk size")
    query_args = [index, question, k, hybrid, cutoff, focus]
    search.click(lambda *a: _on_query(ws, cache, *a), query_args, [hits, prompt], api_name="rag_query")
    evaluate.click(lambda *a: _on_eval(ws, cache, *a), [index, qa, mk, upload], scores, api_name="rag_eval")
    sweep.click(_on_sweep(ws, cache), [index, qa, sizes, mk, upload], [chart, scores], api_name="rag_sweep")
    return hybrid


def _builds(ws) -> Cancellations:
    return Cancellations.of(ws, "index-build")


def request_cancel(ws, name: str) -> str:
    """Ask the running build of `name` to stop at its next embedding batch (its old index stays)."""
    _builds(ws).request(name)
    return f"Cancelling the build of `{name}`; the previous index, if any, stays as it was."


def checked_progress(ws, name: str, progress):
    """A build progress callback that reports to gradio and raises when a cancel was requested."""
    builds = _builds(ws)
    builds.start(name)

    def report(fraction: float, message: str) -> None:
        if builds.requested(name):
            raise RagError(f"build of {name!r} cancelled; the previous index, if any, is unchanged")
        progress(fraction, desc=message)

    return report


def _on_build(ws, cache):
    @shows_errors(fail_with(gr.update()))
    def run(corpus, name, chunker, size, overlap, embed, store, hybrid, progress=gr.Progress()):
        config = RagConfig(
            name=(name or "").strip(),
            corpus=(corpus or "").strip(),
            chunker=chunker or RagConfig.chunker,
            chunk_size=int(size or 0),
            overlap=int(overlap or 0),
            embed_model=(embed or "").strip() or RagConfig.embed_model,
            store_url=(store or "").strip(),
            hybrid=bool(hybrid),
        )
        if not config.corpus:
            raise RagError("choose a corpus (save one in the Data tab) or type a folder path")
        build_index(ws, config, cache, progress=checked_progress(ws, config.name, progress))
        info = index_info(ws, config.name)
        return stats_markdown(config.name, info), gr.update(choices=_index_choices(ws), value=config.name)

    return run


def _refresh(ws, corpus=None, index=None):
    """Both pickers read again, each keeping its selection while it exists."""
    return picker_update(ws, CORPUS_PICKER, corpus), picker_update(ws, INDEX_PICKER, index)


@shows_errors(fail_with(gr.update()))
def _on_info(ws, name):
    """Statistics of the chosen index, and its default retrieval mode for the Inspect checkbox."""
    if not name:
        return f"Index: {NO_INDEX}.", gr.update()
    if name not in list_indexes(ws):
        note = f"Index `{name}` is not built yet; it is built with default settings on first use." if name else ""
        return note, gr.update()
    hybrid = RagConfig.load(ws.dir("indexes", name) / "config.json").hybrid
    return stats_markdown(name, index_info(ws, name)), gr.update(value=hybrid)


@shows_errors(fail_with(gr.update()))
def _on_delete(ws, cache, settings: ServerSettings, name, request: gr.Request):
    if not name:
        return fail(NO_INDEX), gr.update()
    settings.require_teacher(request, "delete an index")
    delete_index(ws, name or "")
    return f"Deleted index `{name}`.", gr.update(choices=_index_choices(ws), value=None)


@shows_errors(lambda message: (f"<p><b>✗ {html.escape(message)}</b></p>", ""))
def _on_query(ws, cache, name, question, k, hybrid, cutoff, focus=GenConfig.focus_sentences):
    if not name:
        return f"<p><b>✗ {html.escape(NO_INDEX)}</b></p>", ""
    if not (question or "").strip():
        return f"<p>{html.escape('Type a question first.')}</p>", ""
    idx = open_index(ws, name, cache)
    passages = idx.retrieve(question, int(k), hybrid=bool(hybrid), cutoff=float(cutoff or 0))
    gen = GenConfig(top_k=int(k), focus_sentences=int(focus or 0))
    return passages_html(passages, question), full_prompt(cache, idx, question, gen)


@shows_errors()
def _on_eval(ws, cache, name, qa, k, upload=None):
    from lab.rag.evaluate import compare_modes, load_questions

    if not name:
        return fail(NO_INDEX)
    rows = compare_modes(open_index(ws, name, cache), load_questions(questions_path(qa, upload)), int(k))
    return f"### Index `{name}`\n" + metrics_markdown(rows) + "\n\n" + misses_markdown(rows[0])


def _on_sweep(ws, cache):
    @shows_errors(lambda message: (gr.update(), fail(message)))
    def run(name, qa, sizes, k, upload=None, progress=gr.Progress()):
        import pandas as pd

        from lab.rag.embed import load_embedder
        from lab.rag.evaluate import chunk_size_sweep, load_questions

        if not name:
            return gr.update(), fail(NO_INDEX)
        base = open_index(ws, name, cache).config
        rows = chunk_size_sweep(
            ws,
            base,
            load_questions(questions_path(qa, upload)),
            chunk_sizes(sizes or ""),
            load_embedder(cache, base.embed_model),
            int(k),
            lambda f, m: progress(f, desc=m),
        )
        table = ["| chunk size | chunks | mode | hit rate | MRR |", "|---|---|---|---|---|"]
        table += [
            f"| {r['chunk_size']} | {r['chunks']} | {r['mode']} | {r['hit_rate']:.3f} | {r['mrr']:.3f} |" for r in rows
        ]
        return pd.DataFrame(rows), "\n".join(table)

    return run
