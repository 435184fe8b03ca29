"""Constrained answers from llama.cpp in process (the gguf backend) on the real 0.5B preset.

A constrained call carries `response_format` (json_schema); llama.cpp must sample only answers that
match it: an enum of the sentence's word n-grams for `text` and of the labels for `type`. A schema
llama.cpp would enforce only in part is refused with one line before any model work.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import local_model_missing, require
from constrain_helpers import (
    TEXT,
    batch_schema,
    batch_violation,
    entities_schema,
    response_format,
    schema_violation,
    with_changes,
    word_ngrams,
)
from tf_prompt.backends.base import BackendError
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path

PRESET = "qwen2.5-coder-0.5b"
SYSTEM = ("Find the named entities (PER, ORG, LOC, DATE) in the user's sentence. Answer with JSON: "
          '{"entities": [{"text": "...", "type": "..."}]}')


@pytest.fixture(autouse=True)
def _local_extra_installed() -> None:
    """Skips without the local extra; in CI (which installs it) its absence fails."""
    reason = local_model_missing(PRESET)
    require(reason is None, str(reason))


@pytest.fixture(scope="module")
def backend(gguf_cache_dir: Path):
    from tf_prompt.backends.gguf import GGUFBackend

    backend = GGUFBackend(PRESET, n_threads=2, n_ctx=2048, cache_dir=str(gguf_cache_dir))
    _ask(backend, [{"role": "user", "content": "hi"}], max_tokens=1)     # the load, outside the tests' time
    return backend


def _messages(sentence: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": sentence}]


def _ask(backend, messages: list[dict[str, str]], **params: Any):
    return asyncio.run(backend.complete(messages, {"temperature": 0, "max_tokens": 160, **params}))


def test_answer_is_one_of_the_sentences_ngrams_with_a_label(backend) -> None:
    sentence = read_conll(sample_path())[6]          # Musa Bello ya isa Kano ranar Litinin .
    grams = word_ngrams(sentence.tokens)
    fmt = response_format(entities_schema(grams))
    free = _ask(backend, _messages(sentence.text), max_tokens=40)
    first = _ask(backend, _messages(sentence.text), response_format=fmt)
    assert first.finish_reason == "stop", first
    assert schema_violation(first.text, grams) is None, schema_violation(first.text, grams)
    assert json.loads(first.text)["entities"], first.text    # not only the empty answer
    # the model left to itself does not answer in the schema: the constraint is what made it
    assert schema_violation(free.text, grams) is not None, free.text
    assert _ask(backend, _messages(sentence.text), response_format=fmt).text == first.text


def test_an_enum_of_hundreds_of_ngrams(backend) -> None:
    """Four sample sentences as one text: ~600 n-grams, the size of a long news sentence's."""
    words = [w for s in read_conll(sample_path())[:4] for w in s.tokens]
    grams = word_ngrams(words)
    assert len(grams) > 500
    reply = _ask(backend, _messages(" ".join(words)), response_format=response_format(entities_schema(grams)))
    assert reply.finish_reason == "stop", reply
    assert schema_violation(reply.text, grams) is None, schema_violation(reply.text, grams)


def test_a_batch_gets_one_enum_per_item(backend) -> None:
    """A sentence batch: one numbered item per sentence, each may only name its own n-grams."""
    sentences = read_conll(sample_path())[6:8]
    per_item = [word_ngrams(s.tokens) for s in sentences]
    listing = "\n".join(f"{i}. {s.text}" for i, s in enumerate(sentences, 1))
    reply = _ask(backend, _messages(listing), response_format=response_format(batch_schema(per_item)),
                 max_tokens=256)
    assert reply.finish_reason == "stop", reply
    assert batch_violation(reply.text, per_item) is None, batch_violation(reply.text, per_item)


def test_unconstrained_requests_are_what_they_were(backend) -> None:
    """Without response_format the request is the same dict, key for key and in order, as before
    constraints existed; with it, the caller's object goes to llama.cpp as it is."""
    messages = _messages("Musa Bello ya isa Kano.")
    params = {"temperature": 0, "max_tokens": 8, "seed": 3, "stop": ["\n"], "top_p": 1.0, "n": 2}
    free = backend._request(messages, params)
    assert json.dumps(free) == json.dumps({"messages": messages, "temperature": 0, "max_tokens": 8, "seed": 3,
                                           "stop": ["\n"], "top_p": 1.0})
    fmt = response_format(entities_schema(["Musa Bello", "Kano"]))
    constrained = backend._request(messages, {**params, "response_format": fmt})
    assert constrained["response_format"] is fmt
    assert list(constrained) == [*free, "response_format"]
    assert {k: v for k, v in constrained.items() if k != "response_format"} == free





@pytest.mark.parametrize("fmt, says", [
    # keywords llama.cpp's converter skips silently: refused before the model is asked
    (response_format(with_changes(entities_schema(None), ["properties", "entities"], uniqueItems=True)),
     "'uniqueItems' at #/properties/entities"),
    (response_format(with_changes(entities_schema(None), TEXT, pattern="^[A-Z].*$")),
     "'pattern' at #/properties/entities/items/properties/text"),
    (response_format(with_changes(entities_schema(None), TEXT, format="email")), "format 'email'"),
    # a schema llama.cpp itself rejects
    (response_format(with_changes(entities_schema(None), TEXT, enum=[])), "enum must be a non-empty array"),
    ({"type": "json_schema", "json_schema": {"name": "entities"}}, "no 'schema' object"),
    ({"type": "xml"}, "'xml' is not one of json_schema"),
])
def test_a_schema_llama_cpp_cannot_enforce_is_one_error_line(backend, fmt: dict[str, Any], says: str) -> None:
    with pytest.raises(BackendError) as err:
        _ask(backend, _messages("Musa Bello ya isa Kano."), response_format=fmt, max_tokens=8)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"local model {PRESET}: ") and says in message, message
    assert not err.value.retryable
    assert _ask(backend, [{"role": "user", "content": "Reply with the word OK"}], max_tokens=4).text  # still serves
