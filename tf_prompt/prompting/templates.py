"""Prompt templates: versioned `.jinja` files in `prompts/`, rendered in a sandbox.

Each step (direct, translate, annotate, fuse) has a template `STEP.vN.jinja`; the highest version
wins unless a specific one is named (`fuse.v1`). A template defines a `system` block and a `user`
block, which become the chat messages. User text (sentences, translations, model answers) only ever
enters as template *variables*, and rendering happens after the template source is fixed, so a
sentence that contains Jinja syntax or "### system" cannot change the prompt's structure.

`--prompts DIR` puts DIR in front of the packaged templates: a file there with the same step name
overrides the packaged one, the rest still come from the package.

A method from outside the package (a plugin, methods/registry.py) may ship its own templates in a
folder (Method.prompts). That folder is searched last, after the packaged one, and only for the
template names its method declares that no packaged template has: a plugin can never change the
prompt (or the cache key) of a packaged method, and two plugins cannot take each other's templates.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, UndefinedError, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tf_prompt.types import TemplateError
from tf_prompt.util.jsontext import encodable

if TYPE_CHECKING:
    from importlib.abc import Traversable
    from typing import TypeAlias

    #: A folder of templates (or a template file): a path, or a package's resources
    #: (importlib.resources.files), which may live in a zip file.
    Folder: TypeAlias = Path | Traversable

_NAME = re.compile(r"^(?P<step>[a-z0-9_\-]+)(?:\.v(?P<version>\d+))?\.jinja$")

#: Template name -> the folder of the registered outside method that provides it (Method.prompts).
#: Filled by the method registry through `add_method_templates`; every TemplateSet reads it live.
_METHOD_FOLDERS: dict[str, Folder] = {}


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: the chat messages plus which template (and which exact source) made them."""

    step: str
    template: str          # e.g. "fuse.v1"
    digest: str            # sha256 of the template source, first 12 hex chars
    messages: list[dict[str, str]]
    #: How many leading characters of the last message's content are the same for every sentence
    #: of the run (everything before the first per-sentence variable): the prefix a provider's
    #: prompt cache can reuse. NO_SHARED_PREFIX (-1): an earlier message already changes from one
    #: sentence to the next, so nothing is shared. Not part of the cache key: it never changes
    #: what is sent.
    fixed: int = field(default=0, compare=False)

    @property
    def identity(self) -> str:
        """Template identity for the cache key: editing a template invalidates its cached replies."""
        return f"{self.template}@{self.digest}"


def packaged_prompts_dir() -> Path:
    """The templates shipped with the package (the repository's `prompts/` folder)."""
    return Path(str(importlib.resources.files("tf_prompt.prompts")))


def _template_names(folder: Folder) -> set[str]:
    """The template names (`direct` for direct.v2.jinja) of the files directly in `folder`."""
    return {m.group("step") for f in folder.iterdir() if (m := _NAME.match(f.name)) and f.is_file()}


def _packaged_names() -> set[str]:
    """Every template name the package ships, its variants included."""
    return {m.group("step") for f in packaged_prompts_dir().rglob("*.jinja") if (m := _NAME.match(f.name))}


def add_method_templates(owner: str, folder: Folder, declared: list[str]) -> None:
    """Let TemplateSet find the templates `declared` by method `owner` in `folder` (its Method.prompts).

    Refused with a TemplateError, and nothing added, when the folder holds a template with a
    packaged name (it would be a second `direct` next to the real one) or provides a name another
    outside method's folder already provides."""
    if not folder.is_dir():
        raise TemplateError(f"{folder}: prompts folder of method {owner!r} not found")
    shipped = _template_names(folder)
    clash = sorted(shipped & _packaged_names())
    if clash:
        raise TemplateError(f"{folder}: ships {', '.join(f'{n}.vN.jinja' for n in clash)}, which would shadow the "
                            f"packaged template{'s' if len(clash) > 1 else ''} of that name (rename "
                            f"{'them' if len(clash) > 1 else 'it'})")
    mine = [name for name in dict.fromkeys(declared) if name in shipped]
    taken = [name for name in mine if name in _METHOD_FOLDERS and str(_METHOD_FOLDERS[name]) != str(folder)]
    if taken:
        raise TemplateError(f"{folder}: template {taken[0]!r} is already provided by "
                            f"{_METHOD_FOLDERS[taken[0]]} (another method's prompts folder)")
    for name in mine:
        _METHOD_FOLDERS[name] = folder


