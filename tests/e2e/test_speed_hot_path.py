"""Work a cached rerun no longer repeats (issue 17), and proof that the results did not move.

Each fix here removed an item from the cached rerun's profile: schema word sets rebuilt per
checked answer, template variables rebuilt per prompt, seqeval decoding every sentence ten
times to score a run, every mention normalised only to sort by length. Timing tests would
be flaky on a shared machine, so these count the repeated work instead, and compare results
with the slow path.
"""

from __future__ import annotations

import random
import sys

import pytest

from conftest import shared_data_dir
from tf_prompt.backends.function import FunctionBackend
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.data.schema import MASAKHANER, Schema, get_schema
from tf_prompt.llm.client import ModelClient
from tf_prompt.methods.pipeline import Context
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.scoring.evaluate import restrict, score
from tf_prompt.spans import align
from tf_prompt.spans.align import locate, normalize
from tf_prompt.types import Mention

# --- schema word sets ----------------------------------------------------------------------

def test_schema_word_sets_are_built_once() -> None:
    schema = get_schema("masakhaner", ["PER", "ORG", "LOC"])
    assert schema.prefix_sets is schema.prefix_sets
    assert schema.title_set is schema.title_set
    assert "jihar" in schema.prefix_sets["LOC"] and "alhaji" in schema.title_set


def test_schema_word_sets_follow_edits_and_copies() -> None:
    schema = Schema(labels=[{"name": "PER"}, {"name": "LOC"}], titles=["Dr."], prefixes={"LOC": ["Jihar"]})
    assert schema.title_set == {"dr"} and dict(schema.prefix_sets) == {"LOC": {"jihar"}}
    schema.titles = ["Mr", "Rais"]
    assert schema.title_set == {"mr", "rais"}
    copy = schema.model_copy(update={"prefixes": {"LOC": ["u"]}})
    assert dict(copy.prefix_sets) == {"LOC": {"u"}} and dict(schema.prefix_sets) == {"LOC": {"jihar"}}
    with pytest.raises(TypeError):
        copy.prefix_sets["PER"] = frozenset()   # shared between calls: read-only


# --- template variables --------------------------------------------------------------------

def test_context_template_variables_are_built_once_per_schema_and_examples() -> None:
    examples = read_conll(sample_path())[:2]
    ctx = Context(client=ModelClient(FunctionBackend(model="m", fn=lambda m: "")), templates=TemplateSet(),
                  schema=MASAKHANER, examples=examples)
    labels, shots = ctx.label_vars, ctx.example_vars
    assert ctx.label_vars is labels and ctx.example_vars is shots
    assert [v["name"] for v in labels] == MASAKHANER.names and labels[0]["class_name"] == "Person"
    assert [v["text"] for v in shots] == [s.text for s in examples]
    ctx.schema = MASAKHANER.select(["PER"])   # another schema: rebuilt
    assert [v["name"] for v in ctx.label_vars] == ["PER"]
    assert ctx.example_vars is not shots
    ctx.examples = examples[:1]
    assert len(ctx.example_vars) == 1


# --- scoring -------------------------------------------------------------------------------

def _seqeval_report(gold, predicted) -> dict:
    """The previous implementation: seqeval's classification_report."""
    import warnings

    from seqeval.metrics import classification_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report([list(s) for s in gold], [list(s) for s in predicted],
                                       output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    per_type = {name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                       "f1": float(v["f1-score"]), "support": int(v["support"])}
                for name, v in report.items() if not name.endswith(" avg")}
    return {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]), "per_type": per_type, "support": int(micro["support"])}


def _noisy(tags: list[str], rng: random.Random) -> list[str]:
    """Predictions with the mistakes taggers make: dropped, shifted, retyped, invalid I- starts."""
    out = list(tags)
    for i in range(len(out)):
        r = rng.random()
        if r < 0.08:
            out[i] = "O"
        elif r < 0.14:
            out[i] = rng.choice(["B-", "I-"]) + rng.choice(["PER", "ORG", "LOC", "DATE"])
        elif r < 0.18 and out[i] != "O":
            out[i] = out[i][:2] + rng.choice(["PER", "ORG", "LOC"])
    return out


