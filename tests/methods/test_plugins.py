"""Plugins: a method that an installed distribution declares in the entry-point group
`tf_prompt.methods` works from the command line, with the templates it ships; a broken plugin
is reported and skipped, never a traceback and never a reason for `--method direct` to fail; a
plugin can replace neither a packaged method nor a packaged template.

Each distribution is built for real in tmp_path (its package, its prompts folder and a
`*.dist-info` with `entry_points.txt`) and put on the path of a `python -m tf_prompt.cli`
subprocess, which finds it through importlib.metadata as it would an installed one. The
README's "Adding a method" shows this same plugin.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.methods import METHODS, get_method, register, unregister
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.testing import oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
assert "direct" in METHODS      # this process reads its registry before any plugin below is on its path

# --- the plugin distribution `tf-prompt-context`: what its files hold ------------------------------

METHOD_MODULE = '''\
"""translate-context: TransFusion without the English annotation (the translation alone helps)."""

from importlib.resources import files

from tf_prompt.methods.base import Answer, Method, Prompting, Step
from tf_prompt.methods.context import SentenceRun
from tf_prompt.methods.steps import TRANSLATE, translate
from tf_prompt.spans.align import locate

CONTEXT = Step("fuse", {"json": Prompting("fuse_context", "entities")}, item_vars={"text": "", "translation": ""})


class TranslateContext(Method):
    name = "translate-context"
    summary = "source --(translate)--> English --(fuse_context: source + English)--> source entities"
    steps = (TRANSLATE, CONTEXT)
    styles = ("json",)
    prompts = files(__package__) / "prompts"     # tf_prompt_context/prompts/fuse_context.v1.jinja

    async def run(self, run: SentenceRun) -> Answer:
        english = await translate(run)
        ctx = run.ctx
        mentions = await run.entities(CONTEXT, text=run.text, language=ctx.language,
                                      translation=english or "(not available)", labels=ctx.label_vars) or []
        return Answer(mentions, locate(run.text, mentions))


METHOD = TranslateContext()
'''

FUSE_CONTEXT = """\
{% block system %}
You are an expert annotator of named entities in {{ language or "multilingual" }} news text.
{% endblock %}
{% block user %}
Find the named entities in a {{ language or "source" }} sentence; its English translation helps.
Copy every entity from the sentence, never from the translation.

Entity types:
{% for label in labels %}
- {{ label.name }}: {{ label.description }}
{% endfor %}

Answer with JSON only, in this form: {"entities": [{"text": "...", "type": "..."}]}.

Sentence: {{ text }}
English translation: {{ translation }}
Answer:
{% endblock %}
"""


def write_distribution(site: Path, dist: str, package: str, files: dict[str, str],
                       entry_points: dict[str, str]) -> None:
    """An installed distribution as pip leaves it: the package's files and NAME-VERSION.dist-info."""
    for rel, text in files.items():
        path = site / package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[tf_prompt.methods]\n{lines}", encoding="utf-8")


def context_plugin(site: Path) -> Path:
    """The working plugin; returns its prompts folder."""
    write_distribution(site, "tf-prompt-context", "tf_prompt_context", {
        "__init__.py": "",
        "method.py": METHOD_MODULE,
        "prompts/fuse_context.v1.jinja": FUSE_CONTEXT,
    }, {"translate-context": "tf_prompt_context.method:METHOD"})
    return site / "tf_prompt_context" / "prompts"


def broken_plugins(site: Path) -> None:
    """One distribution per way a plugin can be wrong. The `direct` impostor would leave a mark
    in a file if it were ever imported."""
    write_distribution(site, "tfp-missing-dep", "tfp_missing_dep", {
        "__init__.py": "", "method.py": "import no_such_dependency_xyz\n"},
        {"needs-dep": "tfp_missing_dep.method:METHOD"})
    write_distribution(site, "tfp-not-a-method", "tfp_not_a_method", {
        "__init__.py": "", "method.py": "METHOD = 42\n"},
        {"forty-two": "tfp_not_a_method.method:METHOD"})
    write_distribution(site, "tfp-impostor", "tfp_impostor", {
        "__init__.py": "", "method.py": f"open({str(site / 'IMPORTED')!r}, 'w').close()\n"
                                        "from tf_prompt.methods.direct import METHOD\n"},
        {"direct": "tfp_impostor.method:METHOD"})
    shadow = METHOD_MODULE.replace('"translate-context"', '"shadow"').replace('"fuse_context"', '"shadow_fuse"')
    write_distribution(site, "tfp-shadow", "tfp_shadow", {
        "__init__.py": "", "method.py": shadow,
        "prompts/shadow_fuse.v1.jinja": FUSE_CONTEXT,
        "prompts/direct.v9.jinja": "{% block user %}Say {{ text }}{% endblock %}\n"},
        {"shadow": "tfp_shadow.method:METHOD"})
    write_distribution(site, "tfp-misnamed", "tfp_misnamed", {
        "__init__.py": "", "method.py": "from tf_prompt.methods.transfusion import METHOD\n"},
        {"fusion": "tfp_misnamed.method:METHOD"})


