"""Shared fixtures: where the real MasakhaNER 2.0 data lives, and a loopback OpenAI server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tf_prompt.testing import LoopbackServer

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """`../shared/data` next to the repository (or $TF_PROMPT_TEST_DATA); None when absent."""
    path = Path(os.environ.get("TF_PROMPT_TEST_DATA") or REPO.parent / "shared" / "data")
    return path if (path / "masakhaner2").is_dir() else None


@pytest.fixture
def shared_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared data folder, exported as TF_PROMPT_DATA; skips the test when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data (MasakhaNER 2.0) is not available")
    monkeypatch.setenv("TF_PROMPT_DATA", str(path))
    return path


@pytest.fixture
def server():
    """A loopback OpenAI-compatible server; tests set `server.responder` / `server.fault`."""
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never reach a real provider (no key or base URL from the developer's shell) and
    each test has its own empty reply cache."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("TF_PROMPT_CACHE", str(tmp_path / "tf-prompt-cache"))
