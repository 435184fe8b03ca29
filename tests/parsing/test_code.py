"""Tests for tf_prompt.parsing.code: GoLLIE `result = [Person(span=...)]` answers, never executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from reply_helpers import LABELS, OYO, M, no_trace_left, parse, tripwire
from tf_prompt.parsing import parse_code_assignments

# --------------------------------------------------------------------------- code style


def test_code_result_only() -> None:
    reply = ('result = [Person(span="Shehu Gusau"), Location(span="Kano"), '
             'Organization(span="INEC"), Date(span="Litinin")]')
    res = parse(reply)
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC"), M("INEC", "ORG"), M("Litinin", "DATE")]
    assert res.format == "code"


def test_code_final_result_wins() -> None:
    reply = (
        "```python\n"
        "# English annotation\n"
        'result = [Person(span="Shehu Gusau"), Location(span="Oyo")]\n'
        "final_result = [\n"
        '    Person(span="Shehu Gusau"),\n'
        '    Location(span="' + OYO + '"),  # the town\'s name\n'
        "]\n"
        "```"
    )
    assert parse(reply).mentions == [M("Shehu Gusau", "PER"), M(OYO, "LOC")]


def test_code_final_result_empty_but_result_not() -> None:
    reply = 'result = [Location(span="Kano")]\nfinal_result = []'
    res = parse(reply)
    assert res.mentions == []
    assert res.format == "empty"


def test_code_result_empty_final_result_not() -> None:
    # The "[]" must not be mistaken for an empty JSON answer.
    reply = 'result = []\nfinal_result = [Location(span="Kano")]'
    assert parse(reply).mentions == [M("Kano", "LOC")]


def test_code_positional_text_unknown_class_and_prose() -> None:
    reply = 'The answer is:\nresult = [Person("Shehu Gusau"), Language(span="Hausa"), Location(text="Kano")]\nThanks.'
    res = parse(reply)
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]
    assert res.unknown == [M("Hausa", "Language")]


def test_code_is_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace, expr = tripwire(tmp_path, monkeypatch)
    for reply in (f"result = [Person(span={expr})]", f"{expr}\nresult = [Person(span='Kano')]",
                  f"result = [Person(span='Kano')]\nimport os; {expr}"):
        res = parse(reply)
        assert M("Kano", "PER") in res.mentions or res.mentions == []
        assert all(m.text == "Kano" for m in res.mentions)
    no_trace_left(trace)


def test_parse_code_assignments() -> None:
    reply = (
        "```python\n"
        'result = [Person(span="Shehu Gusau"), Location(span="Oyo"), Misc(span="Hausa")]\n'
        "```\n"
        "Translated back:\n"
        "```python\n"
        'final_result = [Person(span="Shehu Gusau"), Location(span="' + OYO + '")]\n'
        "```"
    )
    got = parse_code_assignments(reply, LABELS)
    assert got == {
        "result": [M("Shehu Gusau", "PER"), M("Oyo", "LOC")],
        "final_result": [M("Shehu Gusau", "PER"), M(OYO, "LOC")],
    }


def test_parse_code_assignments_aliases_and_garbage() -> None:
    assert parse_code_assignments('result = [Mutum(span="Aliyu")]', LABELS, {"Mutum": "PER"}) == {
        "result": [M("Aliyu", "PER")]
    }
    assert parse_code_assignments("no code here", LABELS) == {}
    assert parse_code_assignments('result = [Person(span="Ka', LABELS) == {}
