"""Combination rules (combine.py): which spans survive, with which type."""

from __future__ import annotations

import pytest

from tf_prompt.spans.align import Span
from tf_prompt.spans.combine import DEFAULT, RULES, combine, merge, vote_type

TEXT = "Shugaba Buhari ya ziyarci Kano tare da Hukumar INEC ."


def span(word: str, label: str, text: str = TEXT) -> Span:
    start = text.index(word)
    return Span(start, start + len(word), label, word, "exact")


def views(fusion=(), direct=(), projection=()):
    return {"fusion": list(fusion), "direct": list(direct), "projection": list(projection)}


def test_none_is_the_fusion_answer() -> None:
    v = views([span("Buhari", "PER")], [span("Kano", "LOC")])
    assert combine("none", v) == [span("Buhari", "PER")]


def test_union_adds_direct_spans_that_do_not_overlap_fusion() -> None:
    v = views([span("Buhari", "PER")], [span("Shugaba Buhari", "PER"), span("Kano", "LOC")])
    assert combine("union", v) == [span("Buhari", "PER"), span("Kano", "LOC")]
    # the type is the views' majority; a tie drops the span
    v = views([span("Kano", "ORG"), span("INEC", "ORG")], [span("Kano", "LOC"), span("INEC", "LOC")],
              [span("Kano", "LOC")])
    assert combine("union", v) == [span("Kano", "LOC")]


def test_direct_first_adds_fusion_spans_that_do_not_overlap_direct() -> None:
    v = views([span("Shugaba Buhari", "ORG"), span("INEC", "ORG")], [span("Buhari", "PER"), span("Kano", "LOC")])
    assert combine("direct-first", v) == [span("Buhari", "PER"), span("Kano", "LOC"), span("INEC", "ORG")]


def test_vote_keeps_spans_two_views_propose() -> None:
    v = views(fusion=[span("Buhari", "PER"), span("Hukumar", "ORG")],
              direct=[span("Buhari", "PER"), span("Kano", "LOC")],
              projection=[span("Kano", "LOC")])
    assert combine("vote", v) == [span("Buhari", "PER"), span("Kano", "LOC")]


def test_vote_takes_the_majority_type_and_drops_a_tie() -> None:
    v = views(fusion=[span("Buhari", "PER"), span("Kano", "ORG")],
              direct=[span("Buhari", "LOC"), span("Kano", "LOC")],
              projection=[span("Buhari", "PER")])
    out = combine("vote", v)
    assert out == [span("Buhari", "PER")]          # Kano: ORG vs LOC, one vote each -> dropped
    assert vote_type(span("Kano", "ORG"), list(v.values())) is None


def test_confirmed_needs_a_second_view() -> None:
    v = views(fusion=[span("Buhari", "PER"), span("INEC", "ORG")],
              direct=[span("Buhari", "PER"), span("ziyarci", "LOC")],
              projection=[span("INEC", "ORG"), span("Kano", "LOC")])
    assert combine("confirmed", v) == [span("Buhari", "PER"), span("INEC", "ORG")]


def test_merge_prefers_earlier_views_on_overlap() -> None:
    assert merge([span("Hukumar INEC", "ORG")], [span("INEC", "LOC"), span("Kano", "LOC")]) == \
        [span("Kano", "LOC"), span("Hukumar INEC", "ORG")]


def test_unknown_rule_and_default() -> None:
    # the README documents direct-first as the default (chosen on dev): pinned by name here
    assert DEFAULT == "direct-first" and DEFAULT in RULES
    from tf_prompt.settings import RunSettings

    assert RunSettings(method="transfusion").combine_rule() == "direct-first"
    assert RunSettings(method="transfusion", style="gollie").combine_rule() == "none"
    with pytest.raises(ValueError, match="choose from"):
        combine("majority", views())
