"""Statistics of validated chat examples: token / message / assistant-token distributions, duplicates, the
epoch and token estimate, a histogram figure, a chat-template preview with the trained tokens marked, and the
system prompt a chat template adds by itself (`template_default_system`).

Token counts use the caller's tokenizer (the chosen model's) on the chat-template rendering, in batches so
50,000 examples take seconds. Distributions report min, p10, median, p90, max and mean (really p10 / p90,
unlike the checklist this follows). Pure functions of their inputs; matplotlib is imported only for the figure.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from lab.data import tools

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_EPOCHS, MAX_EPOCHS = 1, 25
BATCH = 2048


def trained_turns(example: dict) -> list[dict]:
    """Assistant messages that are trained on (weight missing or 1)."""
    return [m for m in example["messages"] if m["role"] == "assistant" and m.get("weight", 1) != 0]


def example_key(example: dict) -> str:
    return hashlib.sha256(json.dumps(example, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def duplicate_lines(examples: list[dict], lines: list[int]) -> list[int]:
    """Lines of examples that repeat an earlier one exactly."""
    seen: set[str] = set()
    dups = []
    for example, line in zip(examples, lines, strict=True):
        key = example_key(example)
        if key in seen:
            dups.append(line)
        seen.add(key)
    return dups


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted list (numpy's default method)."""
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def distribution(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)
    out = {"min": s[0], "p10": quantile(s, 0.1), "median": quantile(s, 0.5), "p90": quantile(s, 0.9), "max": s[-1]}
    out["mean"] = sum(s) / len(s)
    return {k: round(v, 1) for k, v in out.items()}


def epoch_estimate(lengths: list[int], max_length: int) -> dict[str, int]:
    """Epochs and billed tokens: 3 epochs, raised so examples x epochs >= 100 (at most 25), lowered so it is
    <= 25,000 (at least 1); tokens per epoch = sum(min(max_length, length)). Uses ceil where the checklist's
    floor division left examples x epochs under 100 (30 examples: 4 epochs, not 3)."""
    n = len(lengths)
    epochs = TARGET_EPOCHS
    if n * epochs < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / n))
    elif n * epochs > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_EPOCHS, MAX_TARGET_EXAMPLES // n)
    per_epoch = sum(min(max_length, t) for t in lengths)
    return {"epochs": epochs, "tokens_per_epoch": per_epoch, "total_tokens": per_epoch * epochs}


def render(example: dict, tokenizer) -> str:
    """The example as the model sees it in training (its chat template), or plain 'role: content' lines."""
    try:
        messages, listed = tools.for_template(example["messages"], example.get("tools"), tokenizer)
        return tokenizer.apply_chat_template(messages, tools=listed, tokenize=False)
    except Exception:
        return "\n".join(f"{m['role']}: {m['content']}" for m in example["messages"])


SENTINEL = "\u2063SYSTEM-PROMPT-PROBE\u2063"


def template_default_system(example: dict, tokenizer) -> str:
    """The system prompt the chat template inserts when `example` has none ("" when it adds none).

    Found without knowing the template: render the example once with a sentinel system message and once without;
    when the template fills the sentinel's place with its own text, that text is the default."""
    messages = example.get("messages") or []
    if not messages or any(m.get("role") == "system" for m in messages):
        return ""
    plain = render(example, tokenizer)
    probe = render({**example, "messages": [{"role": "system", "content": SENTINEL}, *messages]}, tokenizer)
    if SENTINEL not in probe:
        return ""
    before, after = probe.split(SENTINEL, 1)
    if plain.startswith(before) and plain.endswith(after) and len(plain) > len(before) + len(after):
        return plain[len(before) : len(plain) - len(after)].strip()
    return ""


def examples_default_system(examples: list[dict], tokenizer) -> str:
    """The system prompt the chat template adds to these examples' prompts where they bring none ("" when it adds
    none, or every example has its own): probed on the first example without a system message."""
    plain = (e for e in examples if not any(m.get("role") == "system" for m in e.get("messages") or []))
    first = next(plain, None)
    return template_default_system(first, tokenizer) if first is not None else ""


def render_all(examples: list[dict], tokenizer) -> list[str]:
    """`render` for many examples: batched template calls (faster), one by one where a batch fails or has tools."""
    out: list[str | None] = [None] * len(examples)
    plain = [i for i, e in enumerate(examples) if not e.get("tools")]
    for start in range(0, len(plain), BATCH):
        chunk = plain[start : start + BATCH]
        try:
            texts = tokenizer.apply_chat_template(
                [tools.for_template(examples[i]["messages"], None, tokenizer)[0] for i in chunk], tokenize=False
            )
        except Exception:
            continue
        if isinstance(texts, list) and len(texts) == len(chunk):
            for i, text in zip(chunk, texts, strict=True):
                out[i] = text
    return [text if isinstance(text, str) else render(e, tokenizer) for text, e in zip(out, examples, strict=True)]


