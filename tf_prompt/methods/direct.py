"""direct: the baseline. source --(direct)--> entities of the source."""

from __future__ import annotations

from tf_prompt.methods.base import Answer, Method
from tf_prompt.methods.context import SentenceRun
from tf_prompt.methods.steps import DIRECT, direct
from tf_prompt.spans.align import locate


class Direct(Method):
    """One call: the entities of the source sentence, in the source's own words."""

    name = "direct"
    summary = "source --(direct)--> entities of the source"
    steps = (DIRECT,)

    async def run(self, run: SentenceRun) -> Answer:
        mentions = await direct(run) or []
        return Answer(mentions, locate(run.text, mentions))


METHOD = Direct()
