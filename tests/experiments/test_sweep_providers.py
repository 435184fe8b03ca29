"""One sweep over four providers: an OpenAI-compatible server, Anthropic (anthropic SDK), Gemini
(google-genai SDK) and an Azure OpenAI deployment, each a loopback server with its own endpoint,
key variable (and for Azure its api-version), all set per model in [[models]]. One results table;
a rerun sends nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_module
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.experiments.sweep import load_config, main_sweep
from tf_prompt.experiments.sweep.config import SweepError
from tf_prompt.testing import LoopbackServer, oracle_responder
from tf_prompt.testing.anthropic_server import AnthropicLoopback
from tf_prompt.testing.azure_server import azure_server, endpoint
from tf_prompt.testing.gemini_server import GeminiServer

require_module("google.genai")
require_module("anthropic")

LABELS = ["PER", "ORG", "LOC", "DATE"]
KEYS = {"TF_SW_OPENAI": "sk-sweep-openai-111", "TF_SW_GEMINI": "gk-sweep-gemini-222",
        "TF_SW_AZURE": "az-sweep-azure-333", "TF_SW_ANTHROPIC": "sk-ant-sweep-444"}


@pytest.fixture
def sentences() -> list[Any]:
    return read_conll(sample_path())


def _config(openai_url: str, gemini_url: str, azure_url: str, anthropic_url: str) -> str:
    return (f'out = "sw"\nlimit = 4\nlabels = {json.dumps(LABELS)}\nmethods = ["direct", "transfusion"]\n'
            f'datasets = [{{data = "{sample_path()}", language = "swa", name = "sample"}}]\n\n'
            f'[[models]]\nname = "local-model"\nbase_url = "{openai_url}"\napi_key_env = "TF_SW_OPENAI"\n\n'
            f'[[models]]\nname = "gemini:gemini-2.5-flash"\nlabel = "gemini-flash"\nbase_url = "{gemini_url}"\n'
            f'api_key_env = "TF_SW_GEMINI"\n\n'
            f'[[models]]\nname = "azure:gpt-4o-mini"\nlabel = "azure-mini"\nbase_url = "{azure_url}"\n'
            f'api_key_env = "TF_SW_AZURE"\napi_version = "2024-06-01"\n\n'
            f'[[models]]\nname = "anthropic:claude-sonnet-4-5"\nlabel = "claude"\nbase_url = "{anthropic_url}"\n'
            f'api_key_env = "TF_SW_ANTHROPIC"\n\n[run]\nmax_retries = 0\n')


def test_a_sweep_mixes_providers_in_one_table_and_a_rerun_sends_nothing(
        sentences, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, key in KEYS.items():
        monkeypatch.setenv(name, key)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-MUST-NOT-TRAVEL")
    monkeypatch.setenv("TF_PROMPT_CACHE", str(tmp_path / "cache"))
    oracle = oracle_responder(sentences, LABELS)
    azure, gate = azure_server(oracle, key=KEYS["TF_SW_AZURE"], deployments={"gpt-4o-mini"})
    with (LoopbackServer(oracle) as plain, GeminiServer(oracle, key=KEYS["TF_SW_GEMINI"]) as gemini, azure,
          AnthropicLoopback(oracle, api_key=KEYS["TF_SW_ANTHROPIC"]) as claude):
        config = tmp_path / "sweep.toml"
        config.write_text(_config(plain.base_url, gemini.base_url, endpoint(azure), claude.base_url), encoding="utf-8")
        assert main_sweep([str(config)]) == 0
        calls = (len(plain.requests), len(gemini.requests), len(azure.requests), len(claude.requests))
        assert calls == (4 + 12,) * 4   # direct: 1 call a sentence, transfusion 3 more
        assert {s["api_version"] for s in gate.seen} == {"2024-06-01"} and gate.refused == 0
        assert set(gemini.keys) == {KEYS["TF_SW_GEMINI"]}

        results = json.loads((tmp_path / "sw" / "results.json").read_text())
        cells = {(c["model"], c["method"]): c for c in results["cells"]}
        assert set(cells) == {(m, meth) for m in ("local-model", "gemini-flash", "azure-mini", "claude")
                              for meth in ("direct", "transfusion")}
        assert all(c["f1"] == 1.0 for c in cells.values())
        # priced where the table knows the model (gemini-2.5-flash; a deployment named gpt-4o-mini)
        assert all(cells[(m, "direct")]["cost_usd"] > 0 for m in ("gemini-flash", "azure-mini", "claude"))
        table = (tmp_path / "sw" / "results.md").read_text()
        assert all(label in table for label in ("local-model", "gemini-flash", "azure-mini", "claude"))
        urls = {"gemini-flash": gemini.base_url, "azure-mini": f"{endpoint(azure)}?api-version=2024-06-01",
                "local-model": plain.base_url, "claude": claude.base_url}
        for label, url in urls.items():
            metrics = json.loads((tmp_path / "sw" / label / "sample" / "direct" / "metrics.json").read_text())
            assert metrics["settings"]["base_url"] == url

        capsys.readouterr()
        assert main_sweep([str(config)]) == 0
        assert (len(plain.requests), len(gemini.requests), len(azure.requests), len(claude.requests)) == calls
        assert capsys.readouterr().err.count("already complete, skipped") == 8
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != config]
    for key in [*KEYS.values(), "MUST-NOT-TRAVEL"]:
        assert not [p for p in files if key.encode() in p.read_bytes()]


def test_api_version_is_a_models_key_and_not_a_run_key(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    base = f'methods = ["direct"]\ndatasets = ["{sample_path()}"]\n[[models]]\nname = "azure:d"\nbase_url = "http://h"\n'
    config.write_text(base + 'api_version = "2024-06-01"\n', encoding="utf-8")
    assert load_config(config).cells[0].settings.api_version == "2024-06-01"
    config.write_text(base + '[run]\napi_version = "2024-06-01"\n', encoding="utf-8")
    with pytest.raises(SweepError, match=r"run.api_version: set by the sweep: use \[\[models\]\] api_version"):
        load_config(config)


def test_a_key_variable_is_a_models_key_and_not_a_run_key(tmp_path: Path) -> None:
    """[run] applies to every model: an api_key_env there would send one provider's key to every
    other provider's endpoint in a sweep that mixes them (an OpenAI-compatible server's key to
    Anthropic, Google and Azure). The key variable goes with its endpoint, in [[models]]."""
    config = tmp_path / "s.toml"
    base = (f'methods = ["direct"]\ndatasets = ["{sample_path()}"]\n'
            f'[[models]]\nname = "local"\nbase_url = "http://h/v1"\napi_key_env = "TF_SW_OPENAI"\n'
            f'[[models]]\nname = "anthropic:claude-sonnet-4-5"\n')
    config.write_text(base, encoding="utf-8")
    cells = load_config(config).cells
    assert [c.settings.api_key_env for c in cells] == ["TF_SW_OPENAI", "OPENAI_API_KEY"]
    config.write_text(base + '[run]\napi_key_env = "TF_SW_OPENAI"\n', encoding="utf-8")
    with pytest.raises(SweepError,
                       match=r"s.toml:10: run.api_key_env: set by the sweep: use \[\[models\]\] api_key_env"):
        load_config(config)
