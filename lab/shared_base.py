"""`SharedBase`: one loaded base model and the LoRA adapters loaded into it, each answer naming its adapter per
row; `Generator`: that base seen through one adapter name, what a responder generates with.

Boundary: how several fine-tuned contestants share one base's weights. The per-row names reach the LoRA layers
through thread-local state read by a forward hook, so concurrent answers from different contestants never switch a
shared "active adapter"; adding or removing an adapter waits for running generations (`_ReadWrite`). Which bases
stay loaded, and for whom, is lab/cache.py's. peft is imported inside functions.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.models import ModelError

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


class _ReadWrite:
    """Many generations at once (read), or one adapter load into the shared model (write)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._readers:
                self._cond.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def adapter_name(adapter: str | Path) -> str:
    """A PEFT adapter name for an adapter folder: the run's name (letters, digits, _) plus a short hash."""
    path = Path(adapter)
    stem = re.sub(r"\W", "_", path.parent.name if path.name == "adapter" else path.name)[:40] or "adapter"
    return f"{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def _rows_hook(rows: threading.local):
    """A forward pre-hook for LoRA layers: inject this thread's per-row adapter names (all "__base__" when none)."""

    def hook(module, args, kwargs):
        x = args[0] if args else next(iter(kwargs.values()))
        n = len(x)
        names = getattr(rows, "names", None) or [BASE]
        if len(names) != n:
            if n % len(names):
                raise ModelError(f"{len(names)} adapter names for a batch of {n} rows: give one name per row")
            names = [name for name in names for _ in range(n // len(names))]  # beams repeat each row
        kwargs["adapter_names"] = list(names)
        return args, kwargs

    return hook


class SharedBase:
    """One loaded base model and, once an adapter is added, the PEFT model over it holding every adapter by name.

    `generate(adapter_names=[...], **kwargs)` runs the base model's own `generate` with one adapter name per row;
    the LoRA layers read the names from this thread's state, so concurrent calls never interfere. Adding or
    removing an adapter waits for running generations (and they for it)."""

    def __init__(self, model):
        self.model = model
        self.peft = None
        self.rows = threading.local()
        self.lock = _ReadWrite()

    @property
    def device(self):
        return self.model.device

    def names(self) -> list[str]:
        return [] if self.peft is None else [n for n in self.peft.peft_config if n != BASE]

    def add(self, name: str, adapter: str | Path) -> None:
        """Load the adapter folder under `name` (a no-op when it is already loaded)."""
        with self.lock.write():
            if name in self.names():
                return
            _check_mixable(adapter)
            if self.peft is None:
                from peft import PeftModel

                self.peft = PeftModel.from_pretrained(self.model, str(adapter), adapter_name=name).eval()
            else:
                self.peft.load_adapter(str(adapter), adapter_name=name)
                self.peft.eval()
            self._hook_layers()

    def remove(self, name: str) -> bool:
        """Delete one adapter; the last one out unloads PEFT's layers, leaving the plain base model."""
        with self.lock.write():
            if name not in self.names():
                return False
            if len(self.names()) == 1:
                self.model = self.peft.unload()
                self.peft = None
            else:
                self.peft.delete_adapter(name)
            return True

    def _hook_layers(self) -> None:
        from peft.tuners.lora import LoraLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        for module in self.model.modules():
            if isinstance(module, (LoraLayer, AuxiliaryTrainingWrapper)) and not hasattr(module, "_lab_rows"):
                module._lab_rows = module.register_forward_pre_hook(_rows_hook(self.rows), with_kwargs=True)

    @contextmanager
    def using(self, names: list[str]) -> Iterator[None]:
        """Within this block, this thread's forward passes use one adapter name per row."""
        unknown = sorted({n for n in names if n != BASE} - set(self.names()))
        if unknown:
            raise ModelError(f"adapter(s) {', '.join(unknown)} are not loaded on this base: load them first")
        with self.lock.read():
            self.rows.names = list(names)
            try:
                yield
            finally:
                self.rows.names = None

    def generate(self, *args, adapter_names: list[str] | None = None, **kwargs):
        """The base model's `generate`, each row with its adapter (all "__base__" without `adapter_names`)."""
        batch = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        with self.using(list(adapter_names) if adapter_names else [BASE] * len(batch)):
            return self.model.generate(*args, **kwargs)

    def _after_fork(self) -> None:
        self.lock = _ReadWrite()


def _check_mixable(adapter: str | Path) -> None:
    """Only plain LoRA adapters (no DoRA) can share a base with per-row names; say so for anything else."""
    from peft import PeftConfig

    config = PeftConfig.from_pretrained(str(adapter))
    dora = " with DoRA" if getattr(config, "use_dora", False) else ""
    kind = f"{getattr(config.peft_type, 'value', config.peft_type)}{dora}"
    if kind != "LORA":
        raise ModelError(
            f"adapter {str(adapter)!r} is {kind}: only plain LoRA adapters can answer in the Arena; "
            "retrain it with method lora or qlora"
        )


class Generator:
    """What a responder generates with: a shared base seen through one adapter name ("__base__" for the base).

    Has the two things generation needs from a model: `device` and `generate(**kwargs)`; `adapter_names` may
    override the name per row (a batch mixing contestants of one base)."""

    def __init__(self, shared: SharedBase, name: str = BASE):
        self.shared, self.name = shared, name

    @property
    def device(self):
        return self.shared.device

    def generate(self, *args, adapter_names: list[str] | None = None, **kwargs):
        batch = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        return self.shared.generate(*args, adapter_names=adapter_names or [self.name] * len(batch), **kwargs)
