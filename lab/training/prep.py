"""Turn chat examples into training tensors: token ids, an assistant-only label mask, length-grouped batches.

Owns: reading a run's examples (through `lab.data`), rendering them with the tokenizer's chat template,
masking everything but assistant turns (templates such as SmolLM2's have no `{% generation %}` markers, so
the mask is built from the rendered text's character spans), and the padding collator.
Must not load models or know about processes.
"""

from __future__ import annotations

from lab.errors import LabError

IGNORE = -100


def load_examples(ws, dataset: str, split: str = "train") -> list[dict]:
    """Validated examples of a saved dataset or a chat file (lab.data raises DataError naming the problem)."""
    from lab.data import load_split

    return load_split(ws, dataset, split=split)


def _render(tok, messages: list[dict], generation_prompt: bool = False, tools: list | None = None) -> str:
    from lab.data.tools import for_template

    clean, tools = for_template(messages, tools, tok)  # calls, tools and reasoning reach the template; weights not
    extra = {"tools": tools} if tools else {}
    try:
        return tok.apply_chat_template(clean, tokenize=False, add_generation_prompt=generation_prompt, **extra)
    except Exception as exc:  # noqa: BLE001 - jinja's TemplateError (raise_exception in the template), and others
        folded = _fold_system(clean)
        if folded is None:
            raise LabError(f"the model's chat template refuses this conversation: {exc}; check the roles") from exc
    try:
        return tok.apply_chat_template(folded, tokenize=False, add_generation_prompt=generation_prompt, **extra)
    except Exception as again:  # noqa: BLE001
        raise LabError(f"the model's chat template refuses this conversation: {again}; check the roles") from again


def _fold_system(messages: list[dict]) -> list[dict] | None:
    """The conversation with its system message put at the start of the first user turn (for templates with no
    system role, such as Gemma's), or None when there is no system message to fold."""
    if not messages or messages[0]["role"] != "system":
        return None
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        return [{**rest[0], "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return rest


def _prefix_of(tok, through: str, text: str) -> str:
    """`through` (a conversation rendered up to a turn), less a trailing eos token when only that keeps it a prefix
    of `text`: templates such as Phi-3's end a conversation rendered without a generation prompt with eos, which the
    whole conversation has only at its very end. An eos that is the end-of-turn token itself (Llama-3) stays."""
    eos = tok.eos_token or ""
    if eos and not text.startswith(through) and through.endswith(eos):
        return through[: -len(eos)]
    return through


def assistant_spans(tok, messages: list[dict], tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the (start, end) character spans of trainable assistant turns.

    A span runs from the end of the generation prompt before an assistant turn to the end of that turn (its
    end-of-turn token included, so the model learns to stop; after the last turn, also the eos that templates such
    as Phi-3's close a conversation with). Turns with `weight: 0` are skipped; an assistant turn's tool calls are
    part of it, tool results are not. `tools` (the example's tool schemas) go to the template.
    """
    text = _render(tok, messages, tools=tools)
    spans = []
    for i, msg in enumerate(messages):
        if msg.get("role") != "assistant" or msg.get("weight", 1) == 0:
            continue
        before = _render(tok, messages[:i], generation_prompt=True, tools=tools) if i else ""
        through = _prefix_of(tok, _render(tok, messages[: i + 1], tools=tools), text)
        if not (text.startswith(before) and text.startswith(through)):
            raise LabError("the chat template does not render turns as prefixes; use assistant_only_loss=False")
        spans.append((len(before), len(through)))
    return text, spans


def encode(tok, messages: list[dict], max_length: int, assistant_only: bool = True, tools: list | None = None) -> dict:
    """{"input_ids", "labels", "length"} for one conversation, truncated to max_length tokens."""
    text, spans = assistant_spans(tok, messages, tools)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    if assistant_only:
        labels = [
            tid if any(s <= start < e for s, e in spans) else IGNORE
            for tid, (start, _end) in zip(ids, enc["offset_mapping"], strict=True)
        ]
    else:
        labels = list(ids)
    return {"input_ids": ids, "labels": labels, "length": len(ids)}


def encode_all(tok, examples: list[dict], max_length: int, assistant_only: bool = True) -> list[dict]:
    """Encode every example; drops those left with no trainable token (e.g. truncated away), never silently."""
    rows = [encode(tok, ex["messages"], max_length, assistant_only, ex.get("tools")) for ex in examples]
    kept = [r for r in rows if any(label != IGNORE for label in r["labels"][1:])]
    if not kept:
        raise LabError(f"no example has an assistant token within max_length={max_length}: raise max_length")
    return kept


def pack(rows: list[dict], max_length: int) -> list[dict]:
    """First-fit-decreasing bins of whole examples up to max_length tokens; position ids restart per example,
    which transformers turns into a block-diagonal attention mask (no attention across examples)."""
    bins: list[dict] = []
    for row in sorted(rows, key=lambda r: -r["length"]):
        home = next((b for b in bins if b["length"] + row["length"] <= max_length), None)
        if home is None:
            home = {"input_ids": [], "labels": [], "position_ids": [], "length": 0}
            bins.append(home)
        home["input_ids"] += row["input_ids"]
        home["labels"] += row["labels"]
        home["position_ids"] += list(range(row["length"]))
        home["length"] += row["length"]
    return bins


class PadCollator:
    """Pads a batch to its own longest example (rounded up to a multiple of 8) on the right; `n_tokens` is the
    batch's count of real (unpadded) tokens, a plain int."""

    def __init__(self, pad_id: int, multiple: int = 8):
        self.pad_id = pad_id
        self.multiple = multiple

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        longest = max(len(r["input_ids"]) for r in rows)
        width = -(-longest // self.multiple) * self.multiple
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        packed = "position_ids" in rows[0]
        positions = torch.arange(width).repeat(len(rows), 1)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
            if packed:  # padding becomes one more (ignored) segment
                positions[i, :n] = torch.tensor(r["position_ids"])
                positions[i, n:] = torch.arange(width - n)
        # n_tokens: the batch's real tokens, counted here on the host so the trainer needs no device sync for it
        out = {
            "input_ids": ids,
            "labels": labels,
            "attention_mask": mask,
            "n_tokens": sum(len(r["input_ids"]) for r in rows),
        }
        if packed:
            out["position_ids"] = positions
        return out
