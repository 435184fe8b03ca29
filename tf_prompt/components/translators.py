"""Translators that do not ask the LLM: precomputed translations and local MT models.

The pivot methods only need *some* English version of each sentence. Taking it from a file or a
dedicated MT model (NLLB, M2M100) instead of the LLM separates two questions the paper mixes:
how much of TransFusion's gain comes from the translation, and how much from the fusion step.
Both classes follow `pipeline.Translator` and record their identity in the trace, so a trace line
says which translator produced its translation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tf_prompt.data.conll import DataError, Sentence, physical_lines
from tf_prompt.data.languages import NAMES
from tf_prompt.types import Trace

__all__ = [
    "M2M100_CODES",
    "NLLB_CODES",
    "ComponentError",
    "FileTranslator",
    "HFTranslator",
    "nllb_code",
]


class ComponentError(ValueError):
    """A translator or annotator cannot be used (missing package, model or language code).

    str() is one line saying what to do, so the CLI can print it like a DataError.
    """


def _sha12(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


# --------------------------------------------------------------------------- file


class FileTranslator:
    """Precomputed translations: one line per sentence, or JSONL when the name ends in .jsonl.

    Plain text: line i is the translation of sentence index i (the dataset's order).
    JSONL: each line is `{"index": i, "translation": ...}` or `{"source": ..., "translation": ...}`;
    with "source" the translation is found by the sentence text, so the file's order (and extra
    lines for other sentences) do not matter.

    Everything is checked when the object is built, so a bad file stops the run before any paid
    call: errors are DataError `path:line: ...`.
    """

    def __init__(self, path: str | Path, expected: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such translations file")
        raw = self.path.read_bytes()
        self._sha = _sha12(raw)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise DataError(f"{self.path}:{line}: not UTF-8") from None
        self.by_index: dict[int, str] = {}
        self.by_source: dict[str, str] = {}
        if self.path.suffix.lower() == ".jsonl":
            self._read_jsonl(text)
        else:
            self._read_lines(text)
        if expected is not None:
            self.check(expected)

    def _read_lines(self, text: str) -> None:
        lines = physical_lines(text)
        while lines and not lines[-1].strip():   # a trailing blank line is only the file's end
            lines.pop()
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                raise DataError(f"{self.path}:{n}: empty translation (sentence {n - 1})")
            self.by_index[n - 1] = line.strip()

    def _read_jsonl(self, text: str) -> None:
        for n, line in enumerate(physical_lines(text), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{self.path}:{n}: invalid JSON: {e.msg}") from None
            if not isinstance(record, dict):
                raise DataError(f"{self.path}:{n}: expected an object with 'translation'")
            translation = record.get("translation")
            if not isinstance(translation, str) or not translation.strip():
                raise DataError(f"{self.path}:{n}: missing or empty 'translation'")
            if isinstance(record.get("source"), str):
                key = _norm(record["source"])
                if key in self.by_source and self.by_source[key] != translation.strip():
                    raise DataError(f"{self.path}:{n}: two different translations for the same source")
                self.by_source[key] = translation.strip()
            elif isinstance(record.get("index"), int) and not isinstance(record.get("index"), bool):
                i = record["index"]
                if i < 0 or i in self.by_index:
                    raise DataError(f"{self.path}:{n}: {'duplicate' if i >= 0 else 'negative'} index {i}")
                self.by_index[i] = translation.strip()
            else:
                raise DataError(f"{self.path}:{n}: needs an integer 'index' or a 'source' string")

    def check(self, expected: int | None, sentences: Sequence[Sentence] | None = None) -> None:
        """Fail unless every sentence has a translation (by index, or by source text if given).

        `expected` is the number of sentences in the data, or None when it is unknown because
        `--limit` stopped reading early: then every sentence read must have its translation, and
        extra lines are expected (they belong to the sentences not read).
        """
        if self.by_source and sentences is not None:
            missing = [s for s in sentences if self._lookup(s) is None]
            if missing:
                raise DataError(f"{self.path}: no translation for {len(missing)} of {len(sentences)} "
                                f"sentences (first: {missing[0].text[:60]!r})")
            return
        if self.by_source and not self.by_index:
            return   # looked up by text: only the sentences themselves can say what is missing
        if expected is None:
            if sentences is None:
                raise ValueError("FileTranslator.check needs the sentences when their number is unknown")
            missing_idx = [s.index for s in sentences if s.index not in self.by_index]
            if missing_idx:
                raise DataError(f"{self.path}: {len(sentences) - len(missing_idx)} translations for the "
                                f"{len(sentences)} sentences read (first missing: sentence {missing_idx[0]})")
            return
        have = sum(1 for i in range(expected) if i in self.by_index)
        if len(self.by_index) > have:   # lines beyond the data: almost surely the wrong file
            raise DataError(f"{self.path}: {len(self.by_index)} translations for {expected} sentences")
        if have < expected:
            first = next(i for i in range(expected) if i not in self.by_index)
            raise DataError(f"{self.path}: {have} translations for {expected} sentences "
                            f"(first missing: sentence {first})")

    def translation_of(self, sentence: Sentence) -> str | None:
        """The file's translation of `sentence` (None if it has none): what the annotate step will
        be given, so `--annotator file:` can check its entities against it before any call."""
        return self._lookup(sentence)

    def _lookup(self, sentence: Sentence) -> str | None:
        if self.by_source:
            found = self.by_source.get(_norm(sentence.text))
            if found is not None:
                return found
        return self.by_index.get(sentence.index)

    def identity(self) -> str:
        return f"file:{self.path.name}@{self._sha}"

    async def translate(self, sentence: Sentence, trace: Trace) -> str | None:
        trace.templates["translate"] = self.identity()
        found = self._lookup(sentence)
        if found is None:
            trace.errors["translate"] = f"{self.path}: no translation for sentence {sentence.index}"
        return found


def _norm(text: str) -> str:
    """Whitespace-insensitive key: tokenized datasets and raw sources differ in spacing."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- MT models

