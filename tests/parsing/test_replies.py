"""Tests for tf_prompt.parsing.replies: every reply shape models send, and that nothing but ParseFailure escapes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tf_prompt.parsing.replies import (
    Mention,
    ParseFailure,
    ParseResult,
    normalize_label,
    parse_code_assignments,
    parse_entities,
    parse_translation,
)

LABELS = ["PER", "ORG", "LOC", "DATE"]
OYO = "Ọ̀yọ́"


def M(text: str, label: str) -> Mention:
    return Mention(text, label)


def parse(reply: str, **kw) -> ParseResult:
    return parse_entities(reply, kw.pop("labels", LABELS), **kw)


# --------------------------------------------------------------------------- normalize_label


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("PER", "PER"),
        ("per", "PER"),
        ("  Per  ", "PER"),
        ('"LOC"', "LOC"),
        ("'org'", "ORG"),
        ("B-PER", "PER"),
        ("I-LOC", "LOC"),
        ("b-org", "ORG"),
        ("PERSON", "PER"),
        ("Person", "PER"),
        ("people", "PER"),
        ("PERS", "PER"),
        ("persons", "PER"),
        ("Organization", "ORG"),
        ("ORGANISATION", "ORG"),
        ("organizations", "ORG"),
        ("orgs", "ORG"),
        ("Location", "LOC"),
        ("locations", "LOC"),
        ("place", "LOC"),
        ("Places", "LOC"),
        ("GPE", "LOC"),
        ("time", "DATE"),
        ("DATE_TIME", "DATE"),
        ("Date Time", "DATE"),
        ("DateTime", "DATE"),
        ("dates", "DATE"),
        ("[LOC]", "LOC"),
        ("MISC", None),
        ("", None),
        ("   ", None),
        ("B-", None),
        ("language", None),
    ],
)
def test_normalize_label(raw: str, expected: str | None) -> None:
    assert normalize_label(raw, LABELS) == expected


def test_normalize_label_returns_schema_spelling() -> None:
    labels = ["Person", "Organization", "Location"]
    assert normalize_label("PER", labels) == "Person"
    assert normalize_label("org", labels) == "Organization"
    assert normalize_label("GPE", labels) == "Location"
    assert normalize_label("person", labels) == "Person"
    assert normalize_label("DATE", labels) is None  # never returns a label outside the schema


def test_normalize_label_user_aliases_take_precedence() -> None:
    aliases = {"Mutum": "PER", "GPE": "ORG", "Wuri": "loc"}
    assert normalize_label("mutum", LABELS, aliases) == "PER"
    assert normalize_label("GPE", LABELS, aliases) == "ORG"  # beats the built-in GPE->LOC
    assert normalize_label("Wuri", LABELS, aliases) == "LOC"
    assert normalize_label("GPE", LABELS) == "LOC"
    # An alias pointing outside the schema is ignored rather than returned.
    assert normalize_label("Kasa", LABELS, {"Kasa": "COUNTRY"}) is None


def test_normalize_label_non_string() -> None:
    assert normalize_label(None, LABELS) is None  # type: ignore[arg-type]
    assert normalize_label(3, LABELS) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSON object


def test_json_object_entities() -> None:
    reply = (
        '{"entities": [{"text": "Shehu Gusau", "type": "PER"}, '
        '{"text": "Kano", "type": "LOC"}, {"text": "' + OYO + '", "type": "LOC"}]}'
    )
    res = parse(reply)
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC"), M(OYO, "LOC")]
    assert res.unknown == []
    assert res.format == "json-object"


@pytest.mark.parametrize(
    "item",
    [
        '{"entity": "Kano", "label": "LOC"}',
        '{"span": "Kano", "entity_type": "location"}',
        '{"name": "Kano", "category": "Location"}',
        '{"mention": "Kano", "tag": "B-LOC"}',
        '{"value": "Kano", "class": "GPE"}',
        '{"text": "Kano", "entity": "LOC"}',
        '{"entity": "LOC", "text": "Kano"}',
        '{"text": " Kano ", "type": "LOC", "start": 12, "end": 16}',
    ],
)
def test_json_item_key_variants(item: str) -> None:
    res = parse('{"entities": [' + item + "]}")
    assert res.mentions == [M("Kano", "LOC")]


@pytest.mark.parametrize("key", ["result", "results", "final_result", "named_entities", "ner", "output", "answer"])
def test_json_object_other_list_keys(key: str) -> None:
    res = parse('{"%s": [{"text": "Mombasa", "type": "LOC"}]}' % key)
    assert res.mentions == [M("Mombasa", "LOC")]
    assert res.format == "json-object"


def test_json_object_prefers_final_result() -> None:
    reply = '{"result": [{"text": "Mombasa", "type": "LOC"}], "final_result": [{"text": "Mombasa ya Kale", "type": "LOC"}]}'
    assert parse(reply).mentions == [M("Mombasa ya Kale", "LOC")]


def test_single_entity_object() -> None:
    res = parse('{"text": "Shehu Gusau", "type": "Person"}')
    assert res.mentions == [M("Shehu Gusau", "PER")]


def test_unknown_labels_go_to_unknown() -> None:
    reply = '{"entities": [{"text": "Hausa", "type": "LANGUAGE"}, {"text": "Kano", "type": "LOC"}, {"text": "Naira", "type": "MISC"}]}'
    res = parse(reply)
    assert res.mentions == [M("Kano", "LOC")]
    assert res.unknown == [M("Hausa", "LANGUAGE"), M("Naira", "MISC")]


def test_only_unknown_is_not_empty_format() -> None:
    res = parse('{"entities": [{"text": "Hausa", "type": "LANGUAGE"}]}')
    assert res.mentions == []
    assert res.unknown == [M("Hausa", "LANGUAGE")]
    assert res.format == "json-object"


def test_missing_type_is_unknown_with_empty_label() -> None:
    res = parse('{"entities": [{"text": "Kano"}]}')
    assert res.mentions == []
    assert res.unknown == [M("Kano", "")]


def test_duplicates_kept_in_order() -> None:
    reply = '{"entities": [{"text": "Kano", "type": "LOC"}, {"text": "Shehu Gusau", "type": "PER"}, {"text": "Kano", "type": "LOC"}]}'
    assert parse(reply).mentions == [M("Kano", "LOC"), M("Shehu Gusau", "PER"), M("Kano", "LOC")]


def test_entity_text_cleanup() -> None:
    reply = '{"entities": [{"text": "  Kano\\n", "type": "LOC"}, {"text": "", "type": "PER"}, {"text": "   ", "type": "PER"}, {"text": 2019, "type": "DATE"}, {"text": null, "type": "ORG"}]}'
    assert parse(reply).mentions == [M("Kano", "LOC"), M("2019", "DATE")]


def test_aliases_in_parse() -> None:
    reply = '{"entities": [{"text": "Shehu Gusau", "type": "Mutum"}, {"text": "Kano", "type": "Wuri"}]}'
    res = parse(reply, aliases={"Mutum": "PER", "Wuri": "LOC"})
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]


def test_custom_schema_labels() -> None:
    res = parse('{"entities": [{"text": "Shehu Gusau", "type": "PER"}]}', labels=["Person", "Place"])
    assert res.mentions == [M("Shehu Gusau", "Person")]


# --------------------------------------------------------------------------- JSON list


def test_json_list_of_objects() -> None:
    res = parse('[{"text": "Shehu Gusau", "type": "PER"}, {"text": "Ìbàdàn", "type": "LOC"}]')
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Ìbàdàn", "LOC")]
    assert res.format == "json-list"


def test_json_list_of_pairs() -> None:
    res = parse('[["Shehu Gusau", "PER"], ["Kano", "LOC"], ["' + OYO + '", "LOC"]]')
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC"), M(OYO, "LOC")]
    assert res.format == "json-list"


def test_json_list_of_reversed_pairs() -> None:
    assert parse('[["PER", "Shehu Gusau"]]').mentions == [M("Shehu Gusau", "PER")]


def test_json_list_of_tagged_strings() -> None:
    assert parse('["Shehu Gusau (PER)", "Kano (LOC)"]').mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]


# --------------------------------------------------------------------------- JSON mapping


def test_json_mapping() -> None:
    res = parse('{"PER": ["Shehu Gusau"], "LOC": ["Kano", "' + OYO + '"], "ORG": []}')
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC"), M(OYO, "LOC")]
    assert res.format == "json-mapping"


def test_json_mapping_single_strings_and_aliases() -> None:
    res = parse('{"Person": "Shehu Gusau", "Location": "Kano", "Date": null, "ORG": "None"}')
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]


def test_json_mapping_wrapped() -> None:
    res = parse('{"entities": {"PER": ["Shehu Gusau"], "LOC": ["Kano"], "ORG": []}}')
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]
    assert res.format == "json-mapping"


def test_json_mapping_unknown_key() -> None:
    res = parse('{"PER": ["Shehu Gusau"], "MISC": ["Hausa"]}')
    assert res.mentions == [M("Shehu Gusau", "PER")]
    assert res.unknown == [M("Hausa", "MISC")]


# --------------------------------------------------------------------------- fences, prose, lenient JSON


def test_fenced_json() -> None:
    reply = '```json\n{"entities": [{"text": "Kano", "type": "LOC"}]}\n```'
    assert parse(reply).mentions == [M("Kano", "LOC")]


def test_fenced_without_language() -> None:
    reply = 'Sure!\n```\n[{"text": "Shehu Gusau", "type": "PER"}]\n```\nLet me know.'
    assert parse(reply).mentions == [M("Shehu Gusau", "PER")]


def test_unclosed_fence_with_complete_json() -> None:
    reply = '```json\n{"entities": [{"text": "Kano", "type": "LOC"}]}'
    assert parse(reply).mentions == [M("Kano", "LOC")]


def test_json_in_prose() -> None:
    reply = 'Here are the entities: {"entities": [{"text": "Shehu Gusau", "type": "PER"}, {"text": "Kano", "type": "LOC"}]} Hope this helps!'
    res = parse(reply)
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]
    assert res.format == "json-object"


def test_json_before_prose_with_braces_in_strings() -> None:
    reply = '[{"text": "Kano {city} [x]", "type": "LOC"}] -- note: I\'m not sure about "Kano".'
    assert parse(reply).mentions == [M("Kano {city} [x]", "LOC")]


def test_prose_brackets_before_json_are_skipped() -> None:
    reply = 'The sentence [1] mentions these (see below): {"entities": [{"text": "Kano", "type": "LOC"}]}'
    assert parse(reply).mentions == [M("Kano", "LOC")]


def test_trailing_commas() -> None:
    reply = '{"entities": [{"text": "Kano", "type": "LOC",}, {"text": "Shehu Gusau", "type": "PER"},],}'
    assert parse(reply).mentions == [M("Kano", "LOC"), M("Shehu Gusau", "PER")]


def test_single_quoted_python_style() -> None:
    reply = "{'entities': [{'text': 'Shehu Gusau', 'type': 'PER'}, {'text': \"Ma'aruf\", 'type': 'PER', 'ok': True, 'x': None}]}"
    assert parse(reply).mentions == [M("Shehu Gusau", "PER"), M("Ma'aruf", "PER")]


def test_python_tuples_list() -> None:
    assert parse("[('Kano', 'LOC'), ('" + OYO + "', 'LOC')]").mentions == [M("Kano", "LOC"), M(OYO, "LOC")]


def test_mixed_json_python_literals() -> None:
    reply = "{'entities': [{'text': 'Kano', 'type': 'LOC', 'confident': true}]}"
    assert parse(reply).mentions == [M("Kano", "LOC")]


def _tripwire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A file path and a Python expression that, if ever evaluated or executed, creates the file
    and sets `tf_prompt_evaluated` in builtins: a payload that leaves a trace."""
    trace = tmp_path / "evaluated"
    monkeypatch.delattr("builtins.tf_prompt_evaluated", raising=False)
    expr = (f"[__import__('pathlib').Path({str(trace)!r}).write_text('x'), "
            f"setattr(__import__('builtins'), 'tf_prompt_evaluated', True)][0]")
    return trace, expr


