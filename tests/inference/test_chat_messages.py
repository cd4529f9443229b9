"""Chat templates reach every backend as messages, and each sends exactly
``tokenizer.apply_chat_template(messages, add_generation_prompt=True)``; nothing
flattens messages by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from inference.core.backends import transformers_backend, vllm_backend
from inference.core.backends.base import Sampling
from inference.core.backends.openai_backend import OpenAIBackend
from inference.core.prompts import DEFAULT_TEMPLATE, PromptTemplate
from inference.core.scoring import encode_prompt
from inference.core.tiny_model import DEFAULT_SYSTEM_MESSAGE
from tests.inference.test_openai_backend import completion_choice, fake, served  # noqa: F401

GREEDY = Sampling(temperature=0.0, max_new_tokens=3)
# An official-style file: no system prompt, so the model's template adds its default one.
OFFICIAL = PromptTemplate(
    name="official", version=1, system="", user="Question: {}\nPrevious Steps: {}\nNow Step: {}\nReply: ",
    style="positional", chat=True,
)
MESSAGES = OFFICIAL.render_messages("What is 2+2?", ["2 = 2."], "2+2=4")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def chat_text(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_the_tiny_tokenizer_adds_a_default_system_message_like_qwen(tokenizer):
    text = chat_text(tokenizer, MESSAGES)
    assert text.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\nQuestion: What")
    assert text.endswith("Reply: <|im_end|>\n<|im_start|>assistant\n")
    own = DEFAULT_TEMPLATE.render_messages("q", [], "s")
    assert chat_text(tokenizer, own).startswith(f"<|im_start|>system\n{DEFAULT_TEMPLATE.system}<|im_end|>")
    assert DEFAULT_SYSTEM_MESSAGE not in chat_text(tokenizer, own)


def test_the_transformers_backend_sends_the_chat_template_text(tiny_model_dir, tokenizer, monkeypatch):
    sent = []

    def recording(tok, text):
        sent.append(text)
        return encode_prompt(tok, text)

    monkeypatch.setattr(transformers_backend, "encode_prompt", recording)
    backend = transformers_backend.TransformersBackend(tiny_model_dir, device="cpu")
    try:
        [[from_messages]] = backend.generate([MESSAGES], 1, GREEDY)
        [[from_text]] = backend.generate([chat_text(tokenizer, MESSAGES)], 1, GREEDY)
    finally:
        backend.close()
    prompts = [t for t in sent if t.endswith("<|im_start|>assistant\n")]  # not the p_yes re-reads
    assert prompts == [chat_text(tokenizer, MESSAGES)] * 2
    assert (from_messages.text, from_messages.prompt_tokens) == (from_text.text, from_text.prompt_tokens)


def test_the_vllm_backend_builds_token_prompts_from_the_chat_template(tokenizer):
    """Request building only: runs without vLLM (the engine is a recording stand-in)."""
    requests = []

    class Engine:
        def generate(self, prompts, params, use_tqdm=False):
            requests.append((prompts, params))
            sample = SimpleNamespace(text="x", token_ids=[1], logprobs=None, finish_reason="length")
            return [SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[sample]) for p in prompts]

    backend = object.__new__(vllm_backend.VLLMBackend)
    backend.llm, backend.tokenizer, backend.logprobs = Engine(), tokenizer, 5
    backend.yes_id, backend.no_id = 0, 1
    backend.detector = SimpleNamespace()
    backend._SamplingParams = lambda **kw: SimpleNamespace(**kw)
    backend.generate([MESSAGES], 1, Sampling(temperature=0.0, max_new_tokens=1))
    token_prompts = requests[0][0]
    assert token_prompts == [{"prompt_token_ids": encode_prompt(tokenizer, chat_text(tokenizer, MESSAGES))}]


def test_the_openai_backend_renders_locally_for_completions_or_sends_messages(fake, tiny_model_dir, tokenizer):  # noqa: F811
    def app(path, body, count):
        if path == "/v1/completions":
            return 200, {"choices": [completion_choice(["ok"], [{"ok": -0.1}])], "usage": {"prompt_tokens": 3}}
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}

    server = fake(app)
    with OpenAIBackend(server.url, "m", tokenizer_path=tiny_model_dir, p_yes_via="none") as b:
        b.generate([MESSAGES], 1, GREEDY)
    assert server.requests[-1][0] == "/v1/completions"
    assert server.requests[-1][1]["prompt"] == chat_text(tokenizer, MESSAGES)
    # No local tokenizer (or mode="chat"): the messages as they are, to chat completions.
    for kwargs in ({}, {"tokenizer_path": tiny_model_dir, "mode": "chat"}):
        with OpenAIBackend(server.url, "m", p_yes_via="none", **kwargs) as b:
            b.generate([MESSAGES], 1, GREEDY)
        assert server.requests[-1][0] == "/v1/chat/completions"
        assert server.requests[-1][1]["messages"] == MESSAGES
    assert json.dumps(MESSAGES) not in json.dumps([b for _, b in server.requests if "prompt" in b])


@pytest.mark.slow
def test_the_openai_backend_against_transformers_serve_sees_the_chat_template_text(served, tokenizer):  # noqa: F811
    url, model = served
    expected = len(tokenizer(chat_text(tokenizer, MESSAGES), add_special_tokens=False)["input_ids"])
    with OpenAIBackend(url, model, tokenizer_path=model, p_yes_via="none", timeout_s=60) as b:
        [[local]] = b.generate([MESSAGES], 1, Sampling(temperature=1.0, max_new_tokens=2, seed=0))
    assert local.extra["mode"] == "completions" and local.prompt_tokens == expected
    with OpenAIBackend(url, model, p_yes_via="none", timeout_s=60) as b:
        [[remote]] = b.generate([MESSAGES], 1, Sampling(temperature=1.0, max_new_tokens=2, seed=0))
    assert remote.extra["mode"] == "chat"
    if remote.prompt_tokens:  # the server applied the same (the model's own) chat template
        assert remote.prompt_tokens == expected
