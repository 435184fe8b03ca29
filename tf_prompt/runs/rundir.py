"""The run folder (`--out DIR`): what it holds, who may write it, and when earlier results go.

A run records its identity: the settings that determine its results (data, limit, method, style,
model, endpoint, templates, labels, combination, checks, decoding...), not how calls were made
(concurrency, cache, retries, budget) or scored (--scorer). On start:

- a folder with no earlier run (or one that recorded no sentence) is simply used;
- the same identity continues the earlier run: cached replies make it free, and the earlier
  outputs are replaced only by a run that answered at least as many sentences as the earlier
  run answered (a sentence whose calls failed has no answer, so a rerun whose calls fail never
  replaces a finished run);
- a different identity is refused in one line naming what differs, unless `overwrite` is set;
  even then the earlier outputs stay until the new run has answered a sentence.

metrics.json is the commit record. A run writes its outputs in the order run.json,
predictions.conll, trace.jsonl, metrics.json, each file atomically, and the earlier run's identity
and its counts are read together from metrics.json (`settings`, `n_sentences`,
`failed_sentences`). run.json says whose the folder is before metrics.json exists (a first run
stopped hard, whose trace.jsonl then gives the counts). A kill between those writes leaves a
torn folder, where run.json names a newer run than metrics.json: the outputs are then taken to
belong to the run in metrics.json, so rerunning its settings continues it, and the stopped
run's settings are refused as a different run (`overwrite` finishes it), never a rerun that
exits 0 and writes nothing.

While a run is writing, it holds an exclusive lock on the folder, so two runs never interleave
their files. Nothing here writes anything before `RunFolder.open` is called, and `open` is called
only after the data, templates, schema, components and backend have been validated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf_prompt.runs.errors import OutputError, RunDirError
from tf_prompt.runs.outputs import MANIFEST, METRICS, PARTIAL_TRACE, TRACE, json_object_or_none, trace_counts
from tf_prompt.util import atomic, jsontext

try:   # POSIX; elsewhere runs are not protected from each other (documented)
    import fcntl
except ImportError:   # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ADDED_LATER",
    "MANIFEST",
    "METRICS",
    "NOT_IDENTITY",
    "PARTIAL_TRACE",
    "TRACE",
    "OutputError",
    "Previous",
    "RunDirError",
    "RunFolder",
    "check_out_path",
    "data_digest",
    "differences",
    "identity_of",
    "read_previous",
]

#: Settings that change how calls are made or paid for, or how the answers are scored, never a
#: prompt or a reply: a rerun that changes only these continues the earlier run. `scorer` is one:
#: a rerun with another --scorer answers the same sentences from the reply cache (free), so it
#: writes its metrics.json over the earlier one, scored the new way, while
#: predictions.conll and trace.jsonl stay the same. metrics.json names its scorer (`scorer`,
#: and `settings.scorer`), so a re-scored folder is never mistaken for the earlier scores.
NOT_IDENTITY = frozenset({
    "out", "overwrite", "concurrency", "cache_dir", "no_cache", "max_retries", "retry_initial", "rpm",
    "tpm", "max_cost", "prices", "progress", "timeout", "api_key_env", "n_threads", "tokenizer",
    "tokenizer_note", "prices_date", "via",
    "scorer",    # --scorer: which rules make the headline F1; re-scores the same replies
    "data",      # the spec as typed: data_path and data_sha256 say what was read
    "prompts",   # the folder: `templates` holds each step's template name and hash
    # --api-version: an Azure deployment's version is part of its recorded endpoint (`base_url`,
    # `...?api-version=V`); for any other model the flag changes nothing
    "api_version",
})


def check_out_path(out: str | Path) -> Path:
    """Refuse an `--out` that can never be a run folder, before anything is read or written."""
    if not str(out).strip():
        raise RunDirError("--out is empty: give a folder for the run's outputs")
    path = Path(out)
    # normalised: `/tmp/..` names the root too (Path.absolute keeps the '..'); and resolved, so a
    # link to the root is refused as well
    absolute = Path(os.path.normpath(path.absolute()))
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):   # a link loop: the checks below say what is wrong with it
        resolved = absolute
    if absolute == Path(absolute.anchor) or resolved == Path(absolute.anchor):
        raise RunDirError(f"--out {out}: refusing to write run outputs into the root directory; "
                          f"give a folder of its own, e.g. runs/NAME")
    for p in (absolute, *absolute.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                what = "is not a directory" if p == absolute else f"is inside {p}, which is not a directory"
                raise RunDirError(f"--out {out}: {what}; give a folder for the run's outputs")
            break
    return path


def data_digest(rows: Sequence[tuple[Sequence[str], Sequence[str] | None]]) -> str:
    """A hash of the sentences a run scores (tokens and gold tags): editing the data changes it."""
    h = hashlib.sha256()
    for tokens, tags in rows:
        line = json.dumps([list(tokens), None if tags is None else list(tags)], ensure_ascii=False)
        h.update(line.encode("utf-8", "surrogatepass"))   # text from the Python API may hold any str
        h.update(b"\n")
    return h.hexdigest()


#: Settings added by a later version that change results, with the value every run recorded before
#: them had: a run folder without the key is compared as if it held that value, so it continues
#: with it and is refused with any other (a key merely missing would hide the change).
ADDED_LATER: dict[str, Any] = {
    "constrain": "none",   # --constrain (issue 13): runs before it had free answers
    "pivot_check": False,  # --pivot-check (issue 13): transfusion pivoted through every translation
}


def identity_of(settings_record: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's recorded settings (metrics.json `settings`) that determines results."""
    return {k: v for k, v in settings_record.items() if k not in NOT_IDENTITY}


