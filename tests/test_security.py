"""Access: the launched app serves only the downloads folder (never lab.db, datasets or system files), LAB_AUTH
requires a login, binding beyond localhost warns without one, models load from safetensors without remote code,
secrets never reach a run's artefacts, and names / uploads cannot escape their folders."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from lab import db, jobs
from lab.arena import evaluation
from lab.workspace import Workspace, WorkspaceError

SECRETS = {
    "HF_TOKEN": "hf_FAKEsecret0123456789abcdef",
    "QDRANT_API_KEY": "qdrant-FAKE-key-9f8e7d6c5b4a",
    "WANDB_API_KEY": "wandb0FAKE0key0000000000000000000000000000",
}


def fetch(url: str, path: str | Path) -> tuple[int, bytes]:
    """GET /gradio_api/file=PATH; returns (status, body)."""
    quoted = urllib.parse.quote(str(path))
    try:
        with urllib.request.urlopen(f"{url}/gradio_api/file={quoted}", timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def chat_line(question: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})


def tiny_result() -> dict:
    row = {"id": "q1", "system": "base", "question": "q?", "answer": "a", "prediction": "a", "passages": []}
    return {"status": "finished", "systems": [{"system": "base", "correct_rate": 1.0}], "questions": [row]}


def test_launched_app_refuses_private_files_and_serves_an_export(app_url, app_home):
    ws = Workspace.open(app_home)
    db.init(ws.db_path)
    dataset_file = ws.dir("datasets", "sample") / "train.jsonl"
    assert dataset_file.is_file()
    eval_id = evaluation.save_evaluation(ws, tiny_result(), "set.jsonl")
    private = [
        ws.db_path,
        dataset_file,
        ws.dir("evals", eval_id) / "results.json",
        next(ws.dir("corpora", "sample").iterdir()),
        Path("/etc/passwd"),
        ws.downloads / ".." / "lab.db",
    ]
    refused = {str(p): fetch(app_url, p)[0] for p in private}
    assert set(refused.values()) == {403}, refused
    exports = evaluation.export_paths_for(evaluation.load_evaluation(ws, eval_id))
    assert {p.name for p in exports} == {"results.json", "questions.csv", "summary.csv"}
    assert all(p.is_relative_to(ws.downloads) for p in exports)
    status, body = fetch(app_url, next(p for p in exports if p.name == "results.json"))
    assert status == 200 and json.loads(body)["id"] == eval_id


def test_exports_are_copies_and_a_new_export_replaces_the_old(ws):
    eval_id = evaluation.save_evaluation(ws, tiny_result(), "set.jsonl")
    first = evaluation.export_paths_for(evaluation.load_evaluation(ws, eval_id))
    first[0].write_text("tampered")
    again = evaluation.export_paths_for(evaluation.load_evaluation(ws, eval_id))
    assert again == first and json.loads(again[0].read_text())["id"] == eval_id
    assert json.loads((ws.dir("evals", eval_id) / "results.json").read_text())["id"] == eval_id
    assert evaluation.export_paths_for({"status": "finished"}) == []


def _tiny_app():
    import gradio as gr

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(lambda s: s.upper(), box, box, api_name="shout")
    return demo


def test_lab_auth_refuses_without_and_admits_with_credentials(tmp_path, monkeypatch):
    from gradio_client import Client

    from lab.ui.app import launch

    users = tmp_path / "users.txt"
    users.write_text("# class accounts\nada:s3cret-pw\nbob:other:with-colon\n")
    monkeypatch.setenv("LAB_AUTH", str(users))
    demo = _tiny_app()
    launch(demo, Workspace.open(tmp_path / "home"), server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        url = demo.local_url.rstrip("/")
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a plain ValueError / HTTP error
            Client(url, verbose=False)
        with pytest.raises(Exception):  # noqa: B017
            Client(url, auth=("ada", "wrong"), verbose=False)
        assert Client(url, auth=("ada", "s3cret-pw"), verbose=False).predict("hi", api_name="/shout") == "HI"
        assert Client(url, auth=("bob", "other:with-colon"), verbose=False).predict("x", api_name="/shout") == "X"
        status, _ = fetch(url, "/etc/passwd")
        assert status in (401, 403)
    finally:
        demo.close()


def test_read_auth_parses_and_never_echoes_a_password(tmp_path):
    from lab.ui.app import read_auth

    assert read_auth("") == [] and read_auth("ada:pw") == [("ada", "pw")]
    bad = tmp_path / "bad.txt"
    bad.write_text("ada:pw\nhunter2-no-colon\n")
    with pytest.raises(ValueError, match="bad.txt line 2") as err:
        read_auth(str(bad))
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError) as err:
        read_auth(":onlypassword")
    assert "onlypassword" not in str(err.value)


class FakeBlocks:
    """Stands in for gr.Blocks to see what `launch` asks Gradio for, without binding a port."""

    def queue(self, **kwargs):
        self.queued = kwargs

    def launch(self, **kwargs):
        self.kwargs = kwargs
        return kwargs


def test_launch_binds_localhost_by_default_and_warns_beyond_it_without_login(tmp_path, monkeypatch):
    import warnings

    from lab.ui.app import launch

    ws = Workspace.open(tmp_path / "home")
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("LAB_AUTH", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kwargs = launch(FakeBlocks(), ws)
    assert kwargs["server_name"] == "127.0.0.1" and kwargs["auth"] is None
    assert kwargs["allowed_paths"] == [str(ws.downloads)]
    assert {str(ws.db_path), str(ws.root / "datasets"), str(ws.root / "runs")} <= set(kwargs["blocked_paths"])
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    with pytest.warns(UserWarning, match="without a login"):
        assert launch(FakeBlocks(), ws)["server_name"] == "0.0.0.0"
    monkeypatch.setenv("LAB_AUTH", "ada:pw")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert launch(FakeBlocks(), ws, server_name="0.0.0.0")["auth"] == [("ada", "pw")]


def test_remote_code_is_off_unless_asked_and_pickled_weights_are_refused(tmp_path, monkeypatch, caplog):
    from lab.models import ModelError, load_causal_lm, trust_remote_code

    monkeypatch.delenv("LAB_TRUST_REMOTE_CODE", raising=False)
    assert trust_remote_code() is False
    monkeypatch.setenv("LAB_TRUST_REMOTE_CODE", "1")
    with caplog.at_level(logging.WARNING, logger="lab.models"):
        assert trust_remote_code() is True
    assert "run their own Python code" in caplog.text
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelError, match=r"no \.safetensors weights \(found pytorch_model\.bin\)"):
        load_causal_lm(str(folder))


@pytest.mark.integration
def test_secrets_never_reach_a_runs_artefacts_or_its_view(ws, tmp_path, monkeypatch):
    from lab.config import TrainConfig
    from lab.ui import train_tab

    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    rows = [{"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "a."}]}] * 8
    data = tmp_path / "facts.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = TrainConfig(name="secret-check", dataset=str(data), batch_size=2, max_length=64, max_steps=2,
                         logging_steps=1, save_steps=1, warmup_ratio=0.0)  # fmt: skip
    run_id = jobs.start(ws, config)
    assert jobs.wait(ws, run_id, timeout=600)["state"] == "finished"
    view = repr(train_tab._on_refresh(ws, run_id))
    files = [p for p in ws.root.rglob("*") if p.is_file() and "models" not in p.relative_to(ws.root).parts]
    assert any(p.name == "README.md" for p in files) and any(p.name == "train.log" for p in files)
    assert ws.db_path in files and len(files) > 10
    for value in SECRETS.values():
        assert value not in view
        leaked = [str(p) for p in files if value.encode() in p.read_bytes()]
        assert not leaked, f"secret found in {leaked}"


def test_names_that_become_folders_are_validated_everywhere(ws, tmp_path):
    from lab.config import RagConfig, TrainConfig
    from lab.corpus import save_corpus
    from lab.data import save_dataset
    from lab.rag import build_index

    doc = tmp_path / "a.md"
    doc.write_text("# A\nsome text\n")
    data = tmp_path / "d.jsonl"
    data.write_text(chat_line("q", "a"))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "home" not in p.parts)
    for bad in ("../escape", "a/b", "..", ".hidden", "", "x" * 65, "nul\x00", "sp ace"):
        with pytest.raises(ValueError):
            save_dataset(ws, bad, data)
        with pytest.raises(ValueError):
            save_corpus(ws, bad, [doc])
        with pytest.raises(ValueError):
            build_index(ws, RagConfig(name=bad, corpus=str(tmp_path)), None)
        if bad:  # an empty run name means "name it by the clock"
            with pytest.raises(ValueError):
                jobs.start(ws, TrainConfig(name=bad, dataset=str(data)))
        if bad:  # an empty evaluation id means "make one up"
            with pytest.raises(ValueError):
                evaluation.save_evaluation(ws, tiny_result(), "x", eval_id=bad)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "home" not in p.parts) == before
    assert all(ws.list(kind) == [] for kind in ("datasets", "corpora", "runs", "indexes", "evals"))


def test_uploads_keep_their_folder_and_do_not_overwrite(ws, tmp_path, monkeypatch):
    from lab import corpus
    from lab.corpus import CorpusError, save_corpus

    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.md").write_text(f"# {sub}\ntext of {sub}\n")
    report = save_corpus(ws, "docs", [tmp_path / "one" / "same.md", tmp_path / "two" / ".." / "two" / "same.md"])
    assert sorted(report.saved) == ["same-2.md", "same.md"]
    assert sorted(p.name for p in ws.dir("corpora", "docs").iterdir()) == ["same-2.md", "same.md"]
    with pytest.raises(WorkspaceError, match="already exists"):
        save_corpus(ws, "docs", [tmp_path / "one" / "same.md"])
    monkeypatch.setattr(corpus, "MAX_FILES", 1)
    with pytest.raises(CorpusError, match="over the limit of 1"):
        save_corpus(ws, "many", [tmp_path / "one" / "same.md", tmp_path / "two" / "same.md"])
    monkeypatch.setattr(corpus, "MAX_TOTAL_MB", 1e-6)
    with pytest.raises(CorpusError, match="MB limit per corpus"):
        save_corpus(ws, "big", [tmp_path / "one" / "same.md"])
    assert ws.list("corpora") == ["docs"]
    data = tmp_path / "d.jsonl"
    data.write_text(chat_line("q", "a"))
    from lab.data import save_dataset

    save_dataset(ws, "mine", data)
    kept = (ws.dir("datasets", "mine") / "train.jsonl").read_bytes()
    data.write_text(chat_line("x", "y"))
    with pytest.raises(WorkspaceError, match="already exists"):
        save_dataset(ws, "mine", data)
    assert (ws.dir("datasets", "mine") / "train.jsonl").read_bytes() == kept