def tf_prompt(site: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`tf-prompt ARGV` as a user runs it, with the distributions in `site` installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "tf_prompt.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


@pytest.fixture
def context_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """The plugin installed in `site`; in this process too (imported and registered), so that the
    test oracle knows its template. Unregistered and forgotten afterwards."""
    site = tmp_path / "site"
    prompts = context_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    register(importlib.import_module("tf_prompt_context.method").METHOD)
    try:
        yield site, prompts
    finally:
        unregister("translate-context")
        for name in [m for m in sys.modules if m.startswith("tf_prompt_context")]:
            del sys.modules[name]


def run_args(server, out: Path, method: str, *extra: str) -> list[str]:
    return ["run", "--model", "m", "--base-url", server.base_url, "--method", method, "--out", str(out),
            "--cache-dir", str(out.parent / "cache"), "--no-progress", *extra]


def test_a_plugin_method_runs_from_the_command_line_with_its_own_templates(
        server, context_site: tuple[Path, Path], tmp_path: Path) -> None:
    site, prompts = context_site
    sentences = read_conll(sample_path())                       # the default --data: 12 sentences
    server.responder = oracle_responder(sentences, LABELS, prompts=prompts)
    out = tmp_path / "run"
    done = tf_prompt(site, *run_args(server, out, "translate-context"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr and "Traceback" not in done.stderr
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["f1"] == pytest.approx(1.0) and metrics["parse_failures"] == 0
    assert len(server.requests) == 2 * len(sentences)           # translate + fuse_context per sentence
    digest = hashlib.sha256(FUSE_CONTEXT.encode("utf-8")).hexdigest()[:12]
    assert metrics["settings"]["templates"]["fuse_context"] == f"fuse_context.v1@{digest}"   # the plugin's file
    assert metrics["settings"]["templates"]["translate"] == TemplateSet().identity("translate")  # the packaged one
    server.requests.clear()
    again = tf_prompt(site, *run_args(server, out, "translate-context"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert server.requests == []
    usage = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["usage"]
    assert usage["calls"] == 0 and usage["cache_hits"] == 2 * len(sentences)


def test_help_lists_the_plugin_after_the_packaged_methods(tmp_path: Path) -> None:
    site = tmp_path / "site"
    context_plugin(site)
    done = tf_prompt(site, "run", "--help", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    choices = " ".join(done.stdout.split()).split("--method {", 1)[1].split("}", 1)[0]
    assert choices.split(",") == [*(m for m in METHODS if m != "translate-context"), "translate-context"]


def test_plugins_are_loaded_when_the_registry_is_first_read_not_at_import(tmp_path: Path) -> None:
    site = tmp_path / "site"
    context_plugin(site)
    probe = textwrap.dedent("""\
        import sys
        import tf_prompt.cli, tf_prompt.settings
        before = "tf_prompt_context.method" in sys.modules
        from tf_prompt.methods import METHODS
        names = list(METHODS)
        print(before, "tf_prompt_context.method" in sys.modules, ",".join(names))
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    before, after, names = done.stdout.split()
    assert (before, after) == ("False", "True")
    assert names.split(",")[-1] == "translate-context"


def test_a_broken_plugin_is_one_warning_line_and_direct_still_runs(server, tmp_path: Path) -> None:
    site = tmp_path / "site"
    broken_plugins(site)
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    out = tmp_path / "run"
    done = tf_prompt(site, *run_args(server, out, "direct"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["f1"] == pytest.approx(1.0)
    warnings = [line for line in done.stderr.splitlines() if line.startswith("tf-prompt: warning:")]
    assert "Traceback" not in done.stderr and len(warnings) == 5, done.stderr
    by_name = {w.split("plugin method '", 1)[1].split("'", 1)[0]: w for w in warnings}
    assert set(by_name) == {"needs-dep", "forty-two", "direct", "shadow", "fusion"}
    assert ("entry point 'needs-dep = tfp_missing_dep.method:METHOD' of distribution tfp-missing-dep 0.1"
            in by_name["needs-dep"])
    assert "ModuleNotFoundError: No module named 'no_such_dependency_xyz'" in by_name["needs-dep"]
    assert "tfp_not_a_method.method:METHOD is of type int, not an instance of" in by_name["forty-two"]
    assert "of distribution tfp-impostor 0.1): takes the name of the packaged method 'direct'" in by_name["direct"]
    assert "direct.vN.jinja, which would shadow the packaged template" in by_name["shadow"]
    assert "the entry point is named 'fusion' but its method 'transfusion'" in by_name["fusion"]
    assert all(w.endswith("; skipped") for w in warnings)
    # the packaged direct ran, with the packaged template: the impostor was never even imported
    assert not (site / "IMPORTED").exists()
    templates = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["settings"]["templates"]
    assert templates == {"direct": TemplateSet().identity("direct")}


@pytest.mark.parametrize("name, says", [
    ("needs-dep", "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"),
    ("shadow", "which would shadow the packaged template"),
])
def test_asking_for_a_broken_plugin_is_its_error_not_unknown_method(server, tmp_path: Path, name: str,
                                                                    says: str) -> None:
    site = tmp_path / "site"
    broken_plugins(site)
    done = tf_prompt(site, *run_args(server, tmp_path / "run", name), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("tf-prompt: error: ") and f"plugin method '{name}' (entry point" in error
    assert says in error and "invalid choice" not in done.stderr
    assert server.requests == [] and not (tmp_path / "run").exists()


def test_two_distributions_declaring_one_name_are_both_refused(server, tmp_path: Path) -> None:
    """Which one ran would depend on the order of sys.path: neither does."""
    site = tmp_path / "site"
    context_plugin(site)
    write_distribution(site, "tf-prompt-context-fork", "tf_prompt_context_fork", {
        "__init__.py": "", "method.py": "from tf_prompt_context.method import METHOD\n"},
        {"translate-context": "tf_prompt_context_fork.method:METHOD"})
    done = tf_prompt(site, *run_args(server, tmp_path / "run", "translate-context"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is declared by 2 distributions" in done.stderr.splitlines()[-1]
    assert "tf-prompt-context 0.1" in done.stderr and "tf-prompt-context-fork 0.1" in done.stderr


def test_a_plugin_template_never_replaces_a_packaged_one(tmp_path: Path) -> None:
    """In process: the folder of a registered method is searched after the packaged templates and
    only for its own names; a folder holding a packaged name is refused as a whole."""
    from tf_prompt.types import TemplateError

    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "direct.v9.jinja").write_text("{% block user %}Say {{ text }}{% endblock %}\n", encoding="utf-8")
    direct = type(get_method("direct"))

    class Loud(direct):      # type: ignore[valid-type,misc]
        name = "loud"
        prompts = folder

    with pytest.raises(TemplateError, match=r"direct\.vN\.jinja, which would shadow the packaged template"):
        register(Loud())
    assert "loud" not in METHODS
    assert TemplateSet().render("direct", text="x", language="Hausa", labels=[], label_names=[],
                                examples=[]).template == "direct.v2"


def test_two_methods_cannot_provide_one_template(tmp_path: Path) -> None:
    """The first method whose folder provides `fuse_context` keeps it; a second is refused, so
    which prompt a run renders never depends on the order plugins load in."""
    from tf_prompt.types import TemplateError

    first, second = tmp_path / "a", tmp_path / "b"
    for folder, word in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "fuse_context.v1.jinja").write_text(f"{{% block user %}}{word} {{{{ text }}}}{{% endblock %}}\n",
                                                      encoding="utf-8")
    module = tmp_path / "two_context.py"
    module.write_text(METHOD_MODULE.replace('files(__package__) / "prompts"', "None"), encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        base = importlib.import_module("two_context").TranslateContext
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("two_context", None)
    one = type("One", (base,), {"name": "context-one", "prompts": first})
    two = type("Two", (base,), {"name": "context-two", "prompts": second})
    register(one())
    try:
        with pytest.raises(TemplateError, match=r"template 'fuse_context' is already provided by .*/a"):
            register(two())
        assert "context-two" not in METHODS
        assert TemplateSet().render("fuse_context", text="x").messages[-1]["content"] == "first x"
    finally:
        unregister("context-one")
    with pytest.raises(TemplateError, match="no template for step 'fuse_context'"):
        TemplateSet().render("fuse_context", text="x")      # unregistered: its folder is forgotten


def test_get_method_names_a_broken_plugin(tmp_path: Path) -> None:
    """The Python API says the same as the command line (in a fresh interpreter: this one's
    registry was read before the plugin existed)."""
    from tf_prompt.methods.registry import PluginError

    site = tmp_path / "site"
    broken_plugins(site)
    probe = ("from tf_prompt.methods import get_method\nfrom tf_prompt.methods.registry import PluginError\n"
             "try:\n    get_method('forty-two')\nexcept PluginError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert done.stdout.startswith("plugin method 'forty-two' (entry point 'forty-two = tfp_not_a_method.method:")
    assert issubclass(PluginError, ValueError)
