"""Tests for tf_prompt.parsing.entities: empty answers, failures, and that nothing but ParseFailure escapes
any entry point (fuzzed)."""

from __future__ import annotations

import contextlib
import random

import pytest

from reply_helpers import LABELS, OYO, parse
from tf_prompt.parsing import parse_code_assignments, parse_entities, parse_translation
from tf_prompt.types import ParseFailure

# --------------------------------------------------------------------------- empty answers


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   \n ",
        "[]",
        "{}",
        '{"entities": []}',
        '{"entities": null}',
        '{"PER": [], "ORG": [], "LOC": [], "DATE": []}',
        "```json\n[]\n```",
        "None",
        "none.",
        "N/A",
        "No entities found.",
        "There are no named entities in this sentence.",
        "The sentence does not contain any named entities.",
        "Entities: None",
        "Here are the entities: []",
        "result = []",
    ],
)
def test_empty_answers(reply: str) -> None:
    res = parse(reply)
    assert res.mentions == []
    assert res.unknown == []
    assert res.format == "empty"


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "reply",
    [
        '{"entities": [{"text": "Ka',
        '{"entities": [{"text": "Kano", "type": "LOC"}, {"text": "Ab',
        'Here you go:\n```json\n{\n  "PER": ["Shehu Gusau"],\n  "LOC": ["Ka',
        "The sentence talks about a meeting in the city.",
        "Shehu Gusau is a person; no other entities.",
        "I'm sorry, I cannot help with that.",
        "@@@ ### !!!",
        '["Shehu Gusau", "Kano"]',
        "[1, 2, 3]",
        '"just a string"',
        'result = [Person(span="Ka',
        "{'entities': [Person(span='Kano')",
    ],
)
def test_failures_raise_parse_failure(reply: str) -> None:
    with pytest.raises(ParseFailure) as info:
        parse(reply)
    assert str(info.value)  # a short reason for the trace


def test_parse_failure_is_value_error() -> None:
    assert issubclass(ParseFailure, ValueError)


def test_non_string_reply() -> None:
    with pytest.raises(ParseFailure):
        parse_entities(None, LABELS)  # type: ignore[arg-type]


_SAMPLES = [
    '{"entities": [{"text": "Shehu Gusau", "type": "PER"}, {"text": "' + OYO + '", "type": "LOC"}]}',
    '```json\n[["Kano", "LOC"], ["Aliyu", "PER"],]\n```',
    "{'PER': ['Shehu Gusau'], 'LOC': 'Kano', 'ORG': []}",
    "PER: Shehu Gusau, Aliyu\n- LOC: Kano\n* Ìbàdàn [LOC]\nX -> DATE\n| Y | ORG |",
    '```python\nresult = [Person(span="Kano")]\nfinal_result = [Location(span="' + OYO + '")]\n```',
    "Here are the entities: {\"entities\": [{'text': 'Kano', 'type': 'LOC'}]} Hope this helps",
    "There are no named entities in this sentence.",
]
_ALPHABET = [*"{}[]()\"',:;|-> \n\t\\`#*=_.0123456789abcPERLOCorgNone", "ọ̀", "“", "”", "```", "null", "span="]


def _assert_only_parse_failure(reply: str) -> None:
    for func in (
        lambda: parse_entities(reply, LABELS, {"Mutum": "PER"}),
        lambda: parse_translation(reply),
    ):
        with contextlib.suppress(ParseFailure):
            func()
    assert isinstance(parse_code_assignments(reply, LABELS), dict)


def test_fuzz_truncations_never_raise_other_exceptions() -> None:
    for sample in _SAMPLES:
        for cut in range(len(sample) + 1):
            _assert_only_parse_failure(sample[:cut])
            _assert_only_parse_failure(sample[cut:])


def test_fuzz_random_strings_never_raise_other_exceptions() -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        size = rng.randint(0, 40)
        reply = "".join(rng.choice(_ALPHABET) for _ in range(size))
        _assert_only_parse_failure(reply)


def test_fuzz_mutated_samples_never_raise_other_exceptions() -> None:
    rng = random.Random(99)
    for _ in range(2000):
        chars = list(rng.choice(_SAMPLES))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars) + 1)
            op = rng.random()
            if op < 0.4 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif op < 0.8:
                chars.insert(pos, rng.choice(_ALPHABET))
            elif chars:
                chars[min(pos, len(chars) - 1)] = rng.choice(_ALPHABET)
        _assert_only_parse_failure("".join(chars))


def test_fuzz_pathological_inputs() -> None:
    for reply in [
        "[" * 5000,
        "{" * 5000 + "}" * 5000,
        "[" * 3000 + "]" * 3000,
        "(" * 500 + ")" * 500,
        '{"entities": ' + "[" * 2000 + "]" * 2000 + "}",
        "1" * 6000,
        "[" + "1" * 6000 + "]",
        "\x00{\"a\": 1}\x00",
        'result = ["\\N{foo}"]',
        "result = [Person(span='\\x')]",
        "]" * 100 + "[" * 100,
        "\ud800",
    ]:
        _assert_only_parse_failure(reply)
