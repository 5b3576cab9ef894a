"""`python -m lab data ...`: validate a fine-tuning file, import it as a named dataset, save documents as a
corpus, list what the workspace holds. The CLI twin of the Data tab; all the work is in lab.data / lab.corpus.

  data validate PATH_OR_ID [--format auto|chat|alpaca|sharegpt|csv] [--split S] [--fill K=V] [--json]
                                                                       exit 0 valid, 1 not valid
                           (with a tokenizer it also names the system prompt --model's chat template adds)
  data import PATH_OR_ID --name NAME [--split S] [--fill K=V] [--val-fraction F] [--seed S] [--overwrite]

PATH_OR_ID is a file, a folder written by `datasets` (save_to_disk, or parquet / jsonl shards) or a hub dataset id.
  data corpus FILE... --name NAME [--overwrite] [--max-mb MB]
  data list
"""

from __future__ import annotations

import argparse
import json
import sys

from lab.config import DataConfig, field_help

MAX_SHOWN = 50


def _help(name: str) -> str:
    return f"{field_help(DataConfig, name)}; default {getattr(DataConfig, name)!r}".replace("%", "%%")


def register(sub) -> None:
    data = sub.add_parser("data", help="validate, import and list fine-tuning datasets and document corpora")
    cmds = data.add_subparsers(dest="data_command", required=True)
    val = cmds.add_parser("validate", help="check every line of a fine-tuning file (exit 0 valid, 1 not)")
    val.add_argument("path", help="the fine-tuning file (JSONL, JSON, CSV, TSV or Parquet)")
    _common(val)
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    val.add_argument("--no-tokens", action="store_true", help="skip token statistics (no model needed)")
    val.set_defaults(func=cmd_validate)
    imp = cmds.add_parser("import", help="validate, split and save a file as a named dataset")
    imp.add_argument("path", help="the fine-tuning file to save")
    imp.add_argument("--name", required=True, help="the dataset's name")
    _common(imp)
    imp.add_argument("--val-fraction", type=float, default=DataConfig.val_fraction, help=_help("val_fraction"))
    imp.add_argument("--seed", type=int, default=DataConfig.seed, help=_help("seed"))
    imp.add_argument("--overwrite", action="store_true", help="replace a saved dataset of the same name")
    imp.set_defaults(func=cmd_import)
    cor = cmds.add_parser("corpus", help="save documents (md, txt, pdf, html) as a named corpus for RAG")
    cor.add_argument("paths", nargs="+", help="documents (md, txt, pdf, html)")
    cor.add_argument("--name", required=True, help="the corpus's name")
    cor.add_argument("--overwrite", action="store_true", help="replace a saved corpus of the same name")
    cor.add_argument("--max-mb", type=float, default=None, help="per-document size limit (default 50 MB)")
    cor.set_defaults(func=cmd_corpus)
    cmds.add_parser("list", help="list saved datasets and corpora").set_defaults(func=cmd_list)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="auto", choices=DataConfig.FORMATS, help=_help("format"))
    parser.add_argument("--question-column", default="", help=_help("question_column"))
    parser.add_argument("--answer-column", default="", help=_help("answer_column"))
    parser.add_argument("--system-column", default="", help=_help("system_column"))
    parser.add_argument("--model", default="embedded", help="whose tokenizer counts tokens (default embedded)")
    parser.add_argument("--max-length", type=int, default=DataConfig.max_length, help=_help("max_length"))
    parser.add_argument("--max-upload-mb", type=float, default=DataConfig.max_upload_mb, help=_help("max_upload_mb"))
    parser.add_argument("--split", default=DataConfig.split, help=_help("split"))
    parser.add_argument(
        "--fill",
        action="append",
        default=[],
        type=_fill_item,
        metavar="NAME=VALUE",
        help="fill a {{NAME}} placeholder in every record before checking (repeatable)",
    )


