"""`tf-prompt project-data`: English labelled sentences translated with their entities in [ ]
markers (EasyProject), over the loopback server and the real openai SDK. The responder plays a
translator that keeps, loses, nests or reorders markers; the tests check the spans read back, the
drops by reason, one-line errors, Unicode, the cache on a rerun, and the chain into finetune-data."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, run_cli, shared_data_dir
from tf_prompt.data.conll import read_conll
from tf_prompt.finetune import markers as mk
from tf_prompt.parsing import parse_entities

ENGLISH_LINE = re.compile(r"^English: (.*)$", re.M)


def _conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    path.write_text("\n".join("".join(f"{t} {g}\n" for t, g in s) for s in sentences), encoding="utf-8")
    return path


def _sent(text: str) -> list[tuple[str, str]]:
    """'Shehu/B-PER Gusau/I-PER visited Kano/B-LOC .' -> [(token, tag)]."""
    out = []
    for word in text.split():
        token, _, tag = word.partition("/")
        out.append((token, tag or "O"))
    return out


def _table(replies: dict[str, str]) -> Callable[[dict[str, Any]], str]:
    """A translator that knows the reply to each marked English sentence (a KeyError otherwise:
    the marked text the command sends is part of what is tested)."""
    def respond(body: dict[str, Any]) -> str:
        m = ENGLISH_LINE.search(body["messages"][-1]["content"])
        assert m, body["messages"][-1]["content"]
        return replies[m.group(1)]
    return respond


def _project(capsys, server, tmp_path: Path, english: Path, *args: str, out: str = "proj",
             lang: str = "hau") -> tuple[int, str, str, Path]:
    dest = tmp_path / out
    code, stdout, stderr = run_cli(capsys, "project-data", "--english", str(english), "--lang", lang, "--model",
                                   "gpt-4o-mini", "--base-url", server.base_url, "--out", str(dest), *args)
    return code, stdout, stderr, dest


def _summary(dest: Path) -> dict[str, Any]:
    return json.loads((dest / "summary.json").read_text(encoding="utf-8"))


def _pairs(dest: Path) -> list[list[tuple[str, str]]]:
    return [list(zip(s.tokens, s.tags or (), strict=True)) for s in read_conll(dest / "projected.conll")]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


# --------------------------------------------------------------------------- spans


def test_spans_are_recovered_exactly_from_kept_markers(capsys, server, tmp_path) -> None:
    english = _conll(tmp_path / "en.txt", [
        _sent("Shehu/B-PER Gusau/I-PER visited Kano/B-LOC on Monday ."),
        _sent("The/O United/B-ORG Nations/I-ORG met in Nairobi/B-LOC ."),
        _sent("Kano/B-LOC welcomed Aliko/B-PER Dangote/I-PER ."),
        _sent("Audu/B-PER arrived in Abuja/B-LOC ."),
        _sent("It rained all day ."),
        _sent("Bello/B-PER slept ."),
    ])
    server.responder = _table({
        # the prompt's English line repeated before the translation
        "[Bello] slept.": "English: [Bello] slept.\nHausa: [Bello] ya yi barci.",
        # markers kept, plain
        "[Shehu Gusau] visited [Kano] on Monday.": "[Shehu Gusau] ya ziyarci [Kano] ranar Litinin.",
        # a marker inside a word (Swahili locative -ni): the entity widens to the whole word
        "The [United Nations] met in [Nairobi].": "[Umoja wa Mataifa] walikutana [Nairobi]ni.",
        # the two entities in the other order, names kept: types follow the names, not the order
        "[Kano] welcomed [Aliko Dangote].": "[Aliko Dangote] ya samu tarba a [Kano].",
        # punctuation inside the marker and a "Hausa:" label before the translation
        "[Audu] arrived in [Abuja].": "Hausa: [Audu] ya isa [Abuja.]",
        "It rained all day.": "An yi ruwan sama duk yini.",
    })
    code, stdout, _, dest = _project(capsys, server, tmp_path, english)
    assert code == 0, stdout
    assert _pairs(dest) == [
        _sent("Shehu/B-PER Gusau/I-PER ya ziyarci Kano/B-LOC ranar Litinin ."),
        _sent("Umoja/B-ORG wa/I-ORG Mataifa/I-ORG walikutana Nairobini/B-LOC ."),
        _sent("Aliko/B-PER Dangote/I-PER ya samu tarba a Kano/B-LOC ."),
        _sent("Audu/B-PER ya isa Abuja/B-LOC ."),
        _sent("An yi ruwan sama duk yini ."),
        _sent("Bello/B-PER ya yi barci ."),
    ]
    summary = _summary(dest)
    assert (summary["sentences_in"], summary["kept"], summary["dropped"]) == (6, 6, 0)
    assert summary["entities"] == {"english_marked": 9, "kept": 9}
    assert summary["types_matched_by_name_out_of_order"] == 1
    assert summary["markers_inside_a_word_widened"] == 1
    assert summary["usage"]["calls"] == 6 and server.served == 6
    assert "6 Hausa sentences kept, 0 dropped" in stdout


def test_types_follow_the_english_order_when_names_are_translated() -> None:
    english = read_conll_text("Kano/B-LOC welcomed Aliko/B-PER Dangote/I-PER .")
    marked = mk.mark(english)
    assert isinstance(marked, mk.Marked)
    got = mk.project("[Birnin Kano] ya tarbi [Alhaji Dangoten]", marked)
    assert isinstance(got, mk.Projected) and not got.reordered
    assert got.tags == ("B-LOC", "I-LOC", "O", "O", "B-PER", "I-PER")


def read_conll_text(line: str) -> Any:
    """A labelled sentence from the `_sent` notation."""
    from tf_prompt.data.conll import Sentence

    pairs = _sent(line)
    return Sentence.from_tokens([t for t, _ in pairs], [g for _, g in pairs])


def test_marking_detokenises_and_marks_only_the_chosen_types() -> None:
    s = read_conll_text("I/O do/O n't/O like/O ( Acme/B-ORG ) in/O Lagos/B-LOC ,/O Bob/B-PER 's/O place/O .")
    marked = mk.mark(s, ["ORG", "LOC"])
    assert isinstance(marked, mk.Marked)
    assert marked.text == "I don't like ([Acme]) in [Lagos], Bob's place."
    assert marked.plain == "I don't like (Acme) in Lagos, Bob's place."
    assert [e.label for e in marked.entities] == ["ORG", "LOC"]
    assert mk.mark(read_conll_text("at McDonald/B-ORG 's/I-ORG ,/O U.S./B-LOC")).entity_texts == (  # type: ignore[union-attr]
        "McDonald's", "U.S.")


# --------------------------------------------------------------------------- drops


def test_drops_are_counted_by_reason_and_listed(capsys, server, tmp_path) -> None:
    english = _conll(tmp_path / "en.txt", [
        _sent("Audu/B-PER met Bello/B-PER ."),               # kept
        _sent("Musa/B-PER went to Kaduna/B-LOC ."),          # one marker lost
        _sent("Ali/B-PER is here ."),                        # a marker added
        _sent("Bank/B-ORG of/I-ORG Kano/I-ORG opened ."),    # nested
        _sent("Sani/B-PER left ."),                          # unpaired
        _sent("Zaria/B-LOC is big ."),                       # empty marker
        _sent("Yusuf/B-PER of Jos/B-LOC ."),                 # two entities in one word
        _sent("He said [ sic ] nothing ."),                  # brackets in the source: never sent
        _sent("Ibrahim/B-PER smiled ."),                     # the same target as another English sentence
        _sent("Ibrahim/B-PER laughed ."),
    ])
    server.responder = _table({
        "[Audu] met [Bello].": "[Audu] ya hadu da [Bello].",
        "[Musa] went to [Kaduna].": "[Musa] ya tafi Kaduna.",
        "[Ali] is here.": "[Ali] yana [nan].",
        "[Bank of Kano] opened.": "[Bankin [Kano]] ya bude.",
        "[Sani] left.": "[Sani ya tafi.",
        "[Zaria] is big.": "[ ] Zaria babba ce.",
        "[Yusuf] of [Jos].": "[Yusuf]na[Jos].",
        "[Ibrahim] smiled.": "[Ibrahim] ya yi murmushi.",
        "[Ibrahim] laughed.": "[Ibrahim] ya yi murmushi.",
    })
    code, stdout, _, dest = _project(capsys, server, tmp_path, english)
    assert code == 0
    summary = _summary(dest)
    assert summary["dropped_by_reason"] == {
        mk.FEWER: 1, mk.MORE: 1, mk.NESTED: 1, mk.UNPAIRED: 1, mk.EMPTY: 1, mk.SHARED_WORD: 1,
        mk.SOURCE_HAS_MARKERS: 1, mk.DUPLICATE: 1}
    assert (summary["sentences_in"], summary["kept"], summary["dropped"]) == (10, 2, 8)
    assert server.served == 9   # the sentence with brackets of its own is never sent
    assert _pairs(dest) == [_sent("Audu/B-PER ya hadu da Bello/B-PER ."),
                            _sent("Ibrahim/B-PER ya yi murmushi .")]
    dropped = [json.loads(line) for line in (dest / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    first_lines = [s.line for s in read_conll(english)]
    assert [(d["english_line"], d["reason"]) for d in dropped] == [
        (first_lines[1], mk.FEWER), (first_lines[2], mk.MORE), (first_lines[3], mk.NESTED),
        (first_lines[4], mk.UNPAIRED), (first_lines[5], mk.EMPTY), (first_lines[6], mk.SHARED_WORD),
        (first_lines[7], mk.SOURCE_HAS_MARKERS), (first_lines[9], mk.DUPLICATE)]
    assert dropped[1]["reply"] == "[Ali] yana [nan]."
    assert f"{1:>6}  {mk.NESTED}" in stdout


@pytest.mark.parametrize("reply, reason", [
    ("[A] [B] [C]", mk.MORE), ("[A]", mk.FEWER), ("[A] ]B[", mk.UNPAIRED), ("[[A]] [B]", mk.NESTED),
    ("[A] [,]", mk.EMPTY), ("[A] [\u200b]", mk.EMPTY), ("[A] [B]", None), ("", mk.NO_TRANSLATION),
    ("[A] [B", mk.UNPAIRED), ("\uff3bA\uff3d [B]", None),
])
def test_each_marker_fault_has_its_reason(reply: str, reason: str | None) -> None:
    marked = mk.mark(read_conll_text("A/B-PER and B/B-LOC"))
    assert isinstance(marked, mk.Marked)
    got = mk.project(reply, marked)
    if reason is None:
        assert isinstance(got, mk.Projected) and got.tags == ("B-PER", "B-LOC")
    else:
        assert got == mk.Dropped(reason)


# --------------------------------------------------------------------------- Unicode


def test_unicode_replies_are_nfc_without_zero_width_characters(capsys, server, tmp_path) -> None:
    english = _conll(tmp_path / "en.txt", [
        _sent("Oyo/B-LOC is old ."),
        _sent("Lagos/B-LOC is big ."),
        _sent("Ade/B-PER came ."),
    ])
    oyo_nfd = unicodedata.normalize("NFD", "Ọ̀yọ́")
    server.responder = _table({
        "[Oyo] is old.": f"Ìlú [{oyo_nfd}] ti pẹ́.",                  # NFD from the model
        "[Lagos] is big.": "[Èk\u200bó] tó\u200d bí.",                 # zero-width space and joiner
        "[Ade] came.": "\ufeff[Adé] dé\u00ad.",                          # BOM, soft hyphen
    })
    code, _, _, dest = _project(capsys, server, tmp_path, english, lang="yor")
    assert code == 0
    got = _pairs(dest)
    expected = [[("Ìlú", "O"), ("Ọ̀yọ́", "B-LOC"), ("ti", "O"), ("pẹ́", "O"), (".", "O")],
                [("Èkó", "B-LOC"), ("tó", "O"), ("bí", "O"), (".", "O")],
                [("Adé", "B-PER"), ("dé", "O"), (".", "O")]]
    assert got == [[(unicodedata.normalize("NFC", t), g) for t, g in s] for s in expected]
    text = (dest / "projected.conll").read_text(encoding="utf-8")
    assert text == unicodedata.normalize("NFC", text)
    assert not set(text) & {"\u200b", "\u200d", "\ufeff", "\u00ad"}
    assert _summary(dest)["language"] == "Yoruba"


# --------------------------------------------------------------------------- errors, reruns, budget


def test_bad_input_is_one_line_naming_the_file_and_line(capsys, server, tmp_path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("Kano B-LOC\nis O\nbig X-LOC\n", encoding="utf-8")
    code, _, err, _ = _project(capsys, server, tmp_path, bad)
    assert code == 2 and err.count("\n") == 1 and f"{bad}:3:" in err and "Traceback" not in err
    unlabelled = tmp_path / "plain.txt"
    unlabelled.write_text("\nKano\nis\n", encoding="utf-8")
    code, _, err, _ = _project(capsys, server, tmp_path, unlabelled)
    assert code == 2 and err.count("\n") == 1 and f"{unlabelled}:2:" in err and "no NER tags" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    code, _, err, _ = _project(capsys, server, tmp_path, empty)
    assert code == 2 and err.count("\n") == 1 and f"{empty}: no sentences found" in err
    assert server.served == 0


def test_rerun_makes_no_call_and_rebuilds_the_same_outputs(capsys, server, tmp_path) -> None:
    english = _conll(tmp_path / "en.txt", [_sent("Audu/B-PER met Bello/B-PER ."), _sent("Musa/B-PER went home .")])
    server.responder = _table({"[Audu] met [Bello].": "[Audu] ya hadu da [Bello].",
                               "[Musa] went home.": "[Musa] ya tafi gida."})
    assert _project(capsys, server, tmp_path, english)[0] == 0
    dest = tmp_path / "proj"
    first = {name: (dest / name).read_bytes() for name in ("projected.conll", "translations.jsonl", "dropped.jsonl")}
    served = server.served
    assert served == 2
    code, _, _, _ = _project(capsys, server, tmp_path, english)
    assert code == 0 and server.served == served
    assert {name: (dest / name).read_bytes() for name in first} == first
    usage = _summary(dest)["usage"]
    assert (usage["calls"], usage["cache_hits"]) == (0, 2)
    # another language into the same folder is refused, unless --overwrite
    code, _, err, _ = _project(capsys, server, tmp_path, english, lang="yor")
    assert code == 2 and "--overwrite" in err and "language" in err and err.count("\n") == 1
    assert _summary(dest)["language"] == "Hausa"
    assert _project(capsys, server, tmp_path, english, "--overwrite", lang="yor")[0] == 0
    assert _summary(dest)["language"] == "Yoruba"


def test_budget_stops_calls_keeps_outputs_and_a_rerun_finishes(capsys, server, tmp_path) -> None:
    rows = [_sent(f"Name{i}/B-PER came .") for i in range(6)]
    english = _conll(tmp_path / "en.txt", rows)
    server.responder = _table({f"[Name{i}] came.": f"[Name{i}] ya zo." for i in range(6)})
    code, _, err, dest = _project(capsys, server, tmp_path, english, "--max-cost", "0.0007", "--concurrency", "1")
    assert code == 3 and "--max-cost" in err
    summary = _summary(dest)
    done = server.served
    assert 0 < done < 6 and summary["kept"] == done
    assert summary["not_done"] == {"budget reached (--max-cost)": 6 - done}
    assert len(_pairs(dest)) == done
    code, _, _, _ = _project(capsys, server, tmp_path, english)
    assert code == 0 and server.served == 6   # only the sentences not done before were sent
    assert _summary(dest)["kept"] == 6


# --------------------------------------------------------------------------- into finetune-data


def _annotating(replies: dict[str, str], english_entities: dict[str, list[dict[str, str]]]) -> Callable[..., str]:
    """Answers the project prompts from `replies` and the English annotate prompts of
    finetune-data's teacher pass from the English entities."""
    project = _table(replies)

    def respond(body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        if ENGLISH_LINE.search(user):
            return project(body)
        m = re.search(r"^Sentence: (.*)$", user, re.M)
        assert m and "English sentence" in user, user
        return json.dumps({"entities": english_entities[m.group(1)]})
    return respond


def test_projected_data_feeds_finetune_data_with_the_original_english(capsys, server, tmp_path) -> None:
    english = _conll(tmp_path / "en.txt", [
        _sent("Shehu/B-PER Gusau/I-PER visited Kano/B-LOC on Monday ."),
        _sent("The/O United/B-ORG Nations/I-ORG met in Abuja/B-LOC ."),
    ])
    server.responder = _annotating({
        "[Shehu Gusau] visited [Kano] on Monday.": "[Shehu Gusau] ya ziyarci [Kano] ranar Litinin.",
        "The [United Nations] met in [Abuja].": "[Majalisar Dinkin Duniya] ta yi taro a [Abuja].",
    }, {
        "Shehu Gusau visited Kano on Monday.": [{"text": "Shehu Gusau", "type": "PER"},
                                                {"text": "Kano", "type": "LOC"}],
        "The United Nations met in Abuja.": [{"text": "United Nations", "type": "ORG"},
                                             {"text": "Abuja", "type": "LOC"}],
    })
    assert _project(capsys, server, tmp_path, english)[0] == 0
    dest = tmp_path / "proj"
    requests_before = len(server.requests)
    code, _, err = run_cli(
        capsys, "finetune-data", "--data", str(dest / "projected.conll"), "--lang", "hau", "--method", "transfusion",
        "--translator", f"file:{dest / 'translations.jsonl'}", "--combine", "none", "--labels", "PER,ORG,LOC",
        "--model", "gpt-4o-mini", "--base-url", server.base_url, "--out", str(tmp_path / "ft"),
        "--validation-share", "0")
    assert code == 0, err
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text(encoding="utf-8"))
    assert not summary["skipped"] and set(summary["by_step"]) == {"annotate", "fuse"}
    # no translation call: the English comes from translations.jsonl
    assert set(summary["teacher_usage"]["by_step"]) == {"annotate"}
    sent = server.requests[requests_before:]
    assert len(sent) == 2 and not any(ENGLISH_LINE.search(r["messages"][-1]["content"]) for r in sent)
    fuses = [json.loads(line)["messages"] for line in (tmp_path / "ft" / "train.jsonl").read_text().splitlines()]
    fuses = [m for m in fuses if "Hausa sentence:" in m[-2]["content"]]
    assert len(fuses) == 2
    expected = {
        "Shehu Gusau ya ziyarci Kano ranar Litinin .": ("Shehu Gusau visited Kano on Monday.",
                                                        [("Kano", "LOC"), ("Shehu Gusau", "PER")]),
        "Majalisar Dinkin Duniya ta yi taro a Abuja .": ("The United Nations met in Abuja.",
                                                         [("Abuja", "LOC"), ("Majalisar Dinkin Duniya", "ORG")])}
    for messages in fuses:
        user = messages[-2]["content"]
        source = next(s for s in expected if s in user)
        translation, gold = expected[source]
        assert translation in user
        got = parse_entities(messages[-1]["content"], ["PER", "ORG", "LOC"]).mentions
        assert sorted((m.text, m.label) for m in got) == gold


