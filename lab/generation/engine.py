"""Batched and streamed generation with a transformers model, and `ModelResponder`, the real contestant.

Owns: turning chat messages into text with one model (left padding, one forward pass per batch, greedy when
temperature is 0), streaming one answer token by token, and the responder that optionally retrieves passages
first (RAG) and abstains when retrieval finds nothing relevant, and the abstention by probability for passage
readers (`idk_decision`: decided inside generation when streaming; in batches recorded with the answer it rules
out and applied afterwards, so an evaluation can re-decide at any threshold), and answers from many callers in one
shared batch (`Row`, `generate_rows`, `batcher_for`: rows of one base model with their own adapter, abstention flag
and growing text). Must not: load models itself (callers pass them from the ModelCache, which also keeps the shared
batchers), know about contestant names' syntax, votes or scoring.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from lab.config import GenConfig
from lab.generation import IDK, Answer, arena_rag_messages, plain_messages, supported
from lab.generation.batcher import Batcher, StepBatcher, continuous, max_batch, window_s
from lab.generation.batchers import BATCHERS
from lab.generation.focus import MemoEmbedder, warm


def _gen_kwargs(tok, gen: GenConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": gen.max_new_tokens, "pad_token_id": tok.pad_token_id}
    if gen.temperature > 0:
        kwargs |= {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p}
    else:
        kwargs |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return kwargs


def idk_decision(tok, threshold: float, begin: int, record: list | None = None, rows: list[bool] | None = None):
    """A logits processor that makes the first generated token decide between abstaining and answering by the
    model's own probability: when the first token of "I don't know." gets more than `threshold` of it, the row is
    forced to exactly "I don't know." and ends; otherwise that token is ruled out and the row answers. Greedy
    decoding alone takes the argmax, so one abstention token beats an answer whose probability is spread over
    many first tokens (a model trained with "I don't know" targets then abstains far more often than it believes
    it should). `begin` is the prompt width (left-padded batches share it). With `record`, each row's
    probability of that first token is appended to it (in batch order). With `rows` (one flag per row), only the
    flagged rows decide; the others generate untouched (a batch mixing passage readers and plain answers)."""
    import torch
    from transformers import LogitsProcessor

    ids = tok(IDK + ".", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    active = None if rows is None else torch.tensor(rows, dtype=torch.bool)

    class IdkDecision(LogitsProcessor):
        forced = None  # rows that abstain, decided at the first position

        def __call__(self, input_ids, scores):
            step = input_ids.shape[1] - begin
            if step == 0:
                p_idk = torch.softmax(scores.float(), -1)[:, ids[0]]
                if record is not None:
                    record.extend(float(x) for x in p_idk)
                on = torch.ones_like(p_idk, dtype=torch.bool) if active is None else active.to(p_idk.device)
                self.forced = (p_idk > threshold) & on
                scores[on & ~self.forced, ids[0]] = -float("inf")
            if self.forced is None or step >= len(ids) or not bool(self.forced.any()):
                return scores
            scores[self.forced] = -float("inf")
            scores[self.forced, ids[step]] = 0.0
            return scores

    return IdkDecision()


def _decide(tok, gen: GenConfig, enc, decide_idk: bool | list[bool], record: list | None = None) -> dict[str, Any]:
    """The abstention decision for one generate call (`decide_idk`: for every row, or one flag per row); with
    `record`, no row is forced (every row answers with the abstention token ruled out) and the probabilities go to
    `record`: the caller decides afterwards."""
    rows = list(decide_idk) if isinstance(decide_idk, list) else None
    if not (any(rows) if rows is not None else decide_idk) or gen.idk_above <= 0:
        return {}
    threshold = float("inf") if record is not None else gen.idk_above
    width, rows = int(enc["input_ids"].shape[1]), None if rows is None or all(rows) else rows
    return {"logits_processor": [idk_decision(tok, threshold, width, record, rows)]}


def _prompt_text(tok, messages: list[dict[str, str]]) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _encode(tok, texts: list[str], device):
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    return {k: v.to(device) for k, v in enc.items()}


def generate_batch(
    model,
    tok,
    conversations: list[list[dict[str, str]]],
    gen: GenConfig,
    decide_idk: bool | list[bool] = False,
    idk_probs: list | None = None,
    adapter_names: list[str] | None = None,
    on_text: list[Callable[[str], None] | None] | None = None,
) -> list[tuple[str, int, int]]:
    """Answer many conversations, `gen.batch_size` at a time; returns (text, prompt_tokens, completion_tokens).

    Prompts are sorted by length so each batch pads little; results come back in the input order. With
    `decide_idk` (True, or one flag per conversation) and `gen.idk_above`, abstaining is decided by probability
    (`idk_decision`) in the rows it flags. Given a list as
    `idk_probs` (and `decide_idk`), nothing is forced: every row answers with "I don't know" ruled out and
    `idk_probs` is filled, in input order, with each row's probability of abstaining, so the caller can decide
    for any threshold (the answer of a row not over it is the same as with the decision inside). With
    `adapter_names` (one per conversation, "__base__" for none) and a model over a shared base
    (`lab.shared_base.SharedBase` or `Generator`), each row answers with its own adapter in the same batch. With
    `on_text` (one callable or None per conversation), each row's text so far is passed to its callable after
    every generated token, while the batch runs.
    """
    import torch

    texts = [_prompt_text(tok, c) for c in conversations]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results: list[tuple[str, int, int]] = [("", 0, 0)] * len(texts)
    probs: list[float | None] = [None] * len(texts)
    for start in range(0, len(order), gen.batch_size):
        idx = order[start : start + gen.batch_size]
        enc = _encode(tok, [texts[i] for i in idx], model.device)
        record = [] if idk_probs is not None else None
        rows = {"adapter_names": [adapter_names[i] for i in idx]} if adapter_names else {}
        decide = [decide_idk[i] for i in idx] if isinstance(decide_idk, list) else decide_idk
        if on_text and any(on_text[i] for i in idx):
            rows["streamer"] = _RowStreamer(tok, [on_text[i] for i in idx])
        with torch.inference_mode():
            out = model.generate(**enc, **_gen_kwargs(tok, gen), **_decide(tok, gen, enc, decide, record), **rows)
        width = enc["input_ids"].shape[1]
        for row, p_idk in enumerate(record or []):
            probs[idx[row]] = p_idk
        for row, i in enumerate(idx):
            new = out[row, width:]
            new = new[new != tok.pad_token_id] if tok.pad_token_id != tok.eos_token_id else _until_eos(new, tok)
            prompt_len = int(enc["attention_mask"][row].sum())
            results[i] = (tok.decode(new, skip_special_tokens=True).strip(), prompt_len, int(new.numel()))
    if idk_probs is not None:
        idk_probs[:] = probs
    return results


class _RowStreamer:
    """A streamer for a batch (transformers' `BaseStreamer` protocol: `put`, `end`): after every step, each row's
    text so far goes to its own callable (None: that row is not followed). Rows stop at their end token."""

    def __init__(self, tok, callbacks: list[Callable[[str], None] | None]):
        self.tok, self.callbacks = tok, callbacks
        self.ids: list[list[int]] = [[] for _ in callbacks]
        self.stopped = [cb is None for cb in callbacks]
        self.ends = {tok.eos_token_id, tok.pad_token_id} - {None}

    def put(self, value) -> None:
        if value.dim() > 1:  # the prompt, sent once before the first step
            return
        for row, token in enumerate(value.tolist()):
            if self.stopped[row]:
                continue
            if token in self.ends:
                self.stopped[row] = True
                continue
            self.ids[row].append(token)
            self.callbacks[row](self.tok.decode(self.ids[row], skip_special_tokens=True).strip())

    def end(self) -> None:
        pass


def _until_eos(ids, tok):
    """Generated ids up to (not including) the first end-of-sequence token."""
    hits = (ids == tok.eos_token_id).nonzero()
    return ids[: int(hits[0])] if len(hits) else ids


def stream_generate(
    model, tok, messages: list[dict[str, str]], gen: GenConfig, decide_idk: bool = False
) -> Iterator[tuple[str, int, int]]:
    """Yield (text so far, prompt_tokens, completion_tokens) while one answer is generated."""
    import torch
    from transformers import TextIteratorStreamer

    enc = _encode(tok, [_prompt_text(tok, messages)], model.device)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=300)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.inference_mode():
                model.generate(**enc, **_gen_kwargs(tok, gen), **_decide(tok, gen, enc, decide_idk), streamer=streamer)
        except BaseException as exc:  # surfaced in the caller's thread below
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    text, prompt_len = "", int(enc["input_ids"].shape[1])
    for piece in streamer:
        text += piece
        yield text.strip(), prompt_len, len(tok(text, add_special_tokens=False)["input_ids"])
    thread.join()
    if errors:
        raise errors[0]


@dataclass
class Row:
    """One answer to generate in a shared batch: its model (a `lab.shared_base.Generator`, or any model), tokenizer,
    prompt, settings, whether it decides abstention by probability, and who follows its text as it grows."""

    model: Any
    tok: Any
    messages: list[dict[str, str]]
    gen: GenConfig
    decide_idk: bool = False
    on_text: Callable[[str], None] | None = None

    def key(self) -> Hashable:
        """Rows with equal keys can share one generate call: same base model, tokenizer and decoding settings."""
        g = self.gen
        return (id(_base(self.model)), id(self.tok), g.max_new_tokens, g.temperature, g.top_p, g.idk_above)


def _base(model):
    """The object that generates: a Generator's shared base (so adapters of one base share batches), else the model."""
    return getattr(model, "shared", model)


def generate_rows(rows: list[Row]) -> list[tuple[str, int, int]]:
    """Generate rows with one key (`Row.key`), each with its own adapter and its own abstention flag; returns
    (text, prompt_tokens, completion_tokens) per row, in order. Rows of similar prompt length run in one generate
    call (`length_groups`): padding a short prompt to a long one would cost more than a second call."""
    tok = rows[0].tok
    widths = [len(tok(_prompt_text(tok, r.messages), add_special_tokens=False)["input_ids"]) for r in rows]
    results: list[tuple[str, int, int]] = [("", 0, 0)] * len(rows)
    for group in length_groups(widths):
        for i, out in zip(group, _generate_group([rows[i] for i in group]), strict=True):
            results[i] = out
    return results


def length_groups(widths: list[int], ratio: float = 1.5, slack: int = 32) -> list[list[int]]:
    """Indices grouped by prompt width, shortest first: a group's longest prompt is at most `ratio` times its
    shortest plus `slack` tokens."""
    groups: list[list[int]] = []
    for i in sorted(range(len(widths)), key=widths.__getitem__):
        if groups and widths[i] <= ratio * widths[groups[-1][0]] + slack:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _generate_group(rows: list[Row]) -> list[tuple[str, int, int]]:
    first = rows[0]
    adapters = [r.model.name for r in rows] if hasattr(first.model, "shared") else None
    gen = replace(first.gen, batch_size=len(rows))
    convs, decide = [r.messages for r in rows], [r.decide_idk for r in rows]
    on_text = [r.on_text for r in rows]
    return generate_batch(_base(first.model), first.tok, convs, gen, decide, adapter_names=adapters, on_text=on_text)


def batcher_for(model) -> Batcher:
    """The one batcher in front of `model`'s base (`BATCHERS`, keyed by the base; LAB_BATCH_SIZE rows at most,
    waiting LAB_BATCH_WINDOW_MS for company). Where the base allows it (`stepper.supports`) and LAB_BATCH_MODE is not
    "whole", rows decode step by step and join or leave between steps (`StepBatcher`); otherwise each batch runs
    `generate_rows` to its end. Its rows carry their model; the batcher holds none (the stepper, only while rows
    are live)."""
    from lab.generation import stepper

    base, size, window, steps = _base(model), max_batch(), window_s(), continuous()

    def make() -> Batcher:
        if steps and stepper.supports(base):
            ref = weakref.ref(base)  # the registry holds bases weakly: its batchers must not keep them alive
            return StepBatcher(lambda: stepper.Stepper(ref()), size, window)
        return Batcher(generate_rows, size, window)

    return BATCHERS.get(base, size, window, make, "steps" if steps else "whole")


class ModelResponder:
    """A model (base or with an adapter), optionally with a retriever in front of it (RAG).

    `retriever` has `retrieve(question, top_k=None) -> list[Passage]` (and maybe `retrieve_many`). When the
    best passage scores below `gen.abstain_below`, the answer is "I don't know" without generating.
    """

    def __init__(self, name: str, model, tokenizer, retriever=None):
        self.name, self.model, self.tok, self.retriever = name, model, tokenizer, retriever
        embedder = getattr(retriever, "embedder", None)
        self.embedder = MemoEmbedder(embedder) if embedder is not None else None  # focus re-sees the same chunks

    def _retrieve(self, questions: list[str], gen: GenConfig) -> list[list[Any]]:
        if self.retriever is None:
            return [[] for _ in questions]
        top_k = gen.top_k or None
        many = getattr(self.retriever, "retrieve_many", None)
        if many is not None:
            return list(many(questions, top_k=top_k))
        return [list(self.retriever.retrieve(q, top_k=top_k)) for q in questions]

    def _abstains(self, passages: list[Any], gen: GenConfig) -> bool:
        if self.retriever is None:
            return False
        best = max((float(getattr(p, "score", 0.0) or 0.0) for p in passages), default=None)
        return best is None or best < gen.abstain_below

    def _messages(self, question: str, passages: list[Any], gen: GenConfig) -> list[dict[str, str]]:
        if self.retriever is None:
            return plain_messages(question)
        return arena_rag_messages(question, passages, gen, self.embedder)

    def _supported(self, answer: Answer, gen: GenConfig) -> Answer:
        """RAG answers whose content words are mostly absent from the passages become "I don't know"."""
        if self.retriever is None or supported(answer.text, answer.passages, gen):
            return answer
        return replace(answer, text=IDK + ".", draft=answer.text)

    def answer(self, question: str, gen: GenConfig) -> Answer:
        return self.answer_many([question], gen)[0]

    def answer_many(self, questions: list[str], gen: GenConfig) -> list[Answer]:
        start = time.perf_counter()
        all_passages = self._retrieve(questions, gen)
        retrieval_s = (time.perf_counter() - start) / max(1, len(questions))
        todo = [i for i, p in enumerate(all_passages) if not self._abstains(p, gen)]
        if gen.focus_sentences > 0 and self.embedder is not None:
            warm(self.embedder, [questions[i] for i in todo], [all_passages[i] for i in todo])
        answers = [Answer(IDK + ".", p, retrieval_s, system=self.name) for p in all_passages]
        for begin in range(0, len(todo), gen.batch_size):
            chunk = todo[begin : begin + gen.batch_size]
            t0 = time.perf_counter()
            convs = [self._messages(questions[i], all_passages[i], gen) for i in chunk]
            probs: list = []
            rag = self.retriever is not None
            outs = generate_batch(self.model, self.tok, convs, gen, decide_idk=rag, idk_probs=probs if rag else None)
            per_q = (time.perf_counter() - t0) / len(chunk)  # amortised share of the batch's wall time
            for row, (i, (text, n_in, n_out)) in enumerate(zip(chunk, outs, strict=True)):
                answer = self._supported(
                    Answer(text, all_passages[i], retrieval_s + per_q, n_in, n_out, self.name), gen
                )
                answers[i] = self._decided(answer, probs[row] if probs else None, gen)
        return answers

    @staticmethod
    def _decided(answer: Answer, p_idk: float | None, gen: GenConfig) -> Answer:
        """Apply the abstention decision to an answer generated with abstaining ruled out: "I don't know." when
        `p_idk` is over `gen.idk_above` (the answer is kept as `alt`). The same text as deciding during
        generation, and any other threshold can be applied later from `p_idk` and `alt` (`idk_curve`)."""
        if p_idk is None:
            return answer
        if p_idk > gen.idk_above:
            return replace(answer, text=IDK + ".", draft="", p_idk=p_idk, alt=answer.text)
        return replace(answer, p_idk=p_idk)

    def answer_batched(
        self, question: str, gen: GenConfig, batcher: Batcher, session: str = "", on_partial=None
    ) -> Answer:
        """The answer `stream` ends with, generated in a shared batch with other callers' answers (`batcher`, a
        turn per `session`); `on_partial` gets the growing answer (done=False) after every token."""
        start = time.perf_counter()
        passages = self._retrieve([question], gen)[0]
        if self._abstains(passages, gen):
            return Answer(IDK + ".", passages, time.perf_counter() - start, system=self.name)

        def grown(text: str) -> None:
            on_partial(Answer(text, passages, time.perf_counter() - start, system=self.name, done=False))

        messages, rag = self._messages(question, passages, gen), self.retriever is not None
        row = Row(self.model, self.tok, messages, gen, rag, grown if on_partial else None)
        text, n_in, n_out = batcher.submit(row, row.key(), session)
        return self._supported(Answer(text, passages, time.perf_counter() - start, n_in, n_out, self.name), gen)

    def stream(self, question: str, gen: GenConfig) -> Iterator[Answer]:
        start = time.perf_counter()
        passages = self._retrieve([question], gen)[0]
        if self._abstains(passages, gen):
            yield Answer(IDK + ".", passages, time.perf_counter() - start, system=self.name)
            return
        text, n_in, n_out = "", 0, 0
        messages, rag = self._messages(question, passages, gen), self.retriever is not None
        for text, n_in, n_out in stream_generate(self.model, self.tok, messages, gen, decide_idk=rag):
            yield Answer(text, passages, time.perf_counter() - start, n_in, n_out, self.name, done=False)
        yield self._supported(Answer(text, passages, time.perf_counter() - start, n_in, n_out, self.name), gen)
