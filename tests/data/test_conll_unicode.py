"""Unicode spaces in tokens: the reader and the writer agree, and a run on such data finishes.

The CoNLL rule (tf_prompt/data/conll.py): lines end at "\\n", "\\r\\n" or "\\r"; columns are separated by
ASCII spaces and tabs; every other whitespace character (NBSP, U+202F, U+3000, U+2028, "\\f", ...)
is part of a token and is written back byte for byte. These tests go over every such character.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tf_prompt import extract
from tf_prompt.cli import main
from tf_prompt.data import conll as data
from tf_prompt.data.conll import Sentence, read_conll, write_conll
from tf_prompt.methods.pipeline import gold_mentions
from tf_prompt.testing import LoopbackServer

LINE_BREAKS = "\n\r"
COLUMN_SEPARATORS = " \t"
#: Every whitespace character that is neither a line break nor a column separator.
INNER_SPACES = [chr(c) for c in range(sys.maxunicode + 1)
                if chr(c).isspace() and chr(c) not in LINE_BREAKS + COLUMN_SEPARATORS]
LABELS = ["PER", "LOC"]


def test_inner_spaces_cover_the_usual_suspects() -> None:
    for c in "\u00a0\u202f\u3000\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e\x1f\u1680\u2000\u200a\u205f":
        assert c in INNER_SPACES
    assert len(INNER_SPACES) >= 20   # 25 in Unicode 15


def _sentence_lines(c: str) -> list[str]:
    """A labelled sentence with `c` inside, before, after and as the whole of a token."""
    return [f"Amina{c}Juma B-PER", "alifika O", f"Dar{c}es B-LOC", "Salaam I-LOC",
            f"10{c}000 O", f"{c}jana O", f"leo{c} O", f"{c}\tO", ". O"]


def _write(path: Path, chars: list[str]) -> Path:
    path.write_bytes("".join("\n".join(_sentence_lines(c)) + "\n\n" for c in chars).encode("utf-8"))
    return path


@pytest.mark.parametrize("c", INNER_SPACES, ids=[f"U+{ord(c):04X}" for c in INNER_SPACES])
def test_token_with_inner_space_round_trips(tmp_path: Path, c: str) -> None:
    src = _write(tmp_path / "in.conll", [c])
    (sent,) = read_conll(src)
    assert sent.tokens == ("Amina" + c + "Juma", "alifika", "Dar" + c + "es", "Salaam", "10" + c + "000",
                           c + "jana", "leo" + c, c, ".")
    assert sent.tags == ("B-PER", "O", "B-LOC", "I-LOC", "O", "O", "O", "O", "O")
    assert [sent.text[a:b] for a, b in sent.offsets] == list(sent.tokens)
    out = tmp_path / "out.conll"
    write_conll(out, [sent], [list(sent.tags)])
    written = out.read_bytes().decode("utf-8")
    assert written.split("\n")[0] == f"Amina{c}Juma B-PER B-PER"   # byte for byte
    (back,) = read_conll(out)
    assert back.tokens == sent.tokens and back.tags == sent.tags
    # The same tokens given through the Python API are accepted as they are.
    assert Sentence.from_tokens(sent.tokens).tokens == sent.tokens
    assert data.conll_token_problem(f"x{c}y") is None


def test_lone_carriage_returns_are_line_breaks(tmp_path: Path) -> None:
    """Old Mac files: a lone "\\r" ends a line; it is never silently part of a token or tag."""
    p = tmp_path / "mac.conll"
    p.write_bytes(b"Amina B-PER\rJuma I-PER\r\rKano B-LOC\r")
    sents = read_conll(p)
    assert [s.tokens for s in sents] == [("Amina", "Juma"), ("Kano",)]
    assert [s.line for s in sents] == [1, 4]
    assert sents[0].tags == ("B-PER", "I-PER")


def test_tokens_that_cannot_be_written_are_refused_up_front(tmp_path: Path, server) -> None:
    for tokens in (["New York"], ["a\tb"], ["a\nb"], ["a\rb"], [""], ["-DOCSTART-"]):
        with pytest.raises(ValueError, match="token 0"):
            Sentence.from_tokens(tokens)
        with pytest.raises(ValueError, match="token 0"):
            Sentence(tokens=tuple(tokens), offsets=((0, 1),), text="x")
    # Through the Python API: an error before any call is paid, not a crash after.
    with pytest.raises(ValueError, match="'New York'"):
        extract([["Ali", "alikwenda", "New York"]], model="m", base_url=server.base_url, method="direct",
                out=str(tmp_path / "o"))
    assert not server.requests


def _responder(sentences: list[Sentence]) -> Any:
    """A perfect model that finds the sentence by its text (any Unicode space, any line split).

    Its "translation" is the sentence with plain spaces, as a real model would write it (a line
    separator in a reply ends the translation), so the annotate step finds that form.
    """
    gold = {}
    for s in sentences:
        entities = [{"text": m.text, "type": m.label} for m in gold_mentions(s, LABELS)]
        gold[s.text] = entities
        gold.setdefault(" ".join(s.text.split()), entities)
    texts = sorted(gold, key=len, reverse=True)

    def respond(body: dict[str, Any]) -> str:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        text = next(t for t in texts if t in user)
        if "Translate the following" in user:
            return " ".join(text.split())
        return json.dumps({"entities": gold[text]}, ensure_ascii=False)

    return respond


@pytest.mark.parametrize("method", ["direct", "transfusion"])
def test_run_over_every_inner_space_writes_all_outputs(tmp_path: Path, capsys, method: str) -> None:
    """The reported failure: such a file was read, every call paid, then write_conll crashed."""
    path = _write(tmp_path / "spaces.conll", INNER_SPACES)
    sentences = read_conll(path)
    out = tmp_path / "run"
    with LoopbackServer(_responder(sentences)) as srv:
        code = main(["run", "--model", "m", "--base-url", srv.base_url, "--method", method, "--data", str(path),
                     "--labels", "PER,LOC", "--out", str(out), "--concurrency", "4"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["complete"] is True and metrics["n_sentences"] == len(INNER_SPACES)
    assert metrics["f1"] == pytest.approx(1.0)   # entities with an inner space align to their tokens
    back = read_conll(out / "predictions.conll")
    assert [b.tokens for b in back] == [s.tokens for s in sentences]
    assert [b.tags for b in back] == [s.tags for s in sentences]


def test_extract_with_nbsp_in_text_and_tokens(server) -> None:
    s = Sentence.from_text("Amina\u00a0Juma alifika Dar\u202fes Salaam.")
    assert s.tokens == ("Amina", "Juma", "alifika", "Dar", "es", "Salaam", ".")
    server.responder = lambda body: json.dumps(
        {"entities": [{"text": "Amina Juma", "type": "PER"}, {"text": "Dar\u202fes Salaam", "type": "LOC"}]})
    found = extract(["Amina\u00a0Juma alifika Dar\u202fes Salaam.", ["Amina\u00a0Juma", "alifika", "Dar\u202fes",
                                                                     "Salaam", "."]],
                    model="m", base_url=server.base_url, method="direct", labels=LABELS)
    assert [[(e.type, e.token_start, e.token_end) for e in f] for f in found] == [
        [("PER", 0, 2), ("LOC", 3, 6)], [("PER", 0, 1), ("LOC", 2, 4)]]


def test_token_starting_with_a_bom_round_trips(tmp_path: Path) -> None:
    """The reader drops one BOM at the start of a file; a first token that starts with U+FEFF
    (after that BOM) must still read back as written."""
    src = tmp_path / "bom.conll"
    src.write_bytes("\ufeff\ufeffAmina B-PER\n".encode("utf-8"))
    (sent,) = read_conll(src)
    assert sent.tokens == ("\ufeffAmina",)
    out = tmp_path / "out.conll"
    write_conll(out, [sent], [["B-PER"]])
    assert read_conll(out)[0].tokens == sent.tokens