# --------------------------------------------------------------------------- the shared data


def test_uner_english_ewt_round_trips_through_a_marker_keeping_translator(capsys, server, tmp_path) -> None:
    """On the real English data: a translator that keeps every marker (and changes every word)
    gives back every sentence but those with brackets of their own, with the English entity types
    in order and each entity's words."""
    shared = shared_data_dir()
    base = (shared or Path("../shared/data")) / "uner-en-ewt"
    require(shared is not None and (base / "dev.txt").is_file(),
            f"{base}/dev.txt (UNER English-EWT; set $TF_PROMPT_TEST_DATA) is not available")

    def translate(body: dict[str, Any]) -> str:
        m = ENGLISH_LINE.search(body["messages"][-1]["content"])
        assert m
        return re.sub(r"\w+", lambda w: w.group() + "u", m.group(1))

    server.responder = translate
    code, _, _, dest = _project(capsys, server, tmp_path, base / "dev.txt", "--limit", "400",
                                "--concurrency", "4")
    assert code == 0 and 0 < server.max_in_flight <= 4
    english = read_conll(base / "dev.txt", limit=400)
    with_brackets = [s for s in english if any(c in t for t in s.tokens for c in "[]")]
    summary = _summary(dest)
    assert summary["dropped_by_reason"] == ({mk.SOURCE_HAS_MARKERS: len(with_brackets)} if with_brackets else {})
    kept = [s for s in english if s not in with_brackets]
    projected = read_conll(dest / "projected.conll")
    assert len(projected) == len(kept) == summary["kept"]
    widened = 0
    for src, tgt in zip(kept, projected, strict=True):
        src_entities = mk.entities_of(src)
        tgt_entities = mk.entities_of(tgt)
        assert [e.label for e in tgt_entities] == [e.label for e in src_entities]
        for a, b in zip(src_entities, tgt_entities, strict=True):
            words = "".join(re.sub(r"\w+", lambda w: w.group() + "u", t) for t in src.tokens[a.start:a.end])
            got = "".join(tgt.tokens[b.start:b.end])
            if got != words:   # a clitic glued to the name ("[Picasso]'s" is one word): the whole word
                widened += 1
                assert got.startswith(words) or got.endswith(words), (got, words)
    assert widened == summary["markers_inside_a_word_widened"]


