"""One sentence through a method: the method (registry.py) asks its steps, the pipeline makes
the result.

The methods themselves live one per file (direct.py, translate_test.py, transfusion.py,
one_call.py) and say what they ask; the pipeline only dispatches to the method object and
ends every method the same way: entity strings are located in the source text (align.locate),
checked, and turned into BIO tags on the dataset's own tokens. A reply that cannot be parsed is
recorded in the sentence's trace and counted; it never stops the run. A call that fails after
its retries stops only its sentence (SentenceFailed), which is returned with no entities.
"""

from __future__ import annotations

from collections.abc import Sequence

from tf_prompt.data.conll import Sentence
from tf_prompt.methods.base import STYLES, Method
from tf_prompt.methods.context import (
    CLASS_NAMES,
    PROJECTION_THRESHOLD,
    Context,
    SentenceRun,
    answer_json,
    class_name,
    code_answer,
    complete_code,
    evidence,
    gold_mentions,
    mentions_json,
)
from tf_prompt.methods.registry import METHODS, get_method
from tf_prompt.prompting.batching import ChunkBatcher
from tf_prompt.spans.align import Alignment, spans_to_bio
from tf_prompt.spans.checks import check_spans
from tf_prompt.spans.combine import RULES as COMBINE_RULES
from tf_prompt.types import Annotator, Mention, Result, SentenceFailed, Trace, Translator

# Names other modules and tests import from here.
__all__ = ["CLASS_NAMES", "METHODS", "PROJECTION_THRESHOLD", "STYLES", "Annotator", "Context", "Pipeline",
           "Result", "Trace", "Translator", "answer_json", "class_name", "code_answer", "complete_code",
           "evidence", "gold_mentions"]


class Pipeline:
    """Runs one method on one sentence at a time; safe to call concurrently."""

    def __init__(self, method: str | Method, ctx: Context, *, translator: Translator | None = None,
                 annotator: Annotator | None = None, combine: str = "none", checks: bool = True,
                 pivot_check: bool = False):
        if combine not in COMBINE_RULES:
            raise ValueError(f"unknown combination rule {combine!r}; choose from {', '.join(COMBINE_RULES)}")
        self.method: Method = get_method(method) if isinstance(method, str) else method
        self.combine = combine
        self.checks = checks
        # a dry run (estimate) never checks: its stand-in translation is the source itself, and
        # the estimate stays an upper bound (every sentence pays annotate and fuse)
        self.pivot_check = pivot_check and not ctx.client.options.dry_run
        self.ctx = ctx
        #: components replacing the LLM's translate / annotate steps (None: the LLM)
        self.translator = translator
        self.annotator = annotator

    def batcher(self, members: int) -> ChunkBatcher:
        """A batcher for a chunk of `members` sentences (--batch-sentences), to pass to `run`."""
        return ChunkBatcher(self.ctx.templates, self.ctx.client, members, self.ctx.ask_single,
                            order=[step.name for step in self.method.steps])

    async def run(self, sentence: Sentence, *, batcher: ChunkBatcher | None = None) -> Result:
        """The result of one sentence; its calls go to `batcher` if given (its chunk's)."""
        trace = Trace(index=sentence.index, source=sentence.text,
                      gold=list(sentence.tags) if sentence.tags is not None else None)
        run = SentenceRun(self.ctx, sentence, trace, translator=self.translator, annotator=self.annotator,
                          combine=self.combine, checks=self.checks, batcher=batcher,
                          pivot_check=self.pivot_check)
        try:
            answer = await self.method.run(run)
        except SentenceFailed:
            trace.failed = True
            return self._finish(sentence, trace, [], Alignment([], [], []))
        return self._finish(sentence, trace, answer.mentions, answer.alignment)

    def _finish(self, sentence: Sentence, trace: Trace, mentions: Sequence[Mention],
                alignment: Alignment) -> Result:
        spans = check_spans(alignment.spans, sentence.text, self.ctx.schema) if self.checks else alignment.spans
        alignment = Alignment(spans, alignment.hallucinated, alignment.unaligned)
        tags = spans_to_bio(sentence.offsets, alignment.spans)
        trace.parsed = mentions_json(mentions)
        trace.spans = [{"start": s.start, "end": s.end, "type": s.label, "text": s.text, "match": s.match}
                       for s in alignment.spans]
        trace.hallucinated = mentions_json(alignment.hallucinated)
        trace.unaligned = mentions_json(alignment.unaligned)
        trace.predicted = tags
        return Result(sentence=sentence, tags=tags, spans=list(alignment.spans), trace=trace)
