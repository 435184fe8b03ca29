"""Cheap self-checks (checks.py): numbers are not names, English dates follow --labels."""

from __future__ import annotations

import pytest

from tf_prompt.spans.align import Span
from tf_prompt.spans.checks import add_prefixes, check_english, is_english_date, names_only, strip_titles
from tf_prompt.types import Mention


@pytest.mark.parametrize("text", ["July 2014", "Wednesday", "last week", "14th July, 2014", "2014",
                                  "the 1990s", "this year", "May"])
def test_english_dates(text: str) -> None:
    assert is_english_date(text)


@pytest.mark.parametrize("text", ["Theresa May", "Kano", "Benue State", "Sunday Times", "Lagos"])
def test_english_names_are_not_dates(text: str) -> None:
    assert not is_english_date(text)


def test_check_english_follows_the_labels() -> None:
    found = [Mention("Buhari", "PER"), Mention("Wednesday", "PER"), Mention("2014", "LOC"),
             Mention("July 2014", "DATE")]
    assert check_english(found, ["PER", "ORG", "LOC"]) == [Mention("Buhari", "PER")]
    assert check_english(found, ["PER", "ORG", "LOC", "DATE"]) == [
        Mention("Buhari", "PER"), Mention("Wednesday", "DATE"), Mention("2014", "DATE"),
        Mention("July 2014", "DATE")]


def test_names_only_drops_numbers_but_not_dates() -> None:
    spans = [Span(0, 4, "PER", "2014", "exact"), Span(5, 9, "DATE", "2014", "exact"),
             Span(10, 14, "LOC", "Kano", "exact")]
    assert names_only(spans) == spans[1:]


def _span(source: str, word: str, label: str) -> Span:
    start = source.index(word)
    return Span(start, start + len(word), label, word, "exact")


def test_titles_are_not_part_of_a_name() -> None:
    src = "Rais Samia Suluhu Hassan na Dr. Alhaji Bello , Rais"
    titles = frozenset({"rais", "dr", "alhaji"})
    out = strip_titles([_span(src, "Rais Samia Suluhu Hassan", "PER"), _span(src, "Dr. Alhaji Bello", "PER"),
                        Span(len(src) - 4, len(src), "PER", "Rais", "exact")], titles)
    assert [s.text for s in out] == ["Samia Suluhu Hassan", "Bello", "Rais"]   # a lone title stays
    assert all(src[s.start:s.end] == s.text for s in out)
    # other types keep their words; no titles, no change
    loc = [_span(src, "Rais Samia", "LOC")]
    assert strip_titles(loc, titles) == loc and strip_titles(out, frozenset()) == out


def test_generic_words_join_the_name_they_precede() -> None:
    src = "'yan sanda a jihar Kano da unguwar jihar Gwale , u Rwanda na jihar"
    prefixes = {"LOC": frozenset({"jihar", "unguwar", "u"})}
    out = add_prefixes([_span(src, "Kano", "LOC"), _span(src, "Gwale", "LOC"), _span(src, "Rwanda", "LOC"),
                        _span(src, "sanda", "PER")], src, prefixes)
    assert [s.text for s in out] == ["sanda", "jihar Kano", "unguwar jihar Gwale", "u Rwanda"]
    # never over another span, never a word glued to the name
    spans = [_span(src, "jihar", "ORG"), _span(src, "Kano", "LOC")]
    assert add_prefixes(spans, src, prefixes) == spans
    assert add_prefixes([Span(1, 4, "LOC", "yan", "exact")], src, {"LOC": frozenset({"'"})})[0].text == "yan"


def test_the_masakhaner_schema_carries_its_dev_derived_conventions() -> None:
    from tf_prompt.data.schema import get_schema

    schema = get_schema("masakhaner", ["PER", "LOC"])
    assert {"rais", "alhaji", "dr"} <= schema.title_set
    assert "jihar" in schema.prefix_sets["LOC"] and "ORG" not in schema.prefix_sets
