"""The one list of methods. The CLI's --method choices, settings validation, the templates a run
records (templates.py), batching (through each call's step declaration) and the test oracle all
read it, so a method registered here is known everywhere at once.

Three ways in, in the order the CLI lists them:

1. The packaged methods, listed explicitly at the bottom of this module (one line each).
2. Plugins: methods that installed distributions declare in the entry-point group
   `tf_prompt.methods` (`my-method = "my_pkg.my_method:METHOD"`, the entry point named like the
   method). They are loaded when the registry is first read (its `in`, iteration, lookup), not at
   import, and may ship their templates (Method.prompts, prompting/templates.py).
3. `register(MyMethod())` from Python (a script, a test).

A broken plugin (it fails to import, is not a Method instance, is named unlike its entry point,
takes a packaged method's name or template, or declares a template with another reply format
than a method already registered) is skipped with one warning line on stderr naming the entry
point and its distribution, not raised: a third-party package must not make every command fail,
`tf-prompt run --method direct` included. Asking for it by name is an error with the same
message (`get_method`), so it is never silently replaced by "unknown method".
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from tf_prompt.methods import direct, one_call, transfusion, translate_test
from tf_prompt.methods.base import Method, Prompting, ReplyFormat, Step
from tf_prompt.prompting.templates import add_method_templates, declare_per_sentence, remove_method_templates

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: The entry-point group plugins declare their methods in.
GROUP = "tf_prompt.methods"


class PluginError(ValueError):
    """A plugin method that could not be loaded, asked for by name."""


class Registry(Mapping[str, Method]):
    """name -> method, in the order the CLI lists them. Any read loads the plugins first (once)."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        self._packaged: set[str] = set()
        self._loaded = False
        #: name -> why the plugin of that name was skipped (the warning it printed)
        self.broken: dict[str, str] = {}

    # -- reading: every read sees the plugins
    def __getitem__(self, name: str) -> Method:
        self._load_plugins()
        return self._methods[name]

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(list(self._methods))

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._methods)

    def __contains__(self, name: object) -> bool:
        """True for a usable method, and for a broken plugin's name too: asking for it then reaches
        `get_method`, whose error says why it is broken (iteration, and so every list of
        choices, shows only usable methods)."""
        self._load_plugins()
        return name in self._methods or name in self.broken

    # -- writing
    def add_packaged(self, method: Method) -> None:
        """One of the package's own methods (at import, without loading the plugins)."""
        declare_per_sentence(v for step in method.steps for v in step.item_vars)
        self._methods[method.name] = method
        self._packaged.add(method.name)

    def register(self, method: Method, *, replace: bool = False) -> Method:
        self._load_plugins()
        if not replace and method.name in self._methods and self._methods[method.name] is not method:
            raise ValueError(f"a method named {method.name!r} is already registered")
        old = self._methods.get(method.name)
        if old is not None and old is not method and old.prompts is not None:
            remove_method_templates(old.prompts)
        if method.prompts is not None and old is not method:
            add_method_templates(method.name, method.prompts, declared_templates(method))
        # where its prompts stop being the same for every sentence (Prompt.fixed)
        declare_per_sentence(v for step in method.steps for v in step.item_vars)
        self._methods[method.name] = method
        self.broken.pop(method.name, None)
        return method

    def unregister(self, name: str) -> None:
        method = self._methods.pop(name, None)
        if method is not None and method.prompts is not None:
            remove_method_templates(method.prompts)
        self._packaged.discard(name)

    # -- plugins
    def _load_plugins(self) -> None:
        if self._loaded:
            return
        self._loaded = True        # first: a plugin that reads the registry as it loads sees it as it is
        from importlib.metadata import entry_points

        by_name: dict[str, list[EntryPoint]] = {}
        for ep in entry_points(group=GROUP):
            by_name.setdefault(ep.name, []).append(ep)
        for name, eps in by_name.items():
            if len(eps) > 1:
                self._skip(name, f"plugin method {name!r} is declared by {len(eps)} distributions "
                                 f"({', '.join(_where(ep) for ep in eps)}); uninstall all but one")
                continue
            problem = self._load_one(eps[0])
            if problem is not None:
                self._skip(name, f"plugin method {name!r} ({_where(eps[0])}): {problem}")

    def _load_one(self, ep: EntryPoint) -> str | None:
        """Register the method of `ep`; what is wrong with it, or None."""
        if ep.name in self._packaged:
            return f"takes the name of the packaged method {ep.name!r}"
        try:
            method = ep.load()
        except (Exception, SystemExit) as e:   # any error of third-party code at import, sys.exit() too
            first = (str(e).splitlines() or [""])[0]
            return f"cannot be loaded: {type(e).__name__}: {first}".rstrip(": ")
        if not isinstance(method, Method):
            return f"{ep.value} is of type {type(method).__name__}, not an instance of tf_prompt.methods.Method"
        name = getattr(method, "name", None)    # a plugin's class may lack it
        if name != ep.name:
            return f"the entry point is named {ep.name!r} but its method {name!r}; name them alike"
        if self._methods.get(method.name) is method:
            return None            # it registered itself as it was imported
        if method.name in self._methods:
            return f"a method named {method.name!r} is already registered"
        try:
            _check_reply_formats(method)
            self.register(method)
        except ValueError as e:    # TemplateError is a ValueError
            return str(e)
        return None

    def _skip(self, name: str, message: str) -> None:
        # a plugin whose import registered it and then failed is skipped as a whole, not left half set up
        if name in self._methods and name not in self._packaged:
            self.unregister(name)
        self.broken[name] = message
        print(f"tf-prompt: warning: {message}; skipped", file=sys.stderr)


