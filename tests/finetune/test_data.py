"""`tf-prompt finetune-data`: the prompts are the ones a run sends, every answer reads back as the
gold entities with the project's parser, formats, the split, prices and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.finetune.data import split_of
from tf_prompt.llm.cost import PriceTable
from tf_prompt.methods.context import complete_code, gold_mentions
from tf_prompt.parsing import parse_code_assignments, parse_entities, parse_json_value
from tf_prompt.testing import english_translation, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
SENTENCES = read_conll(sample_path())
BY_TEXT = {s.text: s for s in SENTENCES} | {english_translation(s): s for s in SENTENCES}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _make(server, tmp_path: Path, *args: str, name: str = "ft") -> tuple[Path, dict[str, Any]]:
    server.responder = oracle_responder(SENTENCES, LABELS)
    out = tmp_path / name
    code = main(["finetune-data", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--out", str(out),
                 "--validation-share", "0.3", *args])
    assert code == 0
    return out, json.loads((out / "summary.json").read_text(encoding="utf-8"))


def _all_examples(out: Path) -> list[dict[str, Any]]:
    return _lines(out / "train.jsonl") + _lines(out / "validation.jsonl")


def _source_of(prompt: str) -> Any:
    """The sample sentence a prompt is about (the longest source or translation text it contains)."""
    found = [text for text in BY_TEXT if text in prompt]
    assert found, prompt[-300:]
    return BY_TEXT[max(found, key=len)]


def _pairs(mentions: Any) -> list[tuple[str, str]]:
    return sorted((m.text, m.label) for m in mentions)


def _read_back(answer: str, prompt: str, style: str) -> tuple[str, list[tuple[str, str]]]:
    """What the project's parser reads from an answer: (kind, source entities)."""
    if style == "gollie":
        lists = parse_code_assignments(complete_code(answer), LABELS)
        return ("fused" if "final_result" in lists else "code"), _pairs(lists.get("final_result", lists["result"]))
    value = parse_json_value(answer)
    if isinstance(value, dict) and "translation" in value:   # transfusion-1call
        return "fused", _pairs(parse_entities(json.dumps({"entities": value["entities"]}), LABELS).mentions)
    return "entities", _pairs(parse_entities(answer, LABELS).mentions)


def test_transfusion_llm_translator_prompts_are_the_run_prompts_and_answers_read_back(server, tmp_path) -> None:
    out, summary = _make(server, tmp_path)
    examples = _all_examples(out)
    # every step the model answers at inference (default combination rule: direct too), each sentence
    assert summary["by_step"].keys() == {"translate", "annotate", "direct", "fuse"}
    assert summary["templates"]["fuse"].startswith("fuse.v") and "@" in summary["templates"]["fuse"]
    assert len(examples) == 4 * len(SENTENCES) and not summary["skipped"]
    assert summary["teacher_usage"]["calls"] == 2 * len(SENTENCES)   # translate + annotate, not fuse/direct
    # the prompts a real run sends, as the server received them
    server.requests.clear()
    assert main(["run", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--out",
                 str(tmp_path / "run"), "--no-cache"]) == 0
    sent = {json.dumps(r["messages"], sort_keys=True) for r in server.requests}
    answers_by_step: dict[str, int] = {}
    for ex in examples:
        messages = ex["messages"]
        assert [m["role"] for m in messages][-1] == "assistant" and messages[-1]["content"]
        prompt = messages[:-1]
        assert json.dumps(prompt, sort_keys=True) in sent
        user = prompt[-1]["content"]
        answer = messages[-1]["content"]
        sentence = _source_of(user)
        gold = _pairs(gold_mentions(sentence, LABELS))
        if "Translate" in user:
            answers_by_step["translate"] = answers_by_step.get("translate", 0) + 1
            assert answer == english_translation(sentence)
            continue
        assert _read_back(answer, user, "json")[1] == gold
    assert answers_by_step["translate"] == len(SENTENCES)


