"""Training throughput: our engine against TRL's SFTTrainer, same model, data and steps, in one script.

Three baselines: TRL at its defaults (what a user writes from the docs: gradient checkpointing on), and TRL tuned
as well as 1.16 allows here (pre-tokenised input with our completion-only labels, no gradient checkpointing, bf16
autocast where the CPU has bf16, float32 weights) once padding-free and once with length-grouped padded batches.
All train LoRA (r16, alpha 32, all-linear) on the embedded SmolLM2-135M, batch 8, on the first N examples of
the sample domain's data/train.jsonl. tokens/s = real (non-padding) tokens of the batches / training time,
counted the same way for every engine (a wrapper around TRL's collator; ours: the attention-mask sum).
Prints one line per engine and the ratio ours / it.
`--demo` instead times the "quick CPU demo" preset on the sample dataset (through lab.jobs, as the UI does) and
prints validation loss and correct greedy answers to the eval set's "taught" questions, before and after.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_throughput.py [--steps 10] [--examples 160]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_throughput.py --demo [--questions 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def examples(n: int) -> list[dict]:
    lines = (REPO / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()][:n]


def plain_trl(model_path: str, rows: list[dict], steps: int, out: Path) -> float:
    """The baseline: what a user writes from the TRL docs (defaults everywhere but steps and reporting).

    On a CPU, TRL's default bf16=True stops with "You need to assign use_cpu"; doing what it says keeps bf16
    autocast on, the stronger of the two ways to make the default script run."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=8, report_to=[], save_strategy="no",
        disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model_path, args=args, train_dataset=Dataset.from_list(rows), peft_config=peft)
    trainer.data_collator = counter = _Counting(trainer.data_collator)
    result = trainer.train()
    return counter.tokens / result.metrics["train_runtime"]


class _Counting:
    """Wraps a Trainer's data collator: counts the real (non-padding) tokens of every batch it builds, so every
    engine's tokens/s is measured the same way whatever its padding (TRL's padding-free mode has no mask)."""

    def __init__(self, collate):
        self.collate, self.tokens = collate, 0

    def __call__(self, features):
        self.tokens += sum(len(f["input_ids"]) for f in features)
        return self.collate(features)


