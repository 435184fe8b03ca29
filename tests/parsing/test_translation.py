"""Tests for tf_prompt.parsing.translation: the English sentence out of a translate-step reply."""

from __future__ import annotations

import pytest

from tf_prompt.parsing import parse_translation
from tf_prompt.types import ParseFailure

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
