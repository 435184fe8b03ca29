"""Map the type names models write ('Person', 'B-PER', 'locations') onto a schema's labels.

Shared by every reader: a reply's raw type names are resolved here, once per distinct
spelling, so scoring sees the schema's exact names.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# Keys are in `_label_key` form (upper case, spaces/hyphens -> "_").
_BUILTIN_ALIASES: dict[str, str] = {
    "PERSON": "PER",
    "PEOPLE": "PER",
    "PERS": "PER",
    "ORGANIZATION": "ORG",
    "ORGANISATION": "ORG",
    "ORGANIZATIONS": "ORG",
    "LOCATION": "LOC",
    "PLACE": "LOC",
    "GPE": "LOC",
    "LOCATIONS": "LOC",
    "TIME": "DATE",
    "DATE_TIME": "DATE",
}

# Decoration models put around a type name: quotes, brackets, markdown emphasis, punctuation.
_LABEL_STRIP = "\"'`“”‘’«»„[]()<>{}*_ \t\r\n:.,;"


def _label_key(raw: str) -> str:
    """Comparable form of a type name, so 'date time', 'Date-Time' and 'DATE_TIME' meet."""
    return re.sub(r"[\s\-]+", "_", raw.strip(_LABEL_STRIP)).upper()


def _singulars(key: str) -> Iterator[str]:
    """Plural-stripped guesses ('ORGS' -> 'ORG', 'DATES' -> 'DATE'); short keys are left alone."""
    if len(key) <= 3:
        return
    if key.endswith("IES"):
        yield key[:-3] + "Y"
    if key.endswith("S"):
        yield key[:-1]
    if key.endswith("ES"):
        yield key[:-2]


def _label_candidates(raw: str) -> list[str]:
    """Keys to try for one raw type name, most literal first."""
    cleaned = raw.strip(_LABEL_STRIP)
    bases = [_label_key(cleaned), _label_key(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", cleaned))]
    out: list[str] = []
    for base in bases:
        forms = [base]
        prefixed = re.match(r"^[BI]_(.+)$", base)
        if prefixed:
            forms.append(prefixed.group(1))
        for form in forms:
            for cand in (form, *_singulars(form)):
                if cand and cand not in out:
                    out.append(cand)
    return out


def label_resolver(labels: Sequence[str], aliases: Mapping[str, str] | None) -> LabelResolver:
    """A resolver shared by every reply of a run (its tables and answers are the same)."""
    try:
        key = (tuple(labels), tuple(sorted((aliases or {}).items())))
        return _resolver_cached(key)
    except TypeError:  # unhashable or unsortable input: build one for this reply
        return LabelResolver(labels, aliases)


@functools.lru_cache(maxsize=64)
def _resolver_cached(key: tuple[tuple[str, ...], tuple[tuple[str, str], ...]]) -> LabelResolver:
    return LabelResolver(key[0], dict(key[1]))


class LabelResolver:
    """normalize_label with the schema tables built once per reply, and answers cached."""

    # Any: schemas come from user files, so entries that are not strings are skipped, not trusted.
    def __init__(self, labels: Sequence[Any], aliases: Mapping[Any, Any] | None) -> None:
        self._by_key: dict[str, str] = {}
        for label in labels:
            if isinstance(label, str) and _label_key(label):
                self._by_key.setdefault(_label_key(label), label)
        self._user: dict[str, str] = {}
        for src, dst in (aliases or {}).items():
            if isinstance(src, str) and isinstance(dst, str) and _label_key(src):
                self._user.setdefault(_label_key(src), dst)
        self._canonical: dict[str, str] = {}
        for key, label in self._by_key.items():
            self._canonical.setdefault(_BUILTIN_ALIASES.get(key, key), label)
        self._cache: dict[str, str | None] = {}

    def __call__(self, raw: Any) -> str | None:
        if not isinstance(raw, str):
            return None
        if raw not in self._cache:
            self._cache[raw] = self._resolve(raw)
        return self._cache[raw]

    def _resolve(self, raw: str) -> str | None:
        cands = _label_candidates(raw)
        # User aliases win over everything, then the schema's own names, then built-ins.
        for cand in cands:
            target = self._user.get(cand)
            if target is not None and _label_key(target) in self._by_key:
                return self._by_key[_label_key(target)]
        for cand in cands:
            if cand in self._by_key:
                return self._by_key[cand]
        for cand in cands:
            hit = self._canonical.get(_BUILTIN_ALIASES.get(cand, cand))
            if hit is not None:
                return hit
        return None


def normalize_label(raw: str, labels: Sequence[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """Map a model's type name onto one of `labels` (returned as spelled there), or None.

    Models say 'Person', 'B-PER', '"ORGANISATION"' or 'locations' for the same
    schema type; scoring needs the schema's exact name. `aliases` come from a
    user schema and take precedence over the schema names and built-in aliases.
    """
    return LabelResolver(labels, aliases)(raw)