def _fill_item(text: str) -> dict[str, str]:
    from lab.data.placeholders import parse_fill

    try:
        return parse_fill([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _config(args, **extra) -> DataConfig:
    return DataConfig(
        format=args.format,
        question_column=args.question_column,
        answer_column=args.answer_column,
        system_column=args.system_column,
        max_length=args.max_length,
        max_upload_mb=args.max_upload_mb,
        split=args.split,
        fill={k: v for item in args.fill for k, v in item.items()},
        **extra,
    )


def _workspace():
    from lab.workspace import Workspace

    return Workspace.from_env()


def _tokenizer(ws, model: str):
    from lab.cache import ModelCache

    return ModelCache(ws.model_cache).tokenizer(model)


def cmd_validate(args) -> int:
    from lab.data import validate_file

    cfg = _config(args)
    tokenizer = None if args.no_tokens else _tokenizer(_workspace(), args.model)
    report = validate_file(args.path, cfg, tokenizer)
    added = _default_system(report, tokenizer)
    if args.json:
        out = report.to_dict() | ({"template_default_system": added} if added else {})
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(report_text(report, added, args.model))
    return 0 if report.valid else 1


def _default_system(report, tokenizer) -> str:
    """The system prompt the model's chat template adds to the examples that bring none ("" without a tokenizer)."""
    from lab.data.stats import examples_default_system

    return examples_default_system(report.examples, tokenizer) if tokenizer is not None else ""


def report_text(report, default_system: str = "", model: str = "") -> str:
    """A human-readable report: verdict, errors (first 50), warnings, statistics, and a note naming the system
    prompt the chat template adds by itself (`default_system`, found with `model`'s tokenizer)."""
    verdict = "VALID" if report.valid else "NOT VALID"
    lines = [
        f"{report.source}: {verdict} ({report.format or '?'} format, {report.records} records, "
        f"{len(report.examples)} usable examples, {len(report.errors)} errors)"
    ]
    for err in report.errors[:MAX_SHOWN]:
        lines.append(f"  error   line {err.line if err.line else '-'}: [{err.kind}] {err.message}")
    if len(report.errors) > MAX_SHOWN:
        lines.append(f"  ... {len(report.errors) - MAX_SHOWN} more errors (use --json for all)")
    lines += [f"  warning [{w.kind}] {w.message}" for w in report.warnings]
    for key, value in report.stats.items():
        shown = ", ".join(f"{k} {v:g}" for k, v in value.items()) if isinstance(value, dict) else value
        lines.append(f"  {key}: {shown}")
    if default_system:
        shown = default_system if len(default_system) <= 200 else default_system[:200] + "..."
        lines.append(
            f"  note    {model or 'the model'}'s chat template adds this system prompt to examples without one "
            f"(they train with it; add your own system message to replace it): {shown!r}"
        )
    return "\n".join(lines)


def cmd_import(args) -> int:
    from lab.data import DataError, save_dataset

    ws = _workspace()
    cfg = _config(args, val_fraction=args.val_fraction, seed=args.seed)
    tokenizer = _tokenizer(ws, args.model)
    try:
        meta = save_dataset(ws, args.name, args.path, cfg, overwrite=args.overwrite, tokenizer=tokenizer)
    except DataError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    counts = meta["counts"]
    print(
        f"saved dataset {args.name!r}: {counts['train']} train / {counts['val']} val examples "
        f"({meta['format']} format, seed {meta['seed']}, data hash {meta['data_hash'][:12]})"
    )
    return 0


def cmd_corpus(args) -> int:
    from lab.corpus import CorpusError, save_corpus

    try:
        limit = {"max_mb": args.max_mb} if args.max_mb else {}
        report = save_corpus(_workspace(), args.name, args.paths, overwrite=args.overwrite, **limit)
    except CorpusError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"saved corpus {args.name!r}: {len(report.saved)} documents, {report.chars} characters")
    for _name, why in report.skipped:
        print(f"  skipped {why}", file=sys.stderr)
    for name, same in report.duplicates:
        print(f"  skipped {name}: same content as {same}", file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    from lab.corpus import corpus_files, list_corpora
    from lab.data import list_datasets

    ws = _workspace()
    print("datasets:")
    for meta in list_datasets(ws):
        if "error" in meta:
            print(f"  {meta['name']:24s} unreadable: {meta['error']}")
            continue
        c = meta["counts"]
        print(
            f"  {meta['name']:24s} {c['train']:6d} train {c['val']:5d} val  {meta['format']:8s} "
            f"from {meta['source']}  {meta['created']}"
        )
    print("corpora:")
    for name in list_corpora(ws):
        print(f"  {name:24s} {len(corpus_files(ws, name)):6d} documents")
    return 0
