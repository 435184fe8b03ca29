"""The command line as a user runs it: exit codes, one-line errors, the summary table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import Fault, oracle_responder


def test_subprocess_run_prints_summary_and_writes_outputs(server, tmp_path: Path) -> None:
    server.responder = oracle_responder(read_conll(sample_path()), ["PER", "ORG", "LOC", "DATE"])
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    proc = subprocess.run(
        [sys.executable, "-m", "tf_prompt.cli", "run", "--model", "qwen", "--base-url", server.base_url,
         "--method", "transfusion", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "micro" in proc.stdout and "100.0" in proc.stdout
    assert "shipped sample" in proc.stderr
    assert {p.name for p in out.iterdir()} == {"metrics.json", "predictions.conll", "trace.jsonl", "run.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("f1", "precision", "recall", "per_type", "n_sentences", "parse_failures",
                "hallucinated", "unaligned", "usage"):
        assert key in metrics
    assert "sk-" not in (out / "metrics.json").read_text()


def test_bad_conll_input_is_one_line_with_file_and_line(tmp_path: Path, capsys, server) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("Kano B-LOC\nya O\n\nShehu B-PERSON-X-\nGusau\n", encoding="utf-8")
    code = main(["run", "--model", "m", "--base-url", server.base_url, "--data", str(bad),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:5:" in err or f"{bad}:4:" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not server.requests  # nothing paid for before the data was known to be good


def test_unknown_dataset_and_labels(tmp_path: Path, capsys, server) -> None:
    assert main(["run", "--base-url", server.base_url, "--data", "masakhaner2:xyz"]) == 2
    assert "xyz" in capsys.readouterr().err
    assert main(["run", "--base-url", server.base_url, "--labels", "PER,MISC"]) == 2
    assert "MISC" in capsys.readouterr().err


def test_no_key_and_no_base_url_is_a_clear_error(capsys) -> None:
    assert main(["run", "--model", "gpt-4o"]) == 1
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and "Traceback" not in err


@pytest.mark.parametrize("status,code,expect", [
    (401, "invalid_api_key", "HTTP 401"),
    (404, "model_not_found", "HTTP 404"),
    (429, "insufficient_quota", "insufficient quota"),
])
def test_fatal_api_errors_stop_with_one_line(server, tmp_path: Path, capsys, status, code, expect) -> None:
    server.fault = lambda body, attempt: Fault(status, {"error": {"message": "nope", "code": code}})
    rc = main(["run", "--model", "m", "--base-url", server.base_url, "--method", "direct",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1
    assert expect in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("tf-prompt: error:")


def test_user_schema_and_prompt_override(server, tmp_path: Path) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text("labels:\n  - name: LOC\n    description: places\n")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "direct.v9.jinja").write_text(
        "{% block user %}Places in: {{ text }} ({{ labels | map(attribute='name') | join(',') }}){% endblock %}")
    server.responder = lambda body: '{"LOC": ["Kano"]}'
    data = tmp_path / "d.txt"
    data.write_text("Ya je Kano O\n", encoding="utf-8")
    data.write_text("Ya O\nje O\nKano B-LOC\n", encoding="utf-8")
    rc = main(["run", "--model", "m", "--base-url", server.base_url, "--method", "direct", "--data", str(data),
               "--schema", str(schema), "--prompts", str(prompts), "--out", str(tmp_path / "o")])
    assert rc == 0
    assert server.requests[0]["messages"] == [{"role": "user", "content": "Places in: Ya je Kano (LOC)"}]
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["f1"] == 1.0 and metrics["settings"]["templates"]["direct"].startswith("direct.v9@")


def test_file_translator_and_spacy_annotator_from_the_cli(server, tmp_path: Path, capsys) -> None:
    pytest.importorskip("spacy")
    try:
        from tf_prompt.components.annotators import load_spacy

        load_spacy("en_core_web_sm")
    except Exception as e:
        pytest.skip(f"no spaCy English model: {e}")
    data = tmp_path / "d.txt"
    data.write_text("Shehu B-PER\nGusau I-PER\nya O\nisa O\nKano B-LOC\n. O\n", encoding="utf-8")
    translations = tmp_path / "en.txt"
    translations.write_text("President Shehu Gusau arrived in Kano .\n", encoding="utf-8")
    out = tmp_path / "o"
    rc = main(["run", "--model", "m", "--base-url", server.base_url, "--method", "translate-test",
               "--data", str(data), "--labels", "PER,ORG,LOC", "--translator", f"file:{translations}",
               "--annotator", "spacy", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert server.requests == []          # no model call at all on this path
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["f1"] == 1.0
    assert metrics["settings"]["translator"].startswith("file:en.txt@")
    assert metrics["settings"]["annotator"].startswith("spacy:")
    # a translations file that does not match the data is refused before anything runs
    translations.write_text("one\ntwo\n", encoding="utf-8")
    rc = main(["run", "--model", "m", "--base-url", server.base_url, "--method", "transfusion",
               "--data", str(data), "--translator", f"file:{translations}", "--out", str(out)])
    assert rc == 2 and "2 translations for 1 sentences" in capsys.readouterr().err


def test_default_model_choice(monkeypatch) -> None:
    from tf_prompt.api import default_model, make_backend
    from tf_prompt.settings import RunSettings

    model, note = default_model(RunSettings())
    assert model == "gguf:qwen2.5-coder-1.5b" and "embedded local model" in note
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert default_model(RunSettings()) == ("gpt-4o-mini", None)
    assert default_model(RunSettings(model="gpt-4o")) == ("gpt-4o", None)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert default_model(RunSettings(base_url="http://127.0.0.1:1/v1"))[0] == "gpt-4o-mini"
    # model strings choose the backend (constructing one loads nothing)
    assert make_backend(RunSettings(model="gguf:qwen2.5-coder-0.5b")).kind == "gguf"
    assert make_backend(RunSettings(model="hf:/nonexistent/dir")).kind == "hf"
    assert make_backend(RunSettings(model="openai:gpt-4o", base_url="http://127.0.0.1:1/v1")).model == "gpt-4o"


def test_progress_line_on_stderr(server, tmp_path: Path, capsys) -> None:
    server.responder = oracle_responder(read_conll(sample_path()), ["PER", "ORG", "LOC", "DATE"])
    assert main(["run", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--method", "direct",
                 "--progress", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "12/12" in err and "calls 12" in err and "hits 0" in err and "retries 0" in err and "$" in err