def remove_method_templates(folder: Folder) -> None:
    """Forget the templates `folder` provides (its method was unregistered)."""
    for name in [n for n, f in _METHOD_FOLDERS.items() if str(f) == str(folder)]:
        del _METHOD_FOLDERS[name]


#: Prompt.fixed of a prompt that shares nothing: a message before the last one holds a
#: per-sentence variable.
NO_SHARED_PREFIX = -1

#: The variables that change from one call to the next (a sentence, its translation, the English
#: entities, a batch's items); all others a template sees (language, labels, examples) are the
#: same for every call of a run, so what they render before the first of these is a shared prefix.
#: Steps declare theirs (Step.item_vars); the method registry adds them (`declare_per_sentence`).
PER_SENTENCE: set[str] = {"text", "translation", "english_entities", "hints", "items"}
#: Put in front of every per-sentence string for the second rendering that finds the prefix.
_MARK = "\u2063"


def declare_per_sentence(names: Any) -> None:
    """Count `names` (a registered method's Step.item_vars) among the per-sentence variables."""
    PER_SENTENCE.update(names)


def _varied(value: Any) -> Any:
    """`value` with every string changed at its first character (an empty list made non-empty),
    so that a rendering of it differs from the real one exactly where the value first shows."""
    if isinstance(value, str):
        return _MARK + value
    if isinstance(value, list):
        return [_varied(v) for v in value] or [_MARK]
    if isinstance(value, dict):
        return {k: _varied(v) for k, v in value.items()}
    return value


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _check_self_contained(ast: nodes.Template, path: Folder) -> None:
    """A template is one file: it may not pull in others (there is no loader, and a prompt that
    depends on files outside its hash would make the cache key lie)."""
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        tag = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import",
               nodes.Extends: "extends"}[type(node)]
        raise TemplateError(f"{path}:{node.lineno}: {{% {tag} %}} is not supported: a template is one "
                            f"self-contained file (copy the text in instead)")


