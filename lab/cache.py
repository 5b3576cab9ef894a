"""`ModelCache`: the one place loaded models, tokenizers and embedders live (created at app start, passed down).

Boundary: this module decides what stays in memory and who shares it; how a model is found is lab/resolve.py's
business (`resolve_model`) and how it is loaded lab/models.py's (`load_causal_lm`, `load_tokenizer`). It holds
nothing else: open indexes (lab/rag/registry.py), batchers (lab/generation/batchers.py) and cancel requests
(lab/cancel.py) are kept elsewhere. No module state.

- Keys carry the device the entry was loaded on (`lab.models.device()`, asked per call, never cached), so an
  entry made on the CPU is never handed to a caller that runs on the GPU, or the other way round.
- Each key has its own "ready" event; the cache's lock guards only the dictionary and is never held while a
  model loads. Two threads asking for the same key load it once (the second waits on that key's event only).
  Loads that read weights (models, adapters, embedders) run one at a time, since two `from_pretrained` calls at
  once can leave one model's parameters on the meta device; a tokenizer never waits for them. A forked child (a
  ZeroGPU worker is forked from the threaded app) gets fresh locks and drops loads that were in flight in other
  threads at fork time.
- One base model per (path, quant, device): fine-tuned contestants load their adapters into one PEFT model
  over that base, each under its own name, and generate with a per-row adapter name ("__base__" for the
  base), through lab/shared_base.py's `SharedBase`.
- An LRU bounded by free memory: before a model loads, least-recently-used generators are dropped while free
  memory (a parameter, `free_bytes(device)`) is under the model's size plus a margin. Releasing runs the
  garbage collector and empties the CUDA cache.
torch and transformers are imported inside functions so `import lab` stays fast.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from lab import models, resolve
from lab.resolve import ResolvedModel
from lab.shared_base import Generator, SharedBase, adapter_name

GENERATORS = ("model", "adapter")  # entry kinds that hold generator weights (evictable, grouped by base)
WEIGHTS = ("model", "adapter", "embedder")  # entry kinds whose loads read weights: one such load at a time
DEFAULT_MARGIN = 1 << 30  # free memory kept beyond a model's own size before it loads
log = logging.getLogger(__name__)


def free_memory(dev: str) -> int:
    """Bytes a new model could use on `dev`: free CUDA memory (driver-free plus what torch's allocator holds
    unused) or the RAM the OS reports available."""
    if dev.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated())
    import psutil

    return int(psutil.virtual_memory().available)


def empty_device_caches() -> None:
    """Collect garbage and hand CUDA's cached blocks back to the driver (only where CUDA is already initialised)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def weights_bytes(path: str, quant: str = "none") -> int:
    """Rough size of a model folder's weights once loaded (0 when the path is not a folder)."""
    folder = Path(path)
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0
    return size // 3 if quant == "4bit" else size


class _Slot:
    """One cache entry: its value once `ready` is set, the base group it belongs to, and when it was last used."""

    __slots__ = ("value", "ready", "failed", "group", "used")

    def __init__(self, group: tuple | None, used: int):
        self.value: Any = None
        self.ready = threading.Event()
        self.failed = False
        self.group = group
        self.used = used


