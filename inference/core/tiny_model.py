"""A tiny, randomly initialised Qwen2 model with its own tokenizer, built offline.

For tests and demos only: it writes nonsense, but it has the real moving parts (a
byte-level BPE tokenizer where " Yes" and " No" are single tokens, a ChatML chat
template, eos/pad tokens, safetensors weights, a generation config), loads with
``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained(dir)`` and can be served by
``transformers serve``. Nothing is downloaded. Same seed, same files.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

from .prompts import DEFAULT_TEMPLATE, format_previous_steps
from .scoring import verdict_token_ids
from .verdict import VERDICT_NO_LINE, VERDICT_QUESTION, VERDICT_YES_LINE

if TYPE_CHECKING:  # heavy ML libraries: imported where used
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = [PAD_TOKEN, "<|im_start|>", EOS_TOKEN]
# Qwen2's pre-tokenizer split (one digit per token, as in Qwen2.5 models).
QWEN2_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ChatML as Qwen2.5 instruct models write it (tools left out): a default system
# message when the conversation has none, as the authors' scoring prompt shows.
DEFAULT_SYSTEM_MESSAGE = "You are a helpful assistant."
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_MESSAGE + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_WORDS = (
    "the step is correct because we add multiply divide subtract both sides equation "
    "number value sum product total answer therefore so then let find solve compute "
    "previous now data source consistency calculation analysis conclusion question "
    "problem uses from given result check error wrong right integer fraction square root "
    "area length angle triangle circle probability remainder modulo prime factor"
).split()


def _corpus(rng: random.Random) -> list[str]:
    lines = [DEFAULT_TEMPLATE.system, DEFAULT_TEMPLATE.user]
    for _ in range(300):
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        op, val = rng.choice([("+", a + b), ("-", a - b), ("*", a * b)])
        steps = [f"We compute {a} {op} {b} = {val}." for _ in range(rng.randint(0, 3))]
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 20)))
        lines.append(f"Question: {words}? {a} {op} {b}")
        lines.append(format_previous_steps(steps))
        lines.append(f"Now Step: {words}, so the answer is {val}.")
        lines.append(
            f"Previous Steps Analysis: {words}.\nNow Step Analysis: {words}.\n"
            f"Conclusion: {words}.\n{rng.choice([VERDICT_YES_LINE, VERDICT_NO_LINE])}"
        )
    # Frequent enough that BPE merges them into single tokens.
    lines += [f"{VERDICT_QUESTION} Yes", f"{VERDICT_QUESTION} No", "Is it correct? Yes No"] * 200
    lines += [" ".join(str(rng.randint(0, 9999)) for _ in range(20)) for _ in range(50)]
    # Pseudo-words give BPE enough distinct material for a vocabulary of ~3k.
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
    for _ in range(400):
        lines.append(" ".join("".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(12)))
    return lines


def train_tokenizer(corpus: list[str], vocab_size: int = 3000) -> Tokenizer:
    """Byte-level BPE trained on ``corpus`` (returned as a ``tokenizers.Tokenizer``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # Exactly Qwen2's normaliser and pre-tokenizer: AutoTokenizer maps a qwen2 config
    # to Qwen2Tokenizer, which rebuilds the pipeline from vocab + merges with these.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok


def wrap_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """The trained tokenizer as a transformers tokenizer with the chat template."""
    from transformers import PreTrainedTokenizerFast  # heavy ML import, deferred

    # transformers leaves the constructor unannotated (no-untyped-call is about its stubs)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Write tokenizer, config, weights and generation config to ``out_dir``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    tokenizer = wrap_tokenizer(train_tokenizer(_corpus(rng)))
    verdict_token_ids(tokenizer)  # fail here, not in a test far away
    eos_id, pad_id = (tokenizer.convert_tokens_to_ids(t) for t in (EOS_TOKEN, PAD_TOKEN))
    assert isinstance(eos_id, int) and isinstance(pad_id, int)  # one token in, one id out

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        # Larger than the usual 0.02 so that random next-token distributions are
        # peaked enough for p_yes to vary between contexts (tests compare values).
        initializer_range=0.2,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    # transformers leaves GenerationConfig's constructor unannotated
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)  # type: ignore[no-untyped-call]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
