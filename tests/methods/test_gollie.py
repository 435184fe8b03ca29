"""GoLLIE-style code prompts: `result = [...]` and, for TransFusion, `final_result = [...]`."""

from __future__ import annotations

import ast

import pytest

from tf_prompt import run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.methods.pipeline import class_name, complete_code
from tf_prompt.testing import oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]


@pytest.mark.parametrize("method,calls", [("direct", 1), ("translate-test", 2), ("transfusion", 2)])
def test_gollie_style_perfect_model(server, method: str, calls: int) -> None:
    sentences = read_conll(sample_path())
    server.responder = oracle_responder(sentences, LABELS)
    summary = run_dataset(model="m", base_url=server.base_url, method=method, style="gollie")
    assert summary.metrics["f1"] == pytest.approx(1.0)
    assert len(server.requests) == calls * len(sentences)
    prompt = server.requests[-1]["messages"][-1]["content"]
    assert prompt.rstrip().endswith("result = [")
    assert "class Person(Entity):" in prompt and "class Organization(Entity):" in prompt
    # the code part of the prompt is valid Python once the list is closed
    code = prompt[prompt.index("from dataclasses"):] + "]"
    ast.parse(code)
    if method == "transfusion":
        assert "eng_text = " in prompt
        traces = [r.trace for r in summary.results]
        assert all(t.english_entities is not None for t in traces)
        assert set(summary.metrics["usage"]["by_step"]) == {"translate", "fuse"}


def test_sentence_text_with_quotes_stays_a_string_literal(server) -> None:
    server.responder = lambda body: 'Person(span="Ali \\"Baba\\"")]'
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", style="gollie",
                          data=str(_write(server, 'Ali B-PER\n"Baba" I-PER\nya O\nzo O\n')))
    prompt = server.requests[0]["messages"][-1]["content"]
    assert 'text = "Ali \\"Baba\\" ya zo"' in prompt
    assert summary.metrics["f1"] == 1.0


def _write(server, text: str):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "d.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_final_result_is_a_parse_failure(server) -> None:
    server.responder = lambda body: ('Person(span="Shehu")]' if "eng_text" in body["messages"][-1]["content"]
                                     else "Shehu went home.")
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", style="gollie", limit=3)
    assert summary.metrics["parse_failures_by_step"] == {"fuse": 3}
    assert all(r.trace.english_entities == [{"text": "Shehu", "type": "PER"}] for r in summary.results)


def test_full_code_reply_in_a_fence() -> None:
    from tf_prompt.parsing import parse_code_assignments

    reply = '```python\nresult = [Location(span="Kano")]\nfinal_result = [Location(span="Kano")]\n```'
    lists = parse_code_assignments(complete_code(reply), LABELS)
    assert [m.text for m in lists["final_result"]] == ["Kano"]


def test_class_names() -> None:
    assert [class_name(x) for x in ["PER", "ORG", "LOC", "DATE", "work_of_art", "DRUG"]] == [
        "Person", "Organization", "Location", "Date", "WorkOfArt", "Drug"]
