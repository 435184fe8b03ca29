"""Done-criterion of the pipeline: a perfect model scores ~1.0 on every MasakhaNER 2.0 test set.

Runs in process through FunctionBackend (the HTTP path is covered by test_end_to_end.py and by
benchmarks/perfect_model.py, which does the same check over the loopback server), so the whole
pipeline -- templates, parsing, alignment, projection, scoring -- is checked on ~25k real
sentences in every language within the suite's time budget.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tf_prompt.api import run_async
from tf_prompt.backends.function import FunctionBackend
from tf_prompt.data import read_conll
from tf_prompt.settings import RunSettings
from tf_prompt.testing import oracle_responder

from conftest import shared_data_dir

LABELS = ["PER", "ORG", "LOC", "DATE"]
_root = shared_data_dir()
LANGS = sorted(p.name for p in (_root / "masakhaner2").iterdir()) if _root else []


def _run(lang: str, method: str, variant: str = "clean", limit: int | None = None, checks: bool = False) -> dict:
    """The pipeline's own fidelity: without the self-checks, which deliberately rewrite answers
    to MasakhaNER's conventions (a perfect answer only loses where gold breaks them)."""
    sentences = read_conll(Path(_root) / "masakhaner2" / lang / "test.txt")[:limit]
    responder = oracle_responder(sentences, LABELS, variant=variant)
    backend = FunctionBackend(model="oracle", fn=lambda messages: responder({"messages": messages}))
    settings = RunSettings(model="oracle", method=method, combine="none" if method == "transfusion" else None,
                           checks=checks, concurrency=16, no_cache=True)
    return asyncio.run(run_async(settings, sentences, backend=backend)).metrics


@pytest.mark.slow
@pytest.mark.skipif(not LANGS, reason="../shared/data (MasakhaNER 2.0) is not available")
@pytest.mark.parametrize("lang", LANGS)
def test_perfect_model_every_language_every_method(lang: str) -> None:
    for method in ("direct", "translate-test", "transfusion"):
        metrics = _run(lang, method)
        assert metrics["f1"] >= 0.99, (lang, method, metrics["f1"])
        assert metrics["parse_failures"] == 0
    # the self-checks (name shape, titles, generic words, derived from dev) agree with test gold
    assert _run(lang, "direct", checks=True)["f1"] >= 0.95


@pytest.mark.slow
@pytest.mark.skipif(not LANGS, reason="../shared/data (MasakhaNER 2.0) is not available")
@pytest.mark.parametrize("variant", ["lower", "ascii", "spaces", "fenced"])
def test_degraded_perfect_answers_every_language(variant: str) -> None:
    for lang in LANGS:
        for method in ("direct", "transfusion"):
            metrics = _run(lang, method, variant, limit=300)
            assert metrics["f1"] >= 0.98, (lang, method, variant, metrics["f1"])
