import hashlib
import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from inference.core.scoring import verdict_token_ids
from inference.core.tiny_model import build_tiny_model


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir), AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def test_it_writes_a_standard_model_directory(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (64, 2, 4)
    assert config["num_key_value_heads"] == 2 and config["tie_word_embeddings"] is True
    assert config["max_position_embeddings"] == 4096


def test_it_loads_with_the_auto_classes(loaded):
    tokenizer, model = loaded
    assert 2000 <= len(tokenizer) <= 4000
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    yes_id, no_id = verdict_token_ids(tokenizer)
    assert yes_id != no_id


def test_it_keeps_its_tokenization_when_loaded_as_qwen2(tiny_model_dir, loaded):
    # AutoTokenizer rebuilds a Qwen2 pipeline from vocab + merges: it must tokenise
    # exactly like the trained tokenizer.json.
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    text = "Step 1: 12345 + 678 = 13023.\n\n  Now x\u00e9 \u4e2d? (Yes/No)? Yes"
    assert loaded[0].encode(text, add_special_tokens=False) == raw.encode(text).ids
    assert loaded[0].decode(raw.encode(text).ids) == text


def test_it_has_a_chatml_chat_template(loaded):
    tokenizer, _ = loaded
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3


def test_it_generates(loaded):
    import torch

    tokenizer, model = loaded
    ids = torch.tensor([tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n", add_special_tokens=False)])
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids.shape[1]


def test_it_is_deterministic_for_a_seed(tiny_model_dir, tmp_path):
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("tokenizer.json", "model.safetensors", "config.json"):
        assert digest(again / name) == digest(tiny_model_dir / name)
    assert digest(other / "model.safetensors") != digest(again / "model.safetensors")