def test_labels_choose_the_marked_types_and_an_unknown_one_is_one_line(capsys, server, tmp_path) -> None:
    english = _conll(tmp_path / "en.txt", [_sent("Audu/B-PER went to Kano/B-LOC .")])
    server.responder = _table({"Audu went to [Kano].": "Audu ya tafi [Kano]."})
    code, _, _, dest = _project(capsys, server, tmp_path, english, "--labels", "LOC")
    assert code == 0 and _pairs(dest) == [_sent("Audu ya tafi Kano/B-LOC .")]
    code, _, err, _ = _project(capsys, server, tmp_path, english, "--labels", "LOC,loc", out="other")
    assert code == 2 and err.count("\n") == 1 and "loc is no entity type" in err and "LOC, PER" in err


def test_a_fatal_api_error_is_one_line_and_the_outputs_are_written(capsys, server, tmp_path) -> None:
    from tf_prompt.testing import Fault

    english = _conll(tmp_path / "en.txt", [_sent("Audu/B-PER came ."), _sent("Bello/B-PER came .")])
    server.responder = _table({"[Audu] came.": "[Audu] ya zo.", "[Bello] came.": "[Bello] ya zo."})
    server.fault = lambda body, attempt: Fault(401, {"error": {"message": "bad key", "code": "invalid_api_key"}})
    code, _, err, dest = _project(capsys, server, tmp_path, english, "--concurrency", "1")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    summary = _summary(dest)
    assert summary["kept"] == 0 and sum(summary["not_done"].values()) == 2
    server.fault = None
    assert _project(capsys, server, tmp_path, english)[0] == 0 and _summary(dest)["kept"] == 2


