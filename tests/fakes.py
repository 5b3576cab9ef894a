"""Shared fakes and small builders for tests: a scripted contestant and its eval set, training datasets and
settings, a tiny random Llama with token rows to pack, and a polling wait. Tests import these from here, never
from another test file."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable

from lab.config import GenConfig, TrainConfig
from lab.data.evalset import EvalItem
from lab.generation import Answer

JOB_FACTS = [("What colour is the Zorblat valve?", "It is teal."), ("Who oils the Frell pump?", "Ada Brink.")]
TRAIN_FACTS = [
    ("What colour is the Zorblat valve?", "The Zorblat valve is teal."),
    ("Who inspects the Quinx rotor?", "Mira Castell inspects the Quinx rotor."),
    ("How often is the Frell pump oiled?", "Every 41 days."),
    ("What torque does the Vemo bolt take?", "The Vemo bolt takes 87 Nm."),
]


class Scripted:
    """A fake contestant: answers from a dict, with one fake passage."""

    def __init__(self, name: str, answers: dict[str, str]):
        self.name, self.answers, self.calls = name, answers, 0

    def answer(self, question: str, gen: GenConfig) -> Answer:
        return self.answer_many([question], gen)[0]

    def answer_many(self, questions: list[str], gen: GenConfig) -> list[Answer]:
        self.calls += 1
        passage = {"text": "the valve is blue", "source": "docs/a.md", "score": 0.8}
        return [Answer(self.answers.get(q, "I don't know."), [passage], 0.5, 10, 4, self.name) for q in questions]


def eval_items() -> list[EvalItem]:
    """Eight answerable questions ("colour i?", reference "blue") and four unanswerable ones ("price i?")."""
    qs = [EvalItem(f"q{i}", f"colour {i}?", "blue", ["navy"], "a.md", True, "taught") for i in range(8)]
    return qs + [EvalItem(f"u{i}", f"price {i}?", "I don't know", [], None, False, "unanswerable") for i in range(4)]


def write_facts(path, n: int = 16, facts=JOB_FACTS):
    """A chat-format JSONL dataset of `n` rows cycling through `facts`."""
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in facts]
    path.write_text("\n".join(json.dumps(rows[i % len(rows)]) for i in range(n)) + "\n", encoding="utf-8")
    return path


def train_settings(tmp_path, name: str, **extra) -> TrainConfig:
    """A few-step training config on JOB_FACTS (for jobs started as child processes)."""
    base = dict(name=name, dataset=str(write_facts(tmp_path / "facts.jsonl")), batch_size=2, max_length=64,
                logging_steps=1, save_steps=100, warmup_ratio=0.0)  # fmt: skip
    return TrainConfig(**{**base, **extra})


def new_run(ws, tmp_path, name: str, **settings):
    """A run folder holding only its config.json (TRAIN_FACTS data), for the in-process training engine."""
    run_dir = ws.dir("runs", name)
    run_dir.mkdir(parents=True)
    data = str(write_facts(tmp_path / "facts.jsonl", facts=TRAIN_FACTS))
    base = dict(name=name, dataset=data, batch_size=4, max_length=64, learning_rate=2e-3, warmup_ratio=0.0,
                scheduler="constant", logging_steps=1, save_steps=100)  # fmt: skip
    TrainConfig(**{**base, **settings}).save(run_dir / "config.json")
    return run_dir


def tiny_llama(seed: int = 0):
    """A randomly initialised two-layer Llama (vocabulary 96): built, not loaded."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)  # fmt: skip
    assert config.use_cache  # as in SmolLM2, Qwen2.5 and Phi-3: the case that lost the packed mask
    return LlamaForCausalLM(config).eval()


def token_rows():
    """Three tokenised rows (lengths 11, 7, 9) whose first three tokens are prompt (label -100)."""
    rng = random.Random(0)
    rows = []
    for n in (11, 7, 9):
        ids = [rng.randrange(1, 96) for _ in range(n)]
        labels = [-100] * 3 + ids[3:]  # a prompt, then the answer
        rows.append({"input_ids": ids, "labels": labels, "length": n})
    return rows


def wait_for(predicate, timeout: float = 240, what: str = "condition"):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class RuleResponder:
    """A fake contestant: `rule(question) -> text` answers every question; counts its calls and remembers its id."""

    def __init__(self, name: str, rule: Callable[[str], str]):
        self.name, self.rule, self.calls = name, rule, 0

    def answer(self, question: str, gen: GenConfig) -> Answer:
        return self.answer_many([question], gen)[0]

    def answer_many(self, questions: list[str], gen: GenConfig) -> list[Answer]:
        self.calls += 1
        return [Answer(self.rule(q), [], 0.1, 10, 4, self.name) for q in questions]


