"""`Stepper`: answers of one base model decoded together one token per step; new answers join between steps and
finished ones leave at once (continuous batching), so nobody waits for a whole batch to end.

Boundary: the model side of continuous batching: reading new prompts (one forward pass per group of similar
length), merging their key/value cache into the running one, one forward pass per step for every live row, each
row's token choice (greedy or sampled, with its own settings and abstention decision), following a row's text as
it grows, and dropping finished rows from the cache. Queues, fairness and the worker thread are
lab/generation/batcher.py's. Used only where `supports(base)` holds; other models keep `generate_rows`.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any

# decoding settings in a model's generation config that this loop does not apply: such models use generate()
_UNPLAIN = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_repetition_penalty": (None, 1.0),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "min_new_tokens": (None, 0),
    "min_length": (None, 0),
}


def _module(base):
    """The torch module that runs forward passes: a `SharedBase`'s model (its LoRA layers read per-row names), or
    the model itself."""
    return getattr(base, "model", base) if hasattr(base, "using") else base


def supports(base) -> bool:
    """Whether rows of `base` can be decoded step by step here with the same answers as `generate`: a transformers
    causal LM whose forward takes positions, a cache and `logits_to_keep`, whose cache is a plain growing key/value
    cache in every layer (no sliding window, no quantised cache) and whose generation config adds no processor this
    loop lacks (e.g. a repetition penalty)."""
    from transformers import DynamicCache, PreTrainedModel
    from transformers.cache_utils import DynamicLayer

    module = _module(base)
    if not isinstance(module, PreTrainedModel) or getattr(module.config, "is_encoder_decoder", False):
        return False
    takes = inspect.signature(module.forward).parameters
    if not {"position_ids", "past_key_values", "logits_to_keep"} <= set(takes):  # e.g. an older remote-code model
        return False
    config = module.generation_config
    if any(getattr(config, name, None) not in plain for name, plain in _UNPLAIN.items()):
        return False
    try:
        layers = DynamicCache(config=module.config).layers
    except Exception:  # an architecture whose cache cannot be built from its config: generate() knows better
        return False
    return all(type(layer) is DynamicLayer for layer in layers)


@functools.cache
def _growing_layer_class():
    """A transformers `DynamicLayer` whose keys and values live in storage grown a chunk at a time, so a step
    writes one position instead of copying the whole cache (`torch.cat` at every step took a quarter of a decoding
    step's CPU). Keys and values set from outside (merging, dropping rows) are moved into new storage at the next
    update."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        chunk = 64
        _store: tuple | None = None  # (keys storage, values storage, the keys view handed out last)

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n, m = self.get_seq_length(), key_states.shape[-2]
            store = self._store
            if store is None or store[2] is not self.keys or store[0].shape[-2] < n + m:
                store = self._grow(n, n + m + self.chunk, key_states)
            store[0][:, :, n : n + m] = key_states
            store[1][:, :, n : n + m] = value_states
            self.keys, self.values = store[0][:, :, : n + m], store[1][:, :, : n + m]
            self._store = (store[0], store[1], self.keys)
            return self.keys, self.values

        def _grow(self, n: int, capacity: int, like) -> tuple:
            shape = (like.shape[0], like.shape[1], capacity, like.shape[3])
            keys, values = like.new_empty(shape), like.new_empty(shape)
            if n:
                keys[:, :, :n], values[:, :, :n] = self.keys, self.values
            return keys, values, None

        def pack(self, keys: list, values: list, width: int) -> None:
            """Hold `keys` and `values` (blocks of rows, stacked in order, each right-aligned in `width` positions)
            in new storage with a chunk of room: one copy of each block, where padding then concatenating then
            growing copied the cache three times."""
            store_k, self.keys = _packed(keys, width, self.chunk)
            store_v, self.values = _packed(values, width, self.chunk)
            self._store = (store_k, store_v, self.keys)

    return GrowingLayer


def _packed(blocks: list, width: int, room: int) -> tuple:
    """New storage [rows of all blocks, heads, width + room, dim] with the blocks stacked on rows, each
    right-aligned in time with zeros before it (padding positions are masked, but must hold finite numbers), and
    its view of the first `width` positions."""
    first = blocks[0]
    store = first.new_empty((sum(b.shape[0] for b in blocks), first.shape[1], width + room, first.shape[3]))
    at = 0
    for block in blocks:
        rows, start = block.shape[0], width - block.shape[2]
        store[at : at + rows, :, :start].zero_()
        store[at : at + rows, :, start:width] = block
        at += rows
    return store, store[:, :, :width]


def _runs(index: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as [start, stop) runs of consecutive rows: each run is one slice to copy."""
    runs: list[tuple[int, int]] = []
    for i in index:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


@dataclass
class _Live:
    """One row being decoded: its request, tokens so far, the position of its next token, forced tokens left."""

    ticket: Any
    row: Any  # lab.generation.engine.Row
    prompt_tokens: int
    position: int
    tokens: list[int] = field(default_factory=list)
    forced: list[int] = field(default_factory=list)
    followed: bool = True  # whether the row's follower still gets its text (until the first end token)

    @property
    def adapter(self) -> str:
        from lab.shared_base import BASE

        return getattr(self.row.model, "name", BASE)


class Stepper:
    """The live rows of one base model. `add` reads new rows' prompts and picks their first tokens; `step` runs one
    decoding step for every live row; both return the rows that ended as (ticket, (text, prompt_tokens,
    completion_tokens)), the same result `generate_rows` gives. Not thread-safe: one worker thread drives it."""

    def __init__(self, base):
        self.base, self.module = base, _module(base)
        self.live: list[_Live] = []
        self.cache = None
        self.mask = None  # [rows, cached positions]: 1 where a row has a token, 0 for padding
        self._vocab: dict[int, tuple[set[int], list[int]]] = {}  # per tokenizer: end tokens, "I don't know." ids

    def _tokens(self, tok) -> tuple[set[int], list[int]]:
        """A tokenizer's end tokens (its own and the model's generation config's) and the ids of "I don't know."."""
        from lab.generation import IDK

        if id(tok) not in self._vocab:
            config_eos = self.module.generation_config.eos_token_id
            eos = config_eos if isinstance(config_eos, list) else [config_eos]
            ends = {t for t in [*eos, tok.eos_token_id] if t is not None}
            self._vocab[id(tok)] = ends, tok(IDK + ".", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return self._vocab[id(tok)]

    def __len__(self) -> int:
        return len(self.live)

    def add(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, tuple[str, int, int]]]:
        """Read the prompts of `items` ((ticket, Row) pairs) in groups of one tokenizer and similar length, join
        them to the live rows, and return those already finished after their first token."""
        from lab.generation.engine import _prompt_text, length_groups

        done: list[tuple[Any, tuple[str, int, int]]] = []
        by_tok: dict[int, list[tuple[Any, Any]]] = {}
        for ticket, row in items:
            by_tok.setdefault(id(row.tok), []).append((ticket, row))
        for same in by_tok.values():
            tok = same[0][1].tok
            texts = [_prompt_text(tok, row.messages) for _, row in same]
            widths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
            for group in length_groups(widths):
                done += self._join(tok, [same[i] for i in group], [texts[i] for i in group])
        return done

    def step(self) -> list[tuple[Any, tuple[str, int, int]]]:
        """One new token for every live row; returns the rows that ended."""
        import torch

        if not self.live:
            return []
        ids = torch.tensor([[r.tokens[-1]] for r in self.live], device=self.module.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.live), 1)], dim=1)
        positions = torch.tensor([[r.position] for r in self.live], device=self.module.device)
        logits = self._forward(ids, self.mask, positions, self.cache, [r.adapter for r in self.live])
        for r in self.live:
            r.position += 1
        return self._choose(self.live, logits)

    def _join(self, tok, items: list[tuple[Any, Any]], texts: list[str]) -> list[tuple[Any, tuple[str, int, int]]]:
        from transformers import DynamicCache

        enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        ids, mask = enc["input_ids"].to(self.module.device), enc["attention_mask"].to(self.module.device)
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
        cache = DynamicCache(config=self.module.config)
        cache.layers = [_growing_layer_class()() for _ in cache.layers]
        new = [_Live(t, row, int(m.sum()), int(m.sum())) for (t, row), m in zip(items, mask, strict=True)]
        logits = self._forward(ids, mask, positions, cache, [r.adapter for r in new])
        self._merge(new, cache, mask)
        return self._choose(new, logits)

    def _forward(self, ids, mask, positions, cache, adapters: list[str]):
        import contextlib

        import torch

        scope = self.base.using(adapters) if hasattr(self.base, "using") else contextlib.nullcontext()
        with torch.inference_mode(), scope:
            out = self.module(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return out.logits[:, -1, :].float()

    def _merge(self, new: list[_Live], cache, mask) -> None:
        """Append the new rows' cache and mask to the live ones, left-padding the shorter side in time."""
        import torch
        import torch.nn.functional as F

        if not self.live:
            self.live, self.cache, self.mask = list(new), cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        pad_old, pad_new = width - self.mask.shape[1], width - mask.shape[1]
        for old, new_layer in zip(self.cache.layers, cache.layers, strict=True):
            old.pack([old.keys, new_layer.keys], [old.values, new_layer.values], width)
        self.mask = torch.cat([F.pad(self.mask, (pad_old, 0)), F.pad(mask, (pad_new, 0))], dim=0)
        self.live += new

    def _choose(self, rows: list[_Live], logits) -> list[tuple[Any, tuple[str, int, int]]]:
        """Each row's next token from its logits (one row of `logits` per row of `rows`); finished rows leave."""
        finished, best = [], logits.argmax(-1).tolist()  # one argmax for every greedy row
        for i, r in enumerate(rows):
            r.tokens.append(self._pick(r, logits[i], best[i]))
            self._follow(r)
            if r.tokens[-1] in self._tokens(r.row.tok)[0] or len(r.tokens) >= r.row.gen.max_new_tokens:
                finished.append(r)
        if finished:
            self._drop(finished)
        return [(r.ticket, self._result(r)) for r in finished]

    def _pick(self, r: _Live, scores, best: int) -> int:
        """The row's next token: a forced one (abstaining), else the abstention decision at the first token, else
        the argmax `best` (greedy) or a sample."""
        import torch

        if r.forced:
            return r.forced.pop(0)
        gen = r.row.gen
        deciding = not r.tokens and r.row.decide_idk and gen.idk_above > 0
        if gen.temperature <= 0 and not deciding:
            return best
        if deciding:  # abstain or answer, by the model's probability
            idk_ids = self._tokens(r.row.tok)[1]
            first = idk_ids[0]
            if float(torch.softmax(scores, -1)[first]) > gen.idk_above:
                r.forced = list(idk_ids[1:])
                return first
            scores = scores.clone()
            scores[first] = -float("inf")
        if gen.temperature <= 0:
            return int(torch.argmax(scores))
        return self._sample(scores, gen)

    def _sample(self, scores, gen) -> int:
        import torch
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        s = scores[None]
        top_k = getattr(self.module.generation_config, "top_k", None) or 50
        for warp in (TemperatureLogitsWarper(gen.temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(gen.top_p)):
            s = warp(None, s)
        return int(torch.multinomial(torch.softmax(s, -1), 1)[0, 0])

    def _follow(self, r: _Live) -> None:
        """Send the row's text so far to its follower, up to (not including) its first end token."""
        if r.row.on_text is None or not r.followed:
            return
        if r.tokens[-1] in self._tokens(r.row.tok)[0]:
            r.followed = False
            return
        r.row.on_text(r.row.tok.decode(r.tokens, skip_special_tokens=True).strip())

    def _result(self, r: _Live) -> tuple[str, int, int]:
        tok, tokens = r.row.tok, r.tokens
        if tok.pad_token_id == tok.eos_token_id and tok.eos_token_id in tokens:
            tokens = tokens[: tokens.index(tok.eos_token_id)]
        return tok.decode(tokens, skip_special_tokens=True).strip(), r.prompt_tokens, len(tokens)

    def _drop(self, finished: list[_Live]) -> None:
        """Remove finished rows from the live list, the cache and the mask; trim time columns no row uses."""
        import torch

        gone = {id(r) for r in finished}
        keep = [i for i, r in enumerate(self.live) if id(r) not in gone]
        self.live = [self.live[i] for i in keep]
        if not self.live:
            self.cache = self.mask = None
            return
        index = torch.tensor(keep, device=self.mask.device)
        used = self.mask[index].any(dim=0).nonzero()
        lead = int(used[0]) if len(used) else 0
        self.mask = self.mask[index, lead:]
        runs, width = _runs(keep), self.mask.shape[1]
        for layer in self.cache.layers:
            layer.pack([layer.keys[a:b, :, lead:] for a, b in runs], [layer.values[a:b, :, lead:] for a, b in runs],
                       width)  # fmt: skip
