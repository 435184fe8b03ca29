"""Label schemas: which entity types to extract, and the guideline the model sees for each.

Guidelines matter more for low-resource languages than for English: the model cannot lean on
memorised conventions, so each label says what counts and what does not. A schema is data
(a built-in one, or a user's YAML/JSON file), never code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from tf_prompt.util.validation import first_problem


class SchemaError(ValueError):
    """A schema file or label selection is wrong; str() is one line naming the file."""


class Label(BaseModel):
    """One entity type: its tag name (as in the CoNLL file), a definition and optional examples."""

    name: str
    description: str = ""
    examples: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _tag_safe(cls, v: str) -> str:
        v = v.strip()
        if not v or any(c.isspace() for c in v) or v.startswith(("B-", "I-")) or v == "O":
            raise ValueError(f"invalid label name {v!r}: a CoNLL type without spaces, not 'O' or a B-/I- tag")
        return v


class Schema(BaseModel):
    """An ordered set of labels plus aliases that map what models say ("Person") to a label ("PER")."""

    name: str = "custom"
    labels: list[Label]
    aliases: dict[str, str] = Field(default_factory=dict)
    #: Words that precede a person's name but are not part of its PER span in this annotation
    #: scheme (titles, honorifics); stripped from predicted PER spans (checks.strip_titles).
    titles: list[str] = Field(default_factory=list)
    #: Generic words that belong to the span of the name they precede, per type ("jihar" in
    #: "jihar Kano" LOC); added to predicted spans that stop just after them (checks.add_prefixes).
    prefixes: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[Label]) -> list[Label]:
        names = [label.name for label in labels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"label {twice[0]!r} is defined twice: give each label once")
        return labels

    @property
    def prefix_sets(self) -> Mapping[str, frozenset[str]]:
        """The generic words per type, casefolded. Read on every checked answer, so built once
        per distinct word list (keyed by content, so an edited or copied schema is never stale)."""
        return _prefix_sets(tuple((label, tuple(words)) for label, words in self.prefixes.items()))

    @property
    def title_set(self) -> frozenset[str]:
        """The title words, casefolded without a final dot (built once per distinct list)."""
        return _title_set(tuple(self.titles))

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def select(self, names: Sequence[str] | None) -> Schema:
        """The sub-schema with only `names` (e.g. MasakhaNER without DATE, as the paper scores it)."""
        if not names:
            return self
        # each label once: `--labels PER,per` is PER (a second PER would be listed twice in every
        # prompt and be a duplicate value of a constrained answer's type enum)
        wanted = list(dict.fromkeys(n.strip().upper() for n in names if n.strip()))
        by_name = {label.name.upper(): label for label in self.labels}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise SchemaError(
                f"unknown label(s) {', '.join(unknown)} for schema {self.name!r}; "
                f"choose from {', '.join(self.names)}"
            )
        chosen = [by_name[n] for n in wanted]
        kept = {label.name for label in chosen}
        return Schema(
            name=self.name,
            labels=chosen,
            aliases={k: v for k, v in self.aliases.items() if v in kept},
            titles=self.titles,
            prefixes={k: v for k, v in self.prefixes.items() if k in kept},
        )


@lru_cache(maxsize=64)
def _prefix_sets(prefixes: tuple[tuple[str, tuple[str, ...]], ...]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({label: frozenset(w.casefold() for w in words) for label, words in prefixes})


@lru_cache(maxsize=64)
def _title_set(titles: tuple[str, ...]) -> frozenset[str]:
    return frozenset(t.rstrip(".").casefold() for t in titles)


def _conventions() -> dict:
    """MasakhaNER's span conventions, derived from its dev splits (benchmarks/derive_conventions.py)."""
    path = resources.files("tf_prompt.resources").joinpath("masakhaner_conventions.json")
    return json.loads(path.read_text(encoding="utf-8"))


_MASAKHANER_CONVENTIONS = _conventions()

MASAKHANER = Schema(
    name="masakhaner",
    labels=[
        Label(
            name="PER",
            description=(
                "Names of people, including family names and nicknames. Include a title only when it "
                "is written as part of the name (e.g. 'Alhaji Aliko Dangote'); do not tag pronouns, "
                "job titles alone ('the president') or names of groups of people."
            ),
            examples=["Shehu Gusau", "Muhammadu Buhari", "Wole Soyinka"],
        ),
        Label(
            name="ORG",
            description=(
                "Named organisations: companies, government bodies, ministries, political parties, "
                "sports clubs, media outlets, universities, NGOs and international bodies (e.g. "
                "'Hukumar Zabe', 'Bunge la Tanzania', 'FIFA'). A place inside an organisation's name "
                "is part of the ORG, not a separate LOC."
            ),
            examples=["FIFA", "Kano Pillars", "Bunge la Tanzania"],
        ),
        Label(
            name="LOC",
            description=(
                "Named places: countries, states, cities, towns, villages, regions, rivers, "
                "mountains and named buildings or facilities. Do not tag common nouns such as "
                "'the capital' or 'the village'."
            ),
            examples=["Kano", "Dar es Salaam", "Ọ̀yọ́"],
        ),
        Label(
            name="DATE",
            description=(
                "Explicit dates and periods: days, months, years, and expressions like "
                "'last week' or '10 March 2020' written in the sentence. Do not tag times of day."
            ),
            examples=["2019", "Jumatatu", "10 ga Maris"],
        ),
    ],
    aliases={
        "PERSON": "PER", "PEOPLE": "PER", "ORGANIZATION": "ORG", "ORGANISATION": "ORG",
        "LOCATION": "LOC", "GPE": "LOC", "PLACE": "LOC", "TIME": "DATE",
    },
    titles=_MASAKHANER_CONVENTIONS["titles"],
    prefixes=_MASAKHANER_CONVENTIONS["prefixes"],
)

BUILTIN: dict[str, Schema] = {"masakhaner": MASAKHANER}


def load_schema(path: str | Path) -> Schema:
    """Read a user schema from YAML or JSON: `{name?, labels: [{name, description, examples}], aliases?}`.

    A bare list of labels, or a mapping `{LABEL: description}`, is accepted too, because that is
    what people write first.
    """
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{p}: no such schema file")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise SchemaError(f"{p}:{e.lineno}: invalid JSON: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise SchemaError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    if isinstance(data, list):
        data = {"labels": data}
    elif isinstance(data, dict) and "labels" not in data:
        data = {"labels": [{"name": k, "description": v or ""} for k, v in data.items()]}
    if not isinstance(data, dict):
        raise SchemaError(f"{p}: expected a mapping with 'labels'")
    data.setdefault("name", p.stem)
    try:
        schema = Schema.model_validate(data)
    except ValidationError as e:
        raise SchemaError(f"{p}: {first_problem(e).line()}") from None
    if not schema.labels:
        raise SchemaError(f"{p}: the schema has no labels")
    return schema


def get_schema(spec: str | None = None, labels: Sequence[str] | None = None) -> Schema:
    """A built-in schema by name or a schema file path, restricted to `labels` if given."""
    spec = spec or "masakhaner"
    schema = BUILTIN[spec] if spec in BUILTIN else load_schema(spec)
    return schema.select(labels)
