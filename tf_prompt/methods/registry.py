"""The one list of methods. The CLI's --method choices, settings validation, the templates a run
records (templates.py), batching (through each call's step declaration) and the test oracle all
read it, so a method registered here is known everywhere at once.

The packaged methods are listed below. Code outside the package (a plugin, a test) adds its own
with `register(MyMethod())` before building settings or the command-line parser.
"""

from __future__ import annotations

from tf_prompt.methods import direct, one_call, transfusion, translate_test
from tf_prompt.methods.base import Method, Prompting, ReplyFormat, Step

#: name -> method, in the order the CLI lists them. Read it live (not a copy): methods
#: registered later appear in it.
METHODS: dict[str, Method] = {}


def register(method: Method, *, replace: bool = False) -> Method:
    """Add `method` under its name; a second method of the same name is refused unless `replace`."""
    if not replace and method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (for tests that register one of their own)."""
    METHODS.pop(name, None)


def get_method(name: str) -> Method:
    """The method called `name`, or a ValueError that lists the choices."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


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


def reply_formats() -> dict[str, tuple[ReplyFormat, bool]]:
    """{template name: (what its reply holds, whether it is a numbered batch template)} for every
    template a registered method may render (the test oracle answers by this)."""
    out: dict[str, tuple[ReplyFormat, bool]] = {}

    def add(name: str, prompting: Prompting, numbered: bool) -> None:
        known = out.setdefault(name, (prompting.reply, numbered))
        if known != (prompting.reply, numbered):
            raise ValueError(f"template {name!r} is declared with two reply formats: {known} and "
                             f"{(prompting.reply, numbered)}")

    for step in all_steps():
        for prompting in step.styles.values():
            add(prompting.template, prompting, False)
            if prompting.batch_template:
                add(prompting.batch_template, prompting, True)
    return out


for _module in (direct, translate_test, transfusion, one_call):
    register(_module.METHOD)
