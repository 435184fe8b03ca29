"""Scoring agrees with hand-computed entity-level figures."""

from __future__ import annotations

import pytest

from tf_prompt.scoring.evaluate import restrict, score


def test_micro_and_per_type() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    s = score(gold, pred)
    # 3 gold, 3 predicted, 2 correct
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["per_type"]["PER"]["f1"] == 1.0 and s["per_type"]["LOC"]["recall"] == 0.0
    assert s["per_type"]["ORG"]["precision"] == 0.5 and s["support"] == 3


def test_boundary_errors_count_as_wrong() -> None:
    s = score([["B-PER", "I-PER"]], [["B-PER", "O"]])
    assert s["f1"] == 0.0


def test_restrict_drops_other_types() -> None:
    assert restrict(["B-DATE", "I-DATE", "B-PER", "O"], ["PER"]) == ["O", "O", "B-PER", "O"]


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="sentence 0"):
        score([["O", "O"]], [["O"]])


def test_no_entities_anywhere() -> None:
    assert score([["O"]], [["O"]])["f1"] == 0.0
