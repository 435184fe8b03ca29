"""The English sentence in a translate-step reply, without fences, labels, preambles or quotes.

The translation is fed to the English NER prompt, so chatter around it would become spurious
entity context.
"""

from __future__ import annotations

import re

from tf_prompt.parsing.items import lower_keys
from tf_prompt.parsing.jsonish import load_jsonish
from tf_prompt.parsing.scan import FENCE_LINE, fenced_blocks, scan_segments
from tf_prompt.types import ParseFailure

_TRANSLATION_KEYS = (
    "translation", "english_translation", "english", "translated_text", "translated_sentence", "text", "output",
)
_TRANSLATION_LABEL = re.compile(
    r"^\s*(?:(?:sure|certainly|okay|ok|of course)[,!.]?\s*)?"
    r"(?:here\s+is|here's)\s+the\s+(?:english\s+)?translation\b[^:\n]{0,40}:\s*"
    r"|^\s*(?:\*\*)?(?:the\s+)?(?:english\s+translation|english|translation|translated\s+(?:text|sentence)|answer|output)"
    r"(?:\s*\([^)\n]{0,30}\))?\s*(?:\*\*)?\s*[:：]\s*(?:\*\*(?=\s))?\s*",
    re.I,
)
_PREAMBLE = re.compile(
    r"^(?:sure|certainly|okay|ok|of course|here\s+is|here's|here\s+are|below\s+is|the\s+(?:english\s+)?translation)\b",
    re.I,
)
_QUOTE_PAIRS = {'"': '"', "“": "”", "„": "“", "«": "»", "「": "」", "'": "'", "‘": "’"}


def _unquote(text: str) -> str:
    """Drop one pair of wrapping quotes, unless the quotes are really two separate quotations."""
    if len(text) < 2 or text[0] not in _QUOTE_PAIRS or text[-1] != _QUOTE_PAIRS[text[0]]:
        return text
    inner = text[1:-1]
    if text[0] in "'‘":
        # Apostrophes inside words are fine; a quote next to a space means nested quoting.
        if re.search(r"(?:^|\s)['‘’]|['‘’](?:\s|$)", inner):
            return text
    elif text[0] in inner or text[-1] in inner:
        return text
    return inner.strip()


def _translation_from_json(text: str) -> str | None:
    for candidate in (text, *scan_segments(text)[0]):
        loaded = load_jsonish(candidate)
        if isinstance(loaded, dict):
            low = {re.sub(r"[\s\-]+", "_", k): v for k, v in lower_keys(loaded).items()}
            for key in _TRANSLATION_KEYS:
                if isinstance(low.get(key), str):
                    return low[key]
    return None


def parse_translation(reply: str) -> str:
    """The English sentence from a translate-step reply, without fences, labels, preambles or quotes.

    The translation is fed to the English NER prompt, so chatter around it would
    become spurious entity context. Raises ParseFailure when nothing is left.
    """
    if not isinstance(reply, str):
        raise ParseFailure(f"reply is {type(reply).__name__}, not text")
    text = reply.strip()
    blocks = [b for b in fenced_blocks(text) if b.strip()]
    text = blocks[0].strip() if blocks else FENCE_LINE.sub("", text).strip()

    from_json = _translation_from_json(text) if "{" in text else None
    if from_json is not None:
        text = from_json.strip()
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        while len(lines) > 1 and (_PREAMBLE.match(lines[0]) or lines[0].endswith(":")):
            lines.pop(0)
        while len(lines) > 1 and re.match(r"^\(?\s*(?:note|explanation)\b", lines[-1], re.I):
            lines.pop()
        text = " ".join(lines)

    for _ in range(4):
        before = text
        text = _TRANSLATION_LABEL.sub("", text, count=1).strip()
        if len(text) > 4 and text.startswith("**") and text.endswith("**"):
            text = text[2:-2].strip()
        text = _unquote(text)
        if text == before:
            break
    if not text:
        raise ParseFailure("translation reply is empty")
    return text