def _lengths(tokenizer, texts: list[str]) -> list[int]:
    """Token count of each text, in batches; uses the Rust backend's batch encoder when there is one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    encode = getattr(backend, "encode_batch_fast", None) or getattr(backend, "encode_batch", None)
    out: list[int] = []
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        if encode is not None:
            out.extend(len(enc.ids) for enc in encode(batch, add_special_tokens=False))
        else:
            out.extend(len(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"])
    return out


def token_counts(examples: list[dict], tokenizer) -> tuple[list[int], list[int]]:
    """(tokens per example through the chat template, trained assistant tokens per example)."""
    totals = _lengths(tokenizer, render_all(examples, tokenizer))
    turns = [[_trained_text(m) for m in trained_turns(e)] for e in examples]
    unique = list(dict.fromkeys(t for ts in turns for t in ts))
    counts = dict(zip(unique, _lengths(tokenizer, unique), strict=True))
    assistant = [sum(counts[t] for t in ts) for ts in turns]
    return totals, assistant


def _trained_text(message: dict) -> str:
    """An assistant turn's trained text: its content and, written out, its tool calls."""
    calls = message.get("tool_calls") or []
    return "\n".join([message["content"]] * bool(message["content"]) + [tools.call_text(c) for c in calls])


def compute(examples: list[dict], cfg, tokenizer=None) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """(summary for the report, per-example series for plots); tokens only when a tokenizer is given."""
    messages = [len(e["messages"]) for e in examples]
    summary: dict[str, Any] = {"examples": len(examples), "messages": distribution(messages)}
    series = {"messages": messages}
    if tokenizer is not None:
        totals, assistant = token_counts(examples, tokenizer)
        summary["tokens"] = distribution(totals)
        summary["assistant_tokens"] = distribution(assistant)
        summary["over_max_length"] = sum(t > cfg.max_length for t in totals)
        summary["max_length"] = cfg.max_length
        summary["estimate"] = epoch_estimate(totals, cfg.max_length)
        summary["estimate"]["trained_tokens"] = sum(assistant) * summary["estimate"]["epochs"]
        series.update(tokens=totals, assistant_tokens=assistant)
    return summary, series


def histogram_figure(series: dict[str, list[int]], max_length: int | None = None):
    """A matplotlib figure with one histogram per series (tokens, assistant tokens, messages)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in gradio's worker threads

    names = [n for n in ("tokens", "assistant_tokens", "messages") if series.get(n)]
    fig = Figure(figsize=(4.2 * max(1, len(names)), 3.0))
    axes = fig.subplots(1, max(1, len(names)), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        values = series[name]
        if name == "messages" and max(values) - min(values) <= 20:  # small integers: one bar per count
            bins = [b - 0.5 for b in range(min(values), max(values) + 2)]
            ax.set_xticks(range(min(values), max(values) + 1))
        else:
            bins = min(40, max(5, len(set(values))))
        ax.hist(values, bins=bins, color="#5b6ee1", edgecolor="white")
        ax.set_title(name.replace("_", " ") + " per example", fontsize=10)
        ax.set_ylabel("examples")
        if name == "tokens" and max_length and max(values) > max_length:
            ax.axvline(max_length, color="#d9534f", linestyle="--", label=f"max_length {max_length}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _assistant_spans(text: str, example: dict, tokenizer) -> list[tuple[int, int, str]]:
    """Character spans of each assistant message's content in the rendered text, with its label.

    The start is where the template's generation prompt for that turn ends (rendering the turns before it);
    a plain search after the previous match is the fallback for templates that do not render prefixes."""
    spans, cursor, messages = [], 0, example["messages"]
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant" or not (msg["content"] or msg.get("tool_calls")):
            continue
        label = "trained" if msg.get("weight", 1) else "not trained (weight 0)"
        start = _prefix_length(messages[:i], example, tokenizer)
        if msg.get("tool_calls"):  # the calls are rendered by the template: the span is the whole turn
            end = _prefix_length(messages[: i + 1], example, tokenizer, generation=False)
            if start is not None and end is not None and end > start:
                spans.append((start, end, label))
                cursor = end
            continue
        if start is None or not text.startswith(msg["content"], start):
            start = text.find(msg["content"], cursor)
        if start < 0:
            continue
        cursor = start + len(msg["content"])
        spans.append((start, cursor, label))
    return spans


def _prefix_length(messages: list[dict], example: dict, tokenizer, generation: bool = True) -> int | None:
    try:
        clean, listed = tools.for_template(messages, example.get("tools"), tokenizer)
        prefix = tokenizer.apply_chat_template(clean, tools=listed, tokenize=False, add_generation_prompt=generation)
    except Exception:
        return None
    return len(prefix)


def preview_segments(example: dict, tokenizer) -> list[tuple[str, str | None]]:
    """The example through the chat template as (text, label) segments: assistant tokens labelled 'trained'
    (with the end-of-turn token that follows them), weight-0 turns 'not trained (weight 0)', the rest None."""
    text = render(example, tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = _assistant_spans(text, example, tokenizer)
    special = set(tokenizer.all_special_ids)
    labels: list[str | None] = []
    for k, (start, end) in enumerate(enc["offset_mapping"]):
        label = next((lab for s, e, lab in spans if start < e and end > s), None)
        if label is None and k and labels[-1] and enc["input_ids"][k] in special:
            label = labels[-1]  # the end-of-turn token closing an assistant turn is trained too
        labels.append(label)
    return _merge(text, enc["offset_mapping"], labels)


def _merge(text: str, offsets, labels: list[str | None]) -> list[tuple[str, str | None]]:
    segments: list[tuple[str, str | None]] = []
    pos = 0
    for (_start, end), label in zip(offsets, labels, strict=True):
        end = max(end, pos)
        piece = text[pos:end]
        pos = end
        if segments and segments[-1][1] == label:
            segments[-1] = (segments[-1][0] + piece, label)
        elif piece:
            segments.append((piece, label))
    if pos < len(text):
        segments.append((text[pos:], None))
    return segments
