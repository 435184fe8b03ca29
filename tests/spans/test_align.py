"""Tests for tf_prompt.spans.align: entity strings -> spans -> BIO tags."""

from __future__ import annotations

import random
import time
import unicodedata
from dataclasses import dataclass

import pytest

from tf_prompt.spans.align import Alignment, Span, bio_to_spans, locate, normalize, spans_to_bio


@dataclass(frozen=True)
class M:
    """Stand-in for tf_prompt.types.Mention (align only needs .text/.label)."""

    text: str
    label: str


def sent(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Join tokens with single spaces and return the text plus token offsets."""
    offsets, pos = [], 0
    for t in tokens:
        offsets.append((pos, pos + len(t)))
        pos += len(t) + 1
    return " ".join(tokens), offsets


def texts(al: Alignment) -> list[tuple[str, str, str]]:
    return [(s.text, s.label, s.match) for s in al.spans]


def check_invariants(text: str, al: Alignment) -> None:
    prev_end = -1
    for s in al.spans:
        assert text[s.start : s.end] == s.text
        assert s.text == s.text.strip() and s.text
        assert s.start >= prev_end, "spans overlap or are unsorted"
        prev_end = s.end


# --- normalize ---------------------------------------------------------------


def test_normalize_index_map_points_back_into_source():
    s = "Ọ̀yọ́  Straße’s"
    n, idx = normalize(s)
    assert n == "oyostrasse's"
    assert len(idx) == len(n)
    assert [s[i] for i in idx] == ["Ọ̀yọ́"[0], "y", "ọ", "S", "t", "r", "a", "ß", "ß", "e", "’", "s"]


def test_normalize_nfc_and_nfd_agree():
    w = "Ọ̀yọ́ Ìbàdàn"
    assert normalize(unicodedata.normalize("NFC", w))[0] == normalize(unicodedata.normalize("NFD", w))[0]
    assert normalize(w)[0] == "oyoibadan"


# --- matching levels -----------------------------------------------------------


def test_exact():
    text, _ = sent(["Shehu", "Gusau", "ya", "tafi", "Kano", "jiya", "."])
    al = locate(text, [M("Shehu Gusau", "PER"), M("Kano", "LOC")])
    assert texts(al) == [("Shehu Gusau", "PER", "exact"), ("Kano", "LOC", "exact")]
    assert al.hallucinated == [] and al.unaligned == []


def test_case_insensitive_returns_original_casing():
    text, _ = sent(["Shehu", "Gusau", "ya", "tafi", "Kano"])
    al = locate(text, [M("shehu gusau", "PER"), M("KANO", "LOC")])
    assert texts(al) == [("Shehu Gusau", "PER", "case"), ("Kano", "LOC", "case")]


def test_case_level_handles_length_changing_casefold():
    text = "Er wohnt in der Großstraße heute"
    al = locate(text, [M("GROSSSTRASSE", "LOC")])
    assert texts(al) == [("Großstraße", "LOC", "case")]
    check_invariants(text, al)


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_model_drops_yoruba_diacritics(form):
    text, _ = sent(unicodedata.normalize(form, "Ó lọ sí Ọ̀yọ́ lánàá").split())
    al = locate(text, [M("Oyo", "LOC")])
    assert len(al.spans) == 1
    sp = al.spans[0]
    assert sp.match == "normalized"
    # The whole grapheme cluster, including trailing combining marks, is covered.
    assert sp.text == unicodedata.normalize(form, "Ọ̀yọ́")
    check_invariants(text, al)


@pytest.mark.parametrize("text_form,mention_form", [("NFC", "NFD"), ("NFD", "NFC")])
def test_diacritics_in_mention_and_normalization_forms(text_form, mention_form):
    text = unicodedata.normalize(text_form, "Ó lọ sí Ọ̀yọ́ lánàá")
    al = locate(text, [M(unicodedata.normalize(mention_form, "Ọ̀yọ́"), "LOC")])
    assert [s.text for s in al.spans] == [unicodedata.normalize(text_form, "Ọ̀yọ́")]
    assert al.spans[0].match == "normalized"


def test_plain_text_accented_mention():
    text = "Mun je Oyo jiya"
    al = locate(text, [M("Ọ̀yọ́", "LOC")])
    assert texts(al) == [("Oyo", "LOC", "normalized")]


def test_exact_does_not_split_off_combining_marks():
    # NFD "Oyó" contains "Oyo" verbatim, but that would cut the accent off.
    text = unicodedata.normalize("NFD", "ni Oyó")
    al = locate(text, [M("Oyo", "LOC")])
    assert al.spans[0].text == unicodedata.normalize("NFD", "Oyó")
    assert al.spans[0].match == "normalized"


@pytest.mark.parametrize("mention", ["Shehu  Gusau", " Shehu Gusau ", "ShehuGusau", "Shehu\tGusau"])
def test_whitespace_insensitive(mention):
    text = "Jiya  Shehu Gusau ya zo"
    al = locate(text, [M(mention, "PER")])
    assert [s.text for s in al.spans] == ["Shehu Gusau"]
    check_invariants(text, al)


def test_text_with_different_token_spacing():
    text = "Jiya Shehu   Gusau ya zo"
    al = locate(text, [M("Shehu Gusau", "PER")])
    assert [s.text for s in al.spans] == ["Shehu   Gusau"]
    assert al.spans[0].match == "normalized"


@pytest.mark.parametrize(
    "text_word,mention",
    [("Ng’ombe", "Ng'ombe"), ("Ng'ombe", "Ng’ombe"), ("Ngʼombe", "ng'ombe"), ("Dar–es–Salaam", "Dar-es-Salaam")],
)
def test_apostrophe_and_hyphen_variants(text_word, mention):
    text = f"Tulinunua {text_word} sokoni"
    al = locate(text, [M(mention, "MISC")])
    assert [s.text for s in al.spans] == [text_word]


# --- placement -------------------------------------------------------------------


def test_repeated_mentions_take_successive_occurrences():
    text, offsets = sent(["Kano", "ta", "fi", "Kano", "kyau"])
    al = locate(text, [M("Kano", "LOC"), M("Kano", "LOC")])
    assert [(s.start, s.end) for s in al.spans] == [offsets[0], offsets[3]]
    assert al.unaligned == []


def test_more_repeats_than_occurrences_is_unaligned():
    text, _ = sent(["Kano", "ta", "fi", "Kano", "kyau"])
    third = M("Kano", "LOC")
    al = locate(text, [M("Kano", "LOC"), M("Kano", "LOC"), third])
    assert len(al.spans) == 2
    assert al.unaligned == [third]
    assert al.hallucinated == []


def test_repeat_falls_through_to_weaker_level():
    text = "Kano da KANO"
    al = locate(text, [M("Kano", "LOC"), M("Kano", "LOC")])
    assert texts(al) == [("Kano", "LOC", "exact"), ("KANO", "LOC", "case")]


def test_longest_first_claiming():
    tokens = ["Kano", "Pillars", "ta", "doke", "Enyimba", "a", "Kano"]
    text, offsets = sent(tokens)
    # Reply order puts the short mention first; it must not steal the ORG's word.
    al = locate(text, [M("Kano", "LOC"), M("Kano Pillars", "ORG"), M("Enyimba", "ORG")])
    assert texts(al) == [("Kano Pillars", "ORG", "exact"), ("Enyimba", "ORG", "exact"), ("Kano", "LOC", "exact")]
    assert al.spans[-1].start == offsets[-1][0]
    assert spans_to_bio(offsets, al.spans) == ["B-ORG", "I-ORG", "O", "O", "B-ORG", "O", "B-LOC"]


def test_mention_overlapping_longer_entity_only_is_unaligned():
    text = "Kano Pillars ta yi nasara"
    kano = M("Kano", "LOC")
    al = locate(text, [kano, M("Kano Pillars", "ORG")])
    assert texts(al) == [("Kano Pillars", "ORG", "exact")]
    assert al.unaligned == [kano]


def test_token_boundary_preferred():
    text = "Alibaba ya ga Ali"
    al = locate(text, [M("Ali", "PER")])
    assert [(s.start, s.text) for s in al.spans] == [(14, "Ali")]


def test_boundary_beats_level():
    # An exact but inside-word "Ali" loses to a case-insensitive standalone "ALI".
    text = "Alibaba ya ga ALI"
    al = locate(text, [M("Ali", "PER")])
    assert texts(al) == [("ALI", "PER", "case")]


def test_inside_word_fallback():
    text = "Ya tafi naKano jiya"
    al = locate(text, [M("Kano", "LOC")])
    assert [(s.start, s.end, s.text) for s in al.spans] == [(10, 14, "Kano")]


def test_punctuation_is_a_boundary():
    text = "Sun isa (Kano), sannan Abuja."
    al = locate(text, [M("Kano", "LOC"), M("Abuja", "LOC")])
    assert [s.text for s in al.spans] == ["Kano", "Abuja"]


def test_hallucination_and_blank_mentions():
    text = "Shehu Gusau ya tafi Kano"
    lagos = M("Lagos", "LOC")
    al = locate(text, [M("", "PER"), M("   ", "LOC"), lagos, M("Kano", "LOC")])
    assert al.hallucinated == [lagos]
    assert al.unaligned == []
    assert [s.text for s in al.spans] == ["Kano"]


def test_mark_only_mention_is_hallucinated_not_everywhere():
    al = locate("Ó lọ sí Ọ̀yọ́", [M("\u0301", "LOC")])
    assert al.spans == []


def test_hallucinated_and_unaligned_keep_reply_order():
    a, b, c = M("Zaria", "LOC"), M("Kano", "LOC"), M("Sokoto Town", "LOC")
    al = locate("Kano", [a, M("Kano", "LOC"), b, c])
    assert al.hallucinated == [a, c]
    assert al.unaligned == [b]


def test_empty_text():
    al = locate("", [M("Kano", "LOC")])
    assert al.spans == [] and len(al.hallucinated) == 1


# --- fuzzy projection -------------------------------------------------------------


def test_fuzzy_projects_english_names_onto_hausa():
    text = "Shugaban Najeriya ya ziyarci Kenya da Mombasani."
    ms = [M("Nigeria", "LOC"), M("Kenya", "LOC"), M("Mombasa", "LOC")]
    # SequenceMatcher("nigeria", "najeriya").ratio() == 2*5/15 ~= 0.667.
    al = locate(text, ms, fuzzy=0.65)
    assert texts(al) == [
        ("Najeriya", "LOC", "fuzzy"),
        ("Kenya", "LOC", "exact"),
        # String matches (even inside a word) beat fuzzy ones.
        ("Mombasa", "LOC", "exact"),
    ]
    check_invariants(text, al)
    tokens = text.split()
    _, offsets = sent(tokens)
    assert spans_to_bio(offsets, al.spans) == ["O", "B-LOC", "O", "O", "B-LOC", "O", "B-LOC"]
    al = locate("Ya je Mombasani.", [M("Mombassa", "LOC")], fuzzy=0.8)
    assert texts(al) == [("Mombasani", "LOC", "fuzzy")]  # trailing "." trimmed from the run


def test_fuzzy_threshold_is_respected():
    text = "Shugaban Najeriya ya ziyarci Kenya"
    al = locate(text, [M("Nigeria", "LOC")], fuzzy=0.7)
    assert al.spans == [] and len(al.hallucinated) == 1


def test_fuzzy_off_by_default_and_unrelated_not_found():
    text = "Shugaban Najeriya ya ziyarci Kenya"
    assert locate(text, [M("Nigeria", "LOC")]).hallucinated == [M("Nigeria", "LOC")]
    lagos = M("Lagos", "LOC")
    al = locate("Ruwan sama ya sauka a arewa maso yamma", [lagos], fuzzy=0.7)
    assert al.hallucinated == [lagos] and al.spans == []


def test_fuzzy_multiword_and_tie_prefers_earlier_then_shorter():
    text = "Jami'ar Ahmadu Bello da Jami'ar Ahmadu Bello"
    al = locate(text, [M("Ahmadu Bello University", "ORG")], fuzzy=0.6)
    assert texts(al) == [("Ahmadu Bello", "ORG", "fuzzy")]  # the earlier of two equal runs
    al = locate("Kenya Kenya", [M("Kenyaa", "LOC")], fuzzy=0.8)
    assert [(s.start, s.end) for s in al.spans] == [(0, 5)]


def test_fuzzy_skips_claimed_runs():
    text = "Kenya na Kenia"
    # "Kenyah" is longer, so it is processed first, but string matches are all
    # placed before any fuzzy guess: it must not steal the exact "Kenya".
    al = locate(text, [M("Kenya", "LOC"), M("Kenyah", "ORG")], fuzzy=0.7)
    assert texts(al) == [("Kenya", "LOC", "exact"), ("Kenia", "ORG", "fuzzy")]


def test_fuzzy_not_used_for_surplus_duplicates():
    extra = M("Kenya", "LOC")
    al = locate("Kenya na Kenia", [M("Kenya", "LOC"), extra], fuzzy=0.7)
    assert [s.text for s in al.spans] == ["Kenya"]
    assert al.unaligned == [extra]


# --- BIO conversion ----------------------------------------------------------------


def test_spans_to_bio_multi_token_and_partial_tokens():
    tokens = ["Shugaban", "Najeriya", "Muhammadu", "Buhari", "ya", "je", "Abuja-ta"]
    text, offsets = sent(tokens)
    al = locate(text, [M("Muhammadu Buhari", "PER"), M("Abuja", "LOC")])
    # "Abuja" covers part of the token "Abuja-ta": the whole token is tagged.
    assert spans_to_bio(offsets, al.spans) == ["O", "O", "B-PER", "I-PER", "O", "O", "B-LOC"]


def test_spans_to_bio_shared_token_goes_to_first_span():
    text, offsets = sent(["naKano", "Pillars", "FC"])
    s1 = Span(2, 6, "LOC", "Kano", "exact")
    s2 = Span(0, len(text), "ORG", text, "exact")
    assert spans_to_bio(offsets, [s1, s2]) == ["B-LOC", "B-ORG", "I-ORG"]
    assert spans_to_bio(offsets, [s2, s1]) == ["B-ORG", "I-ORG", "I-ORG"]


def test_spans_to_bio_restarts_after_gap():
    offsets = [(0, 1), (2, 3), (4, 5)]
    inner = Span(2, 3, "LOC", "b", "exact")
    outer = Span(0, 5, "ORG", "a b c", "exact")
    assert spans_to_bio(offsets, [inner, outer]) == ["B-ORG", "B-LOC", "B-ORG"]


def test_bio_to_spans_round_trip_and_leniency():
    tokens = ["Shehu", "Gusau", "ya", "tafi", "Kano", "Pillars", "a", "Kano"]
    text, offsets = sent(tokens)
    tags = ["B-PER", "I-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC"]
    spans = bio_to_spans(text, offsets, tags)
    assert [(s.text, s.label, s.match) for s in spans] == [
        ("Shehu Gusau", "PER", "exact"), ("Kano Pillars", "ORG", "exact"), ("Kano", "LOC", "exact")]
    assert spans_to_bio(offsets, spans) == tags
    # Stray I- starts a new span; a label change splits; B- after B- splits.
    lenient = bio_to_spans(text, offsets, ["I-PER", "I-PER", "O", "I-LOC", "I-ORG", "B-ORG", "B-ORG", "O"])
    assert [(s.text, s.label) for s in lenient] == [
        ("Shehu Gusau", "PER"), ("tafi", "LOC"), ("Kano", "ORG"), ("Pillars", "ORG"), ("a", "ORG")]
    with pytest.raises(ValueError, match="offsets but 1 tags"):
        bio_to_spans(text, offsets, ["O"])


# --- properties and speed ----------------------------------------------------------

_BASES = "abdefgiklmnorstuwyẹọṣɓɗƙ"
_TONES = ["", "", "\u0300", "\u0301"]


def _vocab(rng: random.Random, n: int) -> list[str]:
    """Distinct words of equal normalised length (so a boundary-anchored match
    of a normalised mention can only be the intended run of tokens)."""
    words, keys = [], set()
    while len(words) < n:
        w = "".join(c + (rng.choice(_TONES) if c in "aeiouẹọ" else "") for c in rng.choices(_BASES, k=5))
        w = unicodedata.normalize("NFC", w.capitalize() if rng.random() < 0.3 else w)
        key = normalize(w)[0]
        if key not in keys:
            keys.add(key)
            words.append(w)
    return words


def _perturb(rng: random.Random, s: str) -> str:
    choice = rng.randrange(7)
    if choice == 1:
        return s.upper()
    if choice == 2:
        return s.lower()
    if choice == 3:  # model drops tone marks
        return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))
    if choice == 4:
        return unicodedata.normalize("NFD", s)
    if choice == 5:
        return s.replace(" ", rng.choice(["", "  "]))
    if choice == 6:
        return f" {s.swapcase()} "
    return s


def _random_gold(rng: random.Random, n_tokens: int, n_ents: int) -> list[tuple[int, int, str]]:
    """Non-overlapping token ranges [i, j) with labels."""
    cuts = sorted(rng.sample(range(n_tokens + 1), 2 * n_ents))
    return [(cuts[2 * k], cuts[2 * k + 1], rng.choice(["PER", "LOC", "ORG", "DATE"])) for k in range(n_ents)]


@pytest.mark.parametrize("seed", range(5))
def test_random_round_trip_recovers_gold(seed):
    rng = random.Random(seed)
    for _ in range(200):
        n = rng.randint(1, 40)
        tokens = _vocab(rng, n)
        if rng.random() < 0.3:
            tokens = [unicodedata.normalize("NFD", t) for t in tokens]
        text, offsets = sent(tokens)
        gold = _random_gold(rng, n, rng.randint(0, min(5, n // 2)))
        tags = ["O"] * n
        for i, j, lab in gold:
            tags[i] = f"B-{lab}"
            for k in range(i + 1, j):
                tags[k] = f"I-{lab}"
        gold_spans = bio_to_spans(text, offsets, tags)
        mentions = [M(_perturb(rng, s.text), s.label) for s in gold_spans]
        rng.shuffle(mentions)

        al = locate(text, mentions)
        check_invariants(text, al)
        assert al.hallucinated == [] and al.unaligned == []
        assert [(s.start, s.end, s.label) for s in al.spans] == [
            (s.start, s.end, s.label) for s in gold_spans], (text, mentions)
        assert spans_to_bio(offsets, al.spans) == tags
        assert spans_to_bio(offsets, gold_spans) == tags


@pytest.mark.parametrize("seed", range(3))
def test_random_mentions_never_break_invariants(seed):
    """Arbitrary (possibly repeated, overlapping, bogus) mentions: output stays sane."""
    rng = random.Random(100 + seed)
    pool = ["Kano", "kano", "Ọ̀yọ́", "Oyo", "ß", "ss", "a", "’", "Kano Pillars", "naKano", "x y", "Ali"]
    for _ in range(300):
        tokens = [rng.choice([*pool, "ta", "(", ")", ",", "Straße"]) for _ in range(rng.randint(0, 15))]
        text = rng.choice([" ", "", "  "]).join(tokens)
        mentions = [M(rng.choice([*pool, "", " "]), "X") for _ in range(rng.randint(0, 6))]
        al = locate(text, mentions, fuzzy=rng.choice([None, 0.6]))
        check_invariants(text, al)
        placed = len(al.spans) + len(al.hallucinated) + len(al.unaligned)
        assert placed == sum(1 for m in mentions if m.text.strip())


def test_performance_non_fuzzy():
    rng = random.Random(7)
    vocab = _vocab(rng, 400)
    data = []
    for _ in range(2000):
        tokens = rng.sample(vocab, 30)
        text, _ = sent(tokens)
        ms = []
        for i, j, lab in _random_gold(rng, 30, 3):
            ms.append(M(_perturb(rng, " ".join(tokens[i:j])), lab))
        data.append((text, ms))
    t0 = time.process_time()
    for text, ms in data:
        locate(text, ms)
    assert time.process_time() - t0 < 2.0
