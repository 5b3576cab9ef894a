"""`python -m lab index ...`: build, query, evaluate, list and delete RAG indexes, and print the prompt the
Arena's `rag:INDEX` contestant sends (the RAG tab's CLI twin).

Builds print progress to stderr and the statistics to stdout; `--json` prints machine-readable results.
User-fixable errors (unknown index, empty corpus, bad settings) surface as ValueError -> one line, exit 2.
"""

from __future__ import annotations

import json
import sys

from lab.config import GenConfig, RagConfig, field_help
from lab.errors import LabError


def _help(name: str, config=RagConfig) -> str:
    return f"{field_help(config, name)}; default {getattr(config, name)!r}".replace("%", "%%")


def register(sub) -> None:
    index = sub.add_parser("index", help="RAG indexes: build, query, eval, list, delete")
    cmds = index.add_subparsers(dest="index_command", required=True)
    build = cmds.add_parser("build", help="build or incrementally rebuild an index from a corpus or folder")
    build.add_argument("--docs", required=True, help="a saved corpus name or a folder of documents")
    build.add_argument("--name", required=True, help="the index's name")
    build.add_argument("--chunk-size", type=int, default=None, help=_help("chunk_size"))
    build.add_argument("--overlap", type=int, default=None, help=_help("overlap"))
    build.add_argument("--chunker", choices=("sentence", "markdown"), default=None, help=_help("chunker"))
    build.add_argument("--embed-model", default=None, help="'embedded' (default) or a sentence-transformers folder")
    build.add_argument("--store-url", default=None, help="a Qdrant server URL (API key from QDRANT_API_KEY)")
    build.add_argument("--hybrid", action="store_true", help="retrieve with dense + BM25 fusion by default")
    build.add_argument("--json", action="store_true", help="print the build report as JSON")
    build.set_defaults(func=cmd_build)
    query = cmds.add_parser("query", help="print the top-k passages for a question")
    query.add_argument("name", help="the index")
    query.add_argument("question", help="the question to retrieve passages for")
    query.add_argument("-k", type=int, default=None, help="passages to return (default: the index's top_k)")
    query.add_argument("--hybrid", action=argparse_bool(), default=None, help="dense + BM25 (default: the index's)")
    query.add_argument("--json", action="store_true", help="print the passages as JSON")
    query.set_defaults(func=cmd_query)
    _prompt_parser(cmds)
    ev = cmds.add_parser("eval", help="hit rate@k and MRR, dense vs hybrid, on a JSONL with question + source")
    ev.add_argument("name", help="the index")
    ev.add_argument("--qa", required=True, help="JSONL with question and source (the document's file name)")
    ev.add_argument("-k", type=int, default=5, help="hit rate counted in the top k passages")
    ev.add_argument("--json", action="store_true", help="print the scores as JSON")
    ev.set_defaults(func=cmd_eval)
    sweep = cmds.add_parser("sweep", help="hit rate@k and MRR by chunk size (throwaway builds of NAME's corpus)")
    sweep.add_argument("name", help="the index whose corpus and settings are swept")
    sweep.add_argument("--qa", required=True, help="JSONL with question and source (the document's file name)")
    sweep.add_argument("--sizes", default="128,256,512", help="comma-separated chunk sizes (tokens)")
    sweep.add_argument("-k", type=int, default=5, help="hit rate counted in the top k passages")
    sweep.add_argument("--json", action="store_true", help="print the scores as JSON")
    sweep.set_defaults(func=cmd_sweep)
    cmds.add_parser("list", help="list indexes with their statistics").set_defaults(func=cmd_list)
    delete = cmds.add_parser("delete", help="delete an index")
    delete.add_argument("name", help="the index to delete")
    delete.set_defaults(func=cmd_delete)


def _prompt_parser(cmds) -> None:
    prompt = cmds.add_parser("prompt", help="print the passages and the exact prompt the Arena's rag:NAME sends")
    prompt.add_argument("name", help="the index")
    prompt.add_argument("question", help="the question the contestant answers")
    for flag, field in (("--top-k", "top_k"), ("--focus", "focus_sentences"), ("--context-chars", "context_chars")):
        default = getattr(GenConfig, field)
        prompt.add_argument(flag, dest=field, type=int, default=default, metavar="N", help=_help(field, GenConfig))
    prompt.add_argument("--model", default="embedded", help="whose chat template renders it (default embedded)")
    prompt.add_argument("--json", action="store_true", help="print the passages and the prompt as JSON")
    prompt.set_defaults(func=cmd_prompt)


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def _context():
    from lab.cache import ModelCache
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    return ws, ModelCache(ws.model_cache)