def test_only_with_entities_sends_no_sentence_without_one(capsys, server, tmp_path) -> None:
    english = _conll(tmp_path / "en.txt", [_sent("It rained ."), _sent("Audu/B-PER came ."), _sent("No one came .")])
    server.responder = _table({"[Audu] came.": "[Audu] ya zo."})   # any other prompt is a KeyError
    code, _, err, dest = _project(capsys, server, tmp_path, english, "--only-with-entities")
    assert code == 0 and not err and server.served == 1
    summary = _summary(dest)
    assert summary["kept"] == 1 and summary["not_done"] == {"no entities (--only-with-entities)": 2}
    assert _pairs(dest) == [_sent("Audu/B-PER ya zo .")]


def test_estimate_sends_and_writes_nothing_and_counts_cached_calls_as_free(capsys, server, tmp_path) -> None:
    english = _conll(tmp_path / "en.txt", [_sent("Audu/B-PER came ."), _sent("Bello/B-PER came ."),
                                           _sent("He said [ sic ] nothing .")])
    server.responder = _table({"[Audu] came.": "[Audu] ya zo.", "[Bello] came.": "[Bello] ya zo."})
    code, stdout, _, dest = _project(capsys, server, tmp_path, english, "--estimate")
    assert code == 0 and server.served == 0 and not dest.exists()
    assert "2 calls" in stdout and "already cached (free): 0" in stdout
    assert f"1 not sent: {mk.SOURCE_HAS_MARKERS}" in stdout and "$0.0" in stdout
    prompt_tokens = re.search(r"(\d+) prompt \+ (\d+) completion", stdout)
    assert prompt_tokens and int(prompt_tokens.group(1)) > 100 and int(prompt_tokens.group(2)) > 0
    assert _project(capsys, server, tmp_path, english)[0] == 0 and server.served == 2
    code, stdout, _, _ = _project(capsys, server, tmp_path, english, "--estimate")
    assert code == 0 and "0 calls" in stdout and "already cached (free): 2" in stdout and server.served == 2


