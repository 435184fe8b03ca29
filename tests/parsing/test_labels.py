"""Tests for tf_prompt.parsing.labels: the type names models write, mapped onto the schema's labels."""

from __future__ import annotations

import pytest

from reply_helpers import LABELS
from tf_prompt.parsing.labels import normalize_label


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