def _corpora() -> list[list[list[str]]]:
    sets = [[s.tags for s in read_conll(sample_path())]]
    data = shared_data_dir()
    if data is not None:
        for lang in ("hau", "yor", "swa"):
            path = data / "masakhaner2" / lang / "dev.txt"
            if path.is_file():
                sets.append([s.tags for s in read_conll(path)])
    return sets


def test_score_is_bit_identical_to_seqeval_classification_report() -> None:
    rng = random.Random(17)
    for gold in _corpora():
        for labels in (["PER", "ORG", "LOC", "DATE"], ["PER", "ORG", "LOC"]):
            g = [restrict(t, labels) for t in gold]
            p = [_noisy(t, rng) for t in g]
            assert score(g, p) == _seqeval_report(g, p)
    # random tag soup, including types only one side has and IOBES / malformed tags
    for _ in range(200):
        g = [[rng.choice(["O", "O", "B-PER", "I-PER", "B-LOC", "I-ORG", "E-PER", "S-LOC", "I", "."])
              for _ in range(rng.randint(1, 12))]
             for _ in range(rng.randint(1, 6))]
        p = [_noisy(t, rng) for t in g]
        if any(t != "O" for s in g + p for t in s):
            assert score(g, p) == _seqeval_report(g, p)


def test_score_decodes_each_side_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import tf_prompt.scoring.evaluate as ev

    calls = []
    real = ev.entities
    monkeypatch.setattr(ev, "entities", lambda seqs: calls.append(1) or real(seqs))
    gold = [s.tags for s in read_conll(sample_path())]
    score(gold, gold)
    assert len(calls) == 2


def test_entities_match_seqeval_get_entities_on_any_tags() -> None:
    from seqeval.metrics.sequence_labeling import get_entities

    from tf_prompt.scoring.evaluate import entities

    rng = random.Random(5)
    pool = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "E-PER", "S-LOC", "E-LOC", "S-PER",
            "B", "I", "E", "S", ".", "B-", "I-PER-X", "B-PER-X"]
    for _ in range(400):
        seqs = [[rng.choice(pool) for _ in range(rng.randint(1, 10))] for _ in range(rng.randint(1, 4))]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert entities(seqs) == get_entities([list(s) for s in seqs]), seqs


def test_scoring_imports_neither_seqeval_nor_scikit_learn() -> None:
    """seqeval's metrics import scikit-learn and SciPy: about 0.8 s of every labelled run."""
    import subprocess

    code = ("import sys; from tf_prompt.scoring.evaluate import score; "
            "s = score([['B-PER', 'I-PER', 'O']], [['B-PER', 'O', 'O']]); "
            "print(s['support'], sorted(m for m in ('seqeval', 'sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "[]"]


# --- alignment -----------------------------------------------------------------------------

def test_normalized_length_matches_normalize() -> None:
    for s in ["Shehu Gusau", "Ọ̀yọ́", "Straße", "İstanbul", "jihar  Kano\u200d", "", "’Yan-sanda", "ﬁnal"]:
        assert align._normalized_length(s) == len(normalize(s)[0])


def test_locate_does_not_normalise_mentions_just_to_sort_them(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = align.normalize
    monkeypatch.setattr(align, "normalize", lambda s: calls.append(s) or real(s))
    text = "Shehu Gusau ya isa Kano Pillars da Kano."
    result = locate(text, [Mention("Kano", "LOC"), Mention("Kano Pillars", "ORG"), Mention("Shehu Gusau", "PER")])
    assert [(s.text, s.label) for s in result.spans] == [("Shehu Gusau", "PER"), ("Kano Pillars", "ORG"),
                                                           ("Kano", "LOC")]
    assert calls == []   # all found exactly: nothing needed normalising
