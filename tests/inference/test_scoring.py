import math

import pytest

from inference.core.scoring import (
    FALLBACK_SUFFIX,
    VerdictQuestionDetector,
    VerdictTokenError,
    encode_prompt,
    mean_reward,
    p_yes_from_logits,
    scoring_context,
    verdict_token_ids,
)
from inference.core.tiny_model import train_tokenizer, wrap_tokenizer
from inference.core.verdict import VERDICT_QUESTION


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_it_computes_p_yes_as_a_two_way_softmax():
    for l_yes, l_no in [(2.0, -1.0), (-3.5, 0.25), (0.0, 0.0), (12.0, 11.0)]:
        expected = math.exp(l_yes) / (math.exp(l_yes) + math.exp(l_no))
        assert p_yes_from_logits(l_yes, l_no) == pytest.approx(expected, rel=1e-12)
        assert p_yes_from_logits(l_yes, l_no) + p_yes_from_logits(l_no, l_yes) == pytest.approx(1.0)


def test_it_stays_finite_for_extreme_logits():
    assert p_yes_from_logits(1000.0, -1000.0) == 1.0
    assert p_yes_from_logits(-1000.0, 1000.0) == 0.0
    assert p_yes_from_logits(800.0, 799.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert p_yes_from_logits(float("-inf"), float("-inf")) == 0.5
    assert p_yes_from_logits(float("inf"), 3.0) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        p_yes_from_logits(float("nan"), 0.0)


def test_it_averages_rewards_ignoring_missing_values():
    assert mean_reward([0.2, 0.4, None, 0.9]) == pytest.approx(0.5)
    assert mean_reward([]) is None
    assert mean_reward([None]) is None
    with pytest.raises(ValueError):
        mean_reward([0.5, 1.5])
    with pytest.raises(ValueError):
        mean_reward([float("nan")])


def test_it_finds_single_verdict_tokens(tokenizer):
    yes_id, no_id = verdict_token_ids(tokenizer)
    assert tokenizer.decode([yes_id]) == " Yes"
    assert tokenizer.decode([no_id]) == " No"


def test_it_raises_when_yes_or_no_is_not_a_single_token():
    # A tokenizer that never saw "Yes"/"No" spells them out in pieces.
    tok = wrap_tokenizer(train_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300))
    tok.name_or_path = "no-verdict-tokenizer"
    with pytest.raises(VerdictTokenError) as info:
        verdict_token_ids(tok)
    message = str(info.value)
    assert "no-verdict-tokenizer" in message
    assert "' Yes'" in message
    assert str(tok.encode(" Yes", add_special_tokens=False)) in message


def test_it_cuts_critiques_after_the_verdict_question_or_appends_one():
    text = f"A\n{VERDICT_QUESTION} No\nB\n{VERDICT_QUESTION} Yes"
    prefix, source = scoring_context(text)
    assert source == "verdict_question" and prefix == text[: -len(" Yes")]
    first, _ = scoring_context(text, occurrence="first")
    assert first == f"A\n{VERDICT_QUESTION}"
    assert scoring_context("no verdict") == ("no verdict" + FALLBACK_SUFFIX, "appended")
    assert FALLBACK_SUFFIX == "\n" + VERDICT_QUESTION
    with pytest.raises(ValueError):
        scoring_context(text, occurrence="middle")


def test_it_detects_token_sequences_ending_with_the_verdict_question(tokenizer):
    detector = VerdictQuestionDetector(tokenizer)
    critique = f"Fine.\n{VERDICT_QUESTION} Yes\nHmm.\n{VERDICT_QUESTION} No"
    ids = tokenizer.encode(critique, add_special_tokens=False)
    positions = detector.positions(ids)
    assert len(positions) == 2
    for p in positions:
        assert tokenizer.decode(ids[:p]).endswith(VERDICT_QUESTION)
        assert ids[p] in verdict_token_ids(tokenizer)
    assert not detector.ends_with_question(ids)
    assert not detector.ends_with_question(tokenizer.encode("Is it correct?", add_special_tokens=False))
    assert not detector.ends_with_question([])


class FakeTokenizer:
    def __init__(self, bos):
        self.bos_token = bos
        self.calls = []

    def encode(self, text, add_special_tokens=True):
        self.calls.append(add_special_tokens)
        return [1, 2]


def test_it_adds_bos_only_when_the_prompt_text_lacks_it():
    tok = FakeTokenizer("<s>")
    encode_prompt(tok, "<s>[INST] hi")
    encode_prompt(tok, "plain prompt")
    encode_prompt(FakeTokenizer(None), "chatml prompt")
    assert tok.calls == [False, True]