def _where(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    of = f" of distribution {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point '{ep.name} = {ep.value}'{of}"


#: name -> method, in the order the CLI lists them (packaged, plugins, then registered from Python).
#: Read it live (not a copy): methods registered later appear in it.
METHODS = Registry()


def register(method: Method, *, replace: bool = False) -> Method:
    """Add `method` under its name (and its templates, Method.prompts); a second method of the
    same name is refused unless `replace`."""
    return METHODS.register(method, replace=replace)


def unregister(name: str) -> None:
    """Remove a method (for tests that register one of their own)."""
    METHODS.unregister(name)


def get_method(name: str) -> Method:
    """The method called `name`, or a ValueError that lists the choices (or, for a plugin that
    could not be loaded, says why)."""
    try:
        return METHODS[name]
    except KeyError:
        if name in METHODS.broken:
            raise PluginError(METHODS.broken[name]) from None
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def declared_templates(method: Method) -> list[str]:
    """Every template name `method` may render (one-sentence and numbered, every style), each once."""
    names = [name for step in method.steps for p in step.styles.values() for name in (p.template, p.batch_template)
             if name]
    return list(dict.fromkeys(names))


def all_steps() -> list[Step]:
    """Every step of every registered method (each once)."""
    seen: dict[int, Step] = {}
    for method in METHODS.values():
        for step in method.steps:
            seen.setdefault(id(step), step)
    return list(seen.values())


def template_names(*, numbered: bool = False) -> list[str]:
    """The one-sentence templates (or with `numbered`, the batch templates) of every registered
    method, each once, in declaration order."""
    return [name for name, (_, is_batch) in reply_formats().items() if is_batch == numbered]


def reply_formats(steps: list[Step] | None = None) -> dict[str, tuple[ReplyFormat, bool]]:
    """{template name: (what its reply holds, whether it is a numbered batch template)} for every
    template a registered method (or `steps`) may render (the test oracle answers by this)."""
    out: dict[str, tuple[ReplyFormat, bool]] = {}

    def add(name: str, prompting: Prompting, numbered: bool) -> None:
        known = out.setdefault(name, (prompting.reply, numbered))
        if known != (prompting.reply, numbered):
            raise ValueError(f"template {name!r} is declared with two reply formats: {known} and "
                             f"{(prompting.reply, numbered)}")

    for step in all_steps() if steps is None else steps:
        for prompting in step.styles.values():
            add(prompting.template, prompting, False)
            if prompting.batch_template:
                add(prompting.batch_template, prompting, True)
    return out


def _check_reply_formats(method: Method) -> None:
    """A ValueError when `method` declares a template the registered methods declare otherwise."""
    steps: object = getattr(method, "steps", None)    # a plugin's class may lack it
    if not isinstance(steps, tuple) or not all(isinstance(s, Step) for s in steps):
        raise ValueError("its steps are not a tuple of tf_prompt.methods.Step")
    reply_formats([*all_steps(), *method.steps])


for _module in (direct, translate_test, transfusion, one_call):
    METHODS.add_packaged(_module.METHOD)
