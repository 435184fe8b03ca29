"""transfusion: annotate an English translation, then fuse it with the source.

    source --(translate)--> English --(annotate)--> English entities
           --(fuse: source + English + English entities)--> entities of the source
    --style gollie: translate, then GoLLIE-TF writes `result` (English entities) and
                    `final_result` (source entities) in one generation: no separate annotate call

With a combination rule (--combine, spans/combine.py) the fused answer is one of three views of
the sentence, with the direct answer and the projection of the English entities; the rule makes
the final answer from them.

With the pivot check (the default with a combination rule, --pivot-check otherwise) a
translation that echoes or copies the source, is not English or cannot be read
(methods/pivot_check.py, no model call) is not pivoted through: annotate and fuse are not asked,
and the answer is the direct view of the sentence (asked anyway with a combination rule, asked
instead of them without one). The trace says why (`pivot_skipped`); metrics.json counts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tf_prompt.methods.base import Answer, Method, Prompting, Step
from tf_prompt.methods.context import (
    PROJECTION_THRESHOLD,
    SentenceRun,
    code_answer,
    complete_code,
    evidence,
    mentions_json,
)
from tf_prompt.methods.pivot_check import pivot_problem
from tf_prompt.methods.steps import ANNOTATE, DIRECT, TRANSLATE, annotate, direct, translate
from tf_prompt.parsing import parse_code_assignments
from tf_prompt.spans.align import Alignment, locate
from tf_prompt.spans.checks import check_english, check_spans
from tf_prompt.spans.combine import DEFAULT as DEFAULT_COMBINE
from tf_prompt.spans.combine import combine as combine_views
from tf_prompt.types import Mention

if TYPE_CHECKING:
    from tf_prompt.settings import RunSettings

FUSE = Step("fuse", {
    "json": Prompting("fuse", "entities", batch_template="batch_fuse"),
    "gollie": Prompting("gollie_tf", "code_fused"),
}, item_vars={"text": "", "translation": "", "english_entities": [], "hints": []})


class Transfusion(Method):
    """Translate, annotate the English, fuse; optionally combined with the direct answer."""

    name = "transfusion"
    summary = ("source --(translate)--> English --(annotate)--> English entities "
               "--(fuse: source + English + English entities)--> source entities")
    # direct before fuse: with a combination rule it is asked alongside the pivot, so its calls
    # are ready (and a chunk sends them) before the fusion's
    steps = (TRANSLATE, ANNOTATE, DIRECT, FUSE)
    combines = True
    checks_pivot = True

    def default_combine(self, style: str) -> str:
        # The default rule was measured with the json prompts; GoLLIE-TF stays the paper's one
        # prompt unless asked.
        return DEFAULT_COMBINE if style == "json" else "none"

    def llm_steps(self, settings: RunSettings) -> list[Step]:
        """translate, annotate, fuse (GoLLIE-TF has no annotate call), then `direct` when the
        combination rule needs its answer or the pivot check may answer with it."""
        out = [s for s in super().llm_steps(settings) if s is not DIRECT]
        if settings.style == "gollie":
            out = [s for s in out if s is not ANNOTATE]
        if settings.combine_rule() != "none" or settings.pivot_check_on():
            out.append(DIRECT)
        return out

    async def run(self, run: SentenceRun) -> Answer:
        if run.combine == "none":
            alone = await self._fusion(run)
            if alone is None:   # the pivot check rejected the translation
                return self._direct_view(run, await direct(run))
            fusion = alone[1] or []
            return Answer(fusion, locate(run.text, fusion))
        # The direct question is asked alongside the pivot, not after the fusion: a run waits no
        # longer, and --via batch sends it in the first wave.
        fused, asked = await asyncio.gather(self._fusion(run), direct(run), return_exceptions=True)
        if isinstance(fused, BaseException):
            raise fused
        if isinstance(asked, BaseException):
            raise asked
        if fused is None:
            return self._direct_view(run, asked)
        english, fused_mentions = fused
        mentions = fused_mentions or []
        return Answer(mentions, self._combined(run, locate(run.text, mentions), english or [], asked or []))

    @staticmethod
    def _direct_view(run: SentenceRun, asked: list[Mention] | None) -> Answer:
        return Answer(asked or [], locate(run.text, asked or []))

    @staticmethod
    def _rejected(run: SentenceRun, english: str | None) -> bool:
        """Whether the pivot check turns the translation down (recorded in the trace)."""
        if not run.pivot_check:
            return False
        # no translation at all (an unreadable reply, recorded as its parse failure): a fusion
        # "with the translation not available" is a dearer direct question
        run.trace.pivot_skipped = pivot_problem(run.text, english) if english else "no translation"
        return run.trace.pivot_skipped is not None

    async def _fusion(self, run: SentenceRun) -> tuple[list[Mention] | None, list[Mention] | None] | None:
        """(English entities, fused source entities): translate, annotate, fuse (or GoLLIE-TF);
        None when the pivot check turned the translation down (nothing more was asked)."""
        if run.ctx.style == "gollie":
            return await self._gollie_tf(run)
        ctx = run.ctx
        english = await translate(run)
        if self._rejected(run, english):
            return None
        english_mentions = await annotate(run, english) if english else None
        mentions = await run.entities(
            FUSE, text=run.text, language=ctx.language, translation=english or "(not available)",
            english_entities=mentions_json(english_mentions or []),
            hints=evidence(run.text, english_mentions or []),
            labels=ctx.label_vars, label_names=ctx.schema.names, examples=ctx.example_vars)
        return english_mentions, mentions

    async def _gollie_tf(self, run: SentenceRun) -> tuple[list[Mention] | None, list[Mention] | None] | None:
        """GoLLIE-TF: translate, then one generation writes `result` (English entities) and
        `final_result` (source entities). The English annotation is not a separate call."""
        ctx, trace = run.ctx, run.trace
        english = await translate(run)
        if self._rejected(run, english):
            return None
        gold = ctx.expected(run.sentence)
        reply = await run.ask(FUSE, code_answer({"result": gold, "final_result": gold}), text=run.text,
                              language=ctx.language, translation=english or "", labels=ctx.label_vars)
        lists = parse_code_assignments(complete_code(reply), ctx.schema.names, ctx.schema.aliases)
        if "result" in lists:
            if run.checks:
                lists["result"] = check_english(lists["result"], ctx.schema.names)
            trace.english_entities = mentions_json(lists["result"])
        if "final_result" not in lists:
            trace.parse_failures[FUSE.name] = ("no final_result in the reply" if lists
                                               else "no result/final_result lists in the reply")
            return lists.get("result"), None
        return lists.get("result"), lists["final_result"]

    def _combined(self, run: SentenceRun, fusion: Alignment, english: Sequence[Mention],
                  asked: Sequence[Mention]) -> Alignment:
        """The three views of the sentence combined by the rule (combine.py) into the answer."""
        views = {"fusion": fusion.spans,
                 "direct": locate(run.text, asked).spans,
                 "projection": locate(run.text, english, fuzzy=PROJECTION_THRESHOLD).spans}
        if run.checks:   # a span the checks would drop must not block another view's span
            views = {name: check_spans(spans, run.text, run.ctx.schema) for name, spans in views.items()}
        run.trace.views = {name: [{"start": s.start, "end": s.end, "type": s.label, "text": s.text} for s in spans]
                           for name, spans in views.items()}
        run.trace.combine = run.combine
        return Alignment(combine_views(run.combine, views), fusion.hallucinated, fusion.unaligned)


METHOD = Transfusion()
