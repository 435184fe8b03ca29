"""`--limit N` reads only the first N sentences of the data, on every path that reads data.

Proof that the rest is not read: a large file whose tail is broken works with `--limit 2` and
fails without it (a reader that parses everything first fails both ways).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tf_prompt import RunSettings
from tf_prompt.batch_api import run_via_batch
from tf_prompt.cli import main
from tf_prompt.data.conll import DataError, read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
N_SENTENCES = 200_000
TAILS = {"bad tag": b"Kano PLACE\n", "not UTF-8": b"caf\xe9 O\n"}


def big_file(tmp_path: Path, tail: bytes) -> tuple[Path, int]:
    """The sample's sentences, then 200k more, then a broken line; returns the path and its line number."""
    head = sample_path().read_bytes().rstrip(b"\n") + b"\n\n"
    body = b"Amina B-PER\nalifika O\nKano B-LOC\n\n" * N_SENTENCES
    path = tmp_path / "big.conll"
    path.write_bytes(head + body + tail)
    return path, (head + body).count(b"\n") + 1


@pytest.mark.parametrize("tail", TAILS.values(), ids=TAILS.keys())
def test_read_conll_limit_stops_before_a_broken_tail(tmp_path: Path, tail: bytes) -> None:
    path, bad_line = big_file(tmp_path, tail)
    start = time.process_time()
    first = read_conll(path, limit=2)
    elapsed = time.process_time() - start
    assert [s.tokens for s in first] == [s.tokens for s in read_conll(sample_path())[:2]]
    assert elapsed < 0.5, f"{elapsed:.2f}s of CPU for 2 sentences"   # a full read takes seconds
    with pytest.raises(DataError, match=rf"^{path}:{bad_line}: "):
        read_conll(path)


def test_limit_zero_and_negative_read_nothing() -> None:
    assert read_conll(sample_path(), limit=0) == []
    with pytest.raises(ValueError, match="limit must be >= 0"):
        read_conll(sample_path(), limit=-1)
    assert len(read_conll(sample_path(), limit=100)) == 12


@pytest.mark.parametrize("tail", TAILS.values(), ids=TAILS.keys())
def test_run_and_estimate_with_limit_on_a_broken_tail(tmp_path: Path, capsys, tail: bytes) -> None:
    path, bad_line = big_file(tmp_path, tail)
    with LoopbackServer(oracle_responder(read_conll(sample_path()), LABELS)) as srv:
        base = ["--model", "m", "--base-url", srv.base_url, "--method", "direct", "--data", str(path)]
        assert main(["run", *base, "--limit", "2", "--out", str(tmp_path / "run")]) == 0
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["n_sentences"] == 2 and metrics["f1"] == pytest.approx(1.0)
        assert len(srv.requests) == 2
        capsys.readouterr()
        assert main(["estimate", *base, "--limit", "3", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["n_sentences"] == 3
        # Without --limit the whole file is read, and the broken line stops the run before any call.
        assert main(["run", *base, "--out", str(tmp_path / "all")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tf-prompt: error: {path}:{bad_line}: ") and len(err.strip().splitlines()) == 1
        assert len(srv.requests) == 2


def test_batch_api_run_with_limit_on_a_broken_tail(tmp_path: Path) -> None:
    path, _ = big_file(tmp_path, TAILS["bad tag"])
    with LoopbackServer(oracle_responder(read_conll(sample_path()), LABELS)) as srv:
        settings = RunSettings(model="gpt-4o-mini", base_url=srv.base_url, method="direct", data=str(path), limit=2,
                               out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
        summary = asyncio.run(run_via_batch(settings, poll_interval=0.02))
    assert summary.metrics["n_sentences"] == 2 and summary.metrics["f1"] == pytest.approx(1.0)


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_limit_below_one_is_a_one_line_error(server, tmp_path: Path, capsys, limit: str) -> None:
    code = main(["run", "--model", "m", "--base-url", server.base_url, "--data", "sample", "--limit", limit,
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and f"--limit {limit}" in err and len(err.strip().splitlines()) == 1
    assert not server.requests


def _translate_test(server, tmp_path: Path, lines: list[str], limit: int) -> int:
    tr = tmp_path / "translations.txt"
    tr.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return main(["run", "--model", "m", "--base-url", server.base_url, "--data", "sample", "--method", "translate-test",
                 "--translator", f"file:{tr}", "--limit", str(limit), "--out", str(tmp_path / "o")])


def test_translation_file_is_checked_against_the_sentences_read(server, tmp_path: Path, capsys) -> None:
    sentences = read_conll(sample_path())   # 12 sentences
    texts = [s.text for s in sentences]
    server.responder = oracle_responder(sentences, LABELS)
    # --limit 2 needs translations for those 2 sentences only: a 2-line file is enough.
    assert _translate_test(server, tmp_path, texts[:2], 2) == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["f1"] == pytest.approx(1.0)
    calls = len(server.requests)
    capsys.readouterr()
    # One line short: a one-line error naming the missing sentence, before any call.
    assert _translate_test(server, tmp_path, texts[:1], 2) == 2
    err = capsys.readouterr().err
    assert "first missing: sentence 1" in err and len(err.strip().splitlines()) == 1
    # When the limit covers the whole file, the file's size is known and extra lines still mean
    # the wrong translations file.
    assert _translate_test(server, tmp_path, texts + ["extra"], 50) == 2
    assert "13 translations for 12 sentences" in capsys.readouterr().err
    assert len(server.requests) == calls
