"""Fuzz every parser of user input with hypothesis: training files, evaluation files, corpus documents (md, txt,
html, pdf bytes), contestant ids, names typed in the UI, config values, LAB_AUTH, CLI arguments. Each must either
accept the input or refuse it with the layer's own error (a message, never a traceback), and write nothing when
it refuses. Bounded: max_examples per test, no deadline (the machine is shared)."""

from __future__ import annotations

import contextlib
import io
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.arena import contestants
from lab.config import ConfigError, DataConfig, GenConfig, RagConfig, TrainConfig
from lab.corpus import CorpusError, html_to_text, read_document, save_corpus
from lab.data import DataError, save_dataset, validate_bytes
from lab.data.evalset import EvalSetError, parse_evalset
from lab.workspace import Workspace, WorkspaceError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "narrator", "", "USER"])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": texts | json_values}, optional={"extra": json_values}),
    max_size=4,
)
chat_lines = st.lists(st.fixed_dictionaries({"messages": messages}) | json_values, max_size=6).map(
    lambda rows: "\n".join(json.dumps(r) for r in rows)
)
noisy_text = chat_lines | texts | st.binary(max_size=400).map(lambda b: b.decode("latin-1"))


def _staging_left(ws: Workspace) -> list[str]:
    return [p.name for kind in ("datasets", "corpora") for p in (ws.root / kind).iterdir() if p.name.startswith(".")]


@FUZZ
@given(raw=st.one_of(st.binary(max_size=600), chat_lines.map(str.encode)), suffix=st.sampled_from(
    [".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt", ""]))  # fmt: skip
def test_training_file_bytes_give_a_report_never_an_exception(raw, suffix):
    report = validate_bytes(raw, f"upload{suffix}", DataConfig())
    assert isinstance(report.valid, bool)
    assert report.valid or report.errors  # a refusal always says why
    assert all(isinstance(e.message, str) and e.message for e in report.errors)
    json.dumps(report.to_dict(), default=str)


@SMALL
@given(body=chat_lines | texts)
def test_saving_a_training_file_writes_all_or_nothing(tmp_path_factory, body):
    ws = Workspace.open(tmp_path_factory.mktemp("fuzz-data") / "home")
    path = ws.root.parent / "upload.jsonl"
    path.write_text(body, encoding="utf-8")
    try:
        meta = save_dataset(ws, "fuzzed", path)
    except (DataError, WorkspaceError) as exc:
        assert str(exc)
        assert ws.list("datasets") == [] and _staging_left(ws) == []
        return
    assert ws.list("datasets") == ["fuzzed"] and meta["counts"]["train"] + meta["counts"]["val"] > 0


@FUZZ
@given(text=noisy_text)
def test_evaluation_files_parse_or_name_the_bad_lines(text):
    try:
        items = parse_evalset(text, "fuzz.jsonl")
    except EvalSetError as exc:
        assert "fuzz.jsonl" in str(exc) or "line" in str(exc) or "empty" in str(exc).lower(), str(exc)
        return
    assert items and all(it.question.strip() for it in items)


pdfish = st.binary(max_size=400).map(lambda b: b"%PDF-1.4\n" + b) | st.binary(max_size=200)
html_docs = st.lists(
    st.sampled_from(["<p>", "</p>", "<h2>", "</h2>", "<script>", "</script>", "<li>", "<td>", "&amp;", "&#xZZ;",
                     "<!--", "-->", "<", ">", "<br/>", "<style>x{}</style>", "<![CDATA[", "]]>"]) | texts,
    max_size=20,
).map("".join)  # fmt: skip


@FUZZ
@given(raw=st.one_of(st.binary(max_size=400), texts.map(str.encode), html_docs.map(str.encode), pdfish),
       suffix=st.sampled_from([".md", ".txt", ".html", ".htm", ".pdf", ".markdown", ".exe"]))  # fmt: skip
def test_corpus_documents_read_or_refuse_with_the_file_name(tmp_path_factory, raw, suffix):
    path = tmp_path_factory.mktemp("doc") / f"doc{suffix}"
    path.write_bytes(raw)
    try:
        text = read_document(path)
    except CorpusError as exc:
        assert str(exc).startswith(path.name), str(exc)
        return
    assert isinstance(text, str) and text.strip()


@FUZZ
@given(markup=html_docs)
def test_html_to_text_never_raises(markup):
    assert isinstance(html_to_text(markup), str)


@SMALL
@given(files=st.lists(st.tuples(st.sampled_from([".md", ".txt", ".pdf", ".html", ".bin"]), st.binary(max_size=120)),
                      min_size=1, max_size=4))  # fmt: skip
