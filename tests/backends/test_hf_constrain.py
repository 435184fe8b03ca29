"""Constrained answers from the hf backend: a logits processor (llguidance) keeps `generate` inside
the JSON schema of `response_format`, on a tiny random model built here (offline, CPU, seconds).

Random weights are the hard case: left alone the model writes bytes, so every well-formed answer
below is the constraint's doing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

# The hub library reads this once at import: set it before transformers is imported anywhere.
os.environ["HF_HUB_OFFLINE"] = "1"

from conftest import require_module

torch = require_module("torch")
transformers = require_module("transformers")
require_module("tokenizers")
require_module("llguidance")

from constrain_helpers import (  # noqa: E402
    TEXT,
    batch_schema,
    batch_violation,
    entities_schema,
    response_format,
    schema_violation,
    with_changes,
    word_ngrams,
)
from hf_tiny import CHAT_TEMPLATE, build_tokenizer, save_model  # noqa: E402
from test_hf import MESSAGES  # noqa: E402
from tf_prompt.backends.base import BackendError  # noqa: E402
from tf_prompt.backends.hf import HFBackend  # noqa: E402
from tf_prompt.data.conll import read_conll  # noqa: E402
from tf_prompt.data.datasets import sample_path  # noqa: E402

SENTENCE = "Shehu Gusau ya isa Kano ranar Litinin ."
GRAMS = word_ngrams(SENTENCE.split())


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-constrain")
    return {"chat": save_model(root / "chat", build_tokenizer(CHAT_TEMPLATE), seed=0),
            "raw": save_model(root / "raw", build_tokenizer(None), seed=0)}


def ask(backend: HFBackend, **params: Any):
    return asyncio.run(backend.complete(MESSAGES, {"temperature": 0.0, "max_tokens": 200, **params}))


@pytest.mark.parametrize("kind", ["chat", "raw"])
def test_greedy_answer_matches_the_ngram_and_label_enums(models: dict[str, Path], kind: str) -> None:
    backend = HFBackend(model=str(models[kind]))
    fmt = response_format(entities_schema(GRAMS))
    free = ask(backend, max_tokens=40)
    assert schema_violation(free.text, GRAMS) is not None, free.text     # random weights write noise
    first = ask(backend, response_format=fmt)
    assert first.finish_reason == "stop", first
    assert schema_violation(first.text, GRAMS) is None, schema_violation(first.text, GRAMS)
    assert ask(backend, response_format=fmt).text == first.text


def test_sampled_answers_match_the_schema(models: dict[str, Path]) -> None:
    """Sampling walks other paths through the grammar (whitespace, several entities, other
    n-grams); each must still end as a valid answer."""
    backend = HFBackend(model=str(models["chat"]))
    fmt = response_format(entities_schema(GRAMS))
    replies = [ask(backend, response_format=fmt, temperature=1.0, seed=seed, max_tokens=400) for seed in range(6)]
    for reply in replies:
        assert reply.finish_reason == "stop", reply
        assert schema_violation(reply.text, GRAMS) is None, schema_violation(reply.text, GRAMS)
    assert len({r.text for r in replies}) > 1 and any(json.loads(r.text)["entities"] for r in replies)


def test_an_enum_of_hundreds_of_ngrams(models: dict[str, Path]) -> None:
    """Four sample sentences as one text: ~600 n-grams, the size of a long news sentence's."""
    grams = word_ngrams([w for s in read_conll(sample_path())[:4] for w in s.tokens])
    assert len(grams) > 500
    reply = ask(HFBackend(model=str(models["chat"])), response_format=response_format(entities_schema(grams)))
    assert reply.finish_reason == "stop", reply
    assert schema_violation(reply.text, grams) is None, schema_violation(reply.text, grams)


def test_a_batch_gets_one_enum_per_item(models: dict[str, Path]) -> None:
    """Each numbered item may only name n-grams of its own sentence."""
    per_item = [word_ngrams(s.tokens) for s in read_conll(sample_path())[6:8]]
    backend = HFBackend(model=str(models["chat"]))
    replies = [ask(backend, response_format=response_format(batch_schema(per_item)), temperature=1.0, seed=seed,
                   max_tokens=400) for seed in range(3)]
    for reply in replies:
        assert reply.finish_reason == "stop", reply
        assert batch_violation(reply.text, per_item) is None, batch_violation(reply.text, per_item)


def test_unconstrained_calls_never_load_llguidance(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Free-text calls answer as before with llguidance unimportable; a constrained call then says
    what to install, in one line."""
    backend = HFBackend(model=str(models["chat"]))
    before = ask(backend, max_tokens=12)
    monkeypatch.setitem(sys.modules, "llguidance", None)     # `import llguidance` now fails
    assert ask(backend, max_tokens=12) == before
    assert ask(backend, max_tokens=12, response_format={"type": "text"}) == before
    with pytest.raises(BackendError, match=r"need llguidance: pip install -e '\.\[hf\]'") as err:
        ask(backend, response_format=response_format(entities_schema(GRAMS)))
    assert "\n" not in str(err.value)





@pytest.mark.parametrize("fmt, says", [
    (response_format(with_changes(entities_schema(None), ["properties", "entities"], uniqueItems=True)),
     'Unimplemented keys: ["uniqueItems"]'),
    (response_format(with_changes(entities_schema(None), TEXT, pattern="(?<=a)b")), "look-around"),
    # a required property no value can take (in an item it would only force an empty list)
    (response_format(with_changes(entities_schema(None), ["properties", "entities"], enum=[])), "Unsatisfiable schema"),
    (response_format(with_changes(entities_schema(None), TEXT, type="strin")), "Invalid type: strin"),
    ({"type": "json_schema", "json_schema": {"name": "entities"}}, "no 'schema' object"),
])
def test_a_schema_llguidance_cannot_enforce_is_one_error_line(models: dict[str, Path], fmt: dict[str, Any],
                                                              says: str) -> None:
    backend = HFBackend(model=str(models["chat"]))
    with pytest.raises(BackendError) as err:
        ask(backend, response_format=fmt)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"hf: {backend.model}: ") and says in message, message
    assert not err.value.retryable
