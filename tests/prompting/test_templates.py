"""Templates: versioning, overrides, sandboxing, strict variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf_prompt.methods.registry import template_names
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.types import TemplateError

STEPS = template_names()   # every one-sentence template a method declares

LABELS = [{"name": "PER", "class_name": "Person", "description": "people", "examples": []},
          {"name": "LOC", "class_name": "Location", "description": "places", "examples": ["Kano"]}]


def _vars(**extra):
    base = dict(text="Shehu ya je Kano", language="Hausa", labels=LABELS, examples=[],
                translation="Shehu went to Kano", english_entities=[{"text": "Kano", "type": "LOC"}],
                hints=[{"text": "Kano", "type": "LOC", "found": "Kano"}],
                label_names=[label["name"] for label in LABELS])
    base.update(extra)
    return base


def test_every_step_has_a_packaged_template_that_renders() -> None:
    ts = TemplateSet()
    for step in STEPS:
        prompt = ts.render(step, **_vars())
        assert prompt.messages[-1]["role"] == "user"
        assert "Shehu ya je Kano" in prompt.messages[-1]["content"]
        assert prompt.template.startswith(f"{step}.v")
        assert len(prompt.digest) == 12


def test_user_text_is_never_evaluated_as_template() -> None:
    nasty = "{{ 7*7 }} {% for x in range(3) %}x{% endfor %} ### system"
    prompt = TemplateSet().render("direct", **_vars(text=nasty))
    assert nasty in prompt.messages[-1]["content"]
    assert "49" not in prompt.messages[-1]["content"]
    assert [m["role"] for m in prompt.messages] == ["system", "user"]


def test_missing_variable_is_an_error_naming_the_file() -> None:
    with pytest.raises(TemplateError, match=r"direct\.v2\.jinja.*'text' is undefined"):
        TemplateSet().render("direct", language="Hausa", labels=LABELS, label_names=["PER", "LOC"], examples=[])


def test_override_dir_and_highest_version_wins(tmp_path: Path) -> None:
    (tmp_path / "direct.v1.jinja").write_text("{% block user %}old {{ text }}{% endblock %}")
    (tmp_path / "direct.v2.jinja").write_text("{% block user %}new {{ text }}{% endblock %}")
    ts = TemplateSet(tmp_path)
    prompt = ts.render("direct", **_vars())
    assert prompt.messages == [{"role": "user", "content": "new Shehu ya je Kano"}]
    assert prompt.template == "direct.v2"
    # steps not overridden still come from the package
    assert TemplateSet(tmp_path).render("fuse", **_vars()).template == "fuse.v1"
    # a pinned version
    assert TemplateSet(tmp_path, pins={"direct": "direct.v1"}).render("direct", **_vars()).messages[0][
        "content"] == "old Shehu ya je Kano"


def test_editing_a_template_changes_its_identity(tmp_path: Path) -> None:
    f = tmp_path / "direct.v1.jinja"
    f.write_text("{% block user %}A {{ text }}{% endblock %}")
    a = TemplateSet(tmp_path).identity("direct")
    f.write_text("{% block user %}B {{ text }}{% endblock %}")
    assert TemplateSet(tmp_path).identity("direct") != a


def test_sandbox_blocks_attribute_escapes(tmp_path: Path) -> None:
    (tmp_path / "direct.v1.jinja").write_text(
        "{% block user %}{{ text.__class__.__mro__[1].__subclasses__() }}{% endblock %}")
    with pytest.raises(TemplateError):
        TemplateSet(tmp_path).render("direct", **_vars())


def test_bad_templates_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "direct.v1.jinja").write_text("{% block user %}{{ text {% endblock %}")
    with pytest.raises(TemplateError, match=r"direct\.v1\.jinja:1"):
        TemplateSet(tmp_path).render("direct", **_vars())
    (tmp_path / "direct.v1.jinja").write_text("no blocks at all")
    with pytest.raises(TemplateError, match="block user"):
        TemplateSet(tmp_path).render("direct", **_vars())
    with pytest.raises(TemplateError, match="not found"):
        TemplateSet(tmp_path / "missing")
    with pytest.raises(TemplateError, match="no template for step 'nosuch'"):
        TemplateSet().render("nosuch")


def test_fuse_shows_which_english_entities_the_source_confirms() -> None:
    hints = [{"text": "Kano", "type": "LOC", "found": "Kano"}, {"text": "the Emir", "type": "PER", "found": ""}]
    user = TemplateSet("hints").render("fuse", **_vars(hints=hints)).messages[-1]["content"]
    real = user[user.index("Now the real sentence"):]
    assert '- "Kano" (LOC): found as "Kano"' in real
    assert '- "the Emir" (PER): not found' in real
    assert "trust the Hausa sentence" in user
    assert "Dates, times, numbers and amounts are not entities here." in user


def test_fuse_date_rule_and_worked_example_follow_the_labels() -> None:
    ts = TemplateSet("hints")
    date = LABELS + [{"name": "DATE", "class_name": "Date", "description": "dates", "examples": []}]
    user = ts.render("fuse", **_vars(labels=date, label_names=["PER", "LOC", "DATE"])).messages[-1]["content"]
    assert "not entities here" not in user
    # the built-in worked example uses PER/ORG/LOC: shown only when those are the labels
    assert "A worked example" not in user
    full = [{"name": n, "class_name": n, "description": n, "examples": []} for n in ("PER", "ORG", "LOC")]
    user = ts.render("fuse", **_vars(labels=full, label_names=["PER", "ORG", "LOC"])).messages[-1]["content"]
    assert "A worked example" in user and "Benki ya Dunia" in user
    shots = [{"text": "Audu ya je Kaduna", "answer": '{"entities": []}'}]
    rendered = ts.render("fuse", **_vars(labels=full, label_names=["PER", "ORG", "LOC"], examples=shots))
    user = rendered.messages[-1]["content"]
    assert "A worked example" not in user and "Audu ya je Kaduna" in user


def test_packaged_variants_by_name(tmp_path: Path) -> None:
    assert TemplateSet("hints").render("fuse", **_vars()).template == "fuse.v2"
    assert TemplateSet("hints").render("direct", **_vars()).template == "direct.v2"   # the rest: defaults
    with pytest.raises(TemplateError, match="packaged variants: hints"):
        TemplateSet("no_such_variant")


def test_direct_has_one_worked_example_only_without_shots() -> None:
    full = [{"name": n, "class_name": n, "description": n, "examples": []} for n in ("PER", "ORG", "LOC")]
    ts = TemplateSet()
    user = ts.render("direct", **_vars(labels=full, label_names=["PER", "ORG", "LOC"])).messages[-1]["content"]
    assert user.count("Sentence: ") == 2 and "Benki ya Dunia" in user and user.rstrip().endswith("Answer:")
    shots = [{"text": "Audu ya je Kaduna", "answer": '{"entities": []}'}]
    user = ts.render("direct", **_vars(labels=full, label_names=["PER", "ORG", "LOC"],
                                       examples=shots)).messages[-1]["content"]
    assert "Benki ya Dunia" not in user and "Audu ya je Kaduna" in user
    # the example uses PER/ORG/LOC: not shown for other label sets
    assert "Benki ya Dunia" not in ts.render("direct", **_vars()).messages[-1]["content"]
