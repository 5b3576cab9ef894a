"""Everything about a run that can be known before it starts, without loading a model.

Owns: presets, LoRA target-module detection from the model's own weight names (read from safetensors
headers, no torch), memory and time estimates, and the exact commands that reproduce a run (`python -m lab
train ...`, `accelerate launch ...`). The memory estimate models the training process's resident memory on a CPU
(libraries, float32 weights, bf16 autocast copies, LoRA + optimiser, the logits of trained positions, activations of
the longest batch), with coefficients measured on this stack; on a CUDA machine it is lab.catalog's GPU formula (CUDA
memory allocated, what the run reports as its peak there). The time estimate uses this machine's measured
throughput when the caller passes it (lab.training.speed: finished runs, a calibration, a CPU speed probe); the
model-size formula is only the last resort. The result is a `TrainPlan`. Nothing here imports torch at module level.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lab.catalog import cpu_has_bf16
from lab.config import TrainConfig
from lab.errors import LabError
from lab.workspace import SAMPLE

# Measured on this stack (torch 2 + transformers 5 + peft + trl + datasets, CPU): resident memory of a training
# process before the model is loaded, and the activation bytes kept per token and layer for backward, per unit of
# (hidden + intermediate/4) width (SmolLM2-135M, bf16 autocast: 2.59 MB per token over 30 layers; float32 similar).
LIBRARIES_MB = 520.0
ACT_BYTES_PER_WIDTH = 92.0
LOGIT_BYTES = 14  # per trained position and vocabulary entry: bf16 logits, float32 copy, its gradient, softmax
# The time estimate's last resort, in FLOP/s of useful training work (6 x parameters per token): a CPU core pair
# reaches about 2e10. A GPU reaches a fraction of its dense bf16 peak on LoRA steps of small models (kernel launches
# and the frozen base's full forward and backward dominate): GPU_EFFICIENCY of it. ZeroGPU attaches a slice of an
# NVIDIA H200 today (`spaces` reports "NVIDIA H200 MIG 3g.71gb": 3 of the card's 7 compute slices, of about 990
# TFLOP/s dense bf16); a dedicated CUDA card is costed like an A10G-class card (about 125 TFLOP/s).
CPU_FLOPS = 2.0e10
GPU_EFFICIENCY = 0.05
ZEROGPU_PEAK_FLOPS = 990e12 * 3 / 7
CUDA_PEAK_FLOPS = 125e12
QLORA_SLOWDOWN = 0.6  # de-quantising the NF4 weights on every step

TARGET_PRESETS = ("attention", "mlp", "all-linear")
_ATTN = re.compile(r"(attn|attention)", re.I)
_MLP = re.compile(r"(mlp|feed_forward|ffn)", re.I)
_NOT_LORA = re.compile(r"(embed|lm_head|wte|wpe|norm)", re.I)

PRESETS: dict[str, dict] = {
    "quick CPU demo": dict(
        rank=16, alpha=32, target_modules="all-linear", learning_rate=1e-3, scheduler="cosine", warmup_ratio=0.05,
        epochs=2.0, max_steps=0, batch_size=8, max_length=256, assistant_only_loss=True, eval_steps=20,
    ),
    "quick CPU demo (RAG)": dict(  # each setting compared with others: docs/experiments/
        rank=16, alpha=32, target_modules="all-linear", learning_rate=1e-3, scheduler="cosine_with_restarts",
        warmup_ratio=0.05, epochs=2.0, max_steps=0, batch_size=2, grad_accum=4, max_length=384,
        assistant_only_loss=True, eval_steps=24, rag_index=SAMPLE, distractor_share=0.3, near_miss_share=0.3,
        decision_weight=5.0,
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
        raise LabError(f"preset {preset!r} is unknown; use one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    if config.rag_index and "rag_index" in values:  # an index already chosen stays chosen
        values.pop("rag_index")
    return config.replace(**values)


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
        raise LabError(f"no .safetensors files in {str(folder)!r}: cannot list the model's modules")
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
            raise LabError(f"target_modules={choice!r}: this model has no {choice} layers; pick from {leaves}")
        return picked
    wanted = [w.strip() for w in choice.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in leaves]
    if not wanted or unknown:
        raise LabError(f"target_modules={choice!r}: unknown module(s) {unknown or choice!r}; the model has {leaves}")
    return wanted


def model_limits(model_dir: str | Path) -> dict:
    cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    cfg = {**cfg, **(cfg.get("text_config") or {})}  # multimodal configs nest the language model's settings
    hidden = int(cfg.get("hidden_size") or cfg.get("n_embd") or 0)
    return {
        "max_positions": int(cfg.get("max_position_embeddings") or 0),
        "hidden": hidden,
        "intermediate": int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden),
        "layers": int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 0),
        "vocab": int(cfg.get("vocab_size") or 0),
    }


@dataclass(frozen=True)
class TrainPlan(Mapping):
    """What is known about a training run before it starts (lab.jobs.check): its data (`n_train`, `n_val`), the
    model (`model_dir`, `base_params`, `lora_params`), `steps`, peak memory by part (`memory_mb`, MB, with its
    "total"), the time (`time_s` and where it comes from, `time_source`; `time_range`, `time_lo_s`, `time_hi_s`
    and `load_note` under the load when it was checked), the device it trains on, and `warnings` for the user.
    `to_dict()` is its JSON form (saved with the run as its estimate); it also reads like that dict
    (`plan["steps"]`), for hooks and saved statuses that predate it."""

    memory_mb: dict[str, float] = field(default_factory=dict)
    lora_params: int = 0
    base_params: int = 0
    steps: int = 0
    tokens_total: float = 0.0
    mean_tokens: float = 0.0
    time_s: float = 0.0
    time_source: str = ""
    time_s_cpu: float = 0.0
    device: str = "cpu"
    n_train: int = 0
    n_val: int = 0
    model_dir: str = ""
    time_range: str = ""
    time_lo_s: float = 0.0
    time_hi_s: float = 0.0
    load_note: str = ""
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrainPlan:
        """A plan from its JSON form (a run's saved estimate); keys it does not know are left out."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        return cls(**{**values, "warnings": tuple(values.get("warnings") or ())})

    @property
    def memory_total_mb(self) -> float:
        return float(self.memory_mb.get("total") or 0.0)

    @property
    def measured(self) -> bool:
        """Whether the time comes from this machine's measured speed rather than the model-size guess."""
        return bool(self.time_source) and not self.time_source.startswith("rough guess")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field (`warnings` only when there are some)."""
        out = asdict(self)
        if not self.warnings:
            out.pop("warnings")
        else:
            out["warnings"] = list(self.warnings)
        return out

    def __getitem__(self, key: str) -> Any:
        try:
            return self.to_dict()[key]
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


def estimate(
    config: TrainConfig,
    model_dir: str | Path,
    n_examples: int,
    mean_tokens: float,
    max_tokens: float | None = None,
    tokens_per_s: float | None = None,
    time_source: str = "",
    gpu: bool | None = None,
    device: str | None = None,
) -> TrainPlan:
    """Memory (MB: CUDA memory allocated on a GPU machine, with lab.catalog's GPU formula; resident memory of the
    training process on a CPU) and time (s) before a run. `gpu` defaults to whether this machine has CUDA.

    The peak comes from the longest batch: `max_tokens` (the longest example) when known, else `mean_tokens`
    (the callers' character-based guess runs about a third above the true chat-template token count, which
    covers the longest batch of typical chat data). The time uses `tokens_per_s` (this machine's measured
    throughput, see `measured_throughput`) when given, else a rough formula from the model size and the device
    the run trains on (`device`, default `rate_device()`: a ZeroGPU Space costs a GPU slot, not its CPU)."""
    shapes = weight_shapes(model_dir)
    lim = model_limits(model_dir)
    total = sum(numel(s) for s in shapes.values())
    mods = linear_modules(shapes)
    targets = set(target_names(mods, config.target_modules))
    lora = sum(config.rank * (i + o) for m, (i, o) in mods.items() if m.rsplit(".", 1)[-1] in targets)
    linear = sum(i * o for i, o in mods.values())
    mb = memory_mb(config, lim, total, linear, lora, max_tokens or mean_tokens, _on_cuda() if gpu is None else gpu)
    steps = planned_steps(config, n_examples)
    tokens_total = steps * config.batch_size * config.grad_accum * min(config.max_length, max(mean_tokens, 1.0))
    dev = device or rate_device()
    rough = fallback_rate(total, config.method, dev)
    time_s = tokens_total / max(tokens_per_s or rough, 1e-9)
    source = (
        time_source
        if tokens_per_s
        else f"rough guess from the model size {_ON[_kind(dev)]}: no run or calibration measured yet"
    )
    return TrainPlan(memory_mb=mb, lora_params=lora, base_params=total, steps=steps, tokens_total=tokens_total,
                     mean_tokens=mean_tokens, time_s=time_s, time_source=source, time_s_cpu=time_s, device=dev,
                     model_dir=str(model_dir), n_train=n_examples)  # fmt: skip


_ON = {"cpu": "on a CPU", "zerogpu": "on a ZeroGPU slot", "cuda": "on a GPU"}


def _kind(dev: str) -> str:
    return dev.split(":", 1)[0] if dev.split(":", 1)[0] in _ON else "cpu"


def rate_device(env=None) -> str:
    """What a run started now trains on, as training speeds are remembered: "zerogpu" on a ZeroGPU Space (its
    runs train inside a GPU slot), "cuda:<card name>" with a CUDA card, else "cpu"."""
    from lab.models import device, on_zero_gpu

    if on_zero_gpu(env):
        return "zerogpu"
    if device(env) == "cuda":
        import torch

        return f"cuda:{torch.cuda.get_device_name(0)}"
    return "cpu"


def fallback_rate(params: int, method: str, dev: str) -> float:
    """Tokens/s when nothing was measured on `dev`: the device's useful FLOP/s over 6 x parameters."""
    flops = {"zerogpu": ZEROGPU_PEAK_FLOPS * GPU_EFFICIENCY, "cuda": CUDA_PEAK_FLOPS * GPU_EFFICIENCY}
    rate = flops.get(_kind(dev), CPU_FLOPS) / (6 * max(params, 1))
    return rate * (QLORA_SLOWDOWN if method == "qlora" else 1.0)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM of /proc/self/status where there is one (Linux), which
    starts again at exec. getrusage's ru_maxrss would also count the resident memory of the process this one was
    started from (the app, with its models loaded), because Linux carries it over the exec."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bf16_autocast(config: TrainConfig) -> bool:
    """Whether the child will train under bf16 autocast on this CPU (mirrors engine.use_bf16 without torch)."""
    if config.bf16 != "auto":
        return config.bf16 == "on"
    return config.method == "lora" and cpu_has_bf16()


def _on_cuda() -> bool:
    """Whether a run started now trains on a GPU (a ZeroGPU Space's runs do, inside a slot)."""
    return rate_device() != "cpu"


def memory_mb(
    config: TrainConfig, lim: dict, params: int, linear: int, lora: int, longest: float, gpu: bool = False
) -> dict:
    """The parts of a training process's peak memory (MB), and their total: on a GPU, CUDA memory allocated
    (lab.catalog.gpu_training_mb); on a CPU, resident memory (the model below)."""
    tokens = config.batch_size * min(config.max_length, max(longest, 1.0))
    if gpu:
        from lab.catalog import gpu_training_mb

        return gpu_training_mb(config.method, lim, params, linear, lora, tokens, config.assistant_only_loss,
                               config.gradient_checkpointing)  # fmt: skip
    width = lim["hidden"] + lim.get("intermediate", 4 * lim["hidden"]) / 4
    trained = tokens * (0.3 if config.assistant_only_loss else 1.0)  # positions that carry a label
    weight_bytes = 4.0 if config.method == "lora" else 0.56  # float32, or NF4 + double-quant scales
    embed = params - linear  # embeddings, norms: kept at 16/32 bits under QLoRA
    mb = {
        "libraries": LIBRARIES_MB,
        "weights": (linear * weight_bytes + embed * 4.0) / 2**20,
        "bf16 copies": linear * 2 / 2**20 if bf16_autocast(config) else 0.0,
        "LoRA + optimiser": lora * 16 / 2**20,  # weight, gradient, two Adam moments (float32)
        "logits": trained * lim["vocab"] * LOGIT_BYTES / 2**20,
        "activations": tokens * lim["layers"] * width * ACT_BYTES_PER_WIDTH / 2**20,
    }
    if config.gradient_checkpointing:
        mb["activations"] /= max(lim["layers"], 1) ** 0.5
    mb["total"] = sum(mb.values())
    return mb


def numel(shape: list[int]) -> int:
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


def accelerate_command(run_dir: str | Path, num_processes: int, mixed_precision: str = "no") -> list[str]:
    """The multi-GPU launch of the same training module (data parallel, one process per GPU). Mixed precision is
    "no" by default: the training module picks bf16, fp16 with loss scaling, or float32 from each card itself
    (lab.catalog.precision), and accelerate's own setting would override that choice (bf16 on a T4)."""
    if num_processes < 1:
        raise LabError(f"num_processes={num_processes}: must be at least 1")
    cmd = ["accelerate", "launch", "--num_processes", str(num_processes)]
    if num_processes > 1:
        cmd.append("--multi_gpu")
    cmd += ["--mixed_precision", mixed_precision, "-m", "lab.training", str(run_dir)]
    return cmd
