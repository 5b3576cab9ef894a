"""Fine-tuning data: read uploads in any accepted format, validate every line, normalise to chat messages,
compute statistics, split and save named datasets in the workspace.

Submodules: `formats` (bytes -> records, detection), `convert` (alpaca / ShareGPT / question-answer records
to chat with `datasets`), `tools` (tool calls, tool lists, content parts), `placeholders` (`{{name}}` found and
filled), `saved` (folders saved by `datasets`, hub dataset ids), `validate` (the chat checks and the Report),
`stats` (token statistics, estimate, histogram, preview), `store` (split, save, load, hash, sample domain).
This package knows nothing about gradio or training; documents for RAG are lab.corpus.
"""

from __future__ import annotations

from lab.data.formats import Issue
from lab.data.store import (
    DataError,
    dataset_hash,
    dataset_meta,
    ensure_sample_domain,
    examples_hash,
    explain,
    list_datasets,
    load_split,
    save_dataset,
    split_examples,
    validate_file,
)
from lab.data.validate import Report, validate_bytes

__all__ = [
    "DataError",
    "Issue",
    "Report",
    "dataset_hash",
    "dataset_meta",
    "ensure_sample_domain",
    "examples_hash",
    "explain",
    "list_datasets",
    "load_split",
    "save_dataset",
    "split_examples",
    "validate_bytes",
    "validate_file",
]