#: ISO 639-3 (as used by MasakhaNER 2.0 and this project) -> NLLB-200 code. NLLB-200 has no
#: Ghomala (bbj) or Nigerian Pidgin (pcm); Swahili is "swh" (individual language) in NLLB.
NLLB_CODES: dict[str, str | None] = {
    "bam": "bam_Latn", "bbj": None, "ewe": "ewe_Latn", "fon": "fon_Latn", "hau": "hau_Latn",
    "ibo": "ibo_Latn", "kin": "kin_Latn", "lug": "lug_Latn", "luo": "luo_Latn", "mos": "mos_Latn",
    "nya": "nya_Latn", "pcm": None, "sna": "sna_Latn", "swa": "swh_Latn", "tsn": "tsn_Latn",
    "twi": "twi_Latn", "wol": "wol_Latn", "xho": "xho_Latn", "yor": "yor_Latn", "zul": "zul_Latn",
    "amh": "amh_Ethi", "eng": "eng_Latn", "fra": "fra_Latn",
}

#: ISO 639-3 -> M2M100 code, for the MasakhaNER languages M2M100 covers (the others are absent).
M2M100_CODES: dict[str, str] = {
    "hau": "ha", "ibo": "ig", "lug": "lg", "swa": "sw", "swh": "sw", "tsn": "tn", "wol": "wo",
    "xho": "xh", "yor": "yo", "zul": "zu", "amh": "am", "eng": "en", "fra": "fr",
}


def _iso3(lang: str) -> str:
    """'Hausa' -> 'hau': run settings may hold the language's display name rather than its code."""
    by_name = {name.lower(): code for code, name in NAMES.items()}
    return by_name.get(lang.lower(), lang.lower())


def nllb_code(lang: str) -> str:
    """An NLLB code for `lang` (ISO 639-3 like 'hau', a name like 'Hausa', or already 'hau_Latn')."""
    if "_" in lang:
        return lang
    key = _iso3(lang)
    if key not in NLLB_CODES:
        raise ComponentError(f"no NLLB language code known for {lang!r}: pass one such as 'hau_Latn'")
    code = NLLB_CODES[key]
    if code is None:
        raise ComponentError(f"NLLB-200 does not cover {lang!r}; use --translator llm or file:PATH "
                             f"for this language")
    return code


def _m2m_code(lang: str) -> str:
    base = _iso3(lang.split("_")[0])
    if base in M2M100_CODES:
        return M2M100_CODES[base]
    if base not in NLLB_CODES and "_" not in lang:
        return base   # taken as an M2M code already ('ha', 'ceb'); checked against the tokenizer
    raise ComponentError(f"M2M100 does not cover {lang!r}; use --translator llm or file:PATH")


def _dir_fingerprint(model_dir: Path) -> str:
    """Hash of config and weight file names/sizes: cheap, and changes when the model does."""
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for p in sorted(model_dir.iterdir()):
        if p.suffix in {".safetensors", ".bin"}:
            h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:12]


