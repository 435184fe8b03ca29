"""What a method declares: its steps (one model call each) and how it turns their answers into
the sentence's entities.

Everything that needs to know about methods reads these declarations through the registry
(registry.py) instead of keeping its own list: the CLI's --method choices, settings validation,
the templates a run records (templates.py: metrics.json, `estimate`, the sweep fingerprint),
multi-sentence batching (which steps batch, which variables differ per sentence) and the test
oracle (which template a prompt was rendered from, and what kind of answer it wants). A new
method is therefore one new module that declares a `Method` subclass, plus its templates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from tf_prompt.spans.align import Alignment
from tf_prompt.types import Mention

if TYPE_CHECKING:
    from importlib.abc import Traversable
    from pathlib import Path

    from tf_prompt.methods.context import SentenceRun
    from tf_prompt.settings import RunSettings

#: The steps of the packaged methods. A step name keys the trace (replies, templates, errors),
#: the usage table of `estimate` and the batching order, so it is part of the recorded outputs.
StepName = Literal["translate", "annotate", "direct", "fuse", "tf1"]
#: Prompt styles: "json" (chat instructions, JSON answer) or "gollie" (Python code, GoLLIE/GoLLIE-TF).
Style = Literal["json", "gollie"]
STYLES: tuple[Style, ...] = ("json", "gollie")
#: What a step's reply holds, which decides how it is parsed (context.py, the method's module),
#: how a numbered batch answer is split back (batching.py) and what the test oracle answers:
#:   translation  an English sentence (plain text)
#:   entities     a JSON entity list {"entities": [{"text", "type"}]} (or what parse_entities reads)
#:   code         GoLLIE code: `result = [Person(span="...")]`
#:   code_fused   GoLLIE-TF code: `result` (English entities) then `final_result` (source entities)
#:   fused        one JSON object with "translation", "english_entities" and "entities"
ReplyFormat = Literal["translation", "entities", "code", "code_fused", "fused"]
REPLY_FORMATS: tuple[ReplyFormat, ...] = ("translation", "entities", "code", "code_fused", "fused")


@dataclass(frozen=True)
class Prompting:
    """How a step is asked in one prompt style.

    `template` is the one-sentence template (a name TemplateSet loads: "direct" -> the highest
    direct.vN.jinja). `batch_template` is the numbered multi-sentence template used with
    --batch-sentences K; None means the step is always asked one sentence at a time.
    """

    template: str
    reply: ReplyFormat
    batch_template: str | None = None


@dataclass(frozen=True, eq=False)
class Step:
    """One model call of a method.

    `item_vars` are the template variables that differ per sentence, each with the empty value
    that blanks it out: a numbered prompt sends them per item and the rest once (batching.py),
    and the prompt without them shows what a parrot reply would copy (Context.shown).
    """

    name: StepName
    styles: Mapping[Style, Prompting]
    item_vars: Mapping[str, Any] = field(default_factory=lambda: {"text": ""})

    def prompting(self, style: str) -> Prompting:
        """How this step is asked in `style` (a KeyError names a style the step lacks)."""
        try:
            return self.styles[style]   # type: ignore[index]
        except KeyError:
            raise KeyError(f"step {self.name!r} has no {style!r} prompt") from None


@dataclass
class Answer:
    """What a method found in a sentence: the entity strings it was given and where they are."""

    mentions: list[Mention]
    alignment: Alignment


class Method(ABC):
    """A method: the steps it may ask, the styles it speaks, and how a sentence is run.

    Subclasses set the class attributes and implement `run`; `llm_steps` covers the common case
    (translation and English annotation may be done by another component than the LLM).
    """

    #: The --method name.
    name: ClassVar[str]
    #: One line for documentation: what goes in, what comes out.
    summary: ClassVar[str]
    #: Every step the method may ask, in the order their calls become ready: a chunk of
    #: --batch-sentences sends the earliest waiting step first (batching.py).
    steps: ClassVar[tuple[Step, ...]]
    #: The prompt styles the method has prompts for.
    styles: ClassVar[tuple[Style, ...]] = STYLES
    #: Whether --combine (a rule over several views of the sentence, spans/combine.py) applies.
    combines: ClassVar[bool] = False
    #: Whether the method checks its translation before pivoting through it (--pivot-check,
    #: methods/pivot_check.py) and answers with the direct view when it fails.
    checks_pivot: ClassVar[bool] = False
    #: The folder of the method's own templates, for a method from outside the package (a plugin):
    #: typically `importlib.resources.files(__package__) / "prompts"`. Searched after --prompts DIR
    #: and the packaged templates, for the names it declares that no packaged template has
    #: (prompting/templates.py). The packaged methods' templates are the package's (None).
    prompts: ClassVar[Traversable | Path | None] = None

    def default_combine(self, style: str) -> str:
        """The combination rule used when --combine is not given ("none": the method's own answer)."""
        return "none"

    def llm_steps(self, settings: RunSettings) -> list[Step]:
        """The steps that ask the LLM for `settings`, in the order metrics.json records their
        templates: the method's steps minus translation and annotation done by another component
        (--translator file:/mt:, --annotator spacy/file:)."""
        skip = set()
        if settings.translator != "llm":
            skip.add("translate")
        if settings.annotator != "llm":
            skip.add("annotate")
        return [s for s in self.steps if s.name not in skip]

    @abstractmethod
    async def run(self, run: SentenceRun) -> Answer:
        """Ask the steps for one sentence and say what was found (SentenceFailed stops it)."""
