"""Generation on the embedded model: batched (left-padded) greedy output equals one-at-a-time output; the RAG
prompt; a fine-tuned contestant from a tiny random LoRA adapter is named inside the shared base model."""

from __future__ import annotations

import pytest

from lab.config import GenConfig, TrainConfig
from lab.generation import IDK, Answer, rag_messages, stream_answer
from lab.rag import Passage

QUESTIONS = [
    "What is the capital of France?",
    "Name one primary colour.",
    "Explain in one sentence why the sky looks blue during the day?",
    "2+2=?",
]


@pytest.fixture(scope="module")
def base(cache):
    from lab.generation import ModelResponder

    return ModelResponder("base", cache.model("embedded"), cache.tokenizer("embedded"))


def test_batched_equals_sequential_greedy_text(base):
    gen = GenConfig(max_new_tokens=12, batch_size=4)
    batched = base.answer_many(QUESTIONS, gen)
    sequential = [base.answer(q, gen) for q in QUESTIONS]
    assert [a.text for a in batched] == [a.text for a in sequential]
    assert all(a.text and a.completion_tokens > 0 and a.prompt_tokens > 10 for a in batched)
    assert len({a.prompt_tokens for a in batched}) > 1  # different lengths: the batch really was padded


def test_streaming_ends_with_the_greedy_answer(base):
    gen = GenConfig(max_new_tokens=12)
    parts = list(stream_answer(base, QUESTIONS[0], gen))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert parts[-1].text == base.answer(QUESTIONS[0], gen).text


def test_rag_prompt_numbers_passages_and_asks_for_idk():
    passages = [Passage("Alpha text.", "a.md", 0.9, "c1", "d1"), Passage("Beta text.", "b.md", 0.5, "c2", "d2")]
    messages = rag_messages("What is alpha?", passages)
    assert messages[0]["role"] == "system" and IDK in messages[0]["content"] and "cite" in messages[0]["content"]
    user = messages[1]["content"]
    assert "[1] (source: a.md) Alpha text." in user and "[2] (source: b.md)" in user
    assert user.rstrip().endswith("Question: What is alpha?")


class FakeIndex:
    def __init__(self, score: float):
        self.score = score

    def retrieve(self, question, top_k=None):
        return [Passage("The valve is blue.", "a.md", self.score, "c1", "d1")]


def test_rag_abstains_below_the_score_threshold_without_generating(cache):
    from lab.generation import ModelResponder

    rag = ModelResponder("rag:x", None, None, FakeIndex(0.2))  # no model: generating would crash
    answer = rag.answer("What colour is the valve?", GenConfig(abstain_below=0.3))
    assert isinstance(answer, Answer) and answer.text == IDK + "." and answer.passages[0].score == 0.2


def test_finetuned_contestant_loads_its_adapter_into_the_shared_base(ws, cache):
    import torch
    from peft import LoraConfig, get_peft_model

    from lab.arena import contestants
    from lab.models import load_causal_lm

    run = ws.dir("runs", "tiny")
    run.mkdir(parents=True)
    torch.manual_seed(0)
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(load_causal_lm(cache.resolve("embedded").path), lora).save_pretrained(run / "adapter")
    TrainConfig(name="tiny", dataset="x").save(run / "config.json")
    ft = contestants.responder(ws, cache, "ft:tiny")
    assert ft.answer("2+2=?", GenConfig(max_new_tokens=4)).completion_tokens > 0
    assert ft.model.shared.model is cache.model("embedded")  # one base in memory, the adapter named inside it
    assert contestants.responder(ws, cache, "ft:tiny").model is ft.model  # cached, shared by ft and ft+rag
    assert contestants.release(ws, cache, "ft:tiny") == 1
    assert contestants.release(ws, cache, "ft:tiny") == 0


class WordEmbedder:
    """Deterministic fake: one dimension per vocabulary word, normalised."""

    def embed(self, texts):
        import numpy as np

        vocab = sorted({w for t in texts for w in t.lower().split()})
        rows = np.array([[t.lower().split().count(w) for w in vocab] for t in texts], dtype=float)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def test_focus_keeps_the_sentences_closest_to_the_question_in_order():
    from lab.generation.focus import focus_passages, sentences

    p1 = Passage(
        "The valve is painted blue. The pump weighs ten kilos.\n| a table row about valves |", "a.md", 0.9, "1", "a"
    )
    p2 = Passage("Nothing relevant is said here at all.", "b.md", 0.5, "2", "b")
    assert sentences(p1.text) == [
        "The valve is painted blue.",
        "The pump weighs ten kilos.",
        "| a table row about valves |",
    ]
    out = focus_passages("what colour is the valve painted", [p1, p2], WordEmbedder(), keep=1)
    assert out == [
        {"text": "The valve is painted blue.", "source": "a.md", "score": 0.9, "chunk_id": "1", "doc_id": "a"}
    ]