def test_the_default_out_folder_is_named_after_the_english_file_and_language(capsys, server, tmp_path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "uner"
    folder.mkdir()
    english = _conll(folder / "dev.txt", [_sent("Audu/B-PER came .")])
    server.responder = _table({"[Audu] came.": "[Audu] ya zo."})
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run_cli(capsys, "project-data", "--english", str(english), "--lang", "hau", "--model",
                              "gpt-4o-mini", "--base-url", server.base_url)
    assert code == 0 and "outputs: projected/uner-dev-hau/projected.conll" in stdout
    assert _pairs(tmp_path / "projected" / "uner-dev-hau") == [_sent("Audu/B-PER ya zo .")]


def test_an_out_that_is_a_file_or_cannot_be_written_is_one_line(capsys, server, tmp_path, monkeypatch) -> None:
    """--out naming a file is refused before any call; a full disk at the end is one line."""
    import errno

    from tf_prompt.finetune import project as project_module

    english = _conll(tmp_path / "en.txt", [_sent("Kano/B-LOC is big .")])
    server.responder = _table({"[Kano] is big.": "[Kano] babba ce."})
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    code, _, err, dest = _project(capsys, server, tmp_path, english, out="afile")
    assert code == 2 and err.count("\n") == 1 and f"--out {dest}" in err and "not a folder" in err
    assert server.served == 0

    def no_space(*args: Any, **kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(project_module, "write_text", no_space)
    code, _, err, dest = _project(capsys, server, tmp_path, english, out="o")
    assert code == 2 and err.count("\n") == 1 and f"--out {dest}" in err and "No space left" in err


def test_a_second_projection_into_the_same_out_is_refused_while_one_runs(capsys, server, tmp_path) -> None:
    """Two runs writing one folder's outputs would each replace the other's files (and the later
    summary.json would describe the other's projected.conll)."""
    from tf_prompt.cli import main

    english = _conll(tmp_path / "en.txt", [_sent("Kano/B-LOC is big ."), _sent("Dodoma/B-LOC is far .")])
    dest = tmp_path / "proj"
    replies = {"[Kano] is big.": "[Kano] babba ce.", "[Dodoma] is far.": "[Dodoma] tana nesa."}
    table, started, second = _table(replies), [], []

    def respond(body: dict[str, Any]) -> str:
        if not started:   # while the first run waits for this reply
            started.append(True)
            second.append(main(["project-data", "--english", str(english), "--lang", "hau", "--model", "gpt-4o-mini",
                                "--base-url", server.base_url, "--out", str(dest), "--no-cache"]))
        return table(body)

    server.responder = respond
    code, _, err, _ = _project(capsys, server, tmp_path, english, "--concurrency", "1", "--no-cache")
    assert code == 0, err
    assert second == [2] and "another tf-prompt" in err and server.served == 2
