"""The run folder's files: their names, how a run writes them and how they are read back.

One module for both directions, so that what a run writes and what the report, the sweep and the
folder's owner (rundir.py) read back cannot drift apart:

    run.json           the run's identity (rundir.py decides whether a rerun continues it)
    predictions.conll  token, gold tag, predicted tag
    trace.jsonl        one line per sentence, appended as each finishes (so a stopped run keeps
                       its work), rewritten in sentence order at the end
    metrics.json       f1/precision/recall (micro, 0-1), per_type, counts, usage, settings;
                       written last, it is the commit record of whose outputs these are

Final files are replaced whole (atomic.py): a kill while writing leaves the old or the new one.
Readers come in two kinds: strict ones (`read_*`) for a person reading a run, where a bad file is
one RunFileError line naming the file and line; and lenient ones (`*_or_none`, `trace_counts`)
for deciding what to do with a folder, where a damaged file only means "no usable earlier run".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from tf_prompt.data.conll import conll_columns, physical_lines, write_conll
from tf_prompt.runs.errors import OutputError, RunFileError
from tf_prompt.types import Result
from tf_prompt.util import atomic, jsontext

MANIFEST = "run.json"
PREDICTIONS = "predictions.conll"
TRACE = "trace.jsonl"
METRICS = "metrics.json"
#: Where a run that would replace an earlier run writes its trace lines until it may.
PARTIAL_TRACE = "trace.partial.jsonl"

#: A sentence of predictions.conll: tokens, gold tags (None for unlabelled data), predicted tags.
PredictedSentence = tuple[list[str], list[str] | None, list[str]]


# -- writing ---------------------------------------------------------------------------------------

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
        _write_metrics_file(path, metrics)

    failures: list[str] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out_dir}: cannot create the output folder ({e.strerror or e})") from None
    for name, write in [*first, (PREDICTIONS, predictions), (TRACE, trace), (METRICS, metrics_json)]:
        try:
            write(out_dir / name)
        except (OSError, ValueError) as e:
            failures.append(f"{out_dir / name}: cannot write ({getattr(e, 'strerror', None) or e})")
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise OutputError(f"{failures[0]}{more}; the other outputs were written and the replies are cached")


def _write_metrics_file(path: Path, metrics: dict[str, Any]) -> None:
    atomic.write_text(path, jsontext.dumps(metrics, indent=2) + "\n")


def write_metrics(out_dir: Path, metrics: dict[str, Any]) -> None:
    """Replace the folder's metrics.json alone (atomically), for a caller that amends the metrics
    of outputs already written (--via batch adds its batch usage); an unwritable file is one
    OutputError line, as in write_outputs."""
    try:
        _write_metrics_file(out_dir / METRICS, metrics)
    except (OSError, ValueError) as e:
        raise OutputError(f"{out_dir / METRICS}: cannot write ({getattr(e, 'strerror', None) or e}); "
                          f"the other outputs were written and the replies are cached") from None


# -- reading: JSON files ---------------------------------------------------------------------------

def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file; None when it does not exist, RunFileError when it cannot be used."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise RunFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a JSON object")
    return data


def json_object_or_none(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing, unreadable or not an object."""
    try:
        return read_json_object(path)
    except RunFileError:
        return None


