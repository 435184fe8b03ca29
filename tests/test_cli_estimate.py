"""`tf-prompt estimate`, `--max-cost` and the cache commands, against the loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.cost import PriceTable, tokenizer_for
from tf_prompt.testing import LoopbackServer, oracle_responder, reordered_translation

LABELS = ["PER", "ORG", "LOC", "DATE"]
CL100K_MODEL = "gpt-4"   # priced, and counted exactly with the offline cl100k_base encoding


@pytest.fixture
def priced_server():
    """A server that counts tokens with cl100k_base, as the OpenAI API does for gpt-4."""
    tok = tokenizer_for(CL100K_MODEL)
    assert tok.exact and tok.name == "cl100k_base"
    with LoopbackServer(oracle_responder(read_conll(sample_path()), LABELS), count_tokens=tok.count) as srv:
        yield srv


@pytest.fixture
def translating_server():
    """As `priced_server`, but the model's translations are not the source (chunks reordered, a
    remark added, so longer): not the stand-in the estimate assumes for a translation."""
    tok = tokenizer_for(CL100K_MODEL)
    responder = oracle_responder(read_conll(sample_path()), LABELS, translation=reordered_translation)
    with LoopbackServer(responder, count_tokens=tok.count) as srv:
        yield srv


def _estimate(capsys, *args: str) -> dict:
    assert main(["estimate", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("method", ["direct", "translate-test", "transfusion"])
def test_estimate_matches_what_the_server_counts(translating_server, capsys, tmp_path: Path, method: str) -> None:
    server = translating_server
    args = ["--model", CL100K_MODEL, "--base-url", server.base_url, "--method", method]
    est = _estimate(capsys, *args)
    assert server.requests == []            # nothing was sent
    sentences = read_conll(sample_path())
    n = len(sentences)
    assert est["calls"] == {"direct": 1, "translate-test": 2, "transfusion": 4}[method] * n   # + direct: --combine
    assert main(["run", *args, "--out", str(tmp_path / "run")]) == 0
    counted = server.prompt_tokens
    assert abs(est["prompt_tokens"] - counted) <= 0.10 * counted, (est["prompt_tokens"], counted)
    # Completions: the estimate assumes the source as each translation and the gold entities as
    # each NER answer; the model's NER answers are exactly those, its translations are not. So
    # the estimate is the server's count less the translations' extra tokens, to the token.
    tok = tokenizer_for(CL100K_MODEL)
    extra = sum(tok.count(reordered_translation(s)) - tok.count(s.text) for s in sentences)
    translated = method != "direct"
    assert extra > 0.1 * server.completion_tokens / (3 if translated else 1)   # a real difference
    assert est["completion_tokens"] == server.completion_tokens - (extra if translated else 0), \
        (est["completion_tokens"], server.completion_tokens, extra)
    if translated:
        assert est["by_step"]["translate"]["completion_tokens"] == sum(tok.count(s.text) for s in sentences)
    price = PriceTable.load().lookup(CL100K_MODEL)
    expected = (est["prompt_tokens"] * price.input + est["completion_tokens"] * price.output) / 1e6
    assert est["cost_usd"] == pytest.approx(expected, rel=1e-6)
    assert set(est["by_step"]) == {"direct": {"direct"}, "translate-test": {"translate", "annotate"},
                                   "transfusion": {"translate", "annotate", "fuse", "direct"}}[method]


def test_estimate_accounts_for_the_cache(priced_server, capsys, tmp_path: Path) -> None:
    args = ["--model", CL100K_MODEL, "--base-url", priced_server.base_url, "--method", "transfusion"]
    assert main(["run", *args, "--limit", "4", "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    est = _estimate(capsys, *args)
    assert est["cached_calls"] == 16 and est["calls"] == 32
    assert main(["run", *args, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert _estimate(capsys, *args)["calls"] == 0


def test_estimate_table_output(priced_server, capsys) -> None:
    assert main(["estimate", "--model", CL100K_MODEL, "--base-url", priced_server.base_url]) == 0
    out = capsys.readouterr().out
    assert "nothing was sent" in out and "total" in out and "fuse" in out


def test_max_cost_is_a_hard_cap(priced_server, capsys, tmp_path: Path) -> None:
    args = ["--model", CL100K_MODEL, "--base-url", priced_server.base_url, "--method", "transfusion"]
    full = _estimate(capsys, *args)["cost_usd"]
    cap = full / 3
    out = tmp_path / "capped"
    rc = main(["run", *args, "--max-cost", f"{cap:.6f}", "--out", str(out), "--concurrency", "4"])
    err = capsys.readouterr().err
    assert rc == 1 and "budget reached" in err and "Traceback" not in err
    price = PriceTable.load().lookup(CL100K_MODEL)
    spent_by_server = (priced_server.prompt_tokens * price.input
                       + priced_server.completion_tokens * price.output) / 1e6
    assert 0 < spent_by_server <= cap
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and metrics["usage"]["cost_usd"] <= cap
    # raising the cap continues from the cache: only the missing replies are paid for
    before = len(priced_server.requests)
    assert main(["run", *args, "--max-cost", "10", "--out", str(out)]) == 0
    assert len(priced_server.requests) - before == 48 - before


def test_max_cost_needs_a_price(server, capsys) -> None:
    rc = main(["run", "--model", "my-local-model", "--base-url", server.base_url, "--max-cost", "1"])
    assert rc == 1 and "needs a price" in capsys.readouterr().err


def test_user_price_file(priced_server, capsys, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"date": "2026-11-01", "source": "mine",
                                  "models": {"my-model": {"input": 1.0, "output": 2.0}}}))
    est = _estimate(capsys, "--model", "my-model", "--base-url", priced_server.base_url,
                    "--prices", str(prices), "--method", "direct")
    assert est["cost_usd"] == pytest.approx((est["prompt_tokens"] * 1 + est["completion_tokens"] * 2) / 1e6)
    assert est["prices_date"] == "2026-11-01"
    prices.write_text("{not json")
    assert main(["estimate", "--model", "my-model", "--prices", str(prices),
                 "--base-url", priced_server.base_url]) == 2
    assert str(prices) in capsys.readouterr().err


def test_cache_stats_and_clear(priced_server, capsys, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    args = ["--model", CL100K_MODEL, "--base-url", priced_server.base_url, "--method", "direct",
            "--cache-dir", str(cache)]
    assert main(["run", *args, "--out", str(tmp_path / "a")]) == 0
    assert main(["run", *args, "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert main(["cache", "stats", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "entries: 12" in out and "12 hits, 0 misses" in out
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["cache", "stats", "--cache-dir", str(cache)]) == 0
    assert "entries: 0" in capsys.readouterr().out


def test_no_cache_flag(priced_server, tmp_path: Path) -> None:
    args = ["run", "--model", CL100K_MODEL, "--base-url", priced_server.base_url, "--method", "direct",
            "--no-cache", "--out", str(tmp_path / "a")]
    assert main(args) == 0 and main(args) == 0
    assert len(priced_server.requests) == 24


def test_estimate_shows_batch_api_and_batching_savings(priced_server, capsys) -> None:
    est = _estimate(capsys, "--model", "gpt-4o-mini", "--base-url", priced_server.base_url,
                    "--method", "transfusion", "--batch-sentences", "4")
    assert est["cost_usd_batch_api"] == pytest.approx(est["cost_usd"] / 2, rel=1e-3)
    assert est["unbatched"]["calls"] == 48 and est["calls"] == 12
    assert est["prompt_tokens"] < est["unbatched"]["prompt_tokens"]
    assert main(["estimate", "--model", "gpt-4o", "--base-url", priced_server.base_url,
                 "--batch-sentences", "4"]) == 0
    out = capsys.readouterr().out
    assert "Batch API" in out and "saves" in out and "o200k_base" in out