def test_a_corpus_upload_of_bad_documents_writes_nothing(tmp_path_factory, files):
    ws = Workspace.open(tmp_path_factory.mktemp("fuzz-corpus") / "home")
    paths = []
    for i, (suffix, raw) in enumerate(files):
        paths.append(ws.root.parent / f"f{i}{suffix}")
        paths[-1].write_bytes(raw)
    try:
        report = save_corpus(ws, "fuzzed", paths)
    except (CorpusError, WorkspaceError) as exc:
        assert "not saved" in str(exc)
        assert ws.list("corpora") == [] and _staging_left(ws) == []
        return
    saved = sorted(p.name for p in ws.dir("corpora", "fuzzed").iterdir())
    assert saved == sorted(report.saved) and len(saved) + len(report.skipped) + len(report.duplicates) == len(files)


parts = st.sampled_from(["ft", "rag", "ft+rag", "base", ":", "::", "run1", "../x", " ", "", "é", ";"])
ids = st.one_of(texts, st.lists(parts, max_size=5).map("".join))


@FUZZ
@given(spec=ids)
def test_contestant_ids_parse_or_are_refused_by_name(tmp_path_factory, spec):
    try:
        c = contestants.parse(spec)
    except contestants.ContestantError as exc:
        assert "not understood" in str(exc) or "contestant" in str(exc), str(exc)
        return
    assert c.kind in ("base", "ft", "rag", "ft+rag")
    if c.kind != "base":  # its run / index is looked up by name: refused in words, nothing loaded or created
        ws = Workspace.open(tmp_path_factory.mktemp("ids") / "home")
        with pytest.raises(ValueError) as err:
            contestants.responder(ws, None, c)
        assert str(err.value) and all(ws.list(kind) == [] for kind in ("runs", "indexes"))


@FUZZ
@given(name=texts | st.sampled_from(["..", ".", "a/../b", "/etc", "con", "a" * 64, "a" * 65, "x.", "-x", "ok_1.2"]))
def test_names_typed_in_the_ui_are_safe_folder_names_or_refused(tmp_path_factory, name):
    ws = Workspace.open(tmp_path_factory.mktemp("names"))
    try:
        folder = ws.dir("datasets", name)
    except WorkspaceError as exc:
        assert "is not usable" in str(exc)
        return
    assert folder.parent == ws.root / "datasets" and folder.name == name and not name.startswith(".")


@FUZZ
@given(values=st.dictionaries(st.sampled_from(["lora_r", "learning_rate", "epochs", "batch_size", "max_length",
                                               "method", "val_fraction", "max_steps", "name", "nonsense"]),
                              json_values, max_size=4))  # fmt: skip
def test_config_values_from_forms_and_files_are_validated(values):
    for cls in (TrainConfig, RagConfig, GenConfig):
        try:
            cls.from_dict({k: v for k, v in values.items() if k in cls.__dataclass_fields__ or k == "nonsense"})
        except (ConfigError, TypeError) as exc:  # TypeError only for a wrongly typed value rejected by dataclasses
            assert str(exc)


@FUZZ
@given(value=texts)
def test_lab_auth_values_parse_or_are_refused_without_echoing(value):
    from lab.ui.app import read_auth

    try:
        pairs = read_auth(value)
    except ValueError as exc:
        assert "LAB_AUTH" in str(exc)
        secret = value.strip().partition(":")[2]
        assert len(secret) < 4 or secret not in str(exc)
        return
    assert all(u and p for u, p in pairs)


def _run_cli(argv: list[str]) -> tuple[int, str]:
    from lab.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refuses with usage + exit 2
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


words = st.text(alphabet=string.ascii_letters + string.digits + "-_./:= ", max_size=12)
flags = st.sampled_from(["--name", "--json", "--limit", "-k", "--max-mb", "--no-tokens", "--format", "--seed", "--x"])


@SMALL
@given(cmd=st.sampled_from([["data", "validate"], ["data", "list"], ["index", "list"], ["index", "delete"],
                            ["runs"], ["leaderboard"], ["data", "corpus"], ["nonsense"], []]),
       extra=st.lists(flags | words, max_size=5))  # fmt: skip
def test_cli_arguments_never_end_in_a_traceback(tmp_path_factory, monkeypatch, cmd, extra):
    home = tmp_path_factory.mktemp("cli") / "home"
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.chdir(home.parent)
    if cmd[:2] == ["data", "validate"]:
        extra = [*extra, "--no-tokens"]
    code, err = _run_cli([*cmd, *extra])
    assert code in (0, 1, 2, 130), (code, err)
    assert "Traceback" not in err
    assert not (home / "corpora").exists() or not list((home / "corpora").iterdir()) or cmd == ["data", "corpus"]


@pytest.mark.parametrize(
    "argv",
    [
        # `data import` loads the tokenizer (converting the embedded model) before it reads the file
        pytest.param(["data", "import", "/nonexistent.jsonl", "--name", "../x"], marks=pytest.mark.integration),
        ["index", "query"],
    ],
)
def test_cli_examples_of_bad_arguments_give_one_line(tmp_path, monkeypatch, argv):
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    code, err = _run_cli(argv)
    assert code == 2 and "Traceback" not in err and err.strip()
