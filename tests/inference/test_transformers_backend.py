import pytest

from inference.core.backends import make_backend
from inference.core.backends.base import Backend, Sampling
from inference.core.backends.transformers_backend import TransformersBackend
from inference.core.prompts import DEFAULT_TEMPLATE
from inference.core.scoring import encode_continuation, encode_prompt
from inference.core.verdict import VERDICT_QUESTION

CRITIQUE_HEAD = "Now Step Analysis: it adds 2 and 2.\nConclusion: fine.\n" + VERDICT_QUESTION


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir, device="cpu", batch_size=4)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def prompts(backend):
    tok = backend.tokenizer
    return [
        DEFAULT_TEMPLATE.render_prompt("What is 2+2?", [], "2+2=4", tok),
        DEFAULT_TEMPLATE.render_prompt(
            "A much longer question about 12 apples, 7 pears and what remains after eating 5 of them?",
            ["There are 12 + 7 = 19 fruits.", "Eating 5 leaves 19 - 5 = 14."],
            "So 14 fruits remain.",
            tok,
        ),
        DEFAULT_TEMPLATE.render_prompt("Is 7 prime?", ["7 has no divisor but 1 and 7."], "Yes.", tok),
    ]


class ForceTokens:
    """Test hook: forces row r to emit ``sequences[r]`` from generation step 0 on."""

    def __init__(self, sequences):
        self.sequences = sequences
        self.step = 0

    def __call__(self, input_ids, scores):
        for row, seq in enumerate(self.sequences):
            if seq and self.step < len(seq):
                forced = scores[row].clone().fill_(float("-inf"))
                forced[seq[self.step]] = 0.0
                scores[row] = forced
        self.step += 1
        return scores


def test_it_implements_the_backend_protocol_and_is_built_by_the_factory(tiny_model_dir, backend):
    assert isinstance(backend, Backend)
    made = make_backend("transformers", model_path=tiny_model_dir, device="cpu")
    assert isinstance(made, TransformersBackend) and made.name == "transformers"
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("tensorflow")


def test_it_returns_n_samples_per_prompt_with_token_counts(backend, prompts):
    sampling = Sampling(temperature=1.0, top_p=1.0, max_new_tokens=12, seed=3)
    results = backend.generate(prompts, 3, sampling)
    assert [len(r) for r in results] == [3, 3, 3]
    for prompt, completions in zip(prompts, results, strict=True):
        assert len({c.text for c in completions}) > 1  # sampled, not copies
        for c in completions:
            assert c.prompt_tokens == len(encode_prompt(backend.tokenizer, prompt))
            assert 1 <= c.completion_tokens <= 12
            assert c.finish_reason in ("stop", "length")
            assert 0.0 < c.p_yes < 1.0
            assert c.latency_s > 0
    again = backend.generate(prompts, 3, sampling)
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in results]


class BanToken:
    def __init__(self, row, token):
        self.row, self.token = row, token

    def __call__(self, input_ids, scores):
        scores[self.row, self.token] = float("-inf")
        return scores


def test_it_counts_tokens_without_padding_or_tokens_after_eos(backend, prompts):
    tok = backend.tokenizer
    eos = tok.eos_token_id
    word = tok.encode(" apple", add_special_tokens=False)[:1]
    # Longest prompt first, as the backend orders a batch: row 0 stops after two
    # tokens and is padded while row 1 (eos banned) runs to the limit.
    batch = [prompts[1], prompts[0]]
    processors = [ForceTokens([word * 2 + [eos], []]), BanToken(1, eos)]
    results = backend.generate(
        batch, 1, Sampling(temperature=0, max_new_tokens=6), logits_processors=processors
    )
    stopped, ran = results[0][0], results[1][0]
    assert stopped.finish_reason == "stop" and stopped.completion_tokens == 3
    assert stopped.text == tok.decode(word * 2)
    assert ran.finish_reason == "length" and ran.completion_tokens == 6


def test_it_pads_left_so_batched_greedy_matches_unbatched(backend, prompts):
    # Prefilled rows exercise the inline reading, the others the batched fallback.
    prefill = [CRITIQUE_HEAD, None, "Previous Steps Analysis: fine.\n" + VERDICT_QUESTION]
    sampling = Sampling(temperature=0, max_new_tokens=8)
    batched = backend.generate(prompts, 1, sampling, prefill=prefill)
    for i, prompt in enumerate(prompts):
        alone = backend.generate([prompt], 1, sampling, prefill=[prefill[i]])[0][0]
        together = batched[i][0]
        assert together.text == alone.text
        assert together.completion_tokens == alone.completion_tokens
        assert together.p_yes_source == alone.p_yes_source
        assert together.p_yes == pytest.approx(alone.p_yes, abs=1e-4)
    assert [b[0].p_yes_source for b in batched] == ["inline", "fallback", "inline"]


