"""Every decoding parameter is part of the reply cache key; how calls are made is not.

A reply cached for one model, temperature, max_tokens or seed must not answer a run with another
(the reply could differ), while concurrency, retries, timeouts and the API key change nothing.
Real runs against the loopback server; the server's request count is the evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tf_prompt import run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
BASE: dict[str, Any] = dict(model="m", method="direct", temperature=0.0, max_tokens=256, seed=None)


@pytest.fixture
def server():
    with LoopbackServer(oracle_responder(read_conll(sample_path()), LABELS)) as srv:
        yield srv


def _sent(server: LoopbackServer, tmp_path: Path, **changes: Any) -> list[dict[str, Any]]:
    """Run the sample with BASE plus `changes` on a shared cache; the requests it sent."""
    before = len(server.requests)
    summary = run_dataset(base_url=server.base_url, cache_dir=str(tmp_path / "cache"), **{**BASE, **changes})
    assert summary.metrics["f1"] == pytest.approx(1.0)
    return server.requests[before:]


@pytest.mark.parametrize("changes,sent", [
    ({"model": "m-other"}, {"model": "m-other"}),
    ({"temperature": 0.7}, {"temperature": 0.7}),
    ({"max_tokens": 512}, {"max_tokens": 512}),
    ({"max_tokens": None}, {}),
    ({"seed": 7}, {"seed": 7}),
])
def test_a_change_of_decoding_parameter_misses_the_cache(server, tmp_path: Path, changes: dict, sent: dict) -> None:
    n = len(read_conll(sample_path()))
    assert len(_sent(server, tmp_path)) == n          # fills the cache
    assert _sent(server, tmp_path) == []               # same settings: every reply from the cache
    again = _sent(server, tmp_path, **changes)
    assert len(again) == n, changes                    # a new parameter: every prompt is sent again
    for body in again:                                 # ... with the new value
        for key, value in sent.items():
            assert body[key] == value
        if changes == {"max_tokens": None}:
            assert "max_tokens" not in body
    assert _sent(server, tmp_path, **changes) == []    # and is cached under it


def test_how_calls_are_made_is_not_in_the_key(server, tmp_path: Path, monkeypatch) -> None:
    assert len(_sent(server, tmp_path)) == len(read_conll(sample_path()))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-key")
    assert _sent(server, tmp_path, concurrency=1, max_retries=0, retry_initial=0.5, timeout=7.0) == []
