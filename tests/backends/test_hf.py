"""The Hugging Face backend on a tiny random model built here, offline and on CPU.

The model (a 2-layer Llama with hidden size 32) and its byte-level BPE tokenizer are created in a
temporary folder, so the tests need no download and run in seconds. Its replies are noise; what
is tested is the plumbing: determinism, limits, stop strings, usage, identity, errors, pipeline.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

# The hub library reads this once at import: set it before transformers is imported anywhere.
os.environ["HF_HUB_OFFLINE"] = "1"

from conftest import require, require_module

torch = require_module("torch")
transformers = require_module("transformers")
tokenizers = require_module("tokenizers")

from hf_tiny import CHAT_TEMPLATE, build_tokenizer, save_model  # noqa: E402
from tf_prompt.backends import hf  # noqa: E402
from tf_prompt.backends.base import BackendError  # noqa: E402
from tf_prompt.backends.hf import HFBackend, raw_prompt  # noqa: E402

MESSAGES = [{"role": "system", "content": "You find named entities."},
            {"role": "user", "content": "Shehu Gusau ya isa Kano ranar Litinin."}]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never reach the hub, even if another module imported huggingface_hub before us."""
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"chat": save_model(root / "chat", build_tokenizer(CHAT_TEMPLATE), seed=0),
            "raw": save_model(root / "raw", build_tokenizer(None), seed=0)}


def ask(backend: HFBackend, messages=MESSAGES, **params):
    return asyncio.run(backend.complete(messages, {"temperature": 0.0, "max_tokens": 12, **params}))


@pytest.mark.parametrize("kind", ["chat", "raw"])
def test_greedy_is_deterministic_and_bounded(models: dict[str, Path], kind: str) -> None:
    backend = HFBackend(model=str(models[kind]))
    first, second = ask(backend), ask(backend)
    assert first.text == second.text
    assert 0 < first.completion_tokens <= 12
    assert first.finish_reason in ("stop", "length")
    if first.finish_reason == "length":
        assert first.completion_tokens == 12
    assert ask(backend, max_tokens=3).completion_tokens <= 3


def test_prompt_usage_matches_the_tokenizer(models: dict[str, Path]) -> None:
    chat = HFBackend(model=str(models["chat"]))
    chat.tokenizer()
    tok = hf._TOKENIZERS[chat._key()]
    ids = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert ask(chat).prompt_tokens == len(ids)

    raw = HFBackend(model=str(models["raw"]))
    counter = raw.tokenizer()
    assert counter.exact and counter.name == f"{models['raw']} (hf)"
    prompt = raw_prompt(MESSAGES)
    assert prompt == ("System: You find named entities.\n\nUser: Shehu Gusau ya isa Kano ranar Litinin."
                      "\n\nAssistant:")
    assert ask(raw).prompt_tokens == counter.count(prompt)


def test_sampling_is_seeded(models: dict[str, Path]) -> None:
    """Same seed, same sample; other seeds, other samples (greedy decoding would give one text
    for every seed, so the second half fails if the seed or the temperature is ignored)."""
    backend = HFBackend(model=str(models["chat"]))
    a = ask(backend, temperature=1.0, seed=7, max_tokens=8)
    b = ask(backend, temperature=1.0, seed=7, max_tokens=8)
    assert a.text == b.text
    others = {ask(backend, temperature=1.0, seed=seed, max_tokens=8).text for seed in (8, 9, 10)}
    assert others - {a.text}, "three other seeds all gave the seed-7 sample"
    assert ask(backend, temperature=0.0, seed=8, max_tokens=8).text == ask(backend, max_tokens=8).text


