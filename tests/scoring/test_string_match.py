"""String-match scoring (type + case-insensitive string, each gold mention matched once) agrees
with hand-computed figures, and differs from the conll scorer exactly where it should."""

from __future__ import annotations

import pytest

from tf_prompt.scoring.evaluate import score
from tf_prompt.scoring.metrics import SCORERS
from tf_prompt.scoring.string_match import mentions, score_strings
from tf_prompt.settings import RunSettings


def _one(gold: list[str], pred: list[str], tokens: list[str]) -> dict:
    return score_strings([gold], [tokens], [pred], [tokens])


def test_a_mention_is_its_tokens_joined_by_one_space_and_casefolded() -> None:
    got = mentions(["B-LOC", "I-LOC", "O", "B-PER"], ["New", "YORK", "ya", "Straße"])
    assert got == {("LOC", "new york"): 1, ("PER", "strasse"): 1}


def test_same_string_at_another_position_counts_right_but_wrong_for_conll() -> None:
    # gold tags the second "Kano"; the prediction tags the first (an aligner's first match)
    tokens = ["Kano", "ya", "je", "Kano"]
    gold, pred = ["O", "O", "O", "B-LOC"], ["B-LOC", "O", "O", "O"]
    assert _one(gold, pred, tokens)["f1"] == 1.0
    assert score([gold], [pred])["f1"] == 0.0


def test_case_differences_match() -> None:
    s = score_strings([["B-PER", "I-PER"]], [["Musa", "Audu"]], [["B-PER", "I-PER"]], [["MUSA", "audu"]])
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)


def test_a_type_mismatch_is_a_false_positive_and_a_miss() -> None:
    tokens = ["Kano", "ya", "Audu"]
    s = _one(["B-LOC", "O", "B-PER"], ["B-ORG", "O", "B-PER"], tokens)
    # gold {LOC kano, PER audu}, predicted {ORG kano, PER audu}: 1 of 2 each way
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert s["per_type"]["PER"]["f1"] == 1.0 and s["support"] == 2


def test_each_gold_mention_is_matched_once() -> None:
    tokens = ["Kano", "da", "Kano", "da", "Kano"]
    # one gold "Kano", three predicted: 1 tp, 2 false positives
    s = _one(["B-LOC", "O", "O", "O", "O"], ["B-LOC", "O", "B-LOC", "O", "B-LOC"], tokens)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == 1.0
    assert s["f1"] == pytest.approx(0.5)
    # two gold, one predicted: 1 tp, 1 miss
    s = _one(["B-LOC", "O", "B-LOC", "O", "O"], ["O", "O", "O", "O", "B-LOC"], tokens)
    assert s["precision"] == 1.0 and s["recall"] == 0.5 and s["support"] == 2


def test_matching_stays_within_a_sentence() -> None:
    # "Kano" is gold in sentence 0 and predicted in sentence 1: no match
    s = score_strings([["B-LOC"], ["O"]], [["Kano"], ["Kano"]], [["O"], ["B-LOC"]], [["Kano"], ["Kano"]])
    assert s["f1"] == 0.0 and s["support"] == 1


def test_a_boundary_difference_with_another_string_is_wrong() -> None:
    tokens = ["Musa", "Audu", "ya"]
    s = _one(["B-PER", "I-PER", "O"], ["B-PER", "O", "O"], tokens)   # "musa" is not "musa audu"
    assert s["f1"] == 0.0


def test_hand_computed_micro_over_sentences() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "B-LOC"]]
    tokens = [["Musa", "Audu", "a", "Kano"], ["NNPP", "a", "Abuja"]]
    s = score_strings(gold, tokens, pred, tokens)
    # gold 4, predicted 4, right: Musa Audu, NNPP, Abuja
    assert s["precision"] == 0.75 and s["recall"] == 0.75 and s["f1"] == 0.75
    assert s["per_type"]["LOC"]["recall"] == 0.5 and s["per_type"]["ORG"]["precision"] == 0.5


def test_gold_and_predictions_may_be_tokenised_differently() -> None:
    s = score_strings([["B-LOC", "I-LOC"]], [["Port", "Harcourt"]], [["O", "B-LOC", "I-LOC"]],
                      [["a", "port", "harcourt"]])
    assert s["f1"] == 1.0


def test_no_entities_anywhere_scores_zero() -> None:
    assert _one(["O"], ["O"], ["a"]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_type": {}, "support": 0}


def test_mismatched_lengths_name_the_sentence() -> None:
    with pytest.raises(ValueError, match=r"sentence 1 \(predicted\): 1 tags but 2 tokens"):
        score_strings([["O"], ["O"]], [["a"], ["b"]], [["O"], ["O"]], [["a"], ["b", "c"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        score_strings([["O"], ["O"]], [["a"], ["b"]], [["O"]], [["a"]])


def test_the_settings_offer_exactly_the_scorers_metrics_knows() -> None:
    annotation = RunSettings.model_fields["scorer"].annotation
    assert annotation is not None and annotation.__args__ == SCORERS
    assert RunSettings().scorer == "conll"
    with pytest.raises(ValueError, match="scorer"):
        RunSettings(scorer="gollie")
