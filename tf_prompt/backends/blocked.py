"""Replies a provider's safety filter withheld: told apart from answers by their finish reason.

A blocked prompt is not the endpoint failing (retrying sends the same prompt to the same filter,
and is paid again) nor a reason to stop the run (the other sentences are fine). The backends
return such a reply as an empty Completion whose finish reason starts with BLOCKED; it is cached
like any reply (a rerun does not pay for it again), and the step that asked fails its sentence
with `describe`'s line in the trace.
"""

from __future__ import annotations

#: The finish-reason prefix of a reply a safety filter withheld (`blocked: SAFETY`).
BLOCKED = "blocked: "
#: Finish reasons that mean the same when a provider reports them as such (OpenAI and Azure's
#: output filter; Gemini's candidate finish reasons).
_FILTER_REASONS = {"content_filter", "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
                   "IMAGE_SAFETY"}


def blocked_finish(reason: str) -> str:
    """The finish reason a backend records for a reply withheld for `reason`."""
    return BLOCKED + reason


def block_reason(finish_reason: str | None) -> str | None:
    """Why a reply was withheld (None: it was not)."""
    if not finish_reason:
        return None
    if finish_reason.startswith(BLOCKED):
        return finish_reason[len(BLOCKED):]
    return finish_reason if finish_reason in _FILTER_REASONS else None


def describe(reason: str) -> str:
    """The one line a blocked call leaves in the trace."""
    return (f"the provider's safety filter withheld the reply ({reason}); this call has no answer, "
            f"and retrying sends the same prompt to the same filter")