def _no_trace_left(trace: Path) -> None:
    import builtins

    assert not trace.exists() and not hasattr(builtins, "tf_prompt_evaluated"), "the reply was evaluated"


def test_tripwire_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The payload of the two tests below does leave its trace when evaluated."""
    trace, expr = _tripwire(tmp_path, monkeypatch)
    eval(expr)  # noqa: S307 -- the test's own expression, to show the tripwire fires
    assert trace.read_text() == "x"
    monkeypatch.delattr("builtins.tf_prompt_evaluated")


def test_python_call_is_not_evaluated_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A literal-looking payload that needs evaluation must not be run.
    trace, expr = _tripwire(tmp_path, monkeypatch)
    with pytest.raises(ParseFailure):
        parse("{'entities': " + expr + "}")
    with pytest.raises(ParseFailure):
        parse("{'entities': [{'text': " + expr + ", 'type': 'PER'}]}")
    _no_trace_left(trace)


# --------------------------------------------------------------------------- lines


def test_lines_label_colon_list() -> None:
    reply = "PER: Shehu Gusau, Aliyu\nLOC: Kano; " + OYO + "\nORG: None\nDATE: N/A"
    res = parse(reply)
    assert res.mentions == [M("Shehu Gusau", "PER"), M("Aliyu", "PER"), M("Kano", "LOC"), M(OYO, "LOC")]
    assert res.format == "lines"


def test_lines_all_styles() -> None:
    reply = "\n".join(
        [
            "- LOC: Kano",
            "Shehu Gusau (PER)",
            "Aminu Kano -> ORG",
            "Jumamosi | DATE",
            "* Ìbàdàn [LOC]",
            "1. Mombasa (Location)",
            "**PER**: Aliyu",
        ]
    )
    assert parse(reply).mentions == [
        M("Kano", "LOC"),
        M("Shehu Gusau", "PER"),
        M("Aminu Kano", "ORG"),
        M("Jumamosi", "DATE"),
        M("Ìbàdàn", "LOC"),
        M("Mombasa", "LOC"),
        M("Aliyu", "PER"),
    ]


def test_lines_several_tagged_on_one_line() -> None:
    assert parse("Shehu Gusau (PER), Kano (LOC)").mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]


def test_lines_text_colon_label() -> None:
    assert parse("Shehu Gusau: PER\nKano: LOC").mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]


def test_lines_sections() -> None:
    reply = "PER:\n- Shehu Gusau\n- Aliyu\n\nLOC:\n- Kano\nORG:\n- None"
    assert parse(reply).mentions == [M("Shehu Gusau", "PER"), M("Aliyu", "PER"), M("Kano", "LOC")]


def test_lines_with_preamble_and_duplicates() -> None:
    reply = "Here are the named entities I found:\n- Kano (LOC)\n- Kano (LOC)\nHope this helps!"
    assert parse(reply).mentions == [M("Kano", "LOC"), M("Kano", "LOC")]


def test_lines_json_list_value() -> None:
    assert parse('PER: ["Shehu Gusau", "Aliyu"]\nLOC: []').mentions == [M("Shehu Gusau", "PER"), M("Aliyu", "PER")]


def test_lines_quoted_values_and_date_commas() -> None:
    res = parse('LOC: "Kano, Nigeria", Abuja\nDATE: June 5, 2020')
    assert res.mentions == [M("Kano, Nigeria", "LOC"), M("Abuja", "LOC"), M("June 5, 2020", "DATE")]


def test_lines_final_period_dropped_but_abbreviations_kept() -> None:
    res = parse("LOC: Kano.\nORG: Dangote Ltd.\nLOC: U.S.")
    assert res.mentions == [M("Kano", "LOC"), M("Dangote Ltd.", "ORG"), M("U.S.", "LOC")]


def test_lines_markdown_table() -> None:
    reply = "| Entity | Type |\n|---|---|\n| Shehu Gusau | PER |\n| Kano | LOC |"
    assert parse(reply).mentions == [M("Shehu Gusau", "PER"), M("Kano", "LOC")]


def test_lines_unknown_type() -> None:
    res = parse("PER: Shehu Gusau\nMISC: Hausa")
    assert res.mentions == [M("Shehu Gusau", "PER")]
    assert res.unknown == [M("Hausa", "MISC")]


def test_lines_only_none_values_is_empty() -> None:
    res = parse("PER: None\nORG: -\nLOC: N/A\nDATE: []")
    assert res.mentions == []
    assert res.format == "empty"


def test_lines_in_fence() -> None:
    assert parse("```\nPER: Shehu Gusau\n```").mentions == [M("Shehu Gusau", "PER")]


# --------------------------------------------------------------------------- code style


def test_code_result_only() -> None:
    reply = 'result = [Person(span="Shehu Gusau"), Location(span="Kano"), Organization(span="INEC"), Date(span="Litinin")]'
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
    trace, expr = _tripwire(tmp_path, monkeypatch)
    for reply in (f"result = [Person(span={expr})]", f"{expr}\nresult = [Person(span='Kano')]",
                  f"result = [Person(span='Kano')]\nimport os; {expr}"):
        res = parse(reply)
        assert M("Kano", "PER") in res.mentions or res.mentions == []
        assert all(m.text == "Kano" for m in res.mentions)
    _no_trace_left(trace)


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
_ALPHABET = list("{}[]()\"',:;|-> \n\t\\`#*=_.0123456789abcPERLOCorgNone") + ["ọ̀", "“", "”", "```", "null", "span="]


def _assert_only_parse_failure(reply: str) -> None:
    for func in (
        lambda: parse_entities(reply, LABELS, {"Mutum": "PER"}),
        lambda: parse_translation(reply),
    ):
        try:
            func()
        except ParseFailure:
            pass
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


# --------------------------------------------------------------------------- parse_translation


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Shehu Gusau visited Kano.", "Shehu Gusau visited Kano."),
        ("  Shehu Gusau visited Kano.  \n", "Shehu Gusau visited Kano."),
        ("Translation: Shehu Gusau visited Kano.", "Shehu Gusau visited Kano."),
        ("English: The king of Ọ̀yọ́ arrived.", "The king of Ọ̀yọ́ arrived."),
        ("English translation: Shehu Gusau visited Kano.", "Shehu Gusau visited Kano."),
        ("**Translation:** Shehu Gusau visited Kano.", "Shehu Gusau visited Kano."),
        ('"Shehu Gusau visited Kano."', "Shehu Gusau visited Kano."),
        ("“Shehu Gusau visited Kano.”", "Shehu Gusau visited Kano."),
        ("'The governor's car is in Kano.'", "The governor's car is in Kano."),
        ('Translation: "Shehu Gusau visited Kano."', "Shehu Gusau visited Kano."),
        ("```\nShehu Gusau visited Kano.\n```", "Shehu Gusau visited Kano."),
        ("```text\nTranslation: Shehu Gusau visited Kano.\n```", "Shehu Gusau visited Kano."),
        ('{"translation": "Shehu Gusau visited Kano."}', "Shehu Gusau visited Kano."),
        ('{"english": "Shehu Gusau visited Kano."}', "Shehu Gusau visited Kano."),
        ('{"text": "Shehu Gusau visited Kano."}', "Shehu Gusau visited Kano."),
        ('```json\n{"translation": "Rais alitembelea Mombasa."}\n```', "Rais alitembelea Mombasa."),
        ("Here is the translation:\nShehu Gusau visited Kano.", "Shehu Gusau visited Kano."),
        ("Sure! Here is the English translation:\n\n\"Shehu Gusau visited Kano.\"", "Shehu Gusau visited Kano."),
        ("Here is the translation: Shehu Gusau visited Kano.", "Shehu Gusau visited Kano."),
        ("Shehu Gusau visited Kano.\nNote: 'Gwamna' means governor.", "Shehu Gusau visited Kano."),
        ('"Yes," he said, "Kano."', '"Yes," he said, "Kano."'),
        ("English is spoken in Kano.", "English is spoken in Kano."),
    ],
)
def test_parse_translation(reply: str, expected: str) -> None:
    assert parse_translation(reply) == expected


@pytest.mark.parametrize("reply", ["", "   ", '""', "Translation:", "```\n```", '{"translation": ""}'])
def test_parse_translation_empty_fails(reply: str) -> None:
    with pytest.raises(ParseFailure):
        parse_translation(reply)


def test_parse_translation_non_string() -> None:
    with pytest.raises(ParseFailure):
        parse_translation(None)  # type: ignore[arg-type]
