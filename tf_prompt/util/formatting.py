"""How amounts of money, fractions and tables are printed (estimate, sweep, report), so that the
same figure reads the same wherever it appears."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def money(x: float | None) -> str:
    """US dollars to four decimals (a run of a few sentences costs fractions of a cent);
    "unknown" for a model with no price."""
    return "unknown" if x is None else f"{x:.4f}"


def pct(x: Any, missing: str = "-") -> str:
    """A 0-1 score as a percentage with one decimal, as papers report F1; `missing` for no score
    (the markdown results print "-", the HTML report an en dash)."""
    return missing if x is None else f"{100 * float(x):.1f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int) -> str:
    """A markdown table; columns from `numeric_from` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