def test_file_translations_give_no_translate_example_and_are_used_in_the_prompts(server, tmp_path) -> None:
    translations = tmp_path / "en.txt"
    translations.write_text("".join(english_translation(s) + "\n" for s in SENTENCES), encoding="utf-8")
    out, summary = _make(server, tmp_path, "--translator", f"file:{translations}", "--combine", "none")
    assert set(summary["by_step"]) == {"annotate", "fuse"}
    assert summary["teacher_usage"]["by_step"].keys() == {"annotate"}
    fuses = [ex for ex in _all_examples(out) if "Source sentence:" in ex["messages"][-2]["content"]]
    assert len(fuses) == len(SENTENCES)
    for ex in fuses:
        user = ex["messages"][-2]["content"]
        sentence = _source_of(user)
        assert english_translation(sentence) in user
        assert _read_back(ex["messages"][-1]["content"], user, "json")[1] == _pairs(gold_mentions(sentence, LABELS))


@pytest.mark.parametrize("method", ["direct", "transfusion", "transfusion-1call"])
def test_gollie_and_one_call_answers_read_back(server, tmp_path, method: str) -> None:
    style = "json" if method == "transfusion-1call" else "gollie"
    out, summary = _make(server, tmp_path, "--method", method, "--style", style, "--format", "hf")
    assert not summary["skipped"]
    kinds = set()
    for ex in _all_examples(out):
        user, answer = ex["messages"][-2]["content"], ex["messages"][-1]["content"]
        if "Translate" in user:
            continue
        if style == "gollie":   # the prompt ends with `result = [`: the answer continues it
            assert user.rstrip().endswith("result = [") and not answer.startswith("result")
        kind, found = _read_back(answer, user, style)
        kinds.add(kind)
        assert found == _pairs(gold_mentions(_source_of(user), LABELS))
    assert kinds == {"direct": {"code"}, "transfusion": {"fused"}, "transfusion-1call": {"fused"}}[method]


def test_formats(server, tmp_path) -> None:
    out, _ = _make(server, tmp_path, "--method", "direct", "--format", "openai", name="openai")
    openai = _all_examples(out)
    assert all(set(line) == {"messages"} for line in openai)
    assert all(line["messages"][-1]["role"] == "assistant" for line in openai)
    out, _ = _make(server, tmp_path, "--method", "direct", "--format", "hf-prompt", name="pc")
    pc = _all_examples(out)
    assert all(set(line) == {"prompt", "completion"} for line in pc)
    assert [line["prompt"] + line["completion"] for line in pc] == [line["messages"] for line in openai]
    assert all([m["role"] for m in line["completion"]] == ["assistant"] for line in pc)