def _template_line(template: Any, path: Folder, tb: TracebackType | None) -> int | None:
    """The template line of the innermost frame of `tb` that runs the template's code."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


class TemplateSet:
    """Finds and renders the templates for each step, with optional user overrides."""

    def __init__(self, override_dir: str | Path | None = None, *, pins: dict[str, str] | None = None):
        self.dirs: list[Path] = []
        if override_dir is not None:
            d = Path(override_dir)
            if not d.is_dir():
                variant = packaged_prompts_dir() / "variants" / str(override_dir)
                if not (variant.is_dir() and str(override_dir).isidentifier()):
                    names = ", ".join(sorted(p.name for p in (packaged_prompts_dir() / "variants").iterdir()
                                             if p.is_dir()))
                    raise TemplateError(f"{d}: prompts directory not found (packaged variants: {names})")
                d = variant
            self.dirs.append(d)
        self.dirs.append(packaged_prompts_dir())
        self.pins = dict(pins or {})
        self.env = ImmutableSandboxedEnvironment(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["json"] = _json
        self.env.filters["pystr"] = _json   # a JSON string is a valid Python string literal
        self._cache: dict[str, tuple[str, str, Any, Folder]] = {}
        self._prefixes: dict[str, str] = {}   # template name -> its last known fixed prefix
        self._earlier: dict[str, list[str]] = {}   # template name -> the messages before it, then

    def _find(self, step: str) -> Folder:
        wanted = self.pins.get(step, step)
        want_step, _, want_version = wanted.partition(".v")
        method_folder = _METHOD_FOLDERS.get(want_step)   # only for names no packaged template has
        dirs: list[Folder] = [*self.dirs, *([method_folder] if method_folder is not None else [])]
        for d in dirs:
            best: tuple[int, Folder] | None = None
            for path in d.iterdir():
                m = _NAME.match(path.name)
                if not m or m.group("step") != want_step or not path.is_file():
                    continue
                version = int(m.group("version") or 0)
                if want_version and version != int(want_version):
                    continue
                if best is None or version > best[0]:
                    best = (version, path)
            if best is not None:
                return best[1]
        searched = ", ".join(str(d) for d in dirs)
        raise TemplateError(f"no template for step {wanted!r} (looked for {want_step}.vN.jinja in {searched})")

    def _load(self, step: str) -> tuple[str, str, Any, Folder]:
        if step not in self._cache:
            path = self._find(step)
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise TemplateError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
            try:
                _check_self_contained(self.env.parse(source, filename=str(path)), path)
                # compiled under its file name, so a render-time error can be mapped to a line
                template = self.env.template_class.from_code(
                    self.env, self.env.compile(source, filename=str(path)), self.env.make_globals(None))
            except JinjaTemplateError as e:
                line = getattr(e, "lineno", None)
                raise TemplateError(f"{path}:{line or 1}: {e.message if hasattr(e, 'message') else e}") from None
            for block in ("user",):
                if block not in template.blocks:
                    raise TemplateError(f"{path}: template must define a '{{% block {block} %}}'")
            name = path.name[: -len(".jinja")]
            digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]
            self._cache[step] = (name, digest, template, path)
        return self._cache[step]

    def identity(self, step: str) -> str:
        name, digest, _, _ = self._load(step)
        return f"{name}@{digest}"

    def render(self, step: str, *, template_step: str | None = None, **variables: Any) -> Prompt:
        """Render `step` with `variables`; a missing variable is an error, never an empty string.

        `template_step` renders another step's template under this step's name (the GoLLIE
        style annotates English with the same code template as `direct`).
        """
        name, digest, template, path = self._load(template_step or step)
        messages: list[dict[str, str]] = []
        try:
            for role in ("system", "user"):
                render_block = template.blocks.get(role)
                if render_block is None:
                    continue
                ctx = template.new_context(dict(variables))
                # a lone surrogate (half an emoji in an earlier reply) as U+FFFD, so the prompt can be
                # hashed, counted and sent as UTF-8; any other text is left exactly as it is
                content = encodable("".join(render_block(ctx)).strip())
                if content:
                    messages.append({"role": role, "content": content})
        except Exception as e:   # anything the template's own code raises: {{ 1/0 }}, a sandbox refusal
            where = f"{path}:{_template_line(template, path, e.__traceback__) or 1}"
            message = e.message if isinstance(e, JinjaTemplateError) and e.message else str(e)
            kind = "" if isinstance(e, (UndefinedError, JinjaTemplateError)) else f"{type(e).__name__}: "
            raise TemplateError(f"{where}: {kind}{message} (while rendering step {step!r})") from None
        fixed = self._fixed(name, template, messages, variables) if messages else 0
        return Prompt(step=step, template=name, digest=digest, messages=messages, fixed=fixed)

    def _fixed(self, name: str, template: Any, messages: list[dict[str, str]], variables: dict[str, Any]) -> int:
        """How many leading characters of the last message are the same for every sentence: found
        by rendering its block again with every per-sentence variable changed (`_varied`) and
        keeping what the two renderings share. The prefix is remembered per template, so most
        calls only check that their message starts with it (a second rendering of every prompt
        would add to the framework's CPU cost per call). 0 when it cannot be told."""
        content = messages[-1]["content"]
        earlier = [m["content"] for m in messages[:-1]]
        known = self._prefixes.get(name)
        if known is not None and content.startswith(known) and self._earlier.get(name) == earlier:
            return len(known)
        varying = {k: _varied(v) if k in PER_SENTENCE else v for k, v in variables.items()}
        try:
            others = [encodable("".join(template.blocks[m["role"]](template.new_context(varying))).strip())
                      for m in messages]
        except Exception:   # a template that cannot render the changed values: no prefix claimed
            return 0
        if others[:-1] != earlier:   # an earlier message holds this sentence's data: nothing is shared
            return NO_SHARED_PREFIX
        n = _common_prefix(content, others[-1])
        self._prefixes[name] = content[:n]
        self._earlier[name] = earlier
        return n
