"""Chat templates users bring: Phi-3/3.5, Qwen2.5, Llama-3 and Gemma-2 templates (as in those models'
tokenizer_config.json) set on the embedded tokenizer, with their markers as special tokens and their eos, as in the
real tokenizers. Assistant-only loss must train exactly each assistant turn's content and its end-of-turn marker
(plus, after the last turn, the eos a template closes a conversation with), in single- and multi-turn data."""

from __future__ import annotations

import pytest

from lab.training.prep import IGNORE, encode

PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
PHI35 = PHI3.replace("message['role'] == 'system' %}", "message['role'] == 'system' and message['content'] %}")
QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided \
with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\
\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or \
(message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
GEMMA2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# name: (template, bos, eos, special tokens of the real tokenizer, what ends a turn, what closes a conversation)
TEMPLATES = {
    "phi-3": (PHI3, "<s>", "<|endoftext|>", ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"], "<|end|>\n",
              "<|endoftext|>"),
    "phi-3 (eos <|end|>)": (PHI3, "<s>", "<|end|>", ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
                            "<|end|>\n", "<|end|>"),
    "phi-3.5": (PHI35, "<s>", "<|endoftext|>", ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"], "<|end|>\n",
                "<|endoftext|>"),
    "qwen2.5": (QWEN25, None, "<|im_end|>", ["<|im_start|>", "<|im_end|>"], "<|im_end|>\n", ""),
    "llama-3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>",
                ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|eot_id|>", ""),
    "gemma-2": (GEMMA2, "<bos>", "<eos>", ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], "<end_of_turn>\n",
                ""),
}  # fmt: skip

SINGLE = [{"role": "user", "content": "Colour of the Zorblat valve?"}, {"role": "assistant", "content": "Teal."}]
MULTI = [
    {"role": "user", "content": "Colour of the Zorblat valve?"},
    {"role": "assistant", "content": "Teal."},
    {"role": "user", "content": "And the Quinx rotor?"},
    {"role": "assistant", "content": "Crimson, always."},
    {"role": "user", "content": "Who oils the Frell pump?"},
    {"role": "assistant", "content": "Mira Castell, every 41 days."},
]
SYSTEM = [{"role": "system", "content": "Answer from the maintenance manual."}, *MULTI]


def _tokenizer(path: str, name: str):
    """A fresh embedded tokenizer dressed as the named model's: its template, special tokens, bos and eos."""
    from transformers import AutoTokenizer

    template, bos, eos, special, _turn_end, _close = TEMPLATES[name]
    tok = AutoTokenizer.from_pretrained(path)
    tok.add_special_tokens({"additional_special_tokens": special + [t for t in (bos, eos) if t and t not in special]})
    tok.chat_template = template
    tok.eos_token = eos
    if bos:
        tok.bos_token = bos
    if tok.pad_token is None:
        tok.pad_token = eos
    return tok


def _trained_runs(tok, row) -> list[str]:
    """The decoded text of each contiguous run of labelled tokens."""
    runs, current = [], []
    for tid, label in zip(row["input_ids"], row["labels"], strict=True):
        if label != IGNORE:
            current.append(tid)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tok.decode(r, skip_special_tokens=False, clean_up_tokenization_spaces=False) for r in runs]


def _expected(name: str, messages: list[dict]) -> list[str]:
    _template, _bos, _eos, _special, turn_end, close = TEMPLATES[name]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    return [a + turn_end + (close if i == len(answers) - 1 else "") for i, a in enumerate(answers)]


@pytest.mark.integration
@pytest.mark.parametrize("name", list(TEMPLATES))
@pytest.mark.parametrize("conversation", ["single", "multi", "system"])
def test_assistant_only_loss_trains_exactly_each_answer_and_its_end_of_turn(embedded_path, name, conversation):
    messages = {"single": SINGLE, "multi": MULTI, "system": SYSTEM}[conversation]
    tok = _tokenizer(embedded_path, name)
    row = encode(tok, messages, max_length=512)
    assert _trained_runs(tok, row) == _expected(name, messages)
    everything = encode(tok, messages, max_length=512, assistant_only=False)
    assert everything["labels"] == everything["input_ids"]


@pytest.mark.integration
def test_gemma_has_no_system_role_so_the_system_text_opens_the_first_user_turn(embedded_path):
    tok = _tokenizer(embedded_path, "gemma-2")
    row = encode(tok, SYSTEM, max_length=512, assistant_only=False)
    text = tok.decode(row["input_ids"], skip_special_tokens=False)
    first_user = (
        "<start_of_turn>user\nAnswer from the maintenance manual.\n\nColour of the Zorblat valve?<end_of_turn>"
    )
    assert text.startswith("<bos>" + first_user)
    assert "system" not in text


@pytest.mark.integration
def test_a_template_that_refuses_the_roles_says_so(embedded_path):
    from lab.errors import LabError

    tok = _tokenizer(embedded_path, "gemma-2")
    backwards = [{"role": "assistant", "content": "Teal."}, {"role": "user", "content": "Colour?"}]
    with pytest.raises(LabError, match="refuses this conversation.*alternate"):
        encode(tok, backwards, max_length=64)


@pytest.mark.integration
def test_phi3_multi_turn_rendered_text_ends_with_eos_and_keeps_one(embedded_path):
    """The eos Phi-3's template appends without a generation prompt appears once, at the very end."""
    tok = _tokenizer(embedded_path, "phi-3")
    row = encode(tok, MULTI, max_length=512)
    text = tok.decode(row["input_ids"], skip_special_tokens=False)
    assert text.endswith("Mira Castell, every 41 days.<|end|>\n<|endoftext|>") and text.count("<|endoftext|>") == 1
