"""Trust item 8: a dead endpoint stops the run in seconds with one line naming the cause, the
outputs are kept, and a summary never shows an F1 as if failed sentences had been scored.

Before: every call was retried 5 times with backoff (1+2+4+8+16 s), for every sentence, so a
refused port on 50 sentences ran for minutes and the cause appeared only in trace.jsonl.
All of this runs over real HTTP on 127.0.0.1, with the default retry settings.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tf_prompt.cli import main
from tf_prompt.data.conll import Sentence, read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import Fault, LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
N = 50
#: Loose on purpose (a loaded 2-core machine): the old behaviour took minutes.
BOUND_SECONDS = 20.0


def _data(tmp_path: Path, n: int = N) -> tuple[Path, list[Sentence]]:
    base = read_conll(sample_path())
    sentences = []
    for k in range(n):
        s = base[k % len(base)]
        sentences.append(Sentence.from_tokens([*s.tokens, f"nambari{k}"], [*(s.tags or []), "O"], index=k))
    path = tmp_path / "d.txt"
    path.write_text("\n\n".join("\n".join(f"{t} {g}" for t, g in zip(s.tokens, s.tags or [], strict=False))
                                for s in sentences) + "\n", encoding="utf-8")
    return path, sentences


def _refused_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}/v1"


def _run_dead(url: str, tmp_path: Path, capsys, *extra: str) -> tuple[int, float, list[str], Path]:
    data, _ = _data(tmp_path)
    out = tmp_path / "out"
    started = time.monotonic()
    rc = main(["run", "--model", "m", "--base-url", url, "--data", str(data), "--method", "transfusion",
               "--out", str(out), *extra])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return rc, elapsed, captured.err.strip().splitlines(), out


def _outputs_kept(out: Path) -> dict[str, Any]:
    assert (out / "trace.jsonl").exists() and (out / "predictions.conll").exists()
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["complete"] is False and metrics["stopped"]
    assert metrics["f1"] is None or metrics["scored_sentences"] == metrics["n_sentences"]
    return metrics


def test_refused_port_stops_in_seconds_with_one_line(tmp_path: Path, capsys) -> None:
    url = _refused_url()
    rc, elapsed, err, out = _run_dead(url, tmp_path, capsys)
    assert rc == 1 and elapsed < BOUND_SECONDS, (rc, elapsed, err)
    assert len(err) == 1 and err[0].startswith(f"tf-prompt: error: cannot connect to {url}: connection refused"), err
    metrics = _outputs_kept(out)
    assert metrics["usage"]["attempts"] < 3 * 8 * 2   # not 6 attempts for each of 50 sentences


def test_unknown_host_stops_with_one_line(tmp_path: Path, capsys) -> None:
    url = "http://no-such-host.invalid/v1"
    rc, elapsed, err, out = _run_dead(url, tmp_path, capsys, "--timeout", "5")
    assert rc == 1 and elapsed < BOUND_SECONDS, (rc, elapsed, err)
    assert len(err) == 1 and err[0].startswith(f"tf-prompt: error: cannot connect to {url}: "), err
    _outputs_kept(out)


@pytest.mark.parametrize("kind", ["500", "hang"])
def test_server_that_always_fails_stops_in_seconds(tmp_path: Path, capsys, kind: str) -> None:
    fault = Fault(500) if kind == "500" else Fault(status=0, delay=4.0)
    with LoopbackServer(fault=lambda body, attempt: fault) as srv:
        url = srv.base_url
        rc, elapsed, err, out = _run_dead(url, tmp_path, capsys, "--timeout", "1")
        requests = len(srv.requests)
    assert rc == 1 and elapsed < BOUND_SECONDS, (rc, elapsed, err)
    expected = "server error (HTTP 500)" if kind == "500" else "timed out"
    assert len(err) == 1 and err[0].startswith("tf-prompt: error: ") and expected in err[0], err
    assert url in err[0]
    _outputs_kept(out)
    assert requests < N   # far fewer than one request per sentence, let alone six


def test_after_a_success_transient_errors_are_retried_and_partial_scores_say_so(tmp_path: Path, capsys) -> None:
    """The breaker only catches an endpoint that never answered: once replies came, a failing
    sentence is retried and marked failed as before (exit 3), and the summary and metrics.json
    say that the scores cover only the sentences that were answered."""
    data, sentences = _data(tmp_path, 12)
    served_ok = 8   # the first 8 requests are answered, then the server breaks for good

    with LoopbackServer(oracle_responder(sentences, LABELS),
                        fault=lambda body, attempt: Fault(503) if attempt >= served_ok else None) as srv:
        out = tmp_path / "out"
        rc = main(["run", "--model", "m", "--base-url", srv.base_url, "--data", str(data), "--method", "direct",
                   "--concurrency", "1", "--max-retries", "3", "--retry-initial", "0.01", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 3, captured.err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert "stopped" not in metrics and metrics["failed_sentences"] == 12 - served_ok
    assert metrics["usage"]["retries"] == 3 * (12 - served_ok)   # every failing call used its retries
    # scored over the answered sentences only (all correct), not 8/12 of the gold found
    assert metrics["scored_sentences"] == served_ok and metrics["f1"] == pytest.approx(1.0)
    first = captured.out.splitlines()[0]
    assert first.startswith(f"PARTIAL: scores over {served_ok} of 12 sentences; {12 - served_ok} failed"), captured.out


def test_slow_first_replies_do_not_stop_a_live_endpoint(tmp_path: Path, capsys) -> None:
    """A timeout is a weak sign (a server warming up, a loaded machine): the first few calls all
    timing out once, before any reply arrived, must not stop a run whose retries then succeed."""
    data, sentences = _data(tmp_path, 8)
    slow = Fault(status=0, delay=1.5)   # past the 1 s timeout, then the connection closes
    with LoopbackServer(oracle_responder(sentences, LABELS),
                        fault=lambda body, attempt: slow if attempt < 4 else None) as srv:
        out = tmp_path / "out"
        rc = main(["run", "--model", "m", "--base-url", srv.base_url, "--data", str(data), "--method", "direct",
                   "--concurrency", "4", "--timeout", "1", "--retry-initial", "0.01", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["complete"] is True and metrics["f1"] == pytest.approx(1.0)
    assert metrics["usage"]["retries"] == 4