class HFTranslator:
    """A local Hugging Face seq2seq MT model (NLLB, M2M100, or a plain model such as Marian).

    The model is loaded once, on first use or by `load()` (call it before a run to fail early).
    Generation runs in a worker thread so the event loop keeps serving LLM calls; requests that
    arrive while a batch is being translated are collected into the next batch (up to
    `batch_size`), which is what makes a 2-core CPU usable. For NLLB/M2M100, `src_lang` and
    `tgt_lang` become language tokens; models without language tokens ignore them.
    Greedy decoding unless the model's generation_config says otherwise, so runs repeat.
    """

    def __init__(self, model_dir: str | Path, src_lang: str, tgt_lang: str = "eng_Latn", *,
                 batch_size: int = 8, max_new_tokens: int = 256, device: str = "cpu"):
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise ComponentError(f"{self.model_dir}: not a Hugging Face model directory (no config.json); "
                                 f"models are not downloaded, pass a local folder")
        self.src_lang = src_lang
        self.tgt_lang = tgt_lang
        self.batch_size = max(1, batch_size)
        self.max_new_tokens = max_new_tokens
        self.device = device
        self._fingerprint = _dir_fingerprint(self.model_dir)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, dict[str, Any]] | None = None
        self.kind = ""             # "nllb", "m2m100" or "plain", known after load()
        self._codes: tuple[str, str] | None = None
        self._pending: list[tuple[str, asyncio.Future[str]]] = []
        self._worker: asyncio.Task[None] | None = None

    def identity(self) -> str:
        # The languages as given, not as resolved at load time, so the identity is stable.
        return f"mt:{self.model_dir.name}@{self._fingerprint}:{self.src_lang}->{self.tgt_lang}"

    def load(self) -> None:
        """Load tokenizer and model (once; thread-safe). Raises ComponentError on any failure."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()

    def _load(self) -> tuple[Any, Any, dict[str, Any]]:
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError as e:
            raise ComponentError(f"--translator mt needs torch and transformers ({e.name} is missing): "
                                 f"pip install torch transformers sentencepiece") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            model = AutoModelForSeq2SeqLM.from_pretrained(str(self.model_dir), local_files_only=True)
        except Exception as e:  # transformers raises many kinds; the user needs one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ComponentError(f"{self.model_dir}: cannot load as a seq2seq MT model: {first}") from None
        model.to(self.device).eval()
        gen: dict[str, Any] = {"max_new_tokens": self.max_new_tokens}
        if hasattr(tokenizer, "get_lang_id"):              # M2M100: '__ha__' tokens
            self.kind = "m2m100"
            src, tgt = _m2m_code(self.src_lang), _m2m_code(self.tgt_lang)
            for code in (src, tgt):
                if code not in getattr(tokenizer, "lang_code_to_id", {}):
                    raise ComponentError(f"{self.model_dir}: the model has no language code {code!r}")
            tokenizer.src_lang = src
            gen["forced_bos_token_id"] = tokenizer.get_lang_id(tgt)
        elif self._has_token(tokenizer, nllb_code(self.tgt_lang)):   # NLLB: 'hau_Latn' tokens
            self.kind = "nllb"
            src, tgt = nllb_code(self.src_lang), nllb_code(self.tgt_lang)
            if not self._has_token(tokenizer, src):
                raise ComponentError(f"{self.model_dir}: the model has no language code {src!r}")
            tokenizer.src_lang = src
            gen["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(tgt)
        else:
            self.kind = "plain"
            src, tgt = self.src_lang, self.tgt_lang
        self._codes = (src, tgt)
        return tokenizer, model, gen

    @staticmethod
    def _has_token(tokenizer: Any, token: str) -> bool:
        tid = tokenizer.convert_tokens_to_ids(token)
        return tid is not None and tid != tokenizer.unk_token_id

    def translate_batch(self, texts: Sequence[str]) -> list[str]:
        """Translate synchronously (used by the worker thread; handy in scripts too)."""
        import torch

        self.load()
        assert self._loaded is not None
        tokenizer, model, gen = self._loaded
        with self._lock, torch.inference_mode():
            out: list[str] = []
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start:start + self.batch_size])
                enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True).to(self.device)
                ids = model.generate(**enc, do_sample=False, **gen)
                out += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out

    async def translate(self, sentence: Sentence, trace: Trace) -> str | None:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((sentence.text, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        english = await future
        trace.templates["translate"] = self.identity()
        if not english:
            trace.parse_failures["translate"] = "the MT model produced an empty translation"
            return None
        return english

    async def _drain(self) -> None:
        """Translate pending requests batch by batch until none are left."""
        await asyncio.sleep(0)   # let requests issued in the same tick join the first batch
        while self._pending:
            batch, self._pending = self._pending[:self.batch_size], self._pending[self.batch_size:]
            try:
                results = await asyncio.to_thread(self.translate_batch, [text for text, _ in batch])
            except BaseException as e:
                for _, fut in batch + self._pending:
                    if not fut.done():
                        fut.set_exception(e if isinstance(e, Exception) else RuntimeError("cancelled"))
                self._pending = []
                if not isinstance(e, Exception):
                    raise
                return
            for (_, fut), english in zip(batch, results, strict=False):
                if not fut.done():
                    fut.set_result(english)