class ModelCache:
    """Loaded models, tokenizers and embedders shared by every tab; created once at app start.

    Keys are tuples whose first item is the kind ("tokenizer", "model", "adapter" or "embedder"; nothing else lives
    here); model, adapter and embedder keys end with the device. `release` drops entries by key prefix.
    `free_bytes(device)` and `margin_bytes` bound the generators kept (LRU).
    Thread-safe: gradio runs events in worker threads; fork-safe: a forked child gets fresh locks.
    """

    def __init__(
        self,
        model_cache_dir: Path,
        free_bytes: Callable[[str], int] | None = None,
        margin_bytes: int = DEFAULT_MARGIN,
    ):
        self.model_cache_dir = Path(model_cache_dir)
        self.free_bytes = free_bytes or free_memory
        self.margin_bytes = margin_bytes
        self._slots: dict[tuple, _Slot] = {}
        self._clock = itertools.count()
        self._lock = threading.Lock()
        self._loading = threading.RLock()  # held while weights load; re-entered by a load that loads another key
        me = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (cache := me()) is not None and cache._after_fork())

    # -- the per-key loading protocol -------------------------------------------------------------------------

    def _get(self, key: tuple, make: Callable[[], Any], group: tuple | None = None) -> Any:
        while True:
            slot = self._hit(key)
            if slot is None:
                # weights load one at a time: two from_pretrained calls at once (a model and an embedder, say) can
                # leave one with parameters on the meta device
                with self._loading if key[0] in WEIGHTS else nullcontext():
                    slot = self._hit(key)
                    if slot is None:
                        with self._lock:
                            slot = self._slots[key] = _Slot(group, next(self._clock))
                        return self._load(key, slot, make)
            slot.ready.wait()
            if not slot.failed:
                return slot.value
            # the loading thread failed (and removed the slot): try again, which raises our own error

    def _hit(self, key: tuple) -> _Slot | None:
        """The entry for `key` (loaded or loading), marked as just used; None when there is none."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                slot.used = next(self._clock)
            return slot

    def _load(self, key: tuple, slot: _Slot, make: Callable[[], Any]) -> Any:
        try:
            value = make()
        except BaseException:
            with self._lock:
                if self._slots.get(key) is slot:
                    del self._slots[key]
            slot.failed = True
            slot.ready.set()
            raise
        slot.value = value
        slot.ready.set()
        return value

    def _after_fork(self) -> None:
        """In a forked child: new locks, and no entry waits for a load that ran in a thread the child lacks."""
        self._lock = threading.Lock()
        self._loading = threading.RLock()
        for key, slot in list(self._slots.items()):
            if not slot.ready.is_set():
                del self._slots[key]
                continue
            slot.ready = threading.Event()
            slot.ready.set()
            if hasattr(slot.value, "_after_fork"):
                slot.value._after_fork()

    # -- models, tokenizers, embedders ---------------------------------------------------------------------------

    def resolve(self, spec: str) -> ResolvedModel:
        return resolve.resolve_model(spec, self.model_cache_dir)

    def tokenizer(self, spec: str):
        path = self.resolve(spec).path
        return self._get(("tokenizer", path, ""), lambda: models.load_tokenizer(path))

    def shared(self, spec: str, quant: str = "none") -> SharedBase:
        """The one base model for `spec` on this call's device, with the adapters loaded into it so far."""
        path, dev = self.resolve(spec).path, models.device()
        group = (path, quant, dev)

        def make() -> SharedBase:
            self.make_room(weights_bytes(path, quant), dev, keep=group)
            return SharedBase(models.load_causal_lm(path, quant, models.serving_dtype()).eval())

        return self._get(("model", path, quant, dev), make, group)

    def model(self, spec: str, quant: str = "none"):
        """The base model itself (shared: adapters loaded over it act only on rows that name them)."""
        return self.shared(spec, quant).model

    def generator(self, spec: str, adapter: str | Path | None = None, quant: str = "none") -> Generator:
        """The base model `spec`, seen through the adapter folder `adapter` (loaded into the shared base once)."""
        shared = self.shared(spec, quant)
        if adapter is None:
            return Generator(shared)
        path, dev = self.resolve(spec).path, models.device()
        name = adapter_name(adapter)

        def make() -> Generator:
            shared.add(name, adapter)
            return Generator(shared, name)

        return self._get(("adapter", str(adapter), path, quant, dev), make, (path, quant, dev))

    def embedder(self, spec: str = "embedded"):
        """A sentence-transformers model for the embedder spec, on this call's device."""
        path, dev = resolve.resolve_embedder(spec).path, models.device()

        def make():
            with models.importing():  # it imports lazily; a fork (a ZeroGPU slot) waits for it (lab.models)
                from sentence_transformers import SentenceTransformer

                models._check_safetensors(path)
                trust = models.trust_remote_code()
                return SentenceTransformer(
                    path, device=dev, trust_remote_code=trust, model_kwargs={"use_safetensors": True}
                )

        return self._get(("embedder", path, "", dev), make)

    # -- what is loaded --------------------------------------------------------------------------------------------

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._slots)

    # -- freeing memory ------------------------------------------------------------------------------------------

    def release(self, key_prefix: tuple) -> int:
        """Drop every entry whose key starts with `key_prefix`; returns how many were dropped.

        Dropping a base model drops its adapters too (they live inside it); dropping one adapter entry unloads
        that adapter from the shared base."""
        with self._lock:
            hit = {k: s for k, s in self._slots.items() if k[: len(key_prefix)] == key_prefix}
            whole = {s.group for k, s in hit.items() if k[0] == "model" and s.group is not None}
            hit |= {k: s for k, s in self._slots.items() if s.group in whole}
            for k in hit:
                del self._slots[k]
        for key, slot in hit.items():
            if key[0] == "adapter" and slot.group not in whole and slot.ready.is_set() and not slot.failed:
                slot.value.shared.remove(slot.value.name)
        if hit:
            empty_device_caches()
        return len(hit)

    def _groups(self, dev: str | None = None, keep: tuple | None = None) -> list[tuple]:
        """Generator groups (path, quant, device), least recently used first, loaded and not being loaded."""
        last: dict[tuple, int] = {}
        busy = set()
        with self._lock:
            for key, slot in self._slots.items():
                if slot.group is None or key[0] not in GENERATORS or (dev and slot.group[2] != dev):
                    continue
                last[slot.group] = max(last.get(slot.group, -1), slot.used)
                if not slot.ready.is_set():
                    busy.add(slot.group)
        return sorted((g for g in last if g not in busy and g != keep), key=last.__getitem__)

    def _drop_group(self, group: tuple) -> int:
        with self._lock:
            keys = [k for k, s in self._slots.items() if s.group == group]
            for k in keys:
                del self._slots[k]
        return len(keys)

    def make_room(self, need_bytes: int, dev: str | None = None, keep: tuple | None = None) -> list[tuple]:
        """Drop least-recently-used generators on `dev` while free memory is under `need_bytes` plus the margin;
        returns the (path, quant, device) groups dropped. Models a responder still holds are freed when it ends."""
        dev = dev or models.device()
        dropped = []
        for group in self._groups(dev, keep):
            if self.free_bytes(dev) >= need_bytes + self.margin_bytes:
                break
            self._drop_group(group)
            dropped.append(group)
            empty_device_caches()
        if dropped:
            log.info("freed generators %s to make room for %d MB on %s", dropped, need_bytes >> 20, dev)
        return dropped

    def release_generators(self) -> int:
        """Drop every generator (base models and their adapters) so a training child gets the memory."""
        groups = self._groups()
        count = sum(self._drop_group(g) for g in groups)
        empty_device_caches()
        return count