def _progress(fraction: float, message: str) -> None:
    print(f"\r[{fraction:4.0%}] {message:<50}", end="", file=sys.stderr, flush=True)


def cmd_build(args) -> int:
    from lab.config import RagConfig
    from lab.rag import build_index

    ws, cache = _context()
    values = {"name": args.name, "corpus": args.docs, "hybrid": args.hybrid}
    for key in ("chunk_size", "overlap", "chunker", "embed_model", "store_url"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    report = build_index(ws, RagConfig.from_dict(values), cache, progress=_progress)
    print(file=sys.stderr)
    out = {"name": report.name, **report.stats, "embedded_docs": report.embedded_docs}
    out.update(reused_docs=report.reused_docs, problems=report.problems)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for key, value in out.items():
        if key != "problems":
            print(f"{key}: {value}")
    for problem in report.problems:
        print(f"skipped {problem}")
    return 0


def cmd_query(args) -> int:
    from lab.rag import open_index

    ws, cache = _context()
    passages = open_index(ws, args.name, cache).retrieve(args.question, args.k, hybrid=args.hybrid)
    if args.json:
        print(json.dumps([p.__dict__ for p in passages], indent=2, ensure_ascii=False))
        return 0
    for rank, p in enumerate(passages, start=1):
        print(f"#{rank}  {p.score:.3f}  {p.source}  [{p.chunk_id}]")
        print("    " + p.text.replace("\n", "\n    ")[:600])
    return 0


def cmd_prompt(args) -> int:
    from lab.generation.prompt import arena_prompt
    from lab.rag import open_index

    ws, cache = _context()
    gen = GenConfig(top_k=args.top_k, focus_sentences=args.focus_sentences, context_chars=args.context_chars)
    passages, prompt = arena_prompt(open_index(ws, args.name, cache), args.question, gen, cache.tokenizer(args.model))
    if args.json:
        print(json.dumps({"passages": [p.__dict__ for p in passages], "prompt": prompt}, indent=2, ensure_ascii=False))
        return 0
    for rank, p in enumerate(passages, start=1):
        print(f"#{rank}  {p.score:.3f}  {p.source}  [{p.chunk_id}]")
    print(f"\n--- the prompt rag:{args.name} sends ({args.model}'s chat template) ---")
    print(prompt)
    return 0


def cmd_eval(args) -> int:
    from lab.rag import open_index
    from lab.rag.evaluate import compare_modes, load_questions

    ws, cache = _context()
    rows = compare_modes(open_index(ws, args.name, cache), load_questions(args.qa), args.k)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['mode']:<7} hit_rate@{r['k']}={r['hit_rate']:.3f}  MRR={r['mrr']:.3f}  (n={r['n']})")
    return 0


def cmd_sweep(args) -> int:
    from lab.rag import open_index
    from lab.rag.embed import load_embedder
    from lab.rag.evaluate import chunk_size_sweep, load_questions

    ws, cache = _context()
    base = open_index(ws, args.name, cache).config
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise LabError(f"--sizes {args.sizes!r}: use whole numbers separated by commas, e.g. 128,256") from exc
    embedder = load_embedder(cache, base.embed_model)
    rows = chunk_size_sweep(ws, base, load_questions(args.qa), sizes, embedder, args.k, _progress)
    print(file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"chunk_size={r['chunk_size']:<5} chunks={r['chunks']:<5} {r['mode']:<7} "
            f"hit_rate@{args.k}={r['hit_rate']:.3f}  MRR={r['mrr']:.3f}"
        )
    return 0


def cmd_list(args) -> int:
    from lab.rag import index_info, list_indexes
    from lab.workspace import Workspace

    ws = Workspace.from_env()
    for name in list_indexes(ws):
        s = index_info(ws, name)["stats"]
        print(f"{name}\t{s['documents']} documents\t{s['chunks']} chunks\t{s['dims']}-d\t{s['store']}")
    return 0


def cmd_delete(args) -> int:
    from lab.rag import delete_index
    from lab.workspace import Workspace

    delete_index(Workspace.from_env(), args.name)
    print(f"deleted index {args.name}")
    return 0
