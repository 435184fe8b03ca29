"""A reply that only echoes an example answer shown in its prompt is a parse failure, not entities.

Small models sometimes answer with the prompt's format example (`{"entities": [{"text": "...",
"type": "..."}]}`) or its worked example. Read as entities, the first is a silent "no entities"
(its type "..." is unknown) and the second puts the example's names into the sentence. The
examples are taken from the prompt as rendered, so every template's wording counts.
"""

from __future__ import annotations

import json
import re

import pytest

from tf_prompt import run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.data.schema import get_schema
from tf_prompt.methods.pipeline import answer_json, gold_mentions
from tf_prompt.parsing import parse_entities
from tf_prompt.parsing.scan import scan_segments
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.testing import oracle_responder
from tf_prompt.types import ParseFailure

LABELS = ["PER", "ORG", "LOC", "DATE"]
PLACEHOLDER = '{"entities": [{"text": "...", "type": "..."}]}'
WORKED = ('{"entities": [{"text": "William Ruto", "type": "PER"}, {"text": "Benki ya Dunia", "type": "ORG"}, '
          '{"text": "Nairobi", "type": "LOC"}]}')
TF1 = ('{"translation": "...", "english_entities": [{"text": "...", "type": "..."}], '
       '"entities": [{"text": "...", "type": "..."}]}')
BATCH = '{"1": {"entities": [{"text": "...", "type": "..."}]}, "2": {"entities": []}}'


def _vars(sentence: str) -> dict:
    schema = get_schema(None, LABELS)
    labels = [{**label.model_dump(), "class_name": label.name} for label in schema.labels]
    return dict(text=sentence, language="Hausa", labels=labels, label_names=schema.names, examples=[],
                translation="In Kano.", english_entities=[], hints=[],
                items=[{"n": 1, "text": sentence, "translation": "In Kano.", "english_entities": []}])


def _prompt(template: str, sentence: str, prompts: str | None = None) -> list[str]:
    rendered = TemplateSet(prompts).render(template, **_vars(sentence))
    return [m["content"] for m in rendered.messages]


SENTENCE = "Shehu Gusau ya isa Kano ranar Litinin ."


@pytest.mark.parametrize("template, example", [
    ("direct", PLACEHOLDER), ("direct", WORKED), ("direct.v1", PLACEHOLDER), ("annotate", PLACEHOLDER),
    ("fuse", PLACEHOLDER), ("transfusion_1call", TF1), ("batch_direct", BATCH), ("batch_annotate", BATCH),
    ("batch_fuse", BATCH), ("hints/fuse.v2", PLACEHOLDER), ("hints/fuse.v2", WORKED),
])
def test_each_templates_own_example_is_a_parse_failure(template: str, example: str) -> None:
    prompts, _, name = template.rpartition("/")
    prompt = _prompt(name, SENTENCE, prompts or None)
    assert any(example in text for text in prompt), "the example is the template's own text"
    reply = json.loads(example)
    if "1" in reply:                                  # a numbered example: item 1 is an answer
        reply = reply["1"]
    for variant in (json.dumps(reply), f"```json\n{json.dumps(reply, indent=2)}\n```",
                    json.dumps(reply).replace('"', "'")):
        with pytest.raises(ParseFailure, match="repeats an example"):
            parse_entities(variant, LABELS, prompt=prompt, source=SENTENCE)


def test_real_answers_and_the_empty_example_are_still_answers() -> None:
    prompt = _prompt("direct", SENTENCE)
    assert parse_entities('{"entities": []}', LABELS, prompt=prompt, source=SENTENCE).mentions == []
    got = parse_entities('{"entities": [{"text": "Kano", "type": "LOC"}]}', LABELS, prompt=prompt, source=SENTENCE)
    assert [(m.text, m.label) for m in got.mentions] == [("Kano", "LOC")]
    # the worked example's own sentence: the copied answer is right there, so it stands
    worked = "Rais William Ruto alikutana na maafisa wa Benki ya Dunia mjini Nairobi jana ."
    got = parse_entities(WORKED, LABELS, prompt=_prompt("direct", worked), source=worked)
    assert [m.text for m in got.mentions] == ["William Ruto", "Benki ya Dunia", "Nairobi"]


