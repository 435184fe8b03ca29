"""A translations file is split into lines exactly where an editor splits it (\\n, \\r\\n, \\r)."""

from __future__ import annotations

import json

import pytest

from tf_prompt.components.translators import FileTranslator

#: Characters str.splitlines() treats as line breaks but a text editor shows inside a line.
INNER_BREAKS = ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


@pytest.mark.parametrize("ch", INNER_BREAKS, ids=lambda c: f"U+{ord(c):04X}")
def test_plain_lines_keep_inner_breaks(tmp_path, ch):
    path = tmp_path / "tr.txt"
    path.write_text(f"one{ch}half\ntwo\r\nthree\rfour\n", encoding="utf-8")
    ft = FileTranslator(path)
    assert ft.by_index == {0: f"one{ch}half", 1: "two", 2: "three", 3: "four"}


@pytest.mark.parametrize("ch", INNER_BREAKS, ids=lambda c: f"U+{ord(c):04X}")
def test_jsonl_lines_keep_inner_breaks(tmp_path, ch):
    path = tmp_path / "tr.jsonl"
    records = [{"index": 0, "translation": f"one{ch}half"}, {"index": 1, "translation": "two"}]
    # ensure_ascii=False writes the character itself, as most tools do
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    ft = FileTranslator(path)
    assert ft.by_index == {0: f"one{ch}half", 1: "two"}