def test_stop_strings_truncate(models: dict[str, Path]) -> None:
    backend = HFBackend(model=str(models["chat"]))
    full = ask(backend, max_tokens=20).text
    marks = [i for i in range(2, len(full) - 1) if not full[i].isspace()]
    if not marks:
        pytest.skip(f"the random model's reply is too short to cut: {full!r}")
    stop = full[marks[len(marks) // 2]]
    cut = ask(backend, max_tokens=20, stop=[stop])
    assert cut.text == full[:full.find(stop)].strip()
    assert stop not in cut.text
    assert cut.finish_reason == "stop"


def test_tokenizer_alone_does_not_load_weights(models: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(models["raw"], tmp_path / "copy")
    backend = HFBackend(model=str(folder))
    assert backend.tokenizer().count("Kano") > 0
    assert not any(key[0] == str(folder) for key in hf._MODELS)


def test_identity_follows_the_weights(models: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(models["raw"], tmp_path / "copy")
    before = HFBackend(model=str(folder))
    ident = before.identity()
    assert ident["kind"] == "hf" and ident["model"] == str(folder) and ident["revision"]
    assert ident["gguf_file"] is None
    assert HFBackend(model=str(folder)).identity() == ident
    reply = ask(before)
    time.sleep(0.01)   # a distinct mtime even on coarse-grained file systems
    save_model(folder, hf._TOKENIZERS[before._key()], seed=1)
    after = HFBackend(model=str(folder))
    assert after.identity()["revision"] != ident["revision"]
    assert ask(after).text != reply.text   # the new weights were loaded, not the cached ones
    assert sum(key[0] == str(folder) for key in hf._MODELS) <= 1   # the stale weights were dropped


@pytest.mark.parametrize("name", ["missing-dir", "nobody-xyz/not-a-real-model-3141"])
def test_unloadable_model_is_one_line_fatal_error(tmp_path: Path, name: str) -> None:
    model = str(tmp_path / name) if name == "missing-dir" else name
    backend = HFBackend(model=model)
    with pytest.raises(BackendError) as info:
        backend.tokenizer()
    assert not info.value.retryable and "\n" not in str(info.value)
    assert ("not a directory" if name == "missing-dir" else "HF_HUB_OFFLINE") in str(info.value)
    with pytest.raises(BackendError):
        ask(backend)


def test_bad_dtype_is_rejected() -> None:
    with pytest.raises(BackendError, match="dtype"):
        HFBackend(model="x", dtype="float16x")


def test_pipeline_runs_end_to_end(models: dict[str, Path]) -> None:
    from tf_prompt.api import run_async
    from tf_prompt.data.conll import read_conll
    from tf_prompt.data.datasets import sample_path
    from tf_prompt.settings import RunSettings

    folder = str(models["chat"])
    sentences = read_conll(sample_path())[:2]
    settings = RunSettings(model=f"hf:{folder}", method="direct", no_cache=True, max_tokens=16)
    summary = asyncio.run(run_async(settings, sentences, backend=HFBackend(model=folder)))
    assert summary.metrics["n_sentences"] == 2
    assert summary.metrics["usage"]["calls"] == 2
    assert summary.metrics["usage"]["prompt_tokens"] > 0 and summary.metrics["usage"]["failed_calls"] == 0


GGUF_PRESET = "qwen2.5-coder-0.5b"   # the file the local extra installs (llm/presets.py assembles it)


@pytest.mark.slow
def test_real_gguf_model_answers(gguf_cache_dir: Path) -> None:
    """transformers loads the weights from a GGUF file (`gguf_file`): the 0.5B preset, dequantised
    on CPU (~1 minute on 2 cores)."""
    from tf_prompt.llm.presets import ModelError, resolve_gguf

    require_module("gguf")   # transformers reads GGUF files with it (installed by the hf extra)
    try:
        path = resolve_gguf(GGUF_PRESET, gguf_cache_dir)
    except ModelError as e:
        require(False, f"the {GGUF_PRESET} preset is not installed: {e}")
        raise
    backend = HFBackend(model=str(path.parent), gguf_file=path.name)
    reply = ask(backend, [{"role": "user", "content": "Reply with the single word OK."}], max_tokens=8)
    assert "ok" in reply.text.lower()
