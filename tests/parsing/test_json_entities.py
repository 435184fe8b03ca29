"""Tests for JSON answers (tf_prompt.parsing.json_entities, jsonish): objects, lists, mappings, fences,
prose around them, lenient JSON, and that a Python-looking reply is never evaluated."""

from __future__ import annotations

from pathlib import Path

import pytest

from reply_helpers import OYO, M, no_trace_left, parse, tripwire
from tf_prompt.types import ParseFailure

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
    res = parse('{"' + key + '": [{"text": "Mombasa", "type": "LOC"}]}')
    assert res.mentions == [M("Mombasa", "LOC")]
    assert res.format == "json-object"


def test_json_object_prefers_final_result() -> None:
    reply = ('{"result": [{"text": "Mombasa", "type": "LOC"}], '
             '"final_result": [{"text": "Mombasa ya Kale", "type": "LOC"}]}')
    assert parse(reply).mentions == [M("Mombasa ya Kale", "LOC")]


def test_single_entity_object() -> None:
    res = parse('{"text": "Shehu Gusau", "type": "Person"}')
    assert res.mentions == [M("Shehu Gusau", "PER")]


def test_unknown_labels_go_to_unknown() -> None:
    reply = ('{"entities": [{"text": "Hausa", "type": "LANGUAGE"}, {"text": "Kano", "type": "LOC"}, '
             '{"text": "Naira", "type": "MISC"}]}')
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
    reply = ('{"entities": [{"text": "Kano", "type": "LOC"}, {"text": "Shehu Gusau", "type": "PER"}, '
             '{"text": "Kano", "type": "LOC"}]}')
    assert parse(reply).mentions == [M("Kano", "LOC"), M("Shehu Gusau", "PER"), M("Kano", "LOC")]


def test_entity_text_cleanup() -> None:
    reply = ('{"entities": [{"text": "  Kano\\n", "type": "LOC"}, {"text": "", "type": "PER"}, '
             '{"text": "   ", "type": "PER"}, {"text": 2019, "type": "DATE"}, {"text": null, "type": "ORG"}]}')
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
    reply = ('Here are the entities: {"entities": [{"text": "Shehu Gusau", "type": "PER"}, '
             '{"text": "Kano", "type": "LOC"}]} Hope this helps!')
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
    reply = ("{'entities': [{'text': 'Shehu Gusau', 'type': 'PER'}, "
             "{'text': \"Ma'aruf\", 'type': 'PER', 'ok': True, 'x': None}]}")
    assert parse(reply).mentions == [M("Shehu Gusau", "PER"), M("Ma'aruf", "PER")]


def test_python_tuples_list() -> None:
    assert parse("[('Kano', 'LOC'), ('" + OYO + "', 'LOC')]").mentions == [M("Kano", "LOC"), M(OYO, "LOC")]


def test_mixed_json_python_literals() -> None:
    reply = "{'entities': [{'text': 'Kano', 'type': 'LOC', 'confident': true}]}"
    assert parse(reply).mentions == [M("Kano", "LOC")]


def test_tripwire_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The payload of the two tests below does leave its trace when evaluated."""
    trace, expr = tripwire(tmp_path, monkeypatch)
    eval(expr)  # noqa: S307 -- the test's own expression, to show the tripwire fires
    assert trace.read_text() == "x"
    monkeypatch.delattr("builtins.tf_prompt_evaluated")


def test_python_call_is_not_evaluated_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A literal-looking payload that needs evaluation must not be run.
    trace, expr = tripwire(tmp_path, monkeypatch)
    with pytest.raises(ParseFailure):
        parse("{'entities': " + expr + "}")
    with pytest.raises(ParseFailure):
        parse("{'entities': [{'text': " + expr + ", 'type': 'PER'}]}")
    no_trace_left(trace)