def _show(value: Any) -> str:
    if value is None:
        return "none"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 48 else "..." + text[-45:]   # the end of a path is what differs


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two identities, one short phrase per setting (keys in both only,
    so a setting added by a later version does not make every earlier run look different; a
    setting in ADDED_LATER that one side lacks reads as the value runs had before it).

    The data is compared by content when both sides have its hash: the same sentences read
    from another path (a moved data folder, a reinstalled package) are the same run.
    A different `limit` reads different sentences, so the data hash then differs without the data
    having changed: the limit is named (and the data path, if that differs too), not the data.
    """
    old = {**{k: v for k, v in ADDED_LATER.items() if k in new}, **old}
    new = {**{k: v for k, v in ADDED_LATER.items() if k in old}, **new}
    hashed = "data_sha256" in old and "data_sha256" in new
    limited = "limit" in old and "limit" in new and old["limit"] != new["limit"]
    out = []
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key], new[key]
        if a == b or (key == "data_sha256" and limited) or (key == "data_path" and hashed and not limited):
            continue
        if key == "data_sha256":
            paths = old.get("data_path"), new.get("data_path")
            out.append(f"data ({_show(paths[0])} -> {_show(paths[1])})" if paths[0] != paths[1]
                       else f"data (the contents of {_show(paths[1])} changed)")
        elif isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k} {_show(a.get(k))} -> {_show(b.get(k))}"
                    for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        else:
            out.append(f"{'data' if key == 'data_path' else key} {_show(a)} -> {_show(b)}")
    return out


@dataclass
class Previous:
    """An earlier run found in the folder."""

    identity: dict[str, Any] | None   # None: its settings are not recorded
    n_sentences: int                  # sentences it recorded, answered or failed (0: nothing to lose)
    answered: int                     # of those, sentences that got their answers (not failed)
    #: run.json's identity when it names another run than metrics.json: a run with those settings
    #: was stopped while writing its outputs over this one (the folder is torn)
    torn: dict[str, Any] | None = None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def read_previous(folder: Path) -> Previous | None:
    """The earlier run in `folder`, or None when there is none (or it recorded no sentence).

    Identity and counts come from one file, metrics.json (the commit record), when it holds
    them; run.json and the trace only for a run that never wrote metrics.json.
    """
    manifest = json_object_or_none(folder / MANIFEST)
    named = manifest.get("identity") if manifest else None
    named = named if isinstance(named, dict) else None
    metrics = json_object_or_none(folder / METRICS) or {}
    n = _count(metrics.get("n_sentences"))
    if n is None:
        n, answered = trace_counts(folder / TRACE)
        identity = named
    else:
        answered = max(0, n - (_count(metrics.get("failed_sentences")) or 0))
        recorded = metrics.get("settings")
        identity = identity_of(recorded) if isinstance(recorded, dict) else named
    if n <= 0:
        return None
    torn = named if named is not None and identity is not None and differences(identity, named) else None
    return Previous(identity=identity, n_sentences=n, answered=answered, torn=torn)


class RunFolder:
    """One run's use of its output folder: lock, identity check, and where the trace goes."""

    def __init__(self, path: Path, identity: dict[str, Any], *, overwrite: bool = False):
        self.path = path
        # as it will read back from run.json and metrics.json, so an unchanged run compares equal
        self.identity = json.loads(json.dumps(identity, ensure_ascii=False, default=str))
        self.overwrite = overwrite
        self.previous: Previous | None = None
        self._lock_fd: int | None = None

    def open(self) -> None:
        """Create the folder, lock it and compare with the run already there (raises RunDirError)."""
        check_out_path(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(f"--out {self.path}: cannot create the folder ({e.strerror or e})") from None
        self._lock()
        try:
            self._remove_stale_temporaries()
            self.previous = read_previous(self.path)
            prev = self.previous
            if prev is None or self.overwrite:
                return
            if prev.identity is None:
                raise RunDirError(f"--out {self.path} holds an earlier run ({prev.n_sentences} sentences) whose "
                                  f"settings are not recorded: use another --out, or --overwrite to replace it")
            diff = differences(prev.identity, self.identity)
            if diff:
                torn = ("; a run with these settings was stopped while writing its outputs over it"
                        if prev.torn is not None and not differences(prev.torn, self.identity) else "")
                raise RunDirError(f"--out {self.path} holds a different run ({'; '.join(diff)}{torn}): use "
                                  f"another --out, or --overwrite to replace it")
        except BaseException:
            self.close()
            raise

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of a write that a kill interrupted (we hold the lock: none is live)."""
        for p in self.path.glob(".*.tmp*"):
            if atomic.TEMPORARY.fullmatch(p.name):
                with contextlib.suppress(OSError):
                    p.unlink()

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise RunDirError(f"--out {self.path}: cannot open the folder ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunDirError(f"--out {self.path} is being written by another tf-prompt run: wait for it to "
                              f"finish, or use another --out") from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (the folder stays as the run left it)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)   # closing the descriptor releases the flock
            self._lock_fd = None

    @property
    def replacing(self) -> bool:
        """Whether an earlier run's outputs are in the folder (and must survive until replaced)."""
        return self.previous is not None

    @property
    def trace_path(self) -> Path:
        """Live trace lines: trace.jsonl, or a side file while an earlier run's trace is kept."""
        return self.path / (PARTIAL_TRACE if self.replacing else TRACE)

    def may_replace(self, answered: int) -> bool:
        """Whether a run that answered `answered` sentences (failed ones not counted) may now
        write its outputs.

        A run into a folder with no earlier run always may. Otherwise only a run that answered
        something, and, when it continues the same run, at least as many sentences as the
        earlier run answered: a stopped rerun, or one whose calls failed, never shrinks a
        finished run.
        """
        prev = self.previous
        if prev is None:
            return True
        if answered <= 0:
            return False
        same = prev.identity is not None and not differences(prev.identity, self.identity)
        return answered >= prev.answered if same else True

    def kept_because(self, answered: int) -> str:
        """Why `may_replace(answered)` refused, in one line for the user."""
        prev = self.previous
        earlier = f" ({prev.answered} sentence(s) answered)" if prev else ""
        return (f"{self.path} keeps the earlier run's outputs{earlier}: this run answered {answered}, so it "
                f"did not replace them (its trace is in {PARTIAL_TRACE} there)")

    def write_manifest(self, path: Path | None = None) -> None:
        """Record this run's identity (atomically) in run.json."""
        from tf_prompt import __version__

        atomic.write_text(path or self.path / MANIFEST, jsontext.dumps(
            {"tf_prompt": __version__, "identity": self.identity}, indent=2, sort_keys=True, default=str) + "\n")

    def started(self) -> None:
        """The first sentence finished: a folder with no earlier run now records whose it is."""
        if not self.replacing:
            self.write_manifest()

    def committed(self) -> None:
        """The outputs were written: the side trace (if any) is no longer needed."""
        with contextlib.suppress(OSError):
            (self.path / PARTIAL_TRACE).unlink(missing_ok=True)
