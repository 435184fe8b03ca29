"""Tests for tf_prompt.data.conll: CoNLL I/O, tokenization and IOB2."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import require, shared_data_dir
from tf_prompt.data.conll import (
    DataError,
    Sentence,
    iob2,
    read_conll,
    tokenize,
    write_conll,
)
from tf_prompt.data.datasets import sample_path

SHARED_LANGS = ["bam", "ewe", "fon", "hau", "kin", "luo", "mos", "nya", "pcm", "sna", "swa", "tsn", "twi", "xho", "yor"]


def require_shared() -> Path:
    root = shared_data_dir()
    require(root is not None, "shared data (../shared/data or $TF_PROMPT_TEST_DATA) not found")
    assert root is not None
    return root


def write(tmp_path: Path, content: str | bytes, name: str = "in.conll") -> Path:
    p = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    p.write_bytes(content)
    return p


# --- reading ---------------------------------------------------------------


def test_read_two_columns(tmp_path):
    p = write(tmp_path, "Shehu B-PER\nGusau I-PER\nya O\n\nKano B-LOC\n. O\n")
    s = read_conll(p)
    assert [x.tokens for x in s] == [("Shehu", "Gusau", "ya"), ("Kano", ".")]
    assert s[0].tags == ("B-PER", "I-PER", "O")
    assert s[0].text == "Shehu Gusau ya"
    assert s[0].offsets == ((0, 5), (6, 11), (12, 14))
    assert [x.index for x in s] == [0, 1]
    assert [x.line for x in s] == [1, 5]
    assert s[1].path == str(p)


def test_read_three_columns_tabs_crlf_bom_docstart(tmp_path):
    content = (
        "\ufeff-DOCSTART- -X- O\r\n\r\n"
        "Amina\tNNP\tB-PER\r\n"
        "alifika  VB   O\r\n"
        "-DOCSTART- -X- O\r\n"  # a boundary even without a blank line
        "Mombasa\tNNP\tB-LOC\r\n\r\n\r\n\r\n"
    )
    s = read_conll(write(tmp_path, content))
    assert [x.tokens for x in s] == [("Amina", "alifika"), ("Mombasa",)]
    assert [x.tags for x in s] == [("B-PER", "O"), ("B-LOC",)]
    assert [x.line for x in s] == [3, 6]


def test_read_no_trailing_newline_and_many_blank_lines(tmp_path):
    s = read_conll(write(tmp_path, "\n\n\na O\n\n\n\nb O"))
    assert [x.tokens for x in s] == [("a",), ("b",)]
    assert [x.line for x in s] == [4, 8]


def test_read_converts_iob1_and_bioes(tmp_path):
    p = write(
        tmp_path,
        "Dar I-LOC\nes I-LOC\nSalaam I-LOC\nna O\nKano S-LOC\n"
        "Benki B-ORG\nKuu E-ORG\nAmina U-PER\nJuma I-ORG\n",
    )
    (s,) = read_conll(p)
    assert s.tags == (
        "B-LOC", "I-LOC", "I-LOC", "O", "B-LOC", "B-ORG", "I-ORG", "B-PER", "B-ORG",
    )


def test_read_unlabeled(tmp_path):
    s = read_conll(write(tmp_path, "Habari\nza\nasubuhi\n\nAsante\n"))
    assert [x.tokens for x in s] == [("Habari", "za", "asubuhi"), ("Asante",)]
    assert all(x.tags is None for x in s)


def test_read_labeled_false_ignores_tags(tmp_path):
    s = read_conll(write(tmp_path, "a B-PER\nb O\n"), labeled=False)
    assert s[0].tags is None and s[0].tokens == ("a", "b")


def test_token_with_nbsp_is_not_split(tmp_path):
    (s,) = read_conll(write(tmp_path, "10\u00a0000 O\nwatu O\n"))
    assert s.tokens == ("10\u00a0000", "watu")


# --- read errors: exact PATH:LINE messages ----------------------------------


def test_error_invalid_tag(tmp_path):
    p = write(tmp_path, "a O\nb B-PER\n\nc XYZ\n")
    with pytest.raises(DataError) as e:
        read_conll(p)
    assert str(e.value) == (
        f"{p}:4: invalid tag 'XYZ' (expected O or B-/I- followed by a type)"
    )


@pytest.mark.parametrize("tag", ["B-", "b-PER", "PER", "X-PER", "o"])
def test_error_invalid_tag_variants(tmp_path, tag):
    p = write(tmp_path, f"a {tag}\n")
    with pytest.raises(DataError, match=rf"^{p}:1: invalid tag '{tag}'"):
        read_conll(p)


def test_error_one_column_in_labeled_file(tmp_path):
    p = write(tmp_path, "a O\nb O\n\nc\nd O\n")
    with pytest.raises(DataError) as e:
        read_conll(p)
    assert str(e.value) == f"{p}:4: expected 'token TAG', got 1 column"


def test_error_labeled_true_on_unlabeled_file(tmp_path):
    p = write(tmp_path, "\na\nb\n")
    with pytest.raises(DataError) as e:
        read_conll(p, labeled=True)
    assert str(e.value) == f"{p}:2: expected 'token TAG', got 1 column"


def test_error_not_utf8(tmp_path):
    p = write(tmp_path, b"a O\n\nb O\ncaf\xe9 O\n")
    with pytest.raises(DataError) as e:
        read_conll(p)
    assert str(e.value) == f"{p}:4: not valid UTF-8"


def test_error_not_utf8_after_bom(tmp_path):
    p = write(tmp_path, b"\xef\xbb\xbfa O\n\xff O\n")
    with pytest.raises(DataError) as e:
        read_conll(p)
    assert str(e.value) == f"{p}:2: not valid UTF-8"


def test_error_missing_file(tmp_path):
    p = tmp_path / "nope.conll"
    with pytest.raises(DataError) as e:
        read_conll(p)
    assert str(e.value) == f"{p}: no such file"


def test_error_directory(tmp_path):
    with pytest.raises(DataError) as e:
        read_conll(tmp_path)
    assert str(e.value).startswith(f"{tmp_path}: is a directory")


@pytest.mark.parametrize("content", ["", "\n\n  \n", "-DOCSTART- -X- O\n\n"])
def test_error_no_sentences(tmp_path, content):
    p = write(tmp_path, content)
    with pytest.raises(DataError) as e:
        read_conll(p)
    assert str(e.value) == f"{p}: no sentences found"


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


# --- writing ---------------------------------------------------------------


def test_round_trip(tmp_path):
    src = read_conll(sample_path())
    preds = [["O"] * len(s.tokens) for s in src]
    out = tmp_path / "deep" / "er" / "out.conll"
    write_conll(out, src, preds)
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "Amina B-PER O"
    back = read_conll(out)  # last column is PRED, so tags read back as all O
    assert [b.tokens for b in back] == [s.tokens for s in src]
    assert [b.line for b in back] == [s.line for s in src]
    assert all(set(b.tags) == {"O"} for b in back)

    # With predictions equal to gold, a 3-column read gives the gold back.
    write_conll(out, src, [list(s.tags) for s in src])
    assert [b.tags for b in read_conll(out)] == [s.tags for s in src]


def test_write_unlabeled_uses_dash_and_utf8(tmp_path):
    s = Sentence.from_text("Ọ̀yọ́ ni.")
    out = tmp_path / "o.conll"
    write_conll(out, [s], [["B-LOC", "O", "O"]])
    assert out.read_bytes().decode("utf-8") == "Ọ̀yọ́ - B-LOC\nni - O\n. - O\n\n"


def test_write_rejects_misaligned_predictions(tmp_path):
    s = Sentence.from_tokens(["a", "b"], ["O", "O"])
    with pytest.raises(ValueError, match="2 tokens but 1 predicted tags"):
        write_conll(tmp_path / "o", [s], [["O"]])
    with pytest.raises(ValueError, match="1 sentences but 0 prediction lists"):
        write_conll(tmp_path / "o", [s], [])


# --- Sentence and tokenize -------------------------------------------------


def test_from_tokens():
    s = Sentence.from_tokens(["Dar", "es", "Salaam"], ["B-LOC", "I-LOC", "I-LOC"], index=3)
    assert s.text == "Dar es Salaam"
    assert [s.text[a:b] for a, b in s.offsets] == list(s.tokens)
    assert s.index == 3 and s.tags == ("B-LOC", "I-LOC", "I-LOC")
    with pytest.raises(ValueError, match="1 tokens but 2 tags"):
        Sentence.from_tokens(["a"], ["O", "O"])


def test_from_text_hausa():
    text = "Shehu Gusau ya je Kano."
    s = Sentence.from_text(text, index=2)
    assert s.tokens == ("Shehu", "Gusau", "ya", "je", "Kano", ".")
    assert s.offsets == ((0, 5), (6, 11), (12, 14), (15, 17), (18, 22), (22, 23))
    assert s.text == text and s.tags is None and s.index == 2


def test_from_text_yoruba_combining_marks():
    # Decomposed tone marks (U+0300/U+0301 after the base letter) must stay in the word.
    text = "  Ọ̀yọ́ ni ìlú Adébáyọ̀,  ó sọ pé \"n'a\"."
    s = Sentence.from_text(text)
    assert s.text == text
    assert s.tokens == (
        "Ọ̀yọ́", "ni", "ìlú", "Adébáyọ̀", ",", "ó", "sọ", "pé", '"', "n'a", '"', ".",
    )
    assert [text[a:b] for a, b in s.offsets] == list(s.tokens)


def test_tokenize_apostrophes_digits_punctuation():
    assert [t for t, _, _ in tokenize("Ng'ombe wa 2023, 'kweli'!")] == [
        "Ng'ombe", "wa", "2023", ",", "'", "kweli", "'", "!",
    ]
    assert tokenize("") == []
    assert tokenize("a\u2019b") == [("a\u2019b", 0, 3)]


# --- iob2 ------------------------------------------------------------------


def test_iob2_keeps_valid_iob2():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    assert iob2(tags) == tags


def test_iob2_from_iob1():
    assert iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG",
    ]


def test_iob2_from_bioes_and_bilou():
    assert iob2(["S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "E-ORG"]) == [
        "B-PER", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG",
    ]
    assert iob2(["U-DATE", "B-PER", "L-PER"]) == ["B-DATE", "B-PER", "I-PER"]


def test_iob2_rejects_garbage():
    with pytest.raises(ValueError, match="invalid tag 'PER'"):
        iob2(["O", "PER"])


def test_read_all_shared_test_files_fast():
    root = require_shared()
    for lang in SHARED_LANGS:
        p = root / "masakhaner2" / lang / "test.txt"
        start = time.process_time()   # CPU time: robust to other processes on a busy machine
        sents = read_conll(p)
        elapsed = time.process_time() - start
        assert elapsed < 1.0, f"{lang}: {elapsed:.2f}s of CPU"
        assert len(sents) > 100 and all(s.tags is not None for s in sents)
