"""translate-test: annotate an English translation and project its entities back.

    source --(translate)--> English --(annotate)--> English entities
           --(projection by string alignment, no model call)--> entities of the source
"""

from __future__ import annotations

from tf_prompt.methods.base import Answer, Method
from tf_prompt.methods.context import PROJECTION_THRESHOLD, SentenceRun
from tf_prompt.methods.steps import ANNOTATE, TRANSLATE, pivot
from tf_prompt.spans.align import Alignment, locate


class TranslateTest(Method):
    """Translate, annotate the English, find each English entity in the source by fuzzy matching."""

    name = "translate-test"
    summary = "source --(translate)--> English --(annotate)--> English entities --(projection)--> source entities"
    steps = (TRANSLATE, ANNOTATE)

    async def run(self, run: SentenceRun) -> Answer:
        _, mentions = await pivot(run)
        mentions = mentions or []
        alignment = locate(run.text, mentions, fuzzy=PROJECTION_THRESHOLD)
        # Projection failures are not the model inventing text: the English entity just has no
        # counterpart the aligner can find.
        return Answer(mentions, Alignment(alignment.spans, [], alignment.unaligned + alignment.hallucinated))


METHOD = TranslateTest()
