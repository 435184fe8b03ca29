"""A tiny random Hugging Face model and tokenizer built in a temporary folder: the hf backend and
LoRA tests run offline, on CPU, in seconds. Its replies are noise until a test trains it."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
CORPUS = [
    "Shehu Gusau ya isa Kano ranar Litinin.",
    "Rais Samia Suluhu Hassan alizungumza jijini Dodoma.",
    "Translate the sentence into English and list the entities as JSON.",
    "PER ORG LOC DATE: persons, organisations, locations and dates.",
    '{"entities": [{"text": "Kano", "type": "LOC"}]}',
]


def build_tokenizer(chat_template: str | None) -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE (any text encodes) trained on a few sentences, ~300 tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<eos>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    if chat_template:
        fast.chat_template = chat_template
    return fast


def save_model(folder: Path, tokenizer: transformers.PreTrainedTokenizerFast, seed: int) -> Path:
    """Random weights (fixed seed) for a tiny Llama, saved with its tokenizer."""
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
