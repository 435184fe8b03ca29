"""Model replies to entity mentions: one module per reply format.

Models answer in whatever shape they like: JSON (:mod:`.json_entities`), "TYPE: a, b" lines
(:mod:`.lines`), GoLLIE code (:mod:`.code`); :mod:`.entities` tries them in order. The translate
step's reply is read by :mod:`.translation`. Shared pieces: label resolution (:mod:`.labels`),
bracket and fence scanning (:mod:`.scan`), JSON-ish values (:mod:`.jsonish`) and the raw items
every reader yields (:mod:`.items`). Model output is never executed.

Every entry point either returns a result or raises :class:`~tf_prompt.types.ParseFailure`.
"""

from tf_prompt.parsing.code import parse_code_assignments
from tf_prompt.parsing.entities import parse_entities
from tf_prompt.parsing.items import ParseResult
from tf_prompt.parsing.jsonish import parse_json_value
from tf_prompt.parsing.translation import parse_translation

__all__ = ["ParseResult", "parse_code_assignments", "parse_entities", "parse_json_value", "parse_translation"]
