"""Prompt templates: versioned `.jinja` files in `prompts/`, rendered in a sandbox.

Each step (direct, translate, annotate, fuse) has a template `STEP.vN.jinja`; the highest version
wins unless a specific one is named (`fuse.v1`). A template defines a `system` block and a `user`
block, which become the chat messages. User text (sentences, translations, model answers) only ever
enters as template *variables*, and rendering happens after the template source is fixed, so a
sentence that contains Jinja syntax or "### system" cannot change the prompt's structure.

`--prompts DIR` puts DIR in front of the packaged templates: a file there with the same step name
overrides the packaged one, the rest still come from the package.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, UndefinedError, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tf_prompt.types import TemplateError
from tf_prompt.util.jsontext import encodable

_NAME = re.compile(r"^(?P<step>[a-z0-9_\-]+)(?:\.v(?P<version>\d+))?\.jinja$")


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: the chat messages plus which template (and which exact source) made them."""

    step: str
    template: str          # e.g. "fuse.v1"
    digest: str            # sha256 of the template source, first 12 hex chars
    messages: list[dict[str, str]]

    @property
    def identity(self) -> str:
        """Template identity for the cache key: editing a template invalidates its cached replies."""
        return f"{self.template}@{self.digest}"


def packaged_prompts_dir() -> Path:
    """The templates shipped with the package (the repository's `prompts/` folder)."""
    return Path(str(importlib.resources.files("tf_prompt.prompts")))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _check_self_contained(ast: nodes.Template, path: Path) -> None:
    """A template is one file: it may not pull in others (there is no loader, and a prompt that
    depends on files outside its hash would make the cache key lie)."""
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        tag = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import",
               nodes.Extends: "extends"}[type(node)]
        raise TemplateError(f"{path}:{node.lineno}: {{% {tag} %}} is not supported: a template is one "
                            f"self-contained file (copy the text in instead)")


def _template_line(template: Any, path: Path, tb: TracebackType | None) -> int | None:
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
        self._cache: dict[str, tuple[str, str, Any, Path]] = {}

    def _find(self, step: str) -> Path:
        wanted = self.pins.get(step, step)
        want_step, _, want_version = wanted.partition(".v")
        for d in self.dirs:
            best: tuple[int, Path] | None = None
            for path in d.glob(f"{want_step}*.jinja"):
                m = _NAME.match(path.name)
                if not m or m.group("step") != want_step:
                    continue
                version = int(m.group("version") or 0)
                if want_version and version != int(want_version):
                    continue
                if best is None or version > best[0]:
                    best = (version, path)
            if best is not None:
                return best[1]
        searched = ", ".join(str(d) for d in self.dirs)
        raise TemplateError(f"no template for step {wanted!r} (looked for {want_step}.vN.jinja in {searched})")

    def _load(self, step: str) -> tuple[str, str, Any, Path]:
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
        return Prompt(step=step, template=name, digest=digest, messages=messages)
