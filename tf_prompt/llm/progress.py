"""The progress line on stderr: sentences done, calls, cache hits, retries, tokens, cost, ETA.

tqdm does the terminal handling (redraw, ETA, rate); it is off when stderr is not a terminal
unless asked for, so logs and CI output stay clean.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from tf_prompt.llm.client import Usage


class Progress:
    def __init__(self, total: int, usage: Usage, enabled: bool | None = None, desc: str = "run"):
        self.usage = usage
        self.bar = tqdm(total=total, file=sys.stderr, unit="sent", desc=desc, dynamic_ncols=True,
                        disable=(not sys.stderr.isatty()) if enabled is None else not enabled, leave=True)

    def advance(self) -> None:
        u = self.usage
        cost = f"${u.cost_usd:.4f}" if u.cost_known else "$?"
        self.bar.set_postfix_str(
            f"calls {u.calls} hits {u.cache_hits} retries {u.retries} "
            f"tok {u.prompt_tokens + u.completion_tokens} {cost}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
