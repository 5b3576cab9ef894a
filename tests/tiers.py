"""Test tiers: which marks a test gets from the fixtures it uses, and the guard that makes a model load fail in
the fast tier (`make test-fast`), in this process and in the Python children it starts.

The guard wraps the calls every model load goes through: transformers' `from_pretrained` of the Auto model classes
and of `PreTrainedModel` (PEFT bases and the GGUF conversion end there too) and sentence-transformers'
`SentenceTransformer` constructor. It is installed only when the session deselects the integration tier, so the
full run is untouched.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import inspect
import sys
from pathlib import Path

# Fixtures that load the embedded model or embedder (directly or through the launched app): a test using any of
# them, also through another fixture, is an integration test.
INTEGRATION_FIXTURES = frozenset({"cache", "embedded_path", "app_url", "client", "hf_home", "hub_offline_env"})
BROWSER_FIXTURES = frozenset({"browser", "page"})
FAST_EXPR = "not integration and not browser and not slow"
GUARD_ENV = "LAB_TEST_TIER"  # "fast" in the children of a fast-tier session (read by the sitecustomize below)


class ModelLoadInFastTier(RuntimeError):
    """A test of the fast tier tried to load a model."""


def tier_marks(fixturenames) -> list[str]:
    """The tier marks a test earns from its fixture closure."""
    names = set(fixturenames)
    marks = ["integration"] if names & INTEGRATION_FIXTURES else []
    return marks + (["browser"] if names & BROWSER_FIXTURES else [])


def is_fast(markexpr: str | None) -> bool:
    """True when a `-m` expression deselects the integration tier (what `make test-fast` passes)."""
    return "not integration" in " ".join((markexpr or "").split())


def _refuse(what: str):
    raise ModelLoadInFastTier(
        f"{what}: this test loads a model, which the fast tier (make test-fast) forbids. Use the `cache` or "
        "`embedded_path` fixture (the test is then marked integration) or mark it @pytest.mark.integration; "
        "`make test` runs it."
    )


def _guard_from_pretrained(original):
    @functools.wraps(original.__func__)
    def from_pretrained(cls, name_or_path=None, *args, **kwargs):
        _refuse(f"{cls.__name__}.from_pretrained({str(name_or_path)!r})")

    from_pretrained.unguarded = original
    return classmethod(from_pretrained)


def _patch_transformers(module) -> None:
    model = module.PreTrainedModel
    if not hasattr(model.from_pretrained, "unguarded"):
        model.from_pretrained = _guard_from_pretrained(inspect.getattr_static(model, "from_pretrained"))


def _patch_auto_classes(module) -> None:
    auto = module._BaseAutoModelClass
    if not hasattr(auto.from_pretrained, "unguarded"):
        auto.from_pretrained = _guard_from_pretrained(inspect.getattr_static(auto, "from_pretrained"))


def _patch_sentence_transformers(module) -> None:
    cls = module.SentenceTransformer
    if not hasattr(cls.__init__, "unguarded"):
        original = cls.__init__

        @functools.wraps(original)
        def __init__(self, model_name_or_path=None, *args, **kwargs):
            _refuse(f"SentenceTransformer({str(model_name_or_path)!r})")

        __init__.unguarded = original
        cls.__init__ = __init__


_PATCHES = {
    "transformers.modeling_utils": _patch_transformers,
    "transformers.models.auto.auto_factory": _patch_auto_classes,
    "sentence_transformers": _patch_sentence_transformers,
}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a target module right after its first import, so the guard costs no heavy import up front."""

    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def patched_exec(module, _exec=exec_module, _patch=_PATCHES[name]):
            _exec(module)
            _patch(module)

        spec.loader.exec_module = patched_exec
        return spec


def install_guard() -> None:
    """Make every model load in this process raise ModelLoadInFastTier (already imported libraries included)."""
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def child_guard_dir(root: Path) -> Path:
    """A folder whose sitecustomize.py installs the guard in any Python child that has it on PYTHONPATH and
    LAB_TEST_TIER=fast in its environment (training and calibration children, app subprocesses)."""
    root.mkdir(parents=True, exist_ok=True)
    tests = str(Path(__file__).resolve().parent)
    (root / "sitecustomize.py").write_text(
        "import os, sys\n"
        f"if os.environ.get({GUARD_ENV!r}) == 'fast':\n"
        f"    sys.path.append({tests!r})\n"
        "    import tiers\n"
        "    tiers.install_guard()\n"
        f"    sys.path.remove({tests!r})\n"
    )
    return root