def test_support_check_turns_unsupported_rag_answers_into_idk(monkeypatch):
    from lab.generation import ModelResponder, engine

    outputs = iter([[("The valve is blue [1].", 20, 5)], [("It costs 900 euro.", 20, 5)]])
    monkeypatch.setattr(engine, "generate_batch", lambda *a, **k: next(outputs))
    rag = ModelResponder("rag:x", None, None, FakeIndex(0.9))
    gen = GenConfig(support_below=0.5, focus_sentences=0)
    assert rag.answer("What colour is the valve?", gen).text == "The valve is blue [1]."
    unsupported = rag.answer("What does the valve cost?", gen)
    assert unsupported.text == IDK + "." and unsupported.draft == "It costs 900 euro."


def test_idk_decision_abstains_by_the_models_probability_not_by_argmax(cache):
    """Row 0 gives "I" 40 % (the argmax: the answer's 60 % is spread over three tokens): it answers. Row 1 gives
    "I" 70 %: it is forced to exactly "I don't know." and then ends. Greedy alone would abstain on both."""
    import torch

    from lab.generation.engine import idk_decision

    tok = cache.tokenizer("embedded")
    ids = tok(IDK + ".", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    answer = tok(" The", add_special_tokens=False)["input_ids"][0], 100, 200
    probs = torch.full((2, len(tok)), 1e-9)
    probs[0, ids[0]], probs[0, list(answer)] = 0.40, 0.20
    probs[1, ids[0]], probs[1, answer[0]] = 0.70, 0.30
    decide = idk_decision(tok, 0.5, begin=3)
    prompt = torch.zeros((2, 3), dtype=torch.long)
    first = decide(prompt, probs.log())
    assert first[0].argmax() != ids[0] and first[0, ids[0]] == -float("inf")  # row 0 answers
    assert first[1].argmax() == ids[0] and torch.isinf(first[1]).sum() == len(tok) - 1  # row 1 abstains
    seq = torch.cat([prompt, first.argmax(-1, keepdim=True)], 1)
    for step in range(1, len(ids)):  # the forced row spells the whole phrase, then end of sequence
        scores = decide(seq, torch.zeros((2, len(tok))))
        assert scores[1].argmax() == ids[step] and torch.equal(scores[0], torch.zeros(len(tok)))
        seq = torch.cat([seq, scores.argmax(-1, keepdim=True)], 1)
    assert tok.decode(seq[1, 3:], skip_special_tokens=True) == IDK + "."
    off = idk_decision(tok, 0.8, begin=3)(prompt, probs.log())
    assert (off[:, ids[0]] == -float("inf")).all()  # a higher bar: neither row is sure enough to abstain


def test_recorded_abstention_probabilities_reproduce_the_live_decision_at_any_threshold(cache):
    """Generating with abstaining ruled out and recording P("I don't know") gives, for a threshold t, exactly the
    answers of deciding during generation at t: "I don't know." where P > t, the same text elsewhere."""
    from lab.generation import RAG_SYSTEM
    from lab.generation.engine import generate_batch

    model, tok = cache.model("embedded"), cache.tokenizer("embedded")
    questions = ["What colour is the sky?", "Who wrote the manual?", "What is the torque of bolt X-9?",
                 "How many blades does the rotor have?", "What is 2 + 2?", "Which valve is red?"]  # fmt: skip
    convs = [[{"role": "system", "content": RAG_SYSTEM}, {"role": "user", "content": q}] for q in questions]
    gen = GenConfig(max_new_tokens=12, batch_size=4, idk_above=0.5)
    probs: list = []
    recorded = generate_batch(model, tok, convs, gen, decide_idk=True, idk_probs=probs)
    assert len(probs) == len(questions) and all(0.0 <= p <= 1.0 for p in probs)
    assert all(not text.startswith(IDK) for text, _, _ in recorded)  # nothing forced while recording
    t = sorted(probs)[len(probs) // 2 - 1]  # a threshold with rows on both sides (ties stay below)
    assert any(p > t for p in probs) and any(p <= t for p in probs)
    live = generate_batch(model, tok, convs, GenConfig(max_new_tokens=12, batch_size=4, idk_above=t), decide_idk=True)
    for p, (text, _, _), (live_text, _, _) in zip(probs, recorded, live, strict=True):
        assert live_text == (IDK + "." if p > t else text)
