"""vLLM backend: log-prob reading is tested everywhere; the engine only where vLLM runs."""

import math
from dataclasses import dataclass

import pytest

from inference.core.backends import make_backend
from inference.core.backends.base import BackendUnavailable, Sampling
from inference.core.backends.vllm_backend import (
    VLLMBackend,
    p_yes_from_top_logprobs,
    read_inline_p_yes,
    vllm_available,
)
from inference.core.scoring import VerdictQuestionDetector, verdict_token_ids
from inference.core.verdict import VERDICT_QUESTION


@dataclass
class Logprob:  # the shape of vllm.sequence.Logprob that the backend reads
    logprob: float


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_it_reads_p_yes_from_top_logprobs():
    p, bounded = p_yes_from_top_logprobs({5: Logprob(-0.1), 6: Logprob(-2.5), 7: Logprob(-4.0)}, 5, 6)
    assert p == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.5)))
    assert bounded is False


def test_it_bounds_a_token_missing_from_the_top_logprobs():
    p, bounded = p_yes_from_top_logprobs({5: -0.01, 9: -6.0, 7: -8.0}, 5, 6)
    assert bounded is True
    assert p == pytest.approx(1 / (1 + math.exp(-8.0 + 0.01)))
    assert p_yes_from_top_logprobs({9: -1.0}, 5, 6) is None
    assert p_yes_from_top_logprobs({}, 5, 6) is None


def test_it_finds_the_last_verdict_question_in_generated_tokens(tokenizer):
    detector = VerdictQuestionDetector(tokenizer)
    yes_id, no_id = verdict_token_ids(tokenizer)
    prompt_ids = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    text = f"Fine.\n{VERDICT_QUESTION} No\nWait.\n{VERDICT_QUESTION} Yes"
    token_ids = tokenizer.encode(text, add_special_tokens=False)
    # Fake per-position top log-probs: "No" favoured everywhere except the last question.
    logprobs = [{yes_id: Logprob(-3.0), no_id: Logprob(-0.1)} for _ in token_ids]
    last = len(token_ids) - 1
    logprobs[last] = {yes_id: Logprob(-0.2), no_id: Logprob(-1.8), 42: Logprob(-5.0)}
    p, bounded, j = read_inline_p_yes(detector, prompt_ids, token_ids, logprobs, yes_id, no_id)
    assert j == last and token_ids[j] == yes_id
    assert p == pytest.approx(1 / (1 + math.exp(-1.6)))
    assert bounded is False
    # Truncated right after the question: no log-probs for the verdict position.
    assert read_inline_p_yes(detector, prompt_ids, token_ids[:last], logprobs[:last], yes_id, no_id) is None
    assert read_inline_p_yes(detector, prompt_ids, token_ids, None, yes_id, no_id) is None


def test_it_reads_a_question_that_ends_the_prompt(tokenizer):
    detector = VerdictQuestionDetector(tokenizer)
    yes_id, no_id = verdict_token_ids(tokenizer)
    prompt_ids = tokenizer.encode(f"Critique so far.\n{VERDICT_QUESTION}", add_special_tokens=False)
    read = read_inline_p_yes(detector, prompt_ids, [yes_id], [{yes_id: -0.5, no_id: -0.5}], yes_id, no_id)
    assert read == (0.5, False, 0)


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed here")
def test_it_reports_a_missing_vllm_clearly(tiny_model_dir):
    with pytest.raises(BackendUnavailable, match="vLLM is not installed"):
        VLLMBackend(tiny_model_dir)
    with pytest.raises(BackendUnavailable):
        make_backend("vllm", model=str(tiny_model_dir))


def test_it_generates_with_the_vllm_engine(tiny_model_dir):
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vLLM engine test needs a GPU")
    from inference.core.backends.transformers_backend import TransformersBackend

    backend = VLLMBackend(tiny_model_dir, gpu_memory_utilization=0.2, enforce_eager=True, max_model_len=2048)
    reference = TransformersBackend(tiny_model_dir, dtype="float32")
    try:
        prompt = reference.tokenizer.apply_chat_template(
            [{"role": "user", "content": "Is 2+2=4?"}], tokenize=False, add_generation_prompt=True
        )
        results = backend.generate(
            [prompt, prompt + "x"], 3, Sampling(temperature=1.0, max_new_tokens=16, seed=0)
        )
        assert [len(r) for r in results] == [3, 3]
        for c in (c for r in results for c in r):
            assert c.p_yes is not None and 0 < c.p_yes < 1
            assert 1 <= c.completion_tokens <= 16
        critiques = [f"Fine.\n{VERDICT_QUESTION} Yes", "no verdict"]
        scored = backend.score_texts([prompt, prompt], critiques)
        expected = [reference.reference_p_yes(prompt, c) for c in critiques]
        assert scored == pytest.approx(expected, abs=2e-2)  # vLLM runs its own kernels/dtype
    finally:
        backend.close()
        reference.close()