def _number(value: Any) -> bool:
    """A JSON number (true/false are not scores, though Python counts bool as int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_metrics(metrics: dict[str, Any], path: Path) -> None:
    """Every field a reader uses has the type a run writes; else one line naming the key."""
    def bad(key: str, want: str) -> RunFileError:
        return RunFileError(f"{path}: {key!r} should be {want}, got {json.dumps(metrics_get(key))[:40]}")

    def metrics_get(key: str) -> Any:
        value: Any = metrics
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    for key in ("f1", "precision", "recall"):
        if metrics.get(key) is not None and not _number(metrics[key]):
            raise bad(key, "a number or null")
    for key in ("settings", "usage", "per_type"):
        if metrics.get(key) is not None and not isinstance(metrics[key], dict):
            raise bad(key, "an object")
    for label, v in (metrics.get("per_type") or {}).items():
        if not isinstance(v, dict) or not all(_number(v.get(k)) for k in ("precision", "recall", "f1", "support")):
            raise bad(f"per_type.{label}", "an object with numbers precision, recall, f1, support")
    settings = metrics.get("settings") or {}
    labels = settings.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise bad("settings.labels", "a list of strings")
    if settings.get("templates") is not None and not isinstance(settings["templates"], dict):
        raise bad("settings.templates", "an object")
    usage = metrics.get("usage") or {}
    if usage.get("cost_usd") is not None and not _number(usage["cost_usd"]):
        raise bad("usage.cost_usd", "a number or null")


def read_metrics(folder: Path) -> dict[str, Any] | None:
    """metrics.json, checked (check_metrics); None when the run never wrote it (interrupted)."""
    path = folder / METRICS
    metrics = read_json_object(path)
    if metrics is not None:
        check_metrics(metrics, path)
    return metrics


def metrics_or_none(folder: Path) -> dict[str, Any] | None:
    """metrics.json as it is, or None when it is missing or not a JSON object."""
    return json_object_or_none(folder / METRICS)


# -- reading: the trace ----------------------------------------------------------------------------

def _tags(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def check_trace_record(rec: dict[str, Any]) -> None:
    """Raise ValueError naming the first field of a trace line that a run would never write."""
    for key in ("replies", "templates", "parse_failures", "errors"):
        if rec.get(key) is not None and not isinstance(rec[key], dict):
            raise ValueError(f"{key!r} should be an object")
    for key in ("english_entities", "hallucinated", "unaligned", "unknown_labels"):
        if rec.get(key) is not None and not isinstance(rec[key], list):
            raise ValueError(f"{key!r} should be a list")
    if rec.get("predicted") is not None and not _tags(rec["predicted"]):
        raise ValueError("'predicted' should be a list of tags")
    if rec.get("gold") is not None and not _tags(rec["gold"]):
        raise ValueError("'gold' should be a list of tags or null")
    if "index" in rec and not (isinstance(rec["index"], int) and not isinstance(rec["index"], bool)):
        raise ValueError("'index' should be a whole number")


def read_trace(folder: Path, notes: list[str]) -> list[dict[str, Any]]:
    """Trace lines by sentence index; a torn last line (a killed run) is skipped with a note."""
    path = folder / TRACE
    if not path.is_file():
        raise RunFileError(f"{path}: not found (is this a tf-prompt run folder?)")
    try:
        lines = physical_lines(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as e:
        raise RunFileError(f"{path}: cannot read ({e.strerror or e})") from None
    by_index: dict[int, dict[str, Any]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or not isinstance(rec.get("source"), str):
                raise ValueError("not a trace record")
            check_trace_record(rec)
            idx = int(rec.get("index", n - 1))
        except (ValueError, TypeError) as e:
            if n == len(lines):
                notes.append(f"{TRACE}: last line {n} is incomplete and was skipped")
                break
            raise RunFileError(f"{path}:{n}: invalid trace line ({e})") from None
        by_index[idx] = rec
    return [by_index[i] for i in sorted(by_index)]


def trace_counts(path: Path) -> tuple[int, int]:
    """Sentences recorded in a live trace, and how many of them were answered (a line cut short
    by a kill is recorded, not answered); an unreadable file records nothing."""
    n = answered = 0
    try:
        with path.open("rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                n += 1
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                answered += isinstance(record, dict) and record.get("failed") is not True
    except OSError:
        pass
    return n, answered


# -- reading: predictions --------------------------------------------------------------------------

def read_predictions(folder: Path) -> list[PredictedSentence] | None:
    """predictions.conll as (tokens, gold or None, pred) per sentence; None when absent."""
    path = folder / PREDICTIONS
    if not path.is_file():
        return None
    out: list[PredictedSentence] = []
    toks: list[str] = []
    gold: list[str] = []
    pred: list[str] = []

    def flush() -> None:
        if toks:
            out.append((toks[:], None if all(g == "-" for g in gold) else gold[:], pred[:]))
        toks.clear()
        gold.clear()
        pred.clear()

    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as e:
        raise RunFileError(f"{path}: cannot read ({e.strerror or e})") from None
    # The CoNLL reader's rules (tf_prompt/data/conll.py): lines end at \n, \r\n or \r only, columns
    # are split at ASCII spaces and tabs only, so a token holding U+2028 or a form feed stays whole.
    for n, line in enumerate(physical_lines(text), 1):
        cols = conll_columns(line)
        if not cols or line.isspace():
            flush()
            continue
        if len(cols) < 3:
            raise RunFileError(f"{path}:{n}: expected 'token GOLD PRED', got {line[:60]!r}")
        toks.append(cols[0])
        gold.append(cols[-2])
        pred.append(cols[-1])
    flush()
    return out
