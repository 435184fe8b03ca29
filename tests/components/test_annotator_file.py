"""`--annotator file:PATH`: known English entities from a file instead of an annotate call.

The chain it exists for: `project-data` translates labelled English into Hausa and writes the
original English with its gold entities (translations.jsonl); `finetune-data` (or a run) with
`--translator file:` and `--annotator file:` on that file then asks the model nothing but the
fusion, whose prompts carry the gold English entities. Everything runs over the loopback server
with the real openai SDK; the server's request log is what "no call" is checked against.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tf_prompt.components.annotators import FileAnnotator
from tf_prompt.data.conll import DataError, Sentence
from tf_prompt.data.schema import MASAKHANER, Label, Schema
from tf_prompt.experiments.sweep import estimate_sweep, load_config, main_sweep
from tf_prompt.experiments.sweep.plan import cell_fingerprint
from tf_prompt.methods.templates import templates_of
from tf_prompt.parsing import parse_entities
from tf_prompt.settings import RunSettings
from tf_prompt.types import Mention, Trace

ENGLISH_LINE = re.compile(r"^English: (.*)$", re.M)          # project-data's prompt
ENTITIES_LINE = re.compile(r"^English entities: (.*)$", re.M)   # the fuse prompt
TRANSLATION_LINE = re.compile(r"^English translation: (.*)$", re.M)
LABELS = ["PER", "ORG", "LOC"]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def _conll(path: Path, sentences: list[str]) -> Path:
    """'Shehu/B-PER Gusau/I-PER ya/O ...' sentences as a CoNLL file."""
    blocks = []
    for sentence in sentences:
        blocks.append("".join(f"{w.partition('/')[0]} {w.partition('/')[2] or 'O'}\n" for w in sentence.split()))
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _user(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def _only_project(replies: dict[str, str]) -> Callable[[dict[str, Any]], str]:
    """Answers project-data's prompts from a table; any other prompt (a translate or annotate call
    the chain must not make) fails the test."""
    def respond(body: dict[str, Any]) -> str:
        m = ENGLISH_LINE.search(_user(body))
        assert m, f"unexpected call: {_user(body)[-300:]}"
        return replies[m.group(1)]
    return respond


# --------------------------------------------------------------------------- project-data -> finetune-data


def test_project_data_then_finetune_data_asks_nothing_and_fuses_the_gold_english(capsys, server,
                                                                                 tmp_path: Path) -> None:
    english = _conll(tmp_path / "en.txt", [
        "Shehu/B-PER Gusau/I-PER visited/O Kano/B-LOC on/O Monday/B-DATE ./O",
        "The/O United/B-ORG Nations/I-ORG met/O in/O Abuja/B-LOC ./O",
        "Rain/O fell/O ./O",
    ])
    server.responder = _only_project({
        "[Shehu Gusau] visited [Kano] on [Monday].": "[Shehu Gusau] ya ziyarci [Kano] ranar [Litinin].",
        "The [United Nations] met in [Abuja].": "[Majalisar Dinkin Duniya] ta yi taro a [Abuja].",
        "Rain fell.": "Ruwa ya sauka.",
    })
    proj = tmp_path / "proj"
    code, _, err = run_cli(capsys, "project-data", "--english", str(english), "--lang", "hau", "--model",
                           "gpt-4o-mini", "--base-url", server.base_url, "--out", str(proj))
    assert code == 0, err
    assert len(server.requests) == 3
    pairs = proj / "translations.jsonl"
    ft = tmp_path / "ft"
    code, _, err = run_cli(
        capsys, "finetune-data", "--data", str(proj / "projected.conll"), "--lang", "hau", "--method", "transfusion",
        "--translator", f"file:{pairs}", "--annotator", f"file:{pairs}", "--combine", "none",
        "--labels", ",".join(LABELS), "--model", "gpt-4o-mini", "--base-url", server.base_url,
        "--out", str(ft), "--validation-share", "0")
    assert code == 0, err
    assert len(server.requests) == 3   # no translate, no annotate call: only project-data's three
    summary = json.loads((ft / "summary.json").read_text(encoding="utf-8"))
    assert not summary["skipped"] and summary["split"]["train"]["sentences"] == 3
    assert set(summary["by_step"]) == {"fuse"}   # the model answers nothing else at inference either
    assert summary["teacher_usage"]["calls"] == 0 and summary["annotator"] == f"file:{pairs}"

    # the fuse prompts carry the gold English and its gold entities (DATE left out by --labels)
    expected = {
        "Shehu Gusau ya ziyarci Kano ranar Litinin .": (
            "Shehu Gusau visited Kano on Monday.", [{"text": "Shehu Gusau", "type": "PER"},
                                                    {"text": "Kano", "type": "LOC"}],
            [("Kano", "LOC"), ("Shehu Gusau", "PER")]),
        "Majalisar Dinkin Duniya ta yi taro a Abuja .": (
            "The United Nations met in Abuja.", [{"text": "United Nations", "type": "ORG"},
                                                 {"text": "Abuja", "type": "LOC"}],
            [("Abuja", "LOC"), ("Majalisar Dinkin Duniya", "ORG")]),
        "Ruwa ya sauka .": ("Rain fell.", [], []),
    }
    examples = [json.loads(line)["messages"] for line in (ft / "train.jsonl").read_text().splitlines()]
    assert len(examples) == 3
    for messages in examples:
        user = messages[-2]["content"]
        source = next(s for s in expected if f"Hausa sentence: {s}\n" in user)
        translation, english_entities, gold = expected.pop(source)
        t = TRANSLATION_LINE.search(user)
        e = ENTITIES_LINE.search(user)
        assert t and e, user
        assert t.group(1) == translation
        assert json.loads(e.group(1)) == english_entities
        answer = parse_entities(messages[-1]["content"], LABELS).mentions
        assert sorted((m.text, m.label) for m in answer) == gold
    assert not expected

    # with transfusion's default combination rule the direct question is asked at inference, so it
    # has examples too; they are written from the gold, and the teacher is still asked nothing
    code, _, err = run_cli(
        capsys, "finetune-data", "--data", str(proj / "projected.conll"), "--lang", "hau", "--method", "transfusion",
        "--translator", f"file:{pairs}", "--annotator", f"file:{pairs}", "--labels", ",".join(LABELS),
        "--model", "gpt-4o-mini", "--base-url", server.base_url, "--out", str(tmp_path / "ft2"),
        "--validation-share", "0")
    assert code == 0, err
    assert len(server.requests) == 3
    summary = json.loads((tmp_path / "ft2" / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["by_step"]) == {"fuse", "direct"} and summary["teacher_usage"]["calls"] == 0


# --------------------------------------------------------------------------- tf-prompt run


HAUSA = [
    "Shehu/B-PER Gusau/I-PER ya/O ziyarci/O Kano/B-LOC ./O",
    "Majalisar/B-ORG Dinkin/I-ORG Duniya/I-ORG ta/O yi/O taro/O a/O Abuja/B-LOC ./O",
    "Ruwa/O ya/O sauka/O ./O",
]
RECORDS = [
    {"source": "Shehu Gusau ya ziyarci Kano .", "translation": "Shehu Gusau visited Kano.",
     "english_entities": [{"text": "Shehu Gusau", "type": "PER"}, {"text": "Kano", "type": "LOC"}]},
    {"source": "Majalisar Dinkin Duniya ta yi taro a Abuja .", "translation": "The United Nations met in Abuja.",
     "english_entities": [{"text": "United Nations", "type": "ORG"}, {"text": "Abuja", "type": "LOC"}]},
    {"source": "Ruwa ya sauka .", "translation": "Rain fell.", "english_entities": []},
]
#: What the fusing "model" knows: the Hausa name of an English entity (others are written alike).
HAUSA_NAMES = {"United Nations": "Majalisar Dinkin Duniya"}


def _fuser(body: dict[str, Any]) -> str:
    """A model that fuses by carrying each English entity of the prompt over to the source: the
    answer is right only if the prompt holds the right English entities. Any other call fails."""
    m = ENTITIES_LINE.search(_user(body))
    assert m, f"unexpected call: {_user(body)[-300:]}"
    return json.dumps({"entities": [{"text": HAUSA_NAMES.get(e["text"], e["text"]), "type": e["type"]}
                                    for e in json.loads(m.group(1))]})


def _run(capsys, server, data: Path, out: Path, translator: Path, annotator: Path, *extra: str) -> tuple[int, str]:
    code, _, err = run_cli(capsys, "run", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--data", str(data),
                           "--lang", "hau", "--labels", ",".join(LABELS), "--method", "transfusion",
                           "--combine", "none", "--translator", f"file:{translator}",
                           "--annotator", f"file:{annotator}", "--out", str(out), *extra)
    return code, err


def _trace(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "trace.jsonl").read_text(encoding="utf-8").splitlines()]


def test_run_transfusion_with_file_translator_and_annotator(capsys, server, tmp_path: Path) -> None:
    data = _conll(tmp_path / "hau.txt", HAUSA)
    pairs = _jsonl(tmp_path / "pairs.jsonl", list(reversed(RECORDS)))   # found by source, in any order
    server.responder = _fuser
    out = tmp_path / "o"
    code, err = _run(capsys, server, data, out, pairs, pairs)
    assert code == 0, err
    assert len(server.requests) == 3 and all(ENTITIES_LINE.search(_user(r)) for r in server.requests)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["f1"] == 1.0 and metrics["complete"]
    assert set(metrics["usage"]["by_step"]) == {"fuse"}
    assert re.fullmatch(r"file:pairs\.jsonl@[0-9a-f]{12}", metrics["settings"]["annotator"])
    assert list(metrics["settings"]["templates"]) == ["fuse"]
    by_source = {r["source"]: r for r in RECORDS}
    for line in _trace(out):
        record = by_source[line["source"]]
        assert line["translation"] == record["translation"]
        assert line["english_entities"] == record["english_entities"]
        assert line["templates"]["annotate"] == metrics["settings"]["annotator"]
    predictions = (out / "predictions.conll").read_text(encoding="utf-8")

    # the same command again: the cache answers, nothing is sent, the outputs are the same
    code, err = _run(capsys, server, data, out, pairs, pairs)
    assert code == 0, err
    assert len(server.requests) == 3
    assert (out / "predictions.conll").read_text(encoding="utf-8") == predictions

    # an estimate counts the fusion only
    code, stdout, err = run_cli(capsys, "estimate", "--json", "--model", "gpt-4o-mini", "--base-url",
                                server.base_url, "--data", str(data), "--lang", "hau", "--labels", ",".join(LABELS),
                                "--method", "transfusion", "--combine", "none", "--translator", f"file:{pairs}",
                                "--annotator", f"file:{pairs}", "--no-cache")
    assert code == 0, err
    est = json.loads(stdout)
    assert set(est["by_step"]) == {"fuse"} and est["calls"] == 3
    assert len(server.requests) == 3


def test_other_english_entities_make_another_run(capsys, server, tmp_path: Path) -> None:
    """The run folder's identity holds the file's digest: edited entities are another run, refused
    in one line naming the annotator (the translations, in their own file, did not change)."""
    data = _conll(tmp_path / "hau.txt", HAUSA)
    translations = _jsonl(tmp_path / "tr.jsonl", [{k: r[k] for k in ("source", "translation")} for r in RECORDS])
    entities = _jsonl(tmp_path / "ents.jsonl", [{"index": i, "english_entities": r["english_entities"]}
                                                for i, r in enumerate(RECORDS)])
    server.responder = _fuser
    out = tmp_path / "o"
    assert _run(capsys, server, data, out, translations, entities)[0] == 0
    edited = json.loads(json.dumps(RECORDS))
    edited[0]["english_entities"] = [{"text": "Kano", "type": "LOC"}]
    _jsonl(entities, [{"index": i, "english_entities": r["english_entities"]} for i, r in enumerate(edited)])
    sent = len(server.requests)
    code, err = _run(capsys, server, data, out, translations, entities)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "annotator file:ents.jsonl@" in err and "translator" not in err
    assert len(server.requests) == sent
    # the new entities reach the prompt once the folder may be replaced
    code, err = _run(capsys, server, data, out, translations, entities, "--overwrite")
    assert code == 0, err
    assert _trace(out)[0]["english_entities"] == [{"text": "Kano", "type": "LOC"}]
    assert len(server.requests) == sent + 1   # the one fuse prompt that changed; the others are cached
    m = ENTITIES_LINE.search(_user(server.requests[-1]))
    assert m and json.loads(m.group(1)) == [{"text": "Kano", "type": "LOC"}]


def test_sweep_fingerprint_follows_the_files_content(tmp_path: Path) -> None:
    pairs = _jsonl(tmp_path / "pairs.jsonl", RECORDS)
    settings = RunSettings(method="transfusion", translator=f"file:{pairs}", annotator=f"file:{pairs}")
    before = cell_fingerprint(settings)
    assert set(before["component_sha256"]) == {"translator", "annotator"}
    _jsonl(pairs, RECORDS[:2])
    assert cell_fingerprint(settings) != before
    # without a file component the fingerprint has no such key (finished cells keep theirs)
    assert "component_sha256" not in cell_fingerprint(RunSettings(method="transfusion"))


def test_a_finished_sweep_cell_reruns_when_the_entities_change(server, tmp_path: Path) -> None:
    data = _conll(tmp_path / "hau.txt", HAUSA)
    pairs = _jsonl(tmp_path / "pairs.jsonl", RECORDS)
    server.responder = _fuser
    config = tmp_path / "sweep.toml"
    config.write_text(
        f'out = "{tmp_path / "sweep"}"\nlabels = {json.dumps(LABELS)}\nmethods = ["transfusion"]\n'
        f'datasets = [{{data = "{data}", language = "hau"}}]\n'
        f'[[prompts]]\nname = "gold-english"\ncombine = "none"\n'
        f'[[models]]\nname = "m"\nbase_url = "{server.base_url}"\n'
        f'[run]\nmax_retries = 0\ntranslator = "file:{pairs}"\nannotator = "file:{pairs}"\n', encoding="utf-8")
    assert main_sweep([str(config)]) == 0
    assert len(server.requests) == 3 and all(ENTITIES_LINE.search(_user(r)) for r in server.requests)
    assert [e["status"] for e in asyncio.run(estimate_sweep(load_config(config)))] == ["done"]
    edited = json.loads(json.dumps(RECORDS))
    edited[0]["english_entities"] = [{"text": "Kano", "type": "LOC"}]
    _jsonl(pairs, edited)
    assert [e["status"] for e in asyncio.run(estimate_sweep(load_config(config)))] == ["to run"]
    # the cell's run folder holds the other run (its identity has the file's digest, too): as
    # for an edited template, the sweep replaces it when asked to
    assert main_sweep([str(config)]) != 0 and len(server.requests) == 3
    assert main_sweep([str(config), "--overwrite"]) == 0
    assert len(server.requests) == 4   # only the fuse prompt whose English entities changed
    m = ENTITIES_LINE.search(_user(server.requests[-1]))
    assert m and json.loads(m.group(1)) == [{"text": "Kano", "type": "LOC"}]
    assert [e["status"] for e in asyncio.run(estimate_sweep(load_config(config)))] == ["done"]


def test_no_annotate_step_is_declared() -> None:
    settings = RunSettings(method="transfusion", annotator="file:x.jsonl", combine="none")
    assert templates_of(settings) == ["translate", "fuse"]
    assert templates_of(settings.model_copy(update={"method": "translate-test"})) == ["translate"]


# --------------------------------------------------------------------------- bad files


def _bad(records: list[Any] | str) -> str:
    return records if isinstance(records, str) else "".join(json.dumps(r) + "\n" for r in records)


GOOD = [json.dumps(r) for r in RECORDS]


@pytest.mark.parametrize("body, message", [
    ("\n".join([GOOD[0], "{not json", GOOD[2]]) + "\n", r"a\.jsonl:2: invalid JSON"),
    ("\n".join([GOOD[0], "[1, 2]"]) + "\n", r"a\.jsonl:2: expected an object"),
    (_bad([{"source": "Ruwa ya sauka .", "translation": "Rain fell."}]), r"a\.jsonl:1: no 'english_entities' list"),
    (_bad([{"index": 0, "english_entities": [{"type": "PER"}]}]), r"a\.jsonl:1: English entity 1 needs a non-empty"),
    (_bad([{"index": 0, "english_entities": [{"text": "Kano", "type": "MISC"}]}]),
     r"a\.jsonl:1: unknown entity type 'MISC' \(the masakhaner schema has PER, ORG, LOC, DATE; give a --schema"),
    ("\n".join([GOOD[0], GOOD[1], json.dumps({**RECORDS[2], "english_entities": [{"text": "Snow", "type": "LOC"}]})])
     + "\n", r"a\.jsonl:3: English entity 'Snow' is not in the line's translation"),
    ("\n".join([GOOD[0], GOOD[1], json.dumps({**RECORDS[1], "english_entities": []})]) + "\n",
     r"a\.jsonl:3: other English entities for the same source as line 2"),
    (_bad([{"index": 0, "english_entities": []}, {"index": 0, "english_entities": []}]),
     r"a\.jsonl:2: duplicate index 0"),
    (_bad([{"english_entities": []}]), r"a\.jsonl:1: needs an integer 'index' or a 'source' string"),
    ("\n".join(GOOD[:2]) + "\n", r"a\.jsonl: no English entities for 1 of 3 sentences \(first: sentence 2, 'Ruwa"),
    (_bad([{"index": i, "english_entities": []} for i in range(4)]), r"a\.jsonl:4: index 3, but the data has 3"),
    ((GOOD[0] + "\n").encode() + b"\xff\n", r"a\.jsonl:2: not UTF-8"),
])
def test_a_bad_file_is_one_line_before_any_call(capsys, server, tmp_path: Path, body: str | bytes,
                                                message: str) -> None:
    data = _conll(tmp_path / "hau.txt", HAUSA)
    path = tmp_path / "a.jsonl"
    path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    code, err = _run(capsys, server, data, tmp_path / "o", _jsonl(tmp_path / "pairs.jsonl", RECORDS), path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert server.requests == [] and not (tmp_path / "o").exists()


def test_entities_must_be_in_the_translation_the_translator_file_gives(capsys, server, tmp_path: Path) -> None:
    data = _conll(tmp_path / "hau.txt", HAUSA)
    other = json.loads(json.dumps(RECORDS))
    other[1]["translation"] = "The UN met in Abuja."
    translations = _jsonl(tmp_path / "tr.jsonl", other)
    entities = _jsonl(tmp_path / "ents.jsonl", [{"index": i, "english_entities": r["english_entities"]}
                                                for i, r in enumerate(RECORDS)])
    code, err = _run(capsys, server, data, tmp_path / "o", translations, entities)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"ents\.jsonl:2: English entity 'United Nations' is not in the translation "
                     r"--translator file:\S*tr\.jsonl gives for sentence 1", err), err
    assert server.requests == []


@pytest.mark.parametrize("flag, message", [
    ("file:", "unknown annotator 'file:'; use llm, spacy[:MODEL] or file:PATH"),
    ("files:x", "unknown annotator 'files:x'"),
])
def test_the_flag_is_checked(capsys, flag: str, message: str) -> None:
    code, _, err = run_cli(capsys, "run", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--annotator", flag)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_missing_file_is_one_line(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "run", "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                           "--data", str(_conll(tmp_path / "hau.txt", HAUSA)), "--annotator",
                           f"file:{tmp_path / 'none.jsonl'}")
    assert code == 2 and "none.jsonl: no such English entities file" in err


# --------------------------------------------------------------------------- the component


def _annotate(annotator: FileAnnotator, english: str, sentence: Sentence) -> tuple[list[Mention] | None, Trace]:
    trace = Trace(index=sentence.index, source=sentence.text)
    return asyncio.run(annotator.annotate(english, sentence, trace)), trace


def test_types_are_read_like_answers_and_those_left_out_by_labels_are_dropped(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "a.jsonl", [{"index": 0, "translation": "Audu saw Kano on Monday.", "english_entities": [
        {"text": "Audu", "type": "PERSON"}, {"text": "Kano", "type": "gpe"}, {"text": "Monday", "type": "DATE"}]}])
    sentence = Sentence.from_text("Audu ya ga Kano ranar Litinin .", index=0)
    annotator = FileAnnotator(path, MASAKHANER, labels=LABELS)
    mentions, trace = _annotate(annotator, "Audu saw Kano on Monday.", sentence)
    assert mentions == [Mention("Audu", "PER"), Mention("Kano", "LOC")]
    assert json.loads(trace.replies["annotate"])[2] == {"text": "Monday", "type": "DATE"}   # the file's own
    assert trace.templates["annotate"] == annotator.identity()
    with_date = FileAnnotator(path, MASAKHANER)
    assert _annotate(with_date, "Audu saw Kano on Monday.", sentence)[0] == [
        Mention("Audu", "PER"), Mention("Kano", "LOC"), Mention("Monday", "DATE")]


def test_a_schema_with_the_type_accepts_it(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "a.jsonl", [{"index": 0, "english_entities": [
        {"text": "Audu", "type": "PER"}, {"text": "Hausa", "type": "MISC"}]}])
    schema = Schema(name="conll03", labels=[Label(name="PER"), Label(name="MISC")])
    sentence = Sentence.from_text("Audu yana jin Hausa .", index=0)
    assert _annotate(FileAnnotator(path, schema), "Audu speaks Hausa.", sentence)[0] == [
        Mention("Audu", "PER"), Mention("Hausa", "MISC")]
    assert _annotate(FileAnnotator(path, schema, labels=["PER"]), "Audu speaks Hausa.", sentence)[0] == [
        Mention("Audu", "PER")]
    with pytest.raises(DataError, match=r"a\.jsonl:1: unknown entity type 'MISC'"):
        FileAnnotator(path)   # MasakhaNER has no MISC


def test_with_another_translation_only_the_entities_it_contains_are_given(tmp_path: Path) -> None:
    """--translator llm/mt: the English is not known before the run; an entity the model's
    translation does not contain would describe another sentence, so it is not given."""
    path = _jsonl(tmp_path / "a.jsonl", [{"index": 0, "english_entities": [
        {"text": "Shehu Gusau", "type": "PER"}, {"text": "United Nations", "type": "ORG"}]}])
    sentence = Sentence.from_text("Shehu Gusau ya gana da Majalisar Dinkin Duniya .", index=0)
    mentions, trace = _annotate(FileAnnotator(path), "Shehu Gusau met the UN.", sentence)
    assert mentions == [Mention("Shehu Gusau", "PER")]
    assert len(json.loads(trace.replies["annotate"])) == 2
    # a sentence the file lacks (only possible when the check was skipped): no entities, an error
    missing = Sentence.from_text("Ruwa ya sauka .", index=1)
    mentions, trace = _annotate(FileAnnotator(path), "Rain fell.", missing)
    assert mentions is None and "no English entities for sentence 1" in trace.errors["annotate"]


def test_the_check_names_the_first_sentence_without_entities(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "a.jsonl", [{"source": "a b", "english_entities": []}])
    sentences = [Sentence.from_text("a  b", index=0), Sentence.from_text("c", index=1)]
    with pytest.raises(DataError, match=r"no English entities for 1 of 2 sentences \(first: sentence 1, 'c'\)"):
        FileAnnotator(path).check(2, sentences)
    FileAnnotator(path).check(None, sentences[:1])   # whitespace does not matter, as for file: translations