def test_a_copied_few_shot_answer_is_caught_too() -> None:
    sentences = read_conll(sample_path())
    shot = next(s for s in sentences if gold_mentions(s, LABELS))
    shown = gold_mentions(shot, LABELS)
    other = next(s for s in sentences if s is not shot and not any(m.text in s.text for m in shown))
    variables = _vars(other.text) | {"examples": [{"text": shot.text, "answer": answer_json(shown)}]}
    prompt = [m["content"] for m in TemplateSet().render("direct", **variables).messages]
    with pytest.raises(ParseFailure, match="repeats an example"):
        parse_entities(answer_json(gold_mentions(shot, LABELS)), LABELS, prompt=prompt, source=other.text)


def _echo(oracle):
    """A model that answers every entity question with the format example of its prompt."""
    def respond(body: dict) -> str:
        user = body["messages"][-1]["content"]
        if "Translate" in user.split("\n", 1)[0]:
            return oracle(body)
        tail = user[user.index("in this form:") + len("in this form:"):]
        return scan_segments(tail)[0][0]
    return respond


@pytest.mark.parametrize("method, batch, steps", [
    ("direct", 1, ["direct"]), ("translate-test", 1, ["annotate"]),
    ("transfusion", 1, ["annotate", "fuse", "direct"]), ("transfusion-1call", 1, ["tf1"]),
    ("direct", 4, ["direct"]),
])
def test_echoing_runs_count_parse_failures_not_entities(server, method: str, batch: int, steps: list[str]) -> None:
    sentences = read_conll(sample_path())[:4]
    server.responder = _echo(oracle_responder(sentences, LABELS))
    summary = run_dataset(model="m", base_url=server.base_url, method=method, limit=4, batch_sentences=batch)
    failed = [r.trace.parse_failures for r in summary.results]
    if batch > 1:   # item 2 of the numbered example is {"entities": []}: a real (empty) answer
        failed = [f for r, f in zip(summary.results, failed, strict=True) if r.trace.batches["direct"]["item"] != 2]
    assert failed and all(sorted(f) == sorted(steps) for f in failed), failed
    assert all("repeats an example" in msg for f in failed for msg in f.values())
    assert all(t == "O" for r in summary.results for t in r.tags)
    assert summary.metrics["parse_failures"] == sum(len(f) for f in failed)
    assert not re.search(r'"type": "\.\.\."', json.dumps([r.trace.unknown_labels for r in summary.results]))


def test_copying_its_input_is_an_answer_not_an_echo(server) -> None:
    """The fusion prompt shows the English entities as JSON; a reply that copies them is a (poor)
    answer, read as entities like before, not an echoed example."""
    sentences = read_conll(sample_path())[:3]
    oracle = oracle_responder(sentences, LABELS)

    def copy_english(body: dict) -> str:
        user = body["messages"][-1]["content"]
        if "English sentence below" in user:    # annotate: also an English form the source lacks
            reply = json.loads(oracle(body))
            return json.dumps({"entities": reply["entities"] + [{"text": "Zanzibar Republic", "type": "LOC"}]})
        if "English entities:" in user:
            line = next(ln for ln in user.splitlines() if ln.startswith("English entities:"))
            return json.dumps({"entities": json.loads(line.split(":", 1)[1])})
        return oracle(body)

    server.responder = copy_english
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", combine="none", limit=3)
    assert summary.metrics["parse_failures"] == 0 and summary.metrics["f1"] == pytest.approx(1.0)
    assert all({"text": "Zanzibar Republic", "type": "LOC"} in r.trace.hallucinated for r in summary.results)