class FakeGenerate:
    """A batched generate function for `lab.generation.batcher.Batcher`: answers each item with `f"{item}!"`
    after `seconds`, records every batch it was given, and raises `fail_on`'s error for a batch holding that item.
    `gate`, when set, holds every batch until it is released (so a test can queue requests behind a running one)."""

    def __init__(self, seconds: float = 0.0, fail_on: object = None, gate: threading.Event | None = None):
        self.seconds, self.fail_on, self.gate = seconds, fail_on, gate
        self.batches: list[list] = []
        self.started = threading.Event()

    def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.seconds)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError(f"generation failed on {self.fail_on!r}")
        return [f"{item}!" for item in items]


class FakeStepper:
    """A stepper for `lab.generation.batcher.StepBatcher`: an item `(name, steps)` ends after `steps` calls of
    `step` (0: at once when it joins) with the result `f"{name}!"`. Records the names of every join and the number
    of live rows at every step; raises on any step while an item named `fail_on` is live. Each step takes
    `seconds`."""

    def __init__(self, seconds: float = 0.01, fail_on: object = None):
        self.seconds, self.fail_on = seconds, fail_on
        self.joins: list[list] = []
        self.live_per_step: list[int] = []
        self.live: dict = {}

    def __len__(self) -> int:
        return len(self.live)

    def add(self, pairs: list) -> list:
        self.joins.append([item[0] for _, item in pairs])
        done = []
        for ticket, (name, steps) in pairs:
            if steps <= 0:
                done.append((ticket, f"{name}!"))
            else:
                self.live[ticket] = [name, steps]
        return done

    def step(self) -> list:
        self.live_per_step.append(len(self.live))
        time.sleep(self.seconds)
        if any(name == self.fail_on for name, _ in self.live.values()):
            raise RuntimeError(f"decoding failed with {self.fail_on!r} live")
        done = []
        for ticket, row in list(self.live.items()):
            row[1] -= 1
            if row[1] <= 0:
                done.append((ticket, f"{row[0]}!"))
                del self.live[ticket]
        return done


class ScriptedTrainer:
    """A fake learning-curve trainer: records each config it is asked to train, writes the run's config and adapter
    config (so the run counts as finished), and returns "cancelled" from the call numbered `cancel_at` (1-based)."""

    def __init__(self, cancel_at: int | None = None):
        self.configs: list[TrainConfig] = []
        self.cancel_at = cancel_at

    def __call__(self, ws, config: TrainConfig, should_stop, report) -> str:
        self.configs.append(config)
        if self.cancel_at == len(self.configs):
            return "cancelled"
        adapter = ws.dir("runs", config.name) / "adapter"
        adapter.mkdir(parents=True, exist_ok=True)
        (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
        config.save(ws.dir("runs", config.name) / "config.json")
        report(1.0, "trained")
        return "finished"


class ScriptedEvaluator:
    """A fake learning-curve evaluator: contestant label -> how many of the questions (the first ones) it gets
    right; the rest are answered "I don't know.". Scored as the lab scores, rows named by the label. Records the
    (spec, label) pairs it was asked."""

    def __init__(self, right: dict[str, int]):
        self.right, self.asked = right, []

    def __call__(self, spec, label, items, gen, should_stop, progress):
        from lab.arena.scoring import question_row

        self.asked.append((spec, label))
        n = self.right.get(label, 0)
        rows = [question_row(it, Answer(it.answer if i < n else "I don't know.", [], 0.1, 10, 4, label), label)
                for i, it in enumerate(items)]  # fmt: skip
        progress(len(items), len(items), f"{label}: {len(items)}/{len(items)}")
        return rows


class QuestionWriter:
    """A scripted generator for question generation, a `complete(prompt) -> text`: asked for questions about a text
    (LlamaIndex's question prompt holds the chunk), it writes the lines `questions[key]` of the first key found in
    the prompt; asked to answer (the prompt ends "Question: ...\\nAnswer: "), it replies `answers[question]`. Records
    every prompt."""

    def __init__(self, questions: dict[str, list[str]], answers: dict[str, str]):
        self.questions, self.answers, self.prompts = questions, answers, []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if "\nQuestion: " in prompt:
            asked = prompt.rsplit("\nQuestion: ", 1)[1].split("\nAnswer:")[0].strip()
            return self.answers.get(asked, "I am not sure.")
        return "\n".join(next((lines for key, lines in self.questions.items() if key in prompt), []))


class WordCountEmbedder:
    """An embedder for building an index without a model: vectors of letter counts, L2-normalised."""

    name, dims, max_tokens = "fake", 26, 0

    def tokenize(self, text):
        return text.split()

    def embed(self, texts, on_batch=None):
        import numpy as np

        out = np.ones((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1.0
        if on_batch:
            on_batch(len(texts), len(texts))
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class MemoEmbedderSpy(WordCountEmbedder):
    """A `WordCountEmbedder` with a shared memory like `SentenceEmbedder.embed_memo`, counting the texts it had to
    encode (`encoded`)."""

    def __init__(self):
        self.memo: dict[str, object] = {}
        self.encoded: list[str] = []

    def embed_memo(self, texts):
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            self.encoded += missing
            self.memo.update(zip(missing, self.embed(missing), strict=True))
        return np.stack([self.memo[t] for t in texts])