def test_split_is_by_sentence_text_and_stable(server, tmp_path) -> None:
    assert split_of("Kano", 0.0) == "train" and split_of("Kano", 0.999999) == "validation"
    shares = [split_of(f"sentence {i}", 0.1) for i in range(2000)]
    assert 120 < shares.count("validation") < 280   # about 10%
    out, summary = _make(server, tmp_path, "--method", "direct", name="all")
    few, _ = _make(server, tmp_path, "--method", "direct", "--limit", "6", name="few")
    val_all = {_source_of(ex["messages"][-2]["content"]).text for ex in _lines(out / "validation.jsonl")}
    val_few = {_source_of(ex["messages"][-2]["content"]).text for ex in _lines(few / "validation.jsonl")}
    assert val_all, "the sample should put some sentence in validation at 0.3"
    assert val_few == {s.text for s in SENTENCES[:6]} & val_all
    assert val_all == {s.text for s in SENTENCES if split_of(s.text, 0.3) == "validation"}
    again, _ = _make(server, tmp_path, "--method", "direct", name="again")
    assert (again / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()
    assert summary["split"]["validation"]["sentences"] == len(val_all)


def test_token_counts_and_training_price(server, tmp_path) -> None:
    _, summary = _make(server, tmp_path, "--method", "direct")
    train = summary["split"]["train"]
    assert train["tokens"] > 0 and summary["training_price_per_1m"] == 3.0
    assert summary["training_cost_usd_per_epoch"] == pytest.approx(train["tokens"] * 3.0 / 1e6)
    assert summary["training_cost_usd"] == pytest.approx(3 * summary["training_cost_usd_per_epoch"])
    _, unknown = _make(server, tmp_path, "--method", "direct", "--train-model", "gpt-5", name="gpt5")
    assert unknown["training_cost_usd"] is None and unknown["training_price_per_1m"] is None
    table = PriceTable.load()
    assert table.training_cost("gpt-4o-mini-2024-07-18", 1_000_000) == 3.0
    assert table.training_cost("gpt-4o", 2_000_000) == 50.0
    assert table.training_cost("o3", 1000) is None


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_input_is_one_line(server, tmp_path, capsys) -> None:
    unlabelled = tmp_path / "raw.conll"
    unlabelled.write_text("Kano\nya\n\nShehu\n", encoding="utf-8")
    base = ["finetune-data", "--model", "m", "--base-url", server.base_url, "--out", str(tmp_path / "o")]
    assert main([*base, "--data", str(unlabelled)]) == 2
    line = _one_error_line(capsys)
    assert str(unlabelled) in line and "labelled" in line
    assert main([*base, "--validation-share", "1.5"]) == 2
    assert "--validation-share" in _one_error_line(capsys)
    assert main([*base, "--method", "translate-test"]) == 2
    assert "translate-test" in _one_error_line(capsys)
    bad = tmp_path / "bad.conll"
    bad.write_text("Kano B-LOC\nya O\n\nShehu B-PERSON-X-\n", encoding="utf-8")
    assert main([*base, "--data", str(bad)]) == 2
    assert f"{bad}:4" in _one_error_line(capsys)
    assert not server.requests and not (tmp_path / "o").exists()


def test_a_rejected_translation_gives_a_direct_example_and_no_translate_one(server, tmp_path) -> None:
    """The oracle echoes the source as its 'translation': the pivot check turns it down, so at
    inference the sentence is answered by direct (no fuse), and nothing teaches the echo."""
    server.responder = oracle_responder(SENTENCES, LABELS, translation=lambda s: s.text)
    out = tmp_path / "echo"
    assert main(["finetune-data", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["pivot_rejected"] == len(SENTENCES)
    assert set(summary["by_step"]) == {"direct"}
    for ex in _all_examples(out):
        user = ex["messages"][-2]["content"]
        assert _read_back(ex["messages"][-1]["content"], user, "json")[1] == _pairs(
            gold_mentions(_source_of(user), LABELS))


def test_an_unreadable_translation_skips_its_sentence_and_says_so(server, tmp_path) -> None:
    oracle = oracle_responder(SENTENCES, LABELS)
    first = SENTENCES[0].text

    def responder(body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        return "" if "Translate" in user and first in user else oracle(body)

    server.responder = responder
    out = tmp_path / "skip"
    assert main(["finetune-data", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--out", str(out),
                 "--method", "transfusion-1call"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [s["index"] for s in summary["skipped"]] == [SENTENCES[0].index]
    assert summary["by_step"]["tf1"]["train"] + summary["by_step"]["tf1"]["validation"] == len(SENTENCES) - 1
    assert all(first not in ex["messages"][-2]["content"] for ex in _all_examples(out))


def test_teacher_calls_are_cached_and_budgeted(server, tmp_path, capsys) -> None:
    out, summary = _make(server, tmp_path, name="first")
    assert summary["teacher_usage"]["calls"] == 2 * len(SENTENCES)
    server.requests.clear()
    again, summary2 = _make(server, tmp_path, name="second")
    assert not server.requests and summary2["teacher_usage"]["cache_hits"] == 2 * len(SENTENCES)
    assert (again / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()
    capsys.readouterr()
    code = main(["finetune-data", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--no-cache",
                 "--max-cost", "0.0000001", "--out", str(tmp_path / "poor")])
    assert code == 1 and "budget" in _one_error_line(capsys).lower()
    assert not (tmp_path / "poor").exists()


def test_a_component_annotator_gives_no_annotate_example_and_its_entities_reach_the_fuse_prompt(server) -> None:
    """--annotator spacy's path, with a stand-in component (no spaCy model needed): the model is
    not asked to annotate at inference, so no annotate example; the component's entities are
    the fuse prompt's English entities."""
    import asyncio

    from tf_prompt.api import build_pipeline, make_client
    from tf_prompt.finetune.data import sentence_examples
    from tf_prompt.settings import RunSettings
    from tf_prompt.types import Mention

    class Annotator:
        async def annotate(self, english: str, sentence: Any, trace: Any) -> list[Mention]:
            return [Mention("Zanzibar", "LOC")]

    server.responder = oracle_responder(SENTENCES, LABELS)
    settings = RunSettings(model="gpt-4o-mini", base_url=server.base_url, method="transfusion", combine="none",
                           no_cache=True)

    async def go() -> Any:
        client = make_client(settings)
        try:
            pipeline = build_pipeline(settings, client, SENTENCES[:1], 1)
            pipeline.annotator = Annotator()
            return await sentence_examples(pipeline, SENTENCES[0])
        finally:
            await client.aclose()

    outcome = asyncio.run(go())
    assert [ex.step for ex in outcome.examples] == ["translate", "fuse"]
    fuse = outcome.examples[1]
    assert '"Zanzibar"' in fuse.messages[-1]["content"]
    assert _read_back(fuse.answer, "", "json")[1] == _pairs(gold_mentions(SENTENCES[0], LABELS))
    assert len(server.requests) == 1   # the translation only


def test_the_price_table_is_read_once_before_any_call(server, tmp_path, monkeypatch) -> None:
    """A price file edited (or the package upgraded) during a long run must not fail it at the end,
    after the teacher's replies were paid for: the table is read once, before the first call."""
    from tf_prompt.llm import cost

    real, loads = cost.PriceTable.load, []

    def once(*args: Any, **kwargs: Any) -> Any:
        loads.append(len(server.requests))
        if len(loads) > 1:
            raise cost.PriceError("prices.json: edited during the run")
        return real(*args, **kwargs)

    monkeypatch.setattr(cost.PriceTable, "load", staticmethod(once))
    out, summary = _make(server, tmp_path, "--method", "transfusion")
    assert loads == [0] and server.requests   # read before the first request, and only then
    assert (out / "train.jsonl").is_file() and summary["training_cost_usd"] is not None


def test_the_printed_run_command_asks_the_prompts_the_model_was_trained_on(server, tmp_path) -> None:
    """The `run it:` line of finetune must render the same prompts as the examples: every setting
    finetune-data rendered them with (few-shot examples, combination rule, language, labels...)
    has to be in it, or the tuned model is measured on prompts it never saw."""
    import shlex

    from tf_prompt.cli import _settings, build_parser
    from tf_prompt.finetune.cli import run_command

    flags = ["--shots", "2", "--shots-from", str(sample_path()), "--combine", "none", "--no-pivot-check",
             "--lang", "hau", "--labels", "PER,LOC", "--no-checks"]
    out, summary = _make(server, tmp_path, *flags)
    argv = shlex.split(run_command("ft:gpt-4o-mini:x", summary, server.base_url, None))
    assert argv[:2] == ["tf-prompt", "run"]
    ran = _settings(build_parser().parse_args(argv[1:]))
    trained = _settings(build_parser().parse_args(["finetune-data", "--out", str(out), *flags]))
    for field in ("method", "style", "combine", "checks", "pivot_check", "language", "labels", "shots",
                  "shots_from", "schema_spec", "prompts", "translator", "annotator"):
        assert getattr(ran, field) == getattr(trained, field), field


def test_an_out_that_is_a_file_or_cannot_be_written_is_one_line(server, tmp_path, capsys, monkeypatch) -> None:
    """--out naming a file is refused before any teacher call; a full disk at the end is one line."""
    import errno

    from tf_prompt.finetune import data as data_module

    a_file = tmp_path / "afile"
    a_file.write_text("x", encoding="utf-8")
    server.responder = oracle_responder(SENTENCES, LABELS)
    base = ["finetune-data", "--model", "gpt-4o-mini", "--base-url", server.base_url]
    assert main([*base, "--out", str(a_file)]) == 2
    line = _one_error_line(capsys)
    assert f"--out {a_file}" in line and "not a folder" in line
    assert not server.requests

    def no_space(*args: Any, **kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data_module, "write_text", no_space)
    assert main([*base, "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert f"--out {tmp_path / 'o'}" in line and "No space left" in line


def test_the_data_of_a_running_finetune_is_not_rewritten(server, tmp_path, capsys) -> None:
    """While `tf-prompt finetune` works on a folder (it holds the folder's lock), finetune-data into
    that folder must not replace the train.jsonl it uploads or trains on."""
    from tf_prompt.util.folderlock import exclusive

    out, _ = _make(server, tmp_path)
    before = (out / "train.jsonl").read_bytes()
    capsys.readouterr()
    with exclusive(out):   # what a running finetune --provider openai holds
        code = main(["finetune-data", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--out", str(out),
                     "--method", "direct", "--validation-share", "0.3"])
        line = _one_error_line(capsys)
    assert code == 2 and f"--out {out}" in line and "another tf-prompt" in line
    assert (out / "train.jsonl").read_bytes() == before
