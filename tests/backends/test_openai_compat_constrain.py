"""--constrain over real HTTP with the real openai client: what each request carries (the schema,
its enums per step and per batch item), that the oracle's answers satisfy it, the fallback for a
long sentence, the cache and run identity, and a server that rejects response_format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from tf_prompt.api import run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.methods.context import gold_mentions
from tf_prompt.prompting.constraints import max_items, ngrams
from tf_prompt.testing import oracle_responder, reordered_translation

LABELS = ["PER", "ORG", "LOC", "DATE"]


def _first_line(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"]


def _schema(fmt: dict[str, Any] | None) -> dict[str, Any]:
    assert fmt is not None and fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    return fmt["json_schema"]["schema"]


def _text_enum(schema: dict[str, Any]) -> list[str] | None:
    return schema["properties"]["entities"]["items"]["properties"]["text"].get("enum")


def _by_step(server) -> dict[str, list[dict[str, Any] | None]]:
    """The response_format of each request, by the step its template is for (the oracle knows)."""
    from tf_prompt.testing.recognise import recognise, shapes

    known = shapes(None)
    out: dict[str, list[dict[str, Any] | None]] = {}
    for body, fmt in zip(server.requests, server.response_formats, strict=True):
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        out.setdefault(recognise(user, known).shape.template, []).append(fmt)
    return out


def test_json_mode_sends_the_answer_schema_and_the_oracle_meets_it(server) -> None:
    sentences = read_conll(sample_path())
    server.responder = oracle_responder(sentences, LABELS)
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", constrain="json")
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["parse_failures"] == 0
    assert len(server.requests) == len(sentences)
    for fmt in server.response_formats:
        schema = _schema(fmt)
        item = schema["properties"]["entities"]["items"]
        assert item["properties"]["type"]["enum"] == LABELS and _text_enum(schema) is None
    assert server.schema_violations == [[]] * len(sentences)
    assert {r.trace.constraints["direct"] for r in summary.results} == {"json"}
    assert summary.metrics["settings"]["constrain"] == "json"


def test_spans_mode_enums_are_each_sentences_ngrams(server) -> None:
    sentences = read_conll(sample_path())
    server.responder = oracle_responder(sentences, LABELS)
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", constrain="spans")
    assert summary.metrics["f1"] == pytest.approx(1.0)
    assert summary.metrics["hallucinated"] == 0 and summary.metrics["unaligned"] == 0
    by_text = {s.text: s for s in sentences}
    for body, fmt in zip(server.requests, server.response_formats, strict=True):
        text = next(t for t in by_text if _first_line(body).rstrip().endswith(t) or f": {t}\n" in _first_line(body))
        enum = _text_enum(_schema(fmt))
        assert enum == ngrams(text)
        assert _schema(fmt)["properties"]["entities"]["maxItems"] == max_items(text)
        assert {m.text for m in gold_mentions(by_text[text], LABELS)} <= set(enum)
    assert server.schema_violations == [[]] * len(sentences)
    assert {r.trace.constraints["direct"] for r in summary.results} == {"spans"}


def test_transfusion_constrains_annotate_to_the_english_and_fuse_to_the_source(server) -> None:
    sentences = read_conll(sample_path())[:4]
    server.responder = oracle_responder(sentences, LABELS, translation=reordered_translation)
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", combine="none",
                          constrain="spans", limit=4)
    assert summary.metrics["f1"] == pytest.approx(1.0)
    steps = _by_step(server)
    assert steps["translate"] == [None] * 4                       # the translation stays free text
    english = {reordered_translation(s) for s in sentences}
    annotate = [_text_enum(_schema(f)) for f in steps["annotate"]]
    assert sorted(map(tuple, annotate)) == sorted(tuple(ngrams(e)) for e in english)   # type: ignore[arg-type]
    fuse = [_text_enum(_schema(f)) for f in steps["fuse"]]
    assert sorted(map(tuple, fuse)) == sorted(tuple(ngrams(s.text)) for s in sentences)  # type: ignore[arg-type]
    assert all(v == [] for v in server.schema_violations)
    assert all(r.trace.constraints == {"annotate": "spans", "fuse": "spans"} for r in summary.results)


def test_one_call_fused_schema_constrains_the_source_entities_only(server) -> None:
    sentences = read_conll(sample_path())[:3]
    server.responder = oracle_responder(sentences, LABELS)
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion-1call", constrain="spans", limit=3)
    assert summary.metrics["f1"] == pytest.approx(1.0)
    for fmt in server.response_formats:
        schema = _schema(fmt)
        assert schema["required"] == ["translation", "english_entities", "entities"]
        assert "enum" not in schema["properties"]["english_entities"]["items"]["properties"]["text"]
        assert _text_enum(schema) in [ngrams(x.text) for x in sentences]
    assert all(v == [] for v in server.schema_violations)


def test_numbered_batches_carry_one_enum_per_item(server) -> None:
    sentences = read_conll(sample_path())[:4]
    server.responder = oracle_responder(sentences, LABELS)
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", batch_sentences=4, limit=4,
                          constrain="spans")
    assert summary.metrics["f1"] == pytest.approx(1.0)
    assert len(server.requests) == 1
    schema = _schema(server.response_formats[0])
    assert schema["required"] == ["1", "2", "3", "4"]
    assert [_text_enum(schema["properties"][str(n)]) for n in range(1, 5)] == [ngrams(s.text) for s in sentences]
    assert server.schema_violations == [[]]
    assert all(r.trace.constraints["direct"] == "spans" for r in summary.results)


def _conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n", encoding="utf-8")
    return path


def test_a_long_sentence_is_sent_with_the_json_schema_and_noted(server, tmp_path: Path) -> None:
    long = [("Amina", "B-PER"), ("Juma", "I-PER")] + [(f"neno{i}", "O") for i in range(160)] + [("Mombasa", "B-LOC")]
    short = [("Juma", "B-PER"), ("yupo", "O"), ("Nairobi", "B-LOC"), (".", "O")]
    data = _conll(tmp_path / "two.conll", [long, short])
    server.responder = oracle_responder(read_conll(data), LABELS)
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", data=str(data), language="sw",
                          constrain="spans", out=str(tmp_path / "run"))
    assert summary.metrics["f1"] == pytest.approx(1.0)
    notes = {r.sentence.index: r.trace.constraints["direct"] for r in summary.results}
    assert notes[1] == "spans"
    assert notes[0].startswith("json (spans: ") and "n-grams" in notes[0]
    enums = sorted((_text_enum(_schema(f)) or [] for f in server.response_formats), key=len)
    assert enums[0] == [] and enums[1] == ngrams(" ".join(w for w, _ in short))
    written = [json.loads(line) for line in (tmp_path / "run" / "trace.jsonl").read_text().splitlines()]
    assert {t["index"]: t["constraints"]["direct"] for t in written} == notes


def test_a_constrained_rerun_is_cached_and_another_mode_is_another_run(server, capsys, tmp_path: Path) -> None:
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    out = str(tmp_path / "run")
    base = ["run", "--base-url", server.base_url, "--model", "m", "--method", "direct", "--limit", "3", "--out", out]
    assert run_cli(capsys, *base, "--constrain", "json")[0] == 0
    sent = len(server.requests)
    assert sent == 3
    assert run_cli(capsys, *base, "--constrain", "json")[0] == 0
    assert len(server.requests) == sent                       # same keys: all from the cache
    code, _, err = run_cli(capsys, *base, "--constrain", "spans")
    assert code != 0 and "constrain json -> spans" in err     # the folder holds another run
    assert run_cli(capsys, *base[:-1], str(tmp_path / "plain"))[0] == 0
    assert len(server.requests) == 2 * sent                   # unconstrained: other keys, sent again
    assert server.response_formats[-sent:] == [None] * sent


def test_a_server_that_rejects_response_format_stops_with_one_line(server, capsys, tmp_path: Path) -> None:
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    server.reject_response_format = True
    code, _, err = run_cli(capsys, "run", "--base-url", server.base_url, "--model", "m", "--method", "direct",
                           "--limit", "3", "--constrain", "json", "--out", str(tmp_path / "r"))
    assert code != 0
    line = next(ln for ln in err.splitlines() if "response_format" in ln)
    assert "run with --constrain none" in line and "HTTP 400" in line
    assert "Traceback" not in err
    # the same model without the option works
    server.requests.clear()
    assert run_cli(capsys, "run", "--base-url", server.base_url, "--model", "m", "--method", "direct",
                   "--limit", "3", "--out", str(tmp_path / "ok"))[0] == 0


def test_via_batch_lines_carry_each_calls_schema_and_a_normal_rerun_is_free(server, tmp_path: Path) -> None:
    import asyncio

    from tf_prompt.batch_api import run_via_batch
    from tf_prompt.settings import RunSettings

    sentences = read_conll(sample_path())[:3]
    server.responder = oracle_responder(sentences, LABELS)
    s = RunSettings(model="gpt-4o-mini", base_url=server.base_url, method="direct", limit=3, constrain="spans",
                    out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    summary = asyncio.run(run_via_batch(s, poll_interval=0.02))
    assert summary.metrics["f1"] == pytest.approx(1.0) and server.requests == []
    lines = server.batch_requests
    assert len(lines) == 3
    assert sorted(_text_enum(_schema(b["response_format"])) for b in lines) == sorted(ngrams(x.text) for x in sentences)
    # the batch answers were cached under the keys a normal constrained run uses
    again = run_dataset(**{**s.model_dump(by_alias=True), "out": str(tmp_path / "again")})
    assert again.metrics["f1"] == pytest.approx(1.0) and server.requests == []