def tuned_trl(model_path: str, rows: list[dict], steps: int, out: Path, padding_free: bool) -> float:
    """TRL configured as well as 1.16 allows on this machine: input pre-tokenised with the same completion-only
    labels as ours (no per-run tokenisation, same loss), no gradient checkpointing, bf16 autocast where the CPU
    has bf16 (float32 weights, as ours), and either padding-free batches (`padding_free=True`: one flattened
    sequence, position ids restart per example) or length-grouped padded batches."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from lab.config import TrainConfig
    from lab.models import load_tokenizer
    from lab.training.engine import use_bf16
    from lab.training.prep import encode_all

    tok = load_tokenizer(model_path)
    encoded = encode_all(tok, rows, 1024)
    data = Dataset.from_list(
        [{"input_ids": r["input_ids"], "labels": r["labels"], "length": r["length"]} for r in encoded]
    )
    bf16 = use_bf16(TrainConfig())
    args = SFTConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=8, report_to=[], save_strategy="no",
        disable_tqdm=True, use_cpu=not torch.cuda.is_available(), bf16=bf16, gradient_checkpointing=False,
        padding_free=padding_free, max_length=None if padding_free else 1024,  # inputs cut at 1024 already
        remove_unused_columns=False,
        model_init_kwargs={"dtype": torch.float32},
        **({} if padding_free else {"train_sampling_strategy": "group_by_length", "length_column_name": "length"}),
    )  # fmt: skip
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model_path, args=args, train_dataset=data, peft_config=peft, processing_class=tok)
    trainer.data_collator = counter = _Counting(trainer.data_collator)
    result = trainer.train()
    return counter.tokens / result.metrics["train_runtime"]


def ours(ws, rows: list[dict], steps: int) -> tuple[float, dict]:
    from lab.config import TrainConfig
    from lab.training import engine

    data = ws.tmp / "bench.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    run_dir = ws.dir("runs", f"bench-{int(time.time())}")
    run_dir.mkdir(parents=True)
    config = TrainConfig(name=run_dir.name, dataset=str(data), max_steps=steps, batch_size=8, rank=16, alpha=32,
                         target_modules="all-linear", logging_steps=max(1, steps // 2), save_steps=10_000)  # fmt: skip
    config.save(run_dir / "config.json")
    status = engine.train(run_dir)
    return status["metrics"]["tokens_per_s"], status


def val_loss(model, tok, rows: list[dict]) -> float:
    """Mean assistant-token loss of `model` on chat examples (the same masking as training)."""
    import torch

    from lab.training.prep import IGNORE, encode

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for ex in rows:
            row = encode(tok, ex["messages"], 256)
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
            logits = model(input_ids=ids).logits[0, :-1]
            keep = labels[0, 1:] != IGNORE
            loss = torch.nn.functional.cross_entropy(logits[keep], labels[0, 1:][keep], reduction="sum")
            total, count = total + float(loss), count + int(keep.sum())
    return total / max(count, 1)


def correct(model, tok, questions: list[dict], system: str) -> int:
    """How many questions a greedy answer gets right (gold answer or an alias inside it, case-insensitive)."""
    import torch

    hits = 0
    for q in questions:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": q["question"]}]
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**prompt, max_new_tokens=40, do_sample=False)
        text = tok.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True).lower()
        hits += any(a.lower() in text for a in [q["answer"], *q.get("aliases", [])])
    return hits


def demo(ws, n_questions: int, max_steps: int = 0) -> None:
    """The quick CPU demo preset on the sample dataset: wall time, val loss and taught-fact answers before/after."""
    from peft import PeftModel

    from lab import jobs
    from lab.config import TrainConfig
    from lab.data import ensure_sample_domain, load_split
    from lab.models import load_causal_lm, load_tokenizer
    from lab.resolve import resolve_model
    from lab.training.plan import apply_preset

    ensure_sample_domain(ws)
    config = apply_preset(TrainConfig(dataset="sample", name=f"demo-{int(time.time())}"), "quick CPU demo")
    config = config.replace(max_steps=max_steps) if max_steps else config  # a shorter run on a busy machine
    started = time.time()
    run_id = jobs.start(ws, config)
    info = jobs.wait(ws, run_id, timeout=3600)
    minutes = (time.time() - started) / 60
    path = resolve_model("embedded", ws.model_cache).path
    tok, val = load_tokenizer(path), load_split(ws, "sample", "val")
    lines = (REPO / "data" / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    taught = [q for q in map(json.loads, lines) if q["group"] == "taught"][:n_questions]
    system = val[0]["messages"][0]["content"]
    base = load_causal_lm(path)
    before = (val_loss(base, tok, val), correct(base, tok, taught, system))
    tuned = PeftModel.from_pretrained(base, str(ws.dir("runs", run_id) / "adapter"))
    after = (val_loss(tuned, tok, val), correct(tuned, tok, taught, system))
    print(f"demo run {run_id}: {info['state']} in {minutes:.1f} min (start to adapter saved, {os.cpu_count()} CPUs)")
    print(f"val loss (assistant tokens, {len(val)} examples): before {before[0]:.3f}  after {after[0]:.3f}")
    print(f"taught questions answered correctly (greedy, {len(taught)}): before {before[1]}  after {after[1]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--examples", type=int, default=160)
    parser.add_argument("--demo", action="store_true", help="measure the quick CPU demo preset instead")
    parser.add_argument("--questions", type=int, default=30, help="taught eval questions for --demo")
    parser.add_argument("--demo-steps", type=int, default=0, help="cap the demo's steps (0 = the preset's epochs)")
    args = parser.parse_args()
    from lab.resolve import resolve_model
    from lab.workspace import Workspace

    ws = Workspace.open(os.environ.get("LAB_HOME", REPO / "workspace"))
    if args.demo:
        demo(ws, args.questions, args.demo_steps)
        return 0
    model_path = resolve_model("embedded", ws.model_cache).path
    rows = examples(args.examples)
    load = os.getloadavg()[0]
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        rates["plain TRL SFTTrainer, defaults"] = plain_trl(model_path, rows, args.steps, Path(tmp) / "a")
        rates["tuned TRL, padding-free"] = tuned_trl(model_path, rows, args.steps, Path(tmp) / "b", True)
        rates["tuned TRL, length-grouped padding"] = tuned_trl(model_path, rows, args.steps, Path(tmp) / "c", False)
    rates["ExpertLab engine"], status = ours(ws, rows, args.steps)
    mine = rates["ExpertLab engine"]
    for name, rate in rates.items():
        print(f"{name:<36} {rate:8.1f} tokens/s   ours / this = {mine / rate:.2f}x")
    print(f"({args.steps} steps, batch 8, {len(rows)} examples, bf16 autocast {status.get('bf16')}, "
          f"{os.cpu_count()} CPUs, load average at start {load:.1f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
