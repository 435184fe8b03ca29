"""Tests for tf_prompt.parsing.lines: 'PER: a, b', '- Kano (LOC)', tables, sections."""

from __future__ import annotations

from reply_helpers import OYO, M, parse

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
