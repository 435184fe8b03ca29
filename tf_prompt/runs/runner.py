"""Writes a run's outputs (the pipeline over many sentences is methods/scheduler.py).

Outputs in the run folder:
    trace.jsonl        one line per sentence, appended as each finishes (so a stopped run keeps
                       its work), rewritten in sentence order at the end
    predictions.conll  token, gold tag, predicted tag
    metrics.json       f1/precision/recall (micro, 0-1), per_type, counts, usage, settings;
                       written last, it is the commit record of whose outputs these are
    run.json           the run's identity (rundir.py decides whether a rerun continues it)
Final files are replaced whole (atomic.py): a kill while writing leaves the old or the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from tf_prompt.util import atomic
from tf_prompt.util import jsontext
from tf_prompt.llm.client import BudgetExceeded
from tf_prompt.data.conll import Sentence, write_conll
from tf_prompt.scoring.evaluate import restrict, score
from tf_prompt.types import Result
from tf_prompt.runs.rundir import OutputError


@dataclass
class RunSummary:
    """What a run produced, returned to the CLI and the Python API."""

    results: list[Result]
    metrics: dict[str, Any]
    out_dir: Path | None = None   # where this run's outputs were written (None: not written)
    #: when the run folder kept an earlier run's outputs instead (rundir.py), one line saying why
    kept: str | None = None


def compute_metrics(results: Sequence[Result], labels: Sequence[str]) -> dict[str, Any]:
    """Scores (if the data is labelled) and the pipeline's counts of what went wrong.

    A sentence whose call failed after all retries has no answer, not an empty one: it is left
    out of the scores instead of counting its entities as missed. `scored_sentences` says how
    many sentences the scores cover (fewer than `n_sentences` when some failed).
    """
    traces = [r.trace for r in results]
    metrics: dict[str, Any] = {
        "n_sentences": len(results),
        "parse_failures": sum(len(t.parse_failures) for t in traces),
        "parse_failures_by_step": {},
        "sentences_with_parse_failure": sum(1 for t in traces if t.parse_failures),
        "failed_sentences": sum(1 for t in traces if t.failed),
        "hallucinated": sum(len(t.hallucinated) for t in traces),
        "unaligned": sum(len(t.unaligned) for t in traces),
        "unknown_labels": sum(len(t.unknown_labels) for t in traces),
        "predicted_entities": sum(len(r.spans) for r in results),
    }
    for t in traces:
        for step in t.parse_failures:
            metrics["parse_failures_by_step"][step] = metrics["parse_failures_by_step"].get(step, 0) + 1
    answered = [r for r in results if not r.trace.failed]
    labelled = [r for r in answered if r.sentence.tags is not None]
    if labelled and len(labelled) == len(answered):
        gold = [restrict(r.sentence.tags or [], labels) for r in answered]
        scores = score(gold, [r.tags for r in answered])
        metrics = {**scores, **metrics, "scored_sentences": len(answered)}
    else:
        metrics = {"f1": None, "precision": None, "recall": None, "per_type": {}, **metrics,
                   "scored_sentences": 0}
    return metrics


class TraceWriter:
    """Appends trace lines as sentences finish, flushing each, so interrupted work is kept.

    The file is opened (truncated) only when the first sentence finishes, after `on_open` has
    run: a run that fails before finishing any sentence (a bad key, a template error) never
    touches the folder's earlier trace.
    """

    def __init__(self, path: Path, on_open: Callable[[], None] | None = None):
        self.path = path
        self._on_open = on_open
        self._fh: IO[str] | None = None

    @property
    def opened(self) -> bool:
        return self._fh is not None

    def __call__(self, result: Result) -> None:
        try:
            if self._fh is None:
                if self._on_open is not None:
                    self._on_open()
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("w", encoding="utf-8")
            self._fh.write(jsontext.dumps(result.trace.to_dict()) + "\n")   # never unencodable text
            self._fh.flush()
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write the trace ({e.strerror or e}); the replies "
                              f"received are cached, rerun once it is writable") from None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def write_outputs(out_dir: Path, results: Sequence[Result], metrics: dict[str, Any],
                  first: Sequence[tuple[str, Callable[[Path], None]]] = ()) -> None:
    """Write predictions, the ordered trace and metrics, each atomically (old file or new, never
    half of one).

    Each file is attempted even if another fails, so one unwritable file never costs the others;
    the first failure is then raised as one OutputError line. `first` are extra (name, writer)
    pairs written before the others (the run folder's manifest). metrics.json is written last:
    it is the commit record that says whose outputs the folder holds (rundir.py).
    """
    ordered = sorted(results, key=lambda r: r.sentence.index)

    def predictions(path: Path) -> None:
        with atomic.replacing(path) as tmp:
            write_conll(tmp, [r.sentence for r in ordered], [r.tags for r in ordered])

    def trace(path: Path) -> None:
        atomic.write_text(path, "".join(jsontext.dumps(r.trace.to_dict()) + "\n" for r in ordered))

    def metrics_json(path: Path) -> None:
        atomic.write_text(path, jsontext.dumps(metrics, indent=2) + "\n")

    failures: list[str] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out_dir}: cannot create the output folder ({e.strerror or e})") from None
    for name, write in [*first, ("predictions.conll", predictions), ("trace.jsonl", trace),
                        ("metrics.json", metrics_json)]:
        try:
            write(out_dir / name)
        except (OSError, ValueError) as e:
            failures.append(f"{out_dir / name}: cannot write ({getattr(e, 'strerror', None) or e})")
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise OutputError(f"{failures[0]}{more}; the other outputs were written and the replies are cached")


def format_summary(metrics: dict[str, Any]) -> str:
    """A short table for the terminal; scores that cover only part of the set say so first."""
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
        lines.append(f"{'type':<8}{'P':>8}{'R':>8}{'F1':>8}{'n':>7}")
        for name, v in sorted(metrics.get("per_type", {}).items()):
            lines.append(f"{name:<8}{v['precision']*100:>8.1f}{v['recall']*100:>8.1f}{v['f1']*100:>8.1f}"
                         f"{v['support']:>7}")
        lines.append(f"{'micro':<8}{metrics['precision']*100:>8.1f}{metrics['recall']*100:>8.1f}"
                     f"{metrics['f1']*100:>8.1f}{metrics.get('support', 0):>7}")
    counts = (f"sentences {n}{f' ({failed} failed)' if failed else ''}  parse failures {metrics['parse_failures']}  "
              f"hallucinated {metrics['hallucinated']}  unaligned {metrics['unaligned']}")
    lines.append(counts)
    usage = metrics.get("usage")
    if usage:
        lines.append(f"calls {usage['calls']}  cache hits {usage['cache_hits']}  retries {usage['retries']}  "
                     f"tokens {usage['prompt_tokens']}+{usage['completion_tokens']}  "
                     f"cost {'$%.4f' % usage['cost_usd'] if usage['cost_usd'] is not None else 'unknown'}  wall {usage['wall_seconds']:.1f}s")
    return "\n".join(lines)
