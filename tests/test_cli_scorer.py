"""`tf-prompt run --scorer conll|string|both` against the loopback server: which scores are the
headline, what metrics.json records, and that another scorer re-scores a run folder for free.

The data puts the gold LOC on the second "Kano" of a sentence; the direct method's aligner tags
the first, so conll counts it wrong (gold 3, predicted 3, right 2: F1 2/3) and string match
counts it right (F1 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from tf_prompt.data.conll import read_conll
from tf_prompt.experiments.report import build_report
from tf_prompt.runs.summary import format_summary
from tf_prompt.scoring.evaluate import score
from tf_prompt.testing import oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
DATA = "Kano O\nya O\nje O\nKano B-LOC\n\nAudu B-PER\nya O\nje O\nKano B-LOC\n\n"

#: metrics.json's keys, in order, as `tf-prompt run` wrote them before --scorer (90ed194); the
#: conll scorer must add `scorer` and change nothing else
KEYS_BEFORE = ["precision", "recall", "f1", "per_type", "support", "n_sentences", "parse_failures",
               "parse_failures_by_step", "sentences_with_parse_failure", "failed_sentences", "hallucinated",
               "unaligned", "unknown_labels", "predicted_entities", "pivot_skipped", "scored_sentences",
               "complete", "usage", "settings"]
SETTINGS_BEFORE = {
    "annotator", "base_url", "batch_sentences", "cache_dir", "checks", "combine", "concurrency", "constrain",
    "data", "data_path", "data_sha256", "labels", "language", "limit", "max_cost", "max_retries", "max_tokens",
    "method", "model", "n_ctx", "n_threads", "no_cache", "out", "pivot_check", "prices", "prices_date",
    "progress", "prompts", "retry_initial", "rpm", "schema", "seed", "shots", "shots_from", "style",
    "temperature", "templates", "timeout", "tokenizer", "tokenizer_note", "tpm", "translator",
    "api_version",   # added with the Azure backend (issue 15): --api-version, recorded for every run
}


@pytest.fixture
def data(tmp_path: Path, server) -> Path:
    path = tmp_path / "kano.conll"
    path.write_text(DATA, encoding="utf-8")
    server.responder = oracle_responder(read_conll(path), LABELS)
    return path


def _run(capsys, server, data: Path, out: Path, *extra: str) -> tuple[dict, str]:
    code, stdout, stderr = run_cli(capsys, "run", "--model", "m", "--base-url", server.base_url, "--method", "direct",
                                   "--data", str(data), "--out", str(out), "--no-progress", *extra)
    assert code == 0, stderr
    return json.loads((out / "metrics.json").read_text(encoding="utf-8")), stdout


def test_conll_is_the_default_and_changes_only_the_scorer_key(capsys, server, data: Path, tmp_path: Path) -> None:
    metrics, stdout = _run(capsys, server, data, tmp_path / "default")
    explicit, _ = _run(capsys, server, data, tmp_path / "conll", "--scorer", "conll")
    for m in (metrics, explicit):
        keys = list(m)
        assert keys.pop(keys.index("scorer")) == "scorer" and keys == KEYS_BEFORE
        assert set(m["settings"]) - {"scorer"} == SETTINGS_BEFORE
        assert m["scorer"] == "conll" and m["settings"]["scorer"] == "conll"
        assert "string_match" not in m
    gold = [s.tags for s in read_conll(data)]
    predicted = [["B-LOC", "O", "O", "O"], ["B-PER", "O", "O", "B-LOC"]]   # the aligner's first "Kano"
    expected = score(gold, predicted)
    assert {k: metrics[k] for k in expected} == expected and metrics["f1"] == pytest.approx(2 / 3)
    assert "scorer: conll" in stdout


def test_string_makes_the_headline(capsys, server, data: Path, tmp_path: Path) -> None:
    metrics, stdout = _run(capsys, server, data, tmp_path / "o", "--scorer", "string")
    assert metrics["scorer"] == "string" and metrics["f1"] == 1.0 and metrics["support"] == 3
    assert metrics["per_type"]["LOC"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert "string_match" not in metrics
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.split()}
    assert "scorer: string" in stdout and rows["micro"][2] == "100.0" and "string" not in rows


def test_both_keeps_conll_as_headline_and_adds_string_match(capsys, server, data: Path, tmp_path: Path) -> None:
    metrics, stdout = _run(capsys, server, data, tmp_path / "o", "--scorer", "both")
    assert metrics["scorer"] == "both" and metrics["f1"] == pytest.approx(2 / 3)
    strings = metrics["string_match"]
    assert (strings["f1"], strings["precision"], strings["recall"]) == (1.0, 1.0, 1.0)
    assert set(strings) == {"f1", "precision", "recall", "per_type", "support"}
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.split()}
    assert rows["micro"][2] == "66.7" and rows["string"][2] == "100.0"


def test_another_scorer_rescores_the_same_folder_without_a_call(capsys, server, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    first, _ = _run(capsys, server, data, out)
    predictions = (out / "predictions.conll").read_bytes()
    calls = len(server.requests)
    again, _ = _run(capsys, server, data, out, "--scorer", "string")   # not refused as a different run
    assert len(server.requests) == calls   # every reply came from the cache
    assert (first["scorer"], first["f1"]) == ("conll", pytest.approx(2 / 3))
    assert (again["scorer"], again["f1"]) == ("string", 1.0)
    assert again["settings"]["scorer"] == "string"
    assert (out / "predictions.conll").read_bytes() == predictions
    # a setting that changes replies is still a different run
    code, _, stderr = run_cli(capsys, "run", "--model", "m", "--base-url", server.base_url, "--method", "direct",
                              "--data", str(data), "--out", str(out), "--no-progress", "--temperature", "0.5")
    assert code != 0 and "different run" in stderr


def test_unlabelled_data_names_its_scorer_and_has_no_scores(capsys, server, tmp_path: Path) -> None:
    path, labelled = tmp_path / "raw.conll", tmp_path / "labelled.conll"
    path.write_text("Kano\nya\n\n", encoding="utf-8")
    labelled.write_text("Kano B-LOC\nya O\n\n", encoding="utf-8")
    server.responder = oracle_responder(read_conll(labelled), LABELS)
    metrics, _ = _run(capsys, server, path, tmp_path / "o", "--scorer", "both")
    assert metrics["scorer"] == "both" and metrics["f1"] is None and metrics["string_match"]["f1"] is None


def test_a_summary_from_before_the_scorer_reads_as_conll() -> None:
    metrics = {"n_sentences": 1, "parse_failures": 0, "hallucinated": 0, "unaligned": 0, "f1": 0.5,
               "precision": 0.5, "recall": 0.5, "per_type": {}, "support": 2}
    assert format_summary(metrics).splitlines()[0].startswith("scorer: conll")


def test_the_report_names_the_scorer_of_its_headline(capsys, server, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    _run(capsys, server, data, out, "--scorer", "string")
    page = build_report(out).read_text(encoding="utf-8")
    assert "scorer" in page and ">string<" in page and "100.0" in page
    assert "string-match F1" not in page
    _run(capsys, server, data, out, "--scorer", "both")
    page = build_report(out).read_text(encoding="utf-8")
    assert ">both<" in page and "string-match F1" in page
