"""One registry of methods: a method defined and registered outside the package (here, in this
test, with its templates in a --prompts folder) is known to the CLI, settings validation, the
templates a run records, batching and the test oracle, and runs end to end, without any other
module knowing its name. The README's "Adding a method" walks through this same method."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tf_prompt import RunSettings, run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.methods import METHODS, get_method, register, unregister
from tf_prompt.methods.base import Answer, Method, Prompting, Step
from tf_prompt.methods.context import SentenceRun
from tf_prompt.methods.steps import TRANSLATE, translate
from tf_prompt.methods.templates import steps_of, template_identities, templates_of
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.spans.align import locate
from tf_prompt.testing import oracle_responder
from tf_prompt.testing.recognise import recognise, shapes

LABELS = ["PER", "ORG", "LOC", "DATE"]

# --- the new method: what tf_prompt/methods/translate_context.py would hold ----------------------

CONTEXT = Step("fuse", {
    "json": Prompting("fuse_context", "entities", batch_template="batch_fuse_context"),
}, item_vars={"text": "", "translation": ""})


class TranslateContext(Method):
    """TransFusion without the English annotation: the translation alone helps the source NER."""

    name = "translate-context"
    summary = "source --(translate)--> English --(fuse_context: source + English)--> source entities"
    steps = (TRANSLATE, CONTEXT)
    styles = ("json",)

    async def run(self, run: SentenceRun) -> Answer:
        english = await translate(run)
        ctx = run.ctx
        mentions = await run.entities(CONTEXT, text=run.text, language=ctx.language,
                                      translation=english or "(not available)", labels=ctx.label_vars) or []
        return Answer(mentions, locate(run.text, mentions))


# --- its templates: what prompts/fuse_context.v1.jinja and prompts/batch_fuse_context.v1.jinja would hold

FUSE_CONTEXT = """\
{# fuse_context: source + its English translation -> entities of the source. #}
{% block system %}
You are an expert annotator of named entities in {{ language or "multilingual" }} news text.
{% endblock %}
{% block user %}
Find the named entities in a {{ language or "source" }} sentence. Its English translation is given to help you understand it; copy every entity from the {{ language or "source" }} sentence, never from the translation.

Entity types:
{% for label in labels %}
- {{ label.name }}: {{ label.description }}
{% endfor %}

Answer with JSON only, in this form: {"entities": [{"text": "...", "type": "..."}]}.

{{ language or "Source" }} sentence: {{ text }}
English translation: {{ translation }}
Answer:
{% endblock %}
"""

BATCH_FUSE_CONTEXT = """\
{# batch_fuse_context: fuse_context for several numbered items. #}
{% block system %}
You are an expert annotator of named entities in {{ language or "multilingual" }} news text.
{% endblock %}
{% block user %}
Find the named entities in each of the {{ items | length }} numbered {{ language or "source" }} sentences below. Each comes with its English translation to help you understand it; copy every entity from its {{ language or "source" }} sentence.

Entity types:
{% for label in labels %}
- {{ label.name }}: {{ label.description }}
{% endfor %}

Answer with one JSON object with a key for every item number, in this form:
{"1": {"entities": [{"text": "...", "type": "..."}]}, "2": {"entities": []}}
{% for item in items %}

Item {{ item.n }}.
Sentence: {{ item.text }}
English translation: {{ item.translation }}
{% endfor %}
Answer:
{% endblock %}
"""


@pytest.fixture
def prompts(tmp_path: Path) -> Iterator[Path]:
    """The method registered, its templates in a --prompts folder; unregistered afterwards."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "fuse_context.v1.jinja").write_text(FUSE_CONTEXT, encoding="utf-8")
    (folder / "batch_fuse_context.v1.jinja").write_text(BATCH_FUSE_CONTEXT, encoding="utf-8")
    register(TranslateContext())
    try:
        yield folder
    finally:
        unregister("translate-context")


def test_cli_and_settings_know_the_registered_method(prompts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tf_prompt.cli import build_parser

    assert "translate-context" in METHODS and get_method("translate-context").steps[-1] is CONTEXT
    args = build_parser().parse_args(["run", "--method", "translate-context"])
    assert args.method == "translate-context"
    assert RunSettings(method="translate-context").combine_rule() == "none"
    with pytest.raises(ValueError, match="--style gollie does not apply to --method translate-context"):
        RunSettings(method="translate-context", style="gollie")      # it declares json prompts only
    with pytest.raises(ValueError, match="applies to --method transfusion, not translate-context"):
        RunSettings(method="translate-context", combine="union")
    unregister("translate-context")
    with pytest.raises(ValueError, match="unknown method 'translate-context'; choose from direct,"):
        RunSettings(method="translate-context")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--method", "translate-context"])
    assert "invalid choice: 'translate-context'" in capsys.readouterr().err


def test_recorded_templates_follow_the_declaration(prompts: Path) -> None:
    settings = RunSettings(method="translate-context", prompts=str(prompts))
    assert steps_of(settings) == ["translate", "fuse"]
    assert templates_of(settings) == ["translate", "fuse_context"]
    batched = settings.model_copy(update={"batch_sentences": 4})
    assert templates_of(batched) == ["batch_translate", "translate", "batch_fuse_context", "fuse_context"]
    assert templates_of(settings.model_copy(update={"translator": "file:t.txt"})) == ["fuse_context"]
    identities = template_identities(batched, TemplateSet(prompts))
    assert identities["fuse_context"].startswith("fuse_context.v1@")


def test_the_oracle_recognises_its_templates(prompts: Path) -> None:
    templates = TemplateSet(prompts)
    labels = [{"name": "PER", "description": "people"}]
    one = templates.render("fuse", template_step="fuse_context", text="Shehu ya je Kano .", language="Hausa",
                           translation="Shehu went to Kano .", labels=labels).messages[-1]["content"]
    items = [{"n": 1, "text": "a b", "translation": "A B"}, {"n": 2, "text": "c d", "translation": "C D"}]
    many = templates.render("fuse", template_step="batch_fuse_context", items=items, language="Hausa",
                            labels=labels).messages[-1]["content"]
    known = shapes(prompts)
    found = recognise(one, known)
    assert found.shape.template == "fuse_context" and found.values["text"] == "Shehu ya je Kano ."
    assert found.values["translation"] == "Shehu went to Kano ."
    found = recognise(many, known)
    assert found.shape.template == "batch_fuse_context" and [i["text"] for i in found.items] == ["a b", "c d"]
    with pytest.raises(KeyError, match="no known template"):
        recognise(one, shapes())      # without its folder, the oracle does not know the template


@pytest.mark.parametrize("k", [1, 4])
def test_it_runs_end_to_end_batched_and_cached(server, prompts: Path, tmp_path: Path, k: int) -> None:
    sentences = read_conll(sample_path())            # 12 sentences
    server.responder = oracle_responder(sentences, LABELS, prompts=prompts)
    settings = dict(model="m", base_url=server.base_url, method="translate-context", prompts=str(prompts),
                    batch_sentences=k, out=str(tmp_path / "run"))
    summary = run_dataset(**settings)
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["parse_failures"] == 0
    assert len(server.requests) == 2 * -(-len(sentences) // k)     # translate + fuse per chunk
    for r in summary.results:
        assert set(r.trace.replies) == {"translate", "fuse"}
        assert r.trace.templates["fuse"].startswith("batch_fuse_context.v1@" if k > 1 else "fuse_context.v1@")
        assert bool(r.trace.batches) == (k > 1)
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))["settings"]["templates"]
    assert list(recorded) == templates_of(RunSettings(**settings))
    server.requests.clear()                          # a rerun builds the same prompts: all cached
    again = run_dataset(**settings)
    assert server.requests == [] and again.metrics["f1"] == pytest.approx(1.0)


def test_batching_knows_no_method_and_has_no_global_batcher() -> None:
    """The batcher is passed in (scheduler -> Pipeline.run -> SentenceRun), and batching reads
    each call's declaration instead of importing the methods (which import it)."""
    import ast

    import tf_prompt.prompting.batching as batching

    tree = ast.parse(Path(batching.__file__).read_text(encoding="utf-8"))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("tf_prompt.methods")]
    assert not [name for name, value in vars(batching).items() if type(value).__name__ == "ContextVar"]


def test_the_oracle_recognises_an_edited_copy_of_a_template_it_was_not_shown(tmp_path: Path) -> None:
    """A --prompts copy with other wording between the variables (a sweep's own prompts) is
    still read by the packaged template's loose pattern, and the step is not confused."""
    from tf_prompt.prompting.templates import packaged_prompts_dir

    source = (packaged_prompts_dir() / "direct.v2.jinja").read_text(encoding="utf-8")
    (tmp_path / "direct.v9.jinja").write_text(source.replace("Answer with", "Reply with"), encoding="utf-8")
    labels = [{"name": "PER", "description": "people"}]
    user = TemplateSet(tmp_path).render("direct", text="Shehu ya je Kano .", language="Hausa", labels=labels,
                                        label_names=["PER"], examples=[]).messages[-1]["content"]
    assert "Reply with" in user
    found = recognise(user, shapes())
    assert found.shape.template == "direct" and found.values["text"] == "Shehu ya je Kano ."
