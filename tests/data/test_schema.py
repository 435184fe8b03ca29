"""Label schemas: built-in MasakhaNER, user files, label subsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf_prompt.data.schema import MASAKHANER, SchemaError, get_schema, load_schema


def test_builtin_and_subset() -> None:
    assert MASAKHANER.names == ["PER", "ORG", "LOC", "DATE"]
    assert all(label.description for label in MASAKHANER.labels)
    sub = get_schema(None, ["per", "ORG", "LOC"])
    assert sub.names == ["PER", "ORG", "LOC"]
    assert "TIME" not in sub.aliases  # alias to DATE dropped with DATE
    with pytest.raises(SchemaError, match=r"unknown label.*MISC"):
        get_schema("masakhaner", ["PER", "MISC"])


def test_yaml_and_json_schemas(tmp_path: Path) -> None:
    y = tmp_path / "s.yaml"
    y.write_text("labels:\n  - name: DRUG\n    description: medicines\n    examples: [aspirin]\n"
                 "aliases:\n  medication: DRUG\n")
    s = load_schema(y)
    assert s.names == ["DRUG"] and s.labels[0].examples == ["aspirin"] and s.name == "s"
    j = tmp_path / "s.json"
    j.write_text('{"PER": "people", "LOC": "places"}')
    assert load_schema(j).names == ["PER", "LOC"]


def test_schema_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("labels:\n  - name: [unclosed\n")
    with pytest.raises(SchemaError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_schema(bad)
    bad.write_text("labels:\n  - description: no name\n")
    with pytest.raises(SchemaError, match=r"bad\.yaml: labels\.0\.name"):
        load_schema(bad)
    bad.write_text("labels:\n  - name: B-PER\n")
    with pytest.raises(SchemaError, match="invalid label name"):
        load_schema(bad)
    with pytest.raises(SchemaError, match="no such schema file"):
        load_schema(tmp_path / "nope.yaml")
