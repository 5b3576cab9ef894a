"""Settings as validated dataclasses: the single source of every setting.

The UI form, the CLI flags, a YAML file and the training subprocess all build the same object
(`TrainConfig.from_dict(...)`), and it is saved next to what it produced. Validation errors name the
offending field and value and say what to do. This module imports nothing heavy and knows no paths.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from lab.errors import LabError

EMBEDDED = "embedded"

DataFormat = Literal["auto", "chat", "alpaca", "sharegpt", "csv"]
Method = Literal["lora", "qlora", "dpo"]
# cosine_with_restarts: one cosine cycle per epoch (the learning rate climbs back at each epoch's start)
Scheduler = Literal["constant", "linear", "cosine", "constant_with_warmup", "cosine_with_restarts"]
ReportTo = Literal["none", "tensorboard", "wandb", "trackio"]
ComputeDtype = Literal["auto", "float32", "bfloat16", "float16"]
Switch = Literal["auto", "on", "off"]
Chunker = Literal["sentence", "markdown"]


def _f(default: Any, help: str) -> Any:
    """A dataclass field with its help text (read by the CLI's --help and the generated config reference)."""
    return field(default=default, metadata={"help": help})


def field_help(cls: type, name: str) -> str:
    """The help text of setting `name` of config class `cls` (empty when it has none)."""
    return next((f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name), "")


def field_choices(cls: type, name: str) -> tuple[str, ...]:
    """The allowed values of a setting typed as a `Literal`, else ()."""
    hint = typing.get_type_hints(cls).get(name)
    return tuple(get_args(hint)) if typing.get_origin(hint) is Literal else ()


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

    format: DataFormat = _f("auto", "file format; auto detects it from the file's name and first records")
    question_column: str = _f("", "CSV/TSV/Parquet column holding the question (empty: found by name)")
    answer_column: str = _f("", "CSV/TSV/Parquet column holding the answer (empty: found by name)")
    system_column: str = _f("", "CSV/TSV/Parquet column holding a system prompt (optional)")
    max_length: int = _f(1024, "tokens; longer examples are warned about")
    val_fraction: float = _f(0.1, "share of examples held out as the validation split, in [0, 1)")
    seed: int = _f(42, "seed of the train / validation split")
    max_upload_mb: float = _f(200.0, "largest fine-tuning file accepted, in MB")
    split: str = _f("train", "split read from a saved dataset folder or a hub dataset id")
    fill: dict = field(
        default_factory=dict, metadata={"help": "{{placeholder}} -> text, filled in every record before checking"}
    )

    FORMATS: ClassVar[tuple[str, ...]] = get_args(DataFormat)

    def validate(self) -> None:
        _check(self.format in self.FORMATS, "format", self.format, f"use one of {', '.join(self.FORMATS)}")
        _check(self.max_length > 0, "max_length", self.max_length, "must be a positive number of tokens")
        _check(0 <= self.val_fraction < 1, "val_fraction", self.val_fraction, "must be in [0, 1)")
        _check(self.max_upload_mb > 0, "max_upload_mb", self.max_upload_mb, "must be positive")


@dataclass
class TrainConfig(_Config):
    """One fine-tuning run: base model, data, method and hyper-parameters."""

    name: str = _f("", "run name, also its folder under runs/ (empty: run-DATE-TIME)")
    base_model: str = _f(EMBEDDED, "'embedded' (SmolLM2-135M-Instruct), a local model folder or a hub id")
    dataset: str = _f("", "a saved dataset name or a fine-tuning file path")
    method: Method = _f(
        "lora", "lora, qlora (4-bit NF4 base weights through bitsandbytes), or dpo (LoRA trained on preference pairs)"
    )
    rank: int = _f(16, "LoRA rank r")
    alpha: int = _f(32, "LoRA alpha (scaling alpha / r; often 2 x rank)")
    dropout: float = _f(0.05, "LoRA dropout, in [0, 1)")
    target_modules: str = _f("all-linear", "attention, mlp, all-linear, or comma-separated module names")
    learning_rate: float = _f(2e-4, "peak learning rate, in (0, 1)")
    scheduler: Scheduler = _f("cosine", "learning-rate schedule (cosine_with_restarts: one cosine cycle per epoch)")
    warmup_ratio: float = _f(0.05, "share of the steps spent warming the learning rate up, in [0, 1)")
    epochs: float = _f(1.0, "passes over the training split (used when max_steps is 0)")
    max_steps: int = _f(0, "optimiser steps; > 0 overrides epochs")
    batch_size: int = _f(8, "examples per device batch")
    grad_accum: int = _f(1, "batches accumulated per optimiser step")
    max_length: int = _f(512, "tokens per example; longer ones are cut")
    packing: bool = _f(False, "pack several short examples into one sequence (they never attend to each other)")
    assistant_only_loss: bool = _f(True, "train only the assistant turns and their end-of-turn token")
    seed: int = _f(42, "seed of initialisation, shuffling and the RAG rewrite")
    eval_steps: int = _f(0, "evaluate on the validation split every N steps; 0 = no evaluation during training")
    early_stopping_patience: int = _f(0, "stop after N evaluations without a better eval loss; 0 = off")
    logging_steps: int = _f(1, "write a progress line every N steps")
    save_steps: int = _f(50, "save a checkpoint every N steps")
    bnb_compute_dtype: ComputeDtype = _f("auto", "QLoRA: the dtype 4-bit layers compute in")
    double_quant: bool = _f(True, "QLoRA: quantise the quantisation constants too")
    merge: bool = _f(False, "also save the base model with the adapter merged in (merged/)")
    report_to: ReportTo = _f("none", "also log to this tracker (when it is installed)")
    gradient_checkpointing: bool = _f(False, "trade compute for memory; off is faster for small models")
    bf16: Switch = _f("auto", "bf16 autocast: auto (CUDA with native bf16, or a CPU with avx512_bf16/amx), on, off")
    rag_index: str = _f("", "train for RAG: rewrite each example into the Arena's prompt over this index's passages")
    distractor_share: float = _f(
        0.3, "RAG training: share of examples added again over unrelated passages with target 'I don't know'"
    )
    near_miss_share: float = _f(
        0.0,
        "RAG training: share of kept examples added again without the passages that hold the answer "
        "(the next-closest passages of the same question), target 'I don't know'",
    )
    decision_weight: float = _f(
        1.0, "loss weight of each answer's first token (answer or 'I don't know'), in [1, 100]; 1 = plain mean"
    )
    from_run: str = _f("", "continue from this run's adapter (its base model is used)")
    prefs: str = _f(
        "",
        "dpo: a preference-pairs JSONL file ({prompt, chosen, rejected} a line) or 'votes' (the Arena's blind votes, "
        "exported when the run starts)",
    )
    beta: float = _f(0.1, "dpo: how far the trained model may move from its reference, in (0, 10]; higher = closer")

    METHODS: ClassVar[tuple[str, ...]] = get_args(Method)
    REPORT_TO: ClassVar[tuple[str, ...]] = get_args(ReportTo)
    SCHEDULERS: ClassVar[tuple[str, ...]] = get_args(Scheduler)

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
        dtypes = get_args(ComputeDtype)
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

    name: str = _f("", "index name")
    corpus: str = _f("", "a saved corpus name or a folder of documents")
    chunker: Chunker = _f("markdown", "markdown (split at headings, then sentences) or sentence")
    chunk_size: int = _f(256, "chunk size in the embedder's tokens (at least 32)")
    overlap: int = _f(32, "tokens shared by neighbouring chunks (< chunk_size)")
    embed_model: str = _f(EMBEDDED, "'embedded' (all-MiniLM-L6-v2) or a sentence-transformers folder")
    store_url: str = _f("", "a Qdrant server URL; empty = Qdrant Edge inside the process, under LAB_HOME")
    top_k: int = _f(5, "passages retrieved per question")
    hybrid: bool = _f(False, "dense + BM25 fused by reciprocal rank instead of dense only")
    similarity_cutoff: float = _f(0.0, "drop passages whose cosine score is below this, in [-1, 1]")

    CHUNKERS: ClassVar[tuple[str, ...]] = get_args(Chunker)

    def validate(self) -> None:
        _check(self.chunker in self.CHUNKERS, "chunker", self.chunker, "use sentence or markdown")
        _check(self.chunk_size >= 32, "chunk_size", self.chunk_size, "must be at least 32 tokens")
        _check(0 <= self.overlap < self.chunk_size, "overlap", self.overlap, "must be >= 0 and < chunk_size")
        _check(self.top_k > 0, "top_k", self.top_k, "must be a positive integer")
        _check(-1 <= self.similarity_cutoff <= 1, "similarity_cutoff", self.similarity_cutoff, "must be in [-1, 1]")


# The GenConfig settings `python -m lab eval` takes as flags (the evidence pack writes the same flags back).
EVAL_GEN_FLAGS = (
    "max_new_tokens",
    "temperature",
    "batch_size",
    "top_k",
    "context_chars",
    "abstain_below",
    "focus_sentences",
    "support_below",
    "idk_above",
)


@dataclass
class GenConfig(_Config):
    """Decoding settings shared by every contestant; greedy (temperature 0) for scoring."""

    max_new_tokens: int = _f(48, "longest answer in tokens (short budgets suit small models' short answers)")
    temperature: float = _f(0.0, "sampling temperature in [0, 5]; 0 = greedy")
    top_p: float = _f(1.0, "nucleus sampling share in (0, 1] (with temperature > 0)")
    batch_size: int = _f(8, "questions answered together in one batch")
    top_k: int = _f(5, "passages retrieved per question (focus picks sentences from all of them); 0 = the index's")
    context_chars: int = _f(700, "each passage is cut to this many characters in the prompt")
    abstain_below: float = _f(-1.0, "RAG: answer 'I don't know' when the best passage scores below this; -1 = off")
    focus_sentences: int = _f(4, "RAG: keep only this many question-closest sentences of the passages; 0 = off")
    support_below: float = _f(
        0.5, "RAG: 'I don't know' when less than this share of the answer's words is in the passages; 0 = off"
    )
    idk_above: float = _f(
        0.5, "RAG: say 'I don't know' when the model gives its first token more than this probability; 0 = greedy"
    )

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
