"""The dtype the app's own models load in (lab.models.serving_dtype, LAB_SERVE_DTYPE): "auto" by default, the
names people write accepted, anything else refused by name."""

from __future__ import annotations

import pytest

from lab.models import ModelError, serving_dtype


def test_the_serving_dtype_is_auto_unless_set(monkeypatch):
    monkeypatch.delenv("LAB_SERVE_DTYPE", raising=False)
    monkeypatch.delenv("LAB_CLASS", raising=False)  # class mode has its own tests (test_classroom.py)
    assert serving_dtype() == "auto"
    for written, meant in (("bf16", "bfloat16"), ("BFloat16", "bfloat16"), ("fp32", "float32"), ("fp16", "float16")):
        monkeypatch.setenv("LAB_SERVE_DTYPE", written)
        assert serving_dtype() == meant
    monkeypatch.setenv("LAB_SERVE_DTYPE", "int3")
    with pytest.raises(ModelError, match="LAB_SERVE_DTYPE='int3'"):
        serving_dtype()
