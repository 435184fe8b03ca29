"""The whole pipeline over real HTTP: the real `openai` client against the loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tf_prompt import RunSettings, extract, run_dataset
from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import english_translation, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
METHODS = ["direct", "translate-test", "transfusion"]


def _steps_of(server) -> list[str]:
    """Which template each request came from, read off the prompt text."""
    out = []
    for body in server.requests:
        user = body["messages"][-1]["content"]
        if "Translate the following" in user:
            out.append("translate")
        elif "English translation:" in user:
            out.append("fuse")
        elif "English sentence below" in user:
            out.append("annotate")
        else:
            out.append("direct")
    return out


@pytest.mark.parametrize("method", METHODS)
def test_perfect_model_on_sample_all_methods(server, tmp_path: Path, method: str) -> None:
    sentences = read_conll(sample_path())
    server.responder = oracle_responder(sentences, LABELS)
    out = tmp_path / "run"
    code = main(["run", "--model", "oracle", "--base-url", server.base_url, "--method", method,
                 "--out", str(out), "--concurrency", "4"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["f1"] == pytest.approx(1.0)
    assert metrics["n_sentences"] == len(sentences)
    assert metrics["parse_failures"] == 0 and metrics["hallucinated"] == 0
    # the documented default --combine (direct-first) adds a direct call to transfusion's three
    expected_calls = {"direct": 1, "translate-test": 2, "transfusion": 4}[method] * len(sentences)
    assert len(server.requests) == expected_calls == metrics["usage"]["calls"]
    assert metrics["usage"]["prompt_tokens"] == server.prompt_tokens
    steps = set(_steps_of(server))
    assert steps == {"direct": {"direct"}, "translate-test": {"translate", "annotate"},
                     "transfusion": {"translate", "annotate", "fuse", "direct"}}[method]
    # outputs: predictions.conll has token, gold, predicted; trace has one line per sentence
    rows = [ln.split() for ln in (out / "predictions.conll").read_text().splitlines() if ln.strip()]
    assert all(len(r) == 3 for r in rows) and all(r[1] == r[2] for r in rows)
    traces = [json.loads(ln) for ln in (out / "trace.jsonl").read_text().splitlines()]
    assert [t["index"] for t in traces] == list(range(len(sentences)))
    if method != "direct":
        assert [t["translation"] for t in traces] == [english_translation(s) for s in sentences]
        assert all(t["english_entities"] is not None for t in traces)
    assert all("replies" in t and t["replies"] for t in traces)


@pytest.mark.parametrize("variant", ["lower", "ascii", "spaces", "fenced", "mapping", "lines"])
@pytest.mark.parametrize("method", ["direct", "transfusion"])
def test_degraded_answers_still_score(server, method: str, variant: str) -> None:
    sentences = read_conll(sample_path())
    server.responder = oracle_responder(sentences, LABELS, variant=variant)
    summary = run_dataset(model="m", base_url=server.base_url, method=method)
    assert summary.metrics["f1"] >= 0.98, summary.metrics
    assert summary.metrics["parse_failures"] == 0


def test_garbage_replies_are_parse_failures_not_crashes(server) -> None:
    server.responder = lambda body: "I am sorry, I cannot help with that {"
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", limit=5)
    m = summary.metrics
    assert m["n_sentences"] == 5
    # translate replies are prose, so they are taken as translations; annotate and fuse fail
    assert m["parse_failures_by_step"] == {"annotate": 5, "fuse": 5, "direct": 5}
    assert m["f1"] == 0.0


def test_hallucinated_entities_are_counted_and_dropped(server) -> None:
    server.responder = lambda body: json.dumps(
        {"entities": [{"text": "Ouagadougou Stadium", "type": "LOC"}]})
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", limit=4)
    assert summary.metrics["hallucinated"] == 4
    assert summary.metrics["predicted_entities"] == 0


def test_python_api_extract_raw_strings_and_tokens(server) -> None:
    def responder(body):
        return json.dumps({"entities": [{"text": "Shehu Gusau", "type": "PER"},
                                        {"text": "kano", "type": "LOC"}]})

    server.responder = responder
    ents = extract(["Shehu Gusau ya isa Kano ranar Litinin.",
                    ["Shehu", "Gusau", "ya", "isa", "Kano", "."]],
                   model="m", base_url=server.base_url, method="direct", language="hau")
    assert [(e.text, e.type, e.start, e.end, e.token_start, e.token_end) for e in ents[0]] == [
        ("Shehu Gusau", "PER", 0, 11, 0, 2), ("Kano", "LOC", 19, 23, 4, 5)]
    assert [(e.text, e.token_start, e.token_end) for e in ents[1]] == [("Shehu Gusau", 0, 2), ("Kano", 4, 5)]
    # the language name reached the prompt
    assert "Hausa" in server.requests[0]["messages"][-1]["content"]


def test_labels_subset_scores_without_date(server) -> None:
    sentences = read_conll(sample_path())
    server.responder = oracle_responder(sentences, ["PER", "ORG", "LOC"])
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", labels=["PER", "ORG", "LOC"])
    assert summary.metrics["f1"] == pytest.approx(1.0)
    assert set(summary.metrics["per_type"]) <= {"PER", "ORG", "LOC"}
    assert "DATE" not in server.requests[0]["messages"][-1]["content"].split("Rules:")[0]


def test_few_shot_examples_from_dev(server, shared_data: Path) -> None:
    data = "masakhaner2:hau:test"
    sentences = read_conll(shared_data / "masakhaner2" / "hau" / "test.txt")[:3]
    server.responder = oracle_responder(sentences, LABELS)
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", data=data, limit=3,
                          shots=2, shots_from="masakhaner2:hau:dev")
    assert summary.metrics["f1"] == pytest.approx(1.0)
    prompt = server.requests[0]["messages"][-1]["content"]
    assert prompt.count("Sentence: ") == 3 and prompt.count("Answer: {") == 2
    dev_texts = {s.text for s in read_conll(shared_data / "masakhaner2" / "hau" / "dev.txt")}
    example_lines = [ln[len("Sentence: "):] for ln in prompt.splitlines() if ln.startswith("Sentence: ")][:2]
    assert all(t in dev_texts for t in example_lines)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        RunSettings(method="tranfusion")


def test_identical_sentences_in_flight_are_paid_once(server, tmp_path: Path) -> None:
    data = tmp_path / "dup.txt"
    data.write_text("Shehu B-PER\nya O\nje O\nKano B-LOC\n\n" * 6, encoding="utf-8")
    server.latency = 0.05
    server.responder = lambda body: '{"entities": [{"text": "Shehu", "type": "PER"}, {"text": "Kano", "type": "LOC"}]}'
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", data=str(data), concurrency=6)
    assert len(server.requests) == 1
    assert summary.metrics["usage"]["calls"] == 1 and summary.metrics["usage"]["cache_hits"] == 5
    assert summary.metrics["f1"] == 1.0 and summary.metrics["n_sentences"] == 6


@pytest.mark.parametrize("variant", ["clean", "lower", "fenced"])
def test_transfusion_one_call(server, variant: str) -> None:
    sentences = read_conll(sample_path())
    server.responder = oracle_responder(sentences, LABELS, variant=variant)
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion-1call")
    assert summary.metrics["f1"] >= 0.98 and summary.metrics["parse_failures"] == 0
    assert len(server.requests) == len(sentences)
    t = summary.results[0].trace
    assert t.translation == english_translation(sentences[0]) and t.english_entities and t.missing == []


def test_transfusion_one_call_with_missing_parts(server) -> None:
    server.responder = lambda body: '{"entities": [{"text": "Amina Juma", "type": "PER"}]}'
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion-1call", limit=1)
    t = summary.results[0].trace
    assert t.missing == ["translation", "english_entities"] and t.spans[0]["text"] == "Amina Juma"
    server.responder = lambda body: '{"translation": "Amina arrived"}'
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion-1call", limit=1,
                          no_cache=True)
    assert summary.metrics["parse_failures_by_step"] == {"tf1": 1}


def test_translation_echoing_the_source_label_is_cleaned(server) -> None:
    def responder(body):
        user = body["messages"][-1]["content"]
        if "Translate the following" in user:
            return "Hausa: Shehu Gusau went to Kano."
        return '{"entities": []}'

    server.responder = responder
    summary = run_dataset(model="m", base_url=server.base_url, method="translate-test", language="hau", limit=1)
    assert summary.results[0].trace.translation == "Shehu Gusau went to Kano."


def _step_responder(replies: dict[str, list[dict[str, str]]]):
    def responder(body) -> str:
        step = _steps_of(type("S", (), {"requests": [body]})())[0]
        if step == "translate":
            return "Shehu Gusau went to Kano on Monday."
        return json.dumps({"entities": replies[step]})
    return responder


@pytest.mark.parametrize("rule,expected", [
    ("none", ["B-PER", "I-PER", "O", "O", "O", "O", "B-ORG"]),
    ("union", ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "B-ORG"]),
    ("direct-first", ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "B-ORG"]),
    ("vote", ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O"]),
    ("confirmed", ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O"]),
])
def test_transfusion_combines_fusion_direct_and_projection(server, tmp_path: Path, rule: str,
                                                            expected: list[str]) -> None:
    data = tmp_path / "one.txt"
    data.write_text("Shehu B-PER\nGusau I-PER\nya O\nje O\nKano B-LOC\nranar O\nLitinin O\n\n", encoding="utf-8")
    server.responder = _step_responder({
        "direct": [{"text": "Shehu Gusau", "type": "PER"}, {"text": "Kano", "type": "LOC"}],
        "annotate": [{"text": "Shehu Gusau", "type": "PER"}, {"text": "Monday", "type": "PER"},
                     {"text": "Kano", "type": "LOC"}],
        "fuse": [{"text": "Shehu Gusau", "type": "PER"}, {"text": "ranar", "type": "ORG"},
                 {"text": "Litinin", "type": "ORG"}],
    })
    out = tmp_path / "run"
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", combine=rule,
                          data=str(data), labels=["PER", "ORG", "LOC"], out=str(out))
    trace = json.loads((out / "trace.jsonl").read_text().splitlines()[0])
    assert trace["predicted"] == expected
    # "Monday" is a date: dropped from the English hints when DATE is not a label
    assert trace["english_entities"] == [{"text": "Shehu Gusau", "type": "PER"}, {"text": "Kano", "type": "LOC"}]
    # "ranar" (no capital) is not name-shaped: dropped by the checks whatever the rule
    assert summary.metrics["usage"]["calls"] == (3 if rule == "none" else 4)
    if rule != "none":
        assert trace["combine"] == rule and set(trace["views"]) == {"fusion", "direct", "projection"}


def test_combine_applies_to_transfusion_only(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="applies to --method transfusion"):
        RunSettings(method="direct", combine="vote")
    assert RunSettings(method="direct").combine_rule() == "none"
    assert main(["run", "--method", "direct", "--combine", "union", "--out", str(tmp_path)]) == 2
    assert "applies to --method transfusion" in capsys.readouterr().err
