"""Everything about a run that can be known before it starts, without loading a model.

Owns: presets, LoRA target-module detection from the model's own weight names (read from safetensors
headers, no torch), memory and time estimates, and the exact commands that reproduce a run (`python -m lab
train ...`, `accelerate launch ...`). Must not import torch or start processes.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from lab.config import TrainConfig

TARGET_PRESETS = ("attention", "mlp", "all-linear")
_ATTN = re.compile(r"(attn|attention)", re.I)
_MLP = re.compile(r"(mlp|feed_forward|ffn)", re.I)
_NOT_LORA = re.compile(r"(embed|lm_head|wte|wpe|norm)", re.I)

PRESETS: dict[str, dict] = {
    "quick CPU demo": dict(
        rank=16, alpha=32, target_modules="all-linear", learning_rate=1e-3, scheduler="cosine", warmup_ratio=0.05,
        epochs=2.0, max_steps=0, batch_size=8, max_length=256, assistant_only_loss=True, eval_steps=20,
    ),
    "quick CPU demo (RAG)": dict(
        rank=16, alpha=32, target_modules="all-linear", learning_rate=1e-3, scheduler="cosine", warmup_ratio=0.05,
        epochs=2.0, max_steps=0, batch_size=8, max_length=512, assistant_only_loss=True, eval_steps=20,
        rag_index="sample", distractor_share=0.3,
    ),
    "TRL guide (QLoRA, r256)": dict(
        method="qlora", rank=256, alpha=128, dropout=0.05, target_modules="all-linear", learning_rate=2e-4,
        scheduler="constant_with_warmup", warmup_ratio=0.03, epochs=3.0, max_steps=0,
    ),
    "Phi-3 cookbook QLoRA (r16)": dict(
        method="qlora", rank=16, alpha=16, target_modules="all-linear", scheduler="cosine", warmup_ratio=0.2,
        max_length=512,
    ),
    "Phi-2 blog (r32, lr 2e-5)": dict(
        rank=32, alpha=32, learning_rate=2e-5, scheduler="constant", assistant_only_loss=True,
    ),
}  # fmt: skip


def apply_preset(config: TrainConfig, preset: str) -> TrainConfig:
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is unknown; use one of {', '.join(PRESETS)}")
    return config.replace(**PRESETS[preset])


def _safetensors_header(path: Path) -> dict:
    with path.open("rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return header


def weight_shapes(model_dir: str | Path) -> dict[str, list[int]]:
    """{weight name: shape} of every tensor in a local safetensors model folder (headers only)."""
    folder = Path(model_dir)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError(f"no .safetensors files in {str(folder)!r}: cannot list the model's modules")
    shapes: dict[str, list[int]] = {}
    for file in files:
        shapes.update({k: v["shape"] for k, v in _safetensors_header(file).items()})
    return shapes


def linear_modules(shapes: dict[str, list[int]]) -> dict[str, tuple[int, int]]:
    """{module path: (in, out)} of the linear layers LoRA can target (2-D weights, not embeddings/heads)."""
    out = {}
    for name, shape in shapes.items():
        if name.endswith(".weight") and len(shape) == 2 and not _NOT_LORA.search(name):
            out[name[: -len(".weight")]] = (shape[1], shape[0])
    return out


def target_names(modules: dict[str, tuple[int, int]], choice: str) -> list[str]:
    """Leaf module names (e.g. q_proj) for a preset or a comma-separated list; errors name unknown ones."""
    leaves = sorted({m.rsplit(".", 1)[-1] for m in modules})
    if choice == "all-linear":
        return leaves
    if choice in ("attention", "mlp"):
        pattern = _ATTN if choice == "attention" else _MLP
        picked = sorted({m.rsplit(".", 1)[-1] for m in modules if pattern.search(m)})
        if not picked:
            raise ValueError(f"target_modules={choice!r}: this model has no {choice} layers; pick from {leaves}")
        return picked
    wanted = [w.strip() for w in choice.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in leaves]
    if not wanted or unknown:
        raise ValueError(f"target_modules={choice!r}: unknown module(s) {unknown or choice!r}; the model has {leaves}")
    return wanted


def model_limits(model_dir: str | Path) -> dict:
    cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    return {
        "max_positions": int(cfg.get("max_position_embeddings") or 0),
        "hidden": int(cfg.get("hidden_size") or 0),
        "layers": int(cfg.get("num_hidden_layers") or 0),
        "vocab": int(cfg.get("vocab_size") or 0),
    }


def estimate(config: TrainConfig, model_dir: str | Path, n_examples: int, mean_tokens: float) -> dict:
    """Rough memory (MB) and time (s) before a run; the run card puts the measured peak beside it."""
    shapes = weight_shapes(model_dir)
    lim = model_limits(model_dir)
    total = sum(_numel(s) for s in shapes.values())
    mods = linear_modules(shapes)
    targets = set(target_names(mods, config.target_modules))
    lora = sum(config.rank * (i + o) for m, (i, o) in mods.items() if m.rsplit(".", 1)[-1] in targets)
    weight_bytes = 0.56 if config.method == "qlora" else 4.0  # NF4 + double-quant scales vs float32
    tokens = config.batch_size * min(config.max_length, max(mean_tokens, 1.0))
    act = tokens * lim["hidden"] * lim["layers"] * 24 + tokens * lim["vocab"] * 8 * 0.3
    mb = {
        "weights": total * weight_bytes / 2**20,
        "lora": lora * 4 / 2**20,
        "optimizer_and_grads": lora * 12 / 2**20,
        "activations": act / 2**20,
    }
    mb["total"] = sum(mb.values()) + 400  # runtime overhead (torch, tokenizer, buffers)
    steps = planned_steps(config, n_examples)
    tokens_total = steps * config.batch_size * config.grad_accum * max(mean_tokens, 1.0)
    cpu_tok_s = 2.0e10 / (6 * total) * (0.6 if config.method == "qlora" else 1.0)
    return {"memory_mb": mb, "lora_params": lora, "base_params": total, "steps": steps,
            "time_s_cpu": tokens_total / max(cpu_tok_s, 1e-9)}  # fmt: skip


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def planned_steps(config: TrainConfig, n_examples: int) -> int:
    if config.max_steps > 0:
        return config.max_steps
    per_epoch = max(1, -(-n_examples // (config.batch_size * config.grad_accum)))
    return max(1, int(round(per_epoch * config.epochs)))


def cli_command(config: TrainConfig) -> list[str]:
    """`python -m lab train ...` with every setting that differs from the defaults."""
    cmd = ["python", "-m", "lab", "train", "--data", config.dataset, "--method", config.method]
    defaults = TrainConfig().to_dict()
    for key, value in config.to_dict().items():
        if key in ("dataset", "method") or value == defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            cmd.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            cmd += [flag, str(value)]
    return cmd


def accelerate_command(run_dir: str | Path, num_processes: int, mixed_precision: str = "bf16") -> list[str]:
    """The multi-GPU launch of the same training module (data parallel, one process per GPU)."""
    if num_processes < 1:
        raise ValueError(f"num_processes={num_processes}: must be at least 1")
    cmd = ["accelerate", "launch", "--num_processes", str(num_processes)]
    if num_processes > 1:
        cmd.append("--multi_gpu")
    cmd += ["--mixed_precision", mixed_precision, "-m", "lab.training", str(run_dir)]
    return cmd
