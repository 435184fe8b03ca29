"""--batch-sentences K: numbered prompts, deterministic grouping, fallback for lost items."""

from __future__ import annotations

import json

import pytest

from tf_prompt import run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.prompting.batching import item_reply, split_numbered
from tf_prompt.testing import oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
# transfusion: + direct (--combine)
CALLS = {"direct": 1, "translate-test": 2, "transfusion": 4, "transfusion-1call": 1}


@pytest.mark.parametrize("method", list(CALLS))
@pytest.mark.parametrize("k", [4, 8])
def test_perfect_model_through_batches(server, method: str, k: int) -> None:
    sentences = read_conll(sample_path())            # 12 sentences -> chunks of k
    server.responder = oracle_responder(sentences, LABELS)
    summary = run_dataset(model="m", base_url=server.base_url, method=method, batch_sentences=k)
    chunks = -(-len(sentences) // k)
    assert summary.metrics["f1"] == pytest.approx(1.0)
    assert len(server.requests) == CALLS[method] * chunks
    assert summary.metrics["parse_failures"] == 0
    assert all(t.trace.batches for t in summary.results)
    # a rerun builds the same prompts: everything comes from the cache
    server.requests.clear()
    again = run_dataset(model="m", base_url=server.base_url, method=method, batch_sentences=k)
    assert server.requests == [] and again.metrics["f1"] == pytest.approx(1.0)


def test_lost_and_merged_items_fall_back_to_single_calls(server) -> None:
    sentences = read_conll(sample_path())[:4]
    oracle = oracle_responder(sentences, LABELS)

    def lossy(body):
        reply = oracle(body)
        if "numbered" in body["messages"][-1]["content"].split("\n", 1)[0]:
            data = json.loads(reply)
            data.pop("2")                       # item 2 lost
            data["3"] = "merged with 4"         # item 3 garbled
            return json.dumps(data)
        return reply

    server.responder = lossy
    summary = run_dataset(model="m", base_url=server.base_url, method="direct", batch_sentences=4, limit=4)
    assert summary.metrics["f1"] == pytest.approx(1.0)
    # one numbered prompt, then single calls for items 2 and 3 only
    firsts = [b["messages"][-1]["content"].split("\n", 1)[0] for b in server.requests]
    assert sum("numbered" in f for f in firsts) == 1 and len(server.requests) == 3
    fallbacks = {r.sentence.index: r.trace.batches["direct"]["fallback"] for r in summary.results}
    assert fallbacks == {0: False, 1: True, 2: True, 3: False}


def test_estimate_knows_batching(server, capsys) -> None:
    from tf_prompt.cli import main

    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    est = {}
    for k in (1, 4):
        assert main(["estimate", "--json", "--model", "gpt-4o-mini", "--base-url", server.base_url,
                     "--method", "transfusion", "--batch-sentences", str(k)]) == 0
        est[k] = json.loads(capsys.readouterr().out)
    assert est[1]["calls"] == 48 and est[4]["calls"] == 12   # 4 steps (+ direct for --combine) x 12
    assert est[4]["prompt_tokens"] < 0.6 * est[1]["prompt_tokens"]
    assert server.requests == []


def test_split_numbered_formats() -> None:
    assert split_numbered('{"1": "a", "item 2": "b", "9": "x"}', 2) == {1: "a", 2: "b"}
    assert split_numbered('[{"id": 2, "entities": []}, {"id": 1, "entities": [1]}]', 2) == {
        2: {"entities": []}, 1: {"entities": [1]}}
    assert split_numbered('["a", "b"]', 2) == {1: "a", 2: "b"}
    assert split_numbered('["a"]', 2) == {}
    assert split_numbered("no json here", 2) == {}
    assert item_reply(True, {"translation": " x "}) == "x"                # a translation: plain text
    assert item_reply(False, [{"text": "Kano", "type": "LOC"}]) == '{"entities": [{"text": "Kano", "type": "LOC"}]}'
    assert item_reply(False, "merged") is None
