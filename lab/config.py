"""Settings as validated dataclasses: the single source of every setting.

The UI form, the CLI flags, a YAML file and the training subprocess all build the same object
(`TrainConfig.from_dict(...)`), and it is saved next to what it produced. Validation errors name the
offending field and value and say what to do. This module imports nothing heavy and knows no paths.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lab.errors import LabError

EMBEDDED = "embedded"


class ConfigError(LabError):
    """A setting has a value that cannot work; the message names the field, the value and the fix."""


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r}: {rule}")


@dataclass
class _Config:
    """Shared behaviour: dict/JSON/YAML round trip and validation on construction."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:  # overridden
        pass

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> _Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> _Config:
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> _Config:
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
        return cls.from_dict(values)


@dataclass
class DataConfig(_Config):
    """How an uploaded fine-tuning file is read, checked and split."""

    format: str = "auto"  # auto | chat | alpaca | sharegpt | csv
    question_column: str = ""  # csv/parquet column mapping; empty = detect
    answer_column: str = ""
    system_column: str = ""
    max_length: int = 1024  # tokens; longer examples are warned about
    val_fraction: float = 0.1
    seed: int = 42
    max_upload_mb: float = 200.0

    FORMATS: ClassVar[tuple[str, ...]] = ("auto", "chat", "alpaca", "sharegpt", "csv")

    def validate(self) -> None:
        _check(self.format in self.FORMATS, "format", self.format, f"use one of {', '.join(self.FORMATS)}")
        _check(self.max_length > 0, "max_length", self.max_length, "must be a positive number of tokens")
        _check(0 <= self.val_fraction < 1, "val_fraction", self.val_fraction, "must be in [0, 1)")
        _check(self.max_upload_mb > 0, "max_upload_mb", self.max_upload_mb, "must be positive")


@dataclass
class TrainConfig(_Config):
    """One fine-tuning run: base model, data, method and hyper-parameters."""

    name: str = ""
    base_model: str = EMBEDDED
    dataset: str = ""  # a saved dataset name or a file path
    method: str = "lora"  # lora | qlora | dpo (LoRA trained on preference pairs, see `prefs`)
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = "all-linear"  # preset (attention | mlp | all-linear) or comma-separated names
    learning_rate: float = 2e-4
    scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    packing: bool = False
    assistant_only_loss: bool = True
    seed: int = 42
    eval_steps: int = 0  # 0 = no evaluation during training
    early_stopping_patience: int = 0  # 0 = off
    logging_steps: int = 1
    save_steps: int = 50
    bnb_compute_dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    double_quant: bool = True
    merge: bool = False
    report_to: str = "none"  # none | tensorboard | wandb | trackio (when installed)
    gradient_checkpointing: bool = False  # trades compute for memory; off is faster for small models
    bf16: str = "auto"  # auto (CUDA bf16 or a CPU with avx512_bf16/amx) | on | off
    rag_index: str = ""  # train for RAG: rewrite each example into the Arena's prompt over this index's passages
    distractor_share: float = 0.3  # RAG training: share of examples added again with unrelated passages -> IDK
    near_miss_share: float = 0.0  # RAG training: share of kept examples added again without the passages that
    # hold the answer (the next-closest passages of the same question) -> IDK
    decision_weight: float = 1.0  # loss weight of each answer's first token (answer or "I don't know"); 1 = plain
    from_run: str = ""  # continue from this run's adapter (its base model is used)
    prefs: str = ""  # dpo: a preference-pairs JSONL file ({prompt, chosen, rejected} a line) or "votes" (the Arena's)
    beta: float = 0.1  # dpo: how far the trained model may move from its reference (higher = closer to it)

    METHODS: ClassVar[tuple[str, ...]] = ("lora", "qlora", "dpo")
    REPORT_TO: ClassVar[tuple[str, ...]] = ("none", "tensorboard", "wandb", "trackio")
    # cosine_with_restarts: one cosine cycle per epoch (the learning rate climbs back at each epoch's start)
    SCHEDULERS: ClassVar[tuple[str, ...]] = (
        "constant",
        "linear",
        "cosine",
        "constant_with_warmup",
        "cosine_with_restarts",
    )

    def validate(self) -> None:
        _check(self.method in self.METHODS, "method", self.method, "use lora, qlora or dpo (preference pairs)")
        _check(self.rank > 0, "rank", self.rank, "LoRA rank must be a positive integer (try 8 or 16)")
        _check(self.alpha > 0, "alpha", self.alpha, "LoRA alpha must be positive (often 2 x rank)")
        _check(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")
        _check(0 < self.learning_rate < 1, "learning_rate", self.learning_rate, "must be in (0, 1); try 2e-4")
        _check(self.scheduler in self.SCHEDULERS, "scheduler", self.scheduler, f"use one of {self.SCHEDULERS}")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "must be in [0, 1)")
        _check(self.epochs > 0 or self.max_steps > 0, "epochs", self.epochs, "set epochs > 0 or max_steps > 0")
        _check(self.max_steps >= 0, "max_steps", self.max_steps, "must be >= 0 (0 = use epochs)")
        _check(self.batch_size > 0, "batch_size", self.batch_size, "must be a positive integer")
        _check(self.grad_accum > 0, "grad_accum", self.grad_accum, "must be a positive integer")
        _check(self.max_length >= 16, "max_length", self.max_length, "must be at least 16 tokens")
        _check(self.eval_steps >= 0, "eval_steps", self.eval_steps, "must be >= 0 (0 = off)")
        _check(self.logging_steps > 0, "logging_steps", self.logging_steps, "must be a positive integer")
        dtypes = ("auto", "float32", "bfloat16", "float16")
        _check(self.bnb_compute_dtype in dtypes, "bnb_compute_dtype", self.bnb_compute_dtype, f"use one of {dtypes}")
        _check(self.save_steps > 0, "save_steps", self.save_steps, "must be a positive integer")
        patience = self.early_stopping_patience
        _check(patience >= 0, "early_stopping_patience", patience, "must be >= 0 (0 = off)")
        _check(
            self.early_stopping_patience == 0 or self.eval_steps > 0,
            "early_stopping_patience",
            self.early_stopping_patience,
            "needs eval_steps > 0 (early stopping watches the eval loss)",
        )
        _check(self.report_to in self.REPORT_TO, "report_to", self.report_to, f"use one of {self.REPORT_TO}")
        _check(self.bf16 in ("auto", "on", "off"), "bf16", self.bf16, "use auto, on or off")
        share = self.distractor_share
        _check(0 <= share <= 1, "distractor_share", share, "must be in [0, 1] (0 = no distractor copies)")
        near = self.near_miss_share
        _check(0 <= near <= 1, "near_miss_share", near, "must be in [0, 1] (0 = no near-miss copies)")
        weight = self.decision_weight
        _check(1 <= weight <= 100, "decision_weight", weight, "must be in [1, 100] (1 = every token weighs the same)")
        _check(0 < self.beta <= 10, "beta", self.beta, "must be in (0, 10]; try 0.1")


