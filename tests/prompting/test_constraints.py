"""--constrain: the schema module (answer schemas, word n-gram enums, limits and fallback), the
setting's validation, the cache key and run identity it changes, and what `estimate` counts."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from conftest import run_cli
from tf_prompt.api import estimate
from tf_prompt.backends.openai_compat import OpenAIBackend
from tf_prompt.llm.cache import cache_key
from tf_prompt.llm.client import ModelClient
from tf_prompt.prompting.constraints import (
    APPLIED,
    LIMITS,
    MAX_ITEMS,
    MAX_NGRAM,
    NONE,
    answer_schema,
    constraint,
    ngrams,
    numbered_constraint,
    schema_of,
)
from tf_prompt.prompting.templates import Prompt
from tf_prompt.runs.rundir import differences, identity_of
from tf_prompt.settings import RunSettings
from tf_prompt.testing import schema_errors

LABELS = ["PER", "ORG", "LOC", "DATE"]


def _enum(params: dict, *path: str) -> list[str] | None:
    node = schema_of(params)
    for key in path:
        assert node is not None
        node = node["properties"][key] if key != "[]" else node["items"]
    assert node is not None
    return node.get("enum")


def test_ngrams_are_the_word_sequences_of_the_text_as_written() -> None:
    words = [f"w{i}" for i in range(20)]
    text = " ".join(words)
    grams = ngrams(text)
    # every run of 1..MAX_NGRAM consecutive words, joined as the text has them, and nothing else
    expected = {" ".join(words[i:j]) for i in range(20) for j in range(i + 1, min(i + MAX_NGRAM, 20) + 1)}
    assert set(grams) == expected and len(grams) == len(expected)
    assert all(g in text for g in grams)
    # a CoNLL sentence: punctuation tokens never start or end an n-gram; a translation's glued
    # punctuation is offered with and without
    assert "Abuja ," not in ngrams("Ya tafi Abuja , jiya .") and "Abuja" in ngrams("Ya tafi Abuja , jiya .")
    english = ngrams('He met "Amina Juma," in (Lagos) at Acme Ltd. today.')
    for name in ("Amina Juma", '"Amina Juma,"', "Lagos", "Acme Ltd.", "Acme Ltd", "today"):
        assert name in english
    assert ngrams("  , . ") == []


def test_answer_schemas_are_strict_and_typed_by_the_labels() -> None:
    schema = answer_schema("entities", LABELS)
    assert schema["required"] == ["entities"] and schema["additionalProperties"] is False
    item = schema["properties"]["entities"]["items"]
    assert item["required"] == ["text", "type"] and item["additionalProperties"] is False
    assert item["properties"]["type"]["enum"] == LABELS and "enum" not in item["properties"]["text"]
    assert schema_errors(schema, {"entities": [{"text": "Amina", "type": "PER"}]}) == []
    assert schema_errors(schema, {"entities": [{"text": "Amina", "type": "PERSON"}]})
    assert schema_errors(schema, {"entities": [], "note": "x"})
    fused = answer_schema("fused", LABELS, ["Amina", "Amina Juma"])
    assert fused["required"] == ["translation", "english_entities", "entities"]
    assert fused["properties"]["entities"]["items"]["properties"]["text"]["enum"] == ["Amina", "Amina Juma"]
    assert "enum" not in fused["properties"]["english_entities"]["items"]["properties"]["text"]
    with pytest.raises(ValueError, match="no JSON schema"):
        answer_schema("translation", LABELS)


def test_entity_lists_are_capped_by_the_words_of_the_text() -> None:
    """maxItems ends a small model's loop (one n-gram repeated until max_tokens) with a
    well-formed answer: at most one entity per word, and never more than MAX_ITEMS."""
    short = "Amina alifika Mombasa ."          # 3 words (the point is not one)
    c = constraint("spans", "direct", "entities", LABELS, short)
    listed = schema_of(c.params)["properties"]["entities"]
    assert listed["maxItems"] == 3
    assert schema_errors(schema_of(c.params), {"entities": [{"text": "Amina", "type": "PER"}] * 4})
    assert not schema_errors(schema_of(c.params), {"entities": [{"text": "Amina", "type": "PER"}] * 3})
    long_text = " ".join(f"w{i}" for i in range(60))
    assert schema_of(constraint("json", "direct", "entities", LABELS, long_text).params)[
        "properties"]["entities"]["maxItems"] == MAX_ITEMS
    fused = answer_schema("fused", LABELS, ngrams(short), short)
    assert fused["properties"]["entities"]["maxItems"] == 3
    assert fused["properties"]["english_entities"]["maxItems"] == MAX_ITEMS   # its text is not known yet
    # a json fallback keeps the cap
    assert schema_of(constraint("spans", "direct", "entities", LABELS, long_text + " " + "x" * 20000).params)[
        "properties"]["entities"]["maxItems"] == MAX_ITEMS


def test_one_call_constraint_by_mode_and_reply_format() -> None:
    text = "Amina Juma alifika Mombasa Jumatatu ."
    assert constraint("none", "direct", "entities", LABELS, text) is NONE
    for reply in ("translation", "code", "code_fused"):   # free text and GoLLIE code stay free
        assert constraint("spans", "direct", reply, LABELS, text) is NONE
    as_json = constraint("json", "direct", "entities", LABELS, text)
    spec = as_json.params["response_format"]
    assert spec["type"] == "json_schema" and spec["json_schema"]["strict"] is True
    assert spec["json_schema"]["name"] == "direct_entities" and as_json.note == "json"
    assert _enum(as_json.params, "entities", "[]", "text") is None
    spans = constraint("spans", "direct", "entities", LABELS, text)
    assert spans.note == "spans" and _enum(spans.params, "entities", "[]", "text") == ngrams(text)


def test_a_sentence_too_long_for_the_limits_falls_back_to_json() -> None:
    long_text = " ".join(f"w{i}" for i in range(200))          # ~1,570 n-grams > 1,000 enum values
    c = constraint("spans", "direct", "entities", LABELS, long_text)
    assert _enum(c.params, "entities", "[]", "text") is None
    assert c.note.startswith("json (spans: ") and "n-grams" in c.note
    # the characters of one big enum are a limit of their own
    wordy = " ".join(f"{'x' * 60}{i}" for i in range(40))     # < 1,000 n-grams, > 15,000 characters
    assert len(ngrams(wordy)) < APPLIED.enum_values
    c = constraint("spans", "direct", "entities", LABELS, wordy)
    assert _enum(c.params, "entities", "[]", "text") is None and "characters" in c.note
    assert constraint("spans", "direct", "entities", LABELS, "").note == "json (spans: the text has no words)"
    assert LIMITS[0].provider == "openai"


def test_numbered_calls_have_one_schema_per_item_within_one_budget() -> None:
    texts = ["Amina alifika Mombasa .", " ".join(f"a{i}" for i in range(70)), " ".join(f"b{i}" for i in range(70)),
             "Juma yupo Nairobi ."]
    c = numbered_constraint("spans", "direct", "entities", LABELS, texts)
    schema = schema_of(c.params)
    assert schema is not None and schema["required"] == ["1", "2", "3", "4"]
    assert schema["additionalProperties"] is False
    enums = [_enum(c.params, str(n), "entities", "[]", "text") for n in range(1, 5)]
    # item 2 (~530 n-grams) fits, item 3 would not fit beside it: json for that item only
    assert enums[0] == ngrams(texts[0]) and enums[1] == ngrams(texts[1]) and enums[3] == ngrams(texts[3])
    assert enums[2] is None
    assert c.notes[:2] == ("spans", "spans") and c.notes[2].startswith("json (spans: ") and c.notes[3] == "spans"
    total = sum(len(e or []) for e in enums) + 4 * len(LABELS)
    assert total <= APPLIED.enum_values
    assert numbered_constraint("none", "direct", "entities", LABELS, texts) is NONE
    assert numbered_constraint("spans", "translate", "translation", LABELS, texts) is NONE


def test_the_setting_is_validated_and_refused_with_code_answers(capsys) -> None:
    assert RunSettings().constrain == "none"
    with pytest.raises(ValidationError):
        RunSettings(constrain="grammar")
    with pytest.raises(ValidationError, match="--constrain none"):
        RunSettings(method="direct", style="gollie", constrain="json")
    with pytest.raises(ValidationError, match="step fuse answers with code"):
        RunSettings(method="transfusion", style="gollie", constrain="spans")
    # transfusion-1call has no code form: its gollie style asks the same JSON prompt
    assert RunSettings(method="transfusion-1call", style="gollie", constrain="spans").constrain == "spans"
    code, _, err = run_cli(capsys, "run", "--method", "direct", "--style", "gollie", "--constrain", "json",
                           "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and err.count("\n") == 1 and "--constrain none" in err


def test_cache_keys_change_with_a_constraint_and_only_then() -> None:
    backend = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1")
    params = {"temperature": 0.0, "max_tokens": 1024}
    client = ModelClient(backend, params)
    prompt = Prompt(step="direct", template="direct.v1", digest="abc", messages=[{"role": "user", "content": "Amina"}])
    plain = cache_key(backend.identity(), prompt.messages, params, prompt.identity)
    assert client.key(prompt) == client.key(prompt, None) == client.key(prompt, {}) == plain
    as_json = constraint("json", "direct", "entities", LABELS, "Amina").params
    spans = constraint("spans", "direct", "entities", LABELS, "Amina").params
    assert len({plain, client.key(prompt, as_json), client.key(prompt, spans)}) == 3
    assert client.request_params(as_json)["response_format"] == as_json["response_format"]
    assert client.request_params(None) is client.params


def test_another_constraint_is_another_run() -> None:
    record = {**RunSettings(method="direct").model_dump(by_alias=True), "data_path": "x"}
    other = {**record, "constrain": "spans"}
    assert differences(identity_of(record), identity_of(other)) == ["constrain none -> spans"]
    # a run recorded before the setting existed is not different because of it
    older = {k: v for k, v in record.items() if k != "constrain"}
    assert differences(identity_of(older), identity_of(record)) == []


def test_estimate_counts_the_schema_as_prompt_tokens(server) -> None:
    common = dict(model="gpt-4o-mini", base_url=server.base_url, method="direct", limit=4)
    none, as_json, spans = (estimate(**common, constrain=mode) for mode in ("none", "json", "spans"))
    assert server.requests == []                      # an estimate sends nothing
    assert none["calls"] == as_json["calls"] == spans["calls"] == 4
    assert none["prompt_tokens"] < as_json["prompt_tokens"] < spans["prompt_tokens"]
    schema = json.dumps(constraint("json", "direct", "entities", ["PER", "ORG", "LOC", "DATE"])
                        .params["response_format"]["json_schema"], separators=(",", ":"))
    per_call = (as_json["prompt_tokens"] - none["prompt_tokens"]) / 4
    assert per_call == pytest.approx(len(schema) / 4, rel=0.6)   # o200k/cl100k over compact JSON


def test_sweep_sets_constrain_in_run_and_per_prompt_variant(tmp_path) -> None:
    from tf_prompt.experiments.sweep import SweepError, load_config

    config = tmp_path / "sweep.toml"
    config.write_text('methods = ["direct"]\ndatasets = ["sample"]\n[[models]]\nname = "m"\nbase_url = '
                      '"http://127.0.0.1:9/v1"\n[[prompts]]\nname = "free"\n[[prompts]]\nname = "spans"\n'
                      'constrain = "spans"\n[run]\nconstrain = "json"\n', encoding="utf-8")
    cells = {c.prompt: c.settings.constrain for c in load_config(config).cells}
    assert cells == {"free": "json", "spans": "spans"}
    config.write_text('methods = ["direct"]\ndatasets = ["sample"]\n[[models]]\nname = "m"\nbase_url = '
                      '"http://127.0.0.1:9/v1"\n[[prompts]]\nname = "code"\nstyle = "gollie"\n'
                      'constrain = "json"\n', encoding="utf-8")
    with pytest.raises(SweepError, match=r"sweep.toml.*--constrain none") as info:
        load_config(config)
    assert "\n" not in str(info.value)


def test_sweep_fingerprints_of_unconstrained_cells_are_unchanged() -> None:
    from tf_prompt.experiments.sweep import cell_fingerprint

    plain = cell_fingerprint(RunSettings(method="direct", base_url="http://127.0.0.1:9/v1"))
    assert "constrain" not in plain      # a cell finished before --constrain existed is not rerun
    spans = cell_fingerprint(RunSettings(method="direct", base_url="http://127.0.0.1:9/v1", constrain="spans"))
    assert spans == {**plain, "constrain": "spans"}
