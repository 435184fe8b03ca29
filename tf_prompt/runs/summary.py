"""What a run returns to its caller (RunSummary) and the short table the terminal shows of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf_prompt.types import Result


@dataclass
class RunSummary:
    """What a run produced, returned to the CLI and the Python API."""

    results: list[Result]
    metrics: dict[str, Any]
    out_dir: Path | None = None   # where this run's outputs were written (None: not written)
    #: when the run folder kept an earlier run's outputs instead (rundir.py), one line saying why
    kept: str | None = None


#: How the summary names each --scorer (scoring/metrics.py SCORERS); a metrics.json written
#: before --scorer has no `scorer` key and was scored by conll.
SCORER_NOTES = {
    "conll": "conll (seqeval: type and exact token span)",
    "string": "string (type and case-insensitive string, each gold mention matched once, as GoLLIE)",
    "both": "conll (seqeval: type and exact token span); row string: the string-match micro (as GoLLIE)",
}


def format_summary(metrics: dict[str, Any]) -> str:
    """A short table for the terminal; scores that cover only part of the set say so first, and
    the table says which scorer made it (with --scorer both, the string-match micro follows)."""
    lines = []
    n = metrics["n_sentences"]
    failed = metrics.get("failed_sentences", 0)
    if metrics.get("f1") is not None:
        scored = metrics.get("scored_sentences", n)
        if failed or scored < n:
            lines.append(f"PARTIAL: scores over {scored} of {n} sentences; {failed} failed and are not scored "
                         f"(rerun the same command to complete the set)")
        elif metrics.get("complete") is False:
            lines.append(f"PARTIAL: the run stopped; scores over the {scored} sentences finished")
        scorer = metrics.get("scorer", "conll")
        lines.append(f"scorer: {SCORER_NOTES.get(scorer, scorer)}")
        lines.append(f"{'type':<8}{'P':>8}{'R':>8}{'F1':>8}{'n':>7}")
        for name, v in sorted(metrics.get("per_type", {}).items()):
            lines.append(f"{name:<8}{v['precision']*100:>8.1f}{v['recall']*100:>8.1f}{v['f1']*100:>8.1f}"
                         f"{v['support']:>7}")
        lines.append(f"{'micro':<8}{metrics['precision']*100:>8.1f}{metrics['recall']*100:>8.1f}"
                     f"{metrics['f1']*100:>8.1f}{metrics.get('support', 0):>7}")
        strings = metrics.get("string_match")
        if isinstance(strings, dict) and strings.get("f1") is not None:
            lines.append(f"{'string':<8}{strings['precision']*100:>8.1f}{strings['recall']*100:>8.1f}"
                         f"{strings['f1']*100:>8.1f}{strings.get('support', 0):>7}")
    counts = (f"sentences {n}{f' ({failed} failed)' if failed else ''}  parse failures {metrics['parse_failures']}  "
              f"hallucinated {metrics['hallucinated']}  unaligned {metrics['unaligned']}")
    lines.append(counts)
    usage = metrics.get("usage")
    if usage:
        cost = f"${usage['cost_usd']:.4f}" if usage['cost_usd'] is not None else 'unknown'
        lines.append(f"calls {usage['calls']}  cache hits {usage['cache_hits']}  retries {usage['retries']}  "
                     f"tokens {usage['prompt_tokens']}+{usage['completion_tokens']}  "
                     f"cost {cost}  wall {usage['wall_seconds']:.1f}s")
    return "\n".join(lines)