@dataclass
class RagConfig(_Config):
    """One retrieval index: corpus, chunking, embedder, store and retrieval settings."""

    name: str = ""
    corpus: str = ""  # a saved corpus name or a folder path
    chunker: str = "markdown"  # sentence | markdown
    chunk_size: int = 256  # tokens
    overlap: int = 32
    embed_model: str = EMBEDDED
    store_url: str = ""  # empty = embedded Qdrant under LAB_HOME; else a Qdrant server URL
    top_k: int = 5
    hybrid: bool = False
    similarity_cutoff: float = 0.0

    CHUNKERS: ClassVar[tuple[str, ...]] = ("sentence", "markdown")

    def validate(self) -> None:
        _check(self.chunker in self.CHUNKERS, "chunker", self.chunker, "use sentence or markdown")
        _check(self.chunk_size >= 32, "chunk_size", self.chunk_size, "must be at least 32 tokens")
        _check(0 <= self.overlap < self.chunk_size, "overlap", self.overlap, "must be >= 0 and < chunk_size")
        _check(self.top_k > 0, "top_k", self.top_k, "must be a positive integer")
        _check(-1 <= self.similarity_cutoff <= 1, "similarity_cutoff", self.similarity_cutoff, "must be in [-1, 1]")


@dataclass
class GenConfig(_Config):
    """Decoding settings shared by every contestant; greedy (temperature 0) for scoring."""

    max_new_tokens: int = 48  # answers are short; longer budgets mostly buy rambling from small models
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 8
    top_k: int = 5  # passages retrieved per question (focus picks sentences from all of them); 0 = the index's
    context_chars: int = 700  # each passage is cut to this many characters in the prompt
    abstain_below: float = -1.0  # RAG answers "I don't know" when the best passage scores below this; -1 = off
    focus_sentences: int = 4  # RAG: keep only this many question-closest sentences of the passages; 0 = off
    support_below: float = 0.5  # RAG: "I don't know" when less of the answer's words are in the passages; 0 = off
    idk_above: float = 0.5  # RAG: say "I don't know" iff the model gives its first token more than this; 0 = greedy

    def validate(self) -> None:
        _check(0 < self.max_new_tokens <= 4096, "max_new_tokens", self.max_new_tokens, "must be in 1..4096")
        _check(self.top_k >= 0, "top_k", self.top_k, "must be >= 0 (0 = the index's own top_k)")
        _check(self.context_chars >= 50, "context_chars", self.context_chars, "must be at least 50 characters")
        _check(-1 <= self.abstain_below <= 1, "abstain_below", self.abstain_below, "must be in [-1, 1]; -1 = off")
        _check(self.focus_sentences >= 0, "focus_sentences", self.focus_sentences, "must be >= 0 (0 = off)")
        _check(0 <= self.support_below <= 1, "support_below", self.support_below, "must be in [0, 1]; 0 = off")
        _check(0 <= self.idk_above < 1, "idk_above", self.idk_above, "must be in [0, 1); 0 = plain greedy decoding")
        _check(0 <= self.temperature <= 5, "temperature", self.temperature, "must be in [0, 5]; 0 = greedy")
        _check(0 < self.top_p <= 1, "top_p", self.top_p, "must be in (0, 1]")
        _check(self.batch_size > 0, "batch_size", self.batch_size, "must be a positive integer")
