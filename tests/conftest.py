"""Shared fixtures: where the real MasakhaNER 2.0 data lives, and a loopback OpenAI server."""

from __future__ import annotations

import importlib.util
import os
from importlib import metadata
from pathlib import Path

import pytest

from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.presets import pip_requirements
from tf_prompt.testing import LoopbackServer, oracle_responder

REPO = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    """True when $CI is set to anything but "", "0", "false" or "no" (`.ci/run` sets CI=true)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(condition: object, reason: str) -> None:
    """Skip the calling test when an optional part is missing -- except in CI, where a missing
    part is a failure: CI installs everything, so a skip there would turn a broken install into a
    green run that tested nothing."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI: {reason} (CI installs every optional part; a skip here would hide it)",
                    pytrace=False)
    pytest.skip(reason)


def shared_data_dir() -> Path | None:
    """`../shared/data` next to the repository (or $TF_PROMPT_TEST_DATA); None when absent."""
    path = Path(os.environ.get("TF_PROMPT_TEST_DATA") or REPO.parent / "shared" / "data")
    return path if (path / "masakhaner2").is_dir() else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI, any skip -- `require`, `pytest.importorskip` or `pytest.skip` in any test file --
    is reported as a failure with its reason: nothing turns green into "not run" there."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI: the test was skipped ({reason}); with CI set a skip is a failure"


def require_module(name: str):
    """`pytest.importorskip` outside CI; in CI a missing module is an import error (a failure)."""
    if in_ci():
        import importlib

        return importlib.import_module(name)
    return pytest.importorskip(name)


@pytest.fixture
def shared_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared data folder, exported as TF_PROMPT_DATA; skips the test when it is absent
    (fails in CI)."""
    path = shared_data_dir()
    require(path is not None, "../shared/data (MasakhaNER 2.0) is not available")
    assert path is not None
    monkeypatch.setenv("TF_PROMPT_DATA", str(path))
    return path


@pytest.fixture(scope="session")
def gguf_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the session: the 0.5B preset (~490 MB) is assembled once for both the
    llama.cpp and the transformers tests."""
    return tmp_path_factory.mktemp("gguf-cache")


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


def local_model_missing(preset: str = "qwen2.5-coder-0.5b") -> str | None:
    """Why the local extra cannot run `preset` here (None when it can)."""
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed (pip install -e '.[local]')"
    for req in pip_requirements(preset):
        name, version = req.split("==")
        try:
            if metadata.version(name) != version:
                return f"{name} is not at version {version}"
        except metadata.PackageNotFoundError:
            return f"{name} is not installed (pip install -e '.[local]')"
    return None


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`tf-prompt ARGV` in process: exit code, stdout, stderr."""
    from tf_prompt.cli import main

    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture
def sample_oracle():
    """A loopback server answering every step perfectly for the shipped sample (all four labels)."""
    with LoopbackServer(oracle_responder(read_conll(sample_path()), ["PER", "ORG", "LOC", "DATE"])) as srv:
        yield srv