def test_it_reads_p_yes_inline_from_raw_logits_matching_the_reference(backend, prompts):
    # Temperature and top-p would change the numbers if the recorder saw warped logits.
    sampling = Sampling(temperature=0.7, top_p=0.5, max_new_tokens=6, seed=0)
    results = backend.generate(prompts, 2, sampling, prefill=[CRITIQUE_HEAD] * len(prompts))
    values = set()
    for prompt, completions in zip(prompts, results, strict=True):
        for c in completions:
            assert c.text.startswith(CRITIQUE_HEAD)
            assert c.p_yes_source == "inline" and c.extra["verdict_step"] == 0
            assert c.p_yes == pytest.approx(backend.reference_p_yes(prompt, c.text), abs=1e-4)
            values.add(round(c.p_yes, 4))
    assert len(values) == len(prompts)  # one value per prompt context, and they differ


def test_it_keeps_the_last_verdict_question_generated_mid_critique(backend, prompts):
    tok = backend.tokenizer
    text = f"Calculation Analysis: 2+2=4.\n{VERDICT_QUESTION} Yes\nOn reflection, again:\n{VERDICT_QUESTION}"
    forced = encode_continuation(tok, text)
    results = backend.generate(
        prompts[:1],
        1,
        Sampling(temperature=0, max_new_tokens=len(forced) + 3),
        logits_processors=[ForceTokens([forced])],
    )
    c = results[0][0]
    assert c.text.startswith(text)
    assert c.p_yes_source == "inline"
    assert c.extra["verdict_questions"] == 2
    assert c.extra["verdict_step"] == len(forced)
    last = backend.reference_p_yes(prompts[0], c.text)
    first = backend.reference_p_yes(prompts[0], c.text, occurrence="first")
    assert c.p_yes == pytest.approx(last, abs=1e-4)
    assert abs(first - last) > 1e-3


def test_it_falls_back_to_appending_the_question(backend, prompts):
    results = backend.generate(prompts, 2, Sampling(temperature=1.0, max_new_tokens=10, seed=1))
    for prompt, completions in zip(prompts, results, strict=True):
        for c in completions:
            assert VERDICT_QUESTION not in c.text
            assert c.p_yes_source == "fallback" and c.extra["fallback"] == "appended"
            assert c.p_yes == pytest.approx(backend.reference_p_yes(prompt, c.text), abs=1e-4)


def test_it_scores_existing_critiques_in_batches_like_the_reference(backend, prompts):
    critiques = [
        CRITIQUE_HEAD + " Yes",
        "No verdict here at all.",
        f"{VERDICT_QUESTION} No\nHmm.\n{VERDICT_QUESTION} Yes\n",
        "Short.",
        CRITIQUE_HEAD + " No and then some trailing words that make this one longer than the rest",
    ]
    pairs = [(prompts[i % len(prompts)], c) for i, c in enumerate(critiques)]
    scored = backend.score_texts([p for p, _ in pairs], [c for _, c in pairs])
    reference = [backend.reference_p_yes(p, c) for p, c in pairs]
    assert scored == pytest.approx(reference, abs=1e-4)
    assert len({round(s, 4) for s in scored}) > 1
    with pytest.raises(ValueError):
        backend.score_texts(prompts, critiques)


def test_it_copies_the_greedy_critique_n_times(backend, prompts):
    results = backend.generate(prompts[:1], 3, Sampling(temperature=0, max_new_tokens=5))
    texts = [c.text for c in results[0]]
    assert len(texts) == 3 and len(set(texts)) == 1
    assert results[0][0] is not results[0][1]


def test_it_respects_batch_limits(backend):
    lengths = [10, 50, 30, 20, 40]
    assert backend._groups(lengths, n_gen=2, max_new=10) == [[1, 4, 2, 3], [0]]  # batch_size=4
    backend.max_batch_tokens = 2 * 2 * (50 + 10)  # rows * (longest prompt + new tokens)
    try:
        assert backend._groups(lengths, n_gen=2, max_new=10) == [[1, 4], [2, 3, 0]]
    finally:
        backend.max_batch_tokens = None
