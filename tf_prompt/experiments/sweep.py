"""`tf-prompt sweep sweep.toml`: every model x dataset x method x prompt variant, as one experiment.

A sweep is the paper's comparison (direct vs TransFusion over many languages) made repeatable:

    tf-prompt sweep sweep.toml --dry-run          # cost table, nothing sent
    tf-prompt sweep sweep.toml                    # refuses (exit 2) if the estimate exceeds max_cost
    tf-prompt sweep sweep.toml --proceed-up-to-cap  # run until max_cost is spent, then stop cleanly

Each cell is an ordinary run (`tf_prompt.api.run_async`) with its own folder
`OUT/<model>/<language>/<method>[-<prompt>]/`, so every cell can be inspected, rerun or compared
with `tf-prompt run` output. Cells run one after another (each is concurrent inside): the budget
is then simple to enforce, and a stop leaves whole cells behind.

Resuming: a finished cell leaves `cell.json` with a hash of everything that determines its
replies (settings, template identities, data file contents); a cell whose hash matches and whose
metrics.json says `"complete": true` is skipped. Any other cell is rerun, and the reply cache makes
its already received replies free, so rerunning a finished sweep sends nothing.

Outputs in OUT: results.md (also printed), results.csv, results.json, f1_by_language.png and
cost_vs_f1.png. In results.csv a `kind` column separates cells, averages over languages
(language "avg") and TransFusion-minus-direct gains (method "transfusion-direct", the F1
difference in the f1 column).

Relative paths in the config are relative to the config file, so a sweep folder can be moved.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tf_prompt.util import atomic
from tf_prompt.data.conll import DataError, physical_lines
from tf_prompt.methods.pipeline import METHODS, STYLES
from tf_prompt.settings import RunSettings

EXIT_REFUSED = 2
EXIT_BUDGET = 1
EXIT_INCOMPLETE = 3
CELL_FILE = "cell.json"

#: RunSettings fields that the sweep sets itself (from the top level, [[models]], datasets or
#: [[prompts]]); [run] may not set them, so each value has exactly one place in the config.
_SET_BY_SWEEP = {
    "model": "[[models]] name", "base_url": "[[models]] base_url", "method": "methods",
    "data": "datasets", "language": "datasets (as {data = ..., language = ...})", "out": "out",
    "limit": "limit", "concurrency": "concurrency", "labels": "labels", "max_cost": "max_cost",
    "style": "[[prompts]] style", "shots": "[[prompts]] shots", "shots_from": "[[prompts]] shots_from",
    "prompts": "[[prompts]] prompts_dir", "combine": "[[prompts]] combine",
}
_MODEL_KEYS = {"name", "label", "base_url", "api_key_env", "n_threads", "n_ctx"}
_PROMPT_KEYS = {"name", "style", "shots", "shots_from", "prompts_dir", "schema", "combine"}
_DATASET_KEYS = {"data", "language", "name"}
_TOP_KEYS = {"out", "max_cost", "limit", "concurrency", "labels", "methods", "datasets", "languages",
             "models", "prompts", "run"}
#: Fields that change how calls are made but never a reply: left out of the resume hash, so
#: raising the concurrency or moving the cache does not rerun finished cells.
_NOT_IN_HASH = {"out", "concurrency", "cache_dir", "no_cache", "max_retries", "retry_initial", "rpm", "tpm",
                "max_cost", "prices", "progress", "timeout", "api_key_env", "n_threads"}
_PATH_FIELDS = {"cache_dir", "prices", "schema", "prompts"}
_DATASET_SPEC = re.compile(r"^[A-Za-z][A-Za-z0-9_-]+:")


class SweepError(DataError):
    """A bad sweep config. One line, `FILE:LINE: key: what is wrong` (or `FILE: key: ...`).

    A DataError (hence a ValueError) so the CLI prints it like any other bad input, exit 2.
    """


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: a model, a dataset, a method and a prompt variant."""

    model: str       # display name (the model's label, default its name)
    dataset: str     # the data spec as given (masakhaner2:hau:test, a path)
    language: str    # short name used in tables, plots and the folder
    method: str
    prompt: str
    settings: RunSettings

    @property
    def out_dir(self) -> Path:
        return Path(self.settings.out or ".")


@dataclass(frozen=True)
class SweepConfig:
    """A parsed sweep.toml."""

    path: Path
    out: Path
    max_cost: float | None
    cells: list[Cell]


# -- reading the config ---------------------------------------------------------------------------

class _Source:
    """The TOML text, to point errors at a line: tomllib reports lines only for syntax errors."""

    _ARRAY = re.compile(r"^\s*\[\[\s*([\w.-]+)\s*\]\]")
    _TABLE = re.compile(r"^\s*\[\s*([\w.-]+)\s*\]")
    _KEY = re.compile(r"^\s*[\"']?([\w-]+)[\"']?\s*=")

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = physical_lines(text)   # as tomllib counts lines: U+2028 in a string is no break

    def line_of(self, key: str | None, table: str | None = None, index: int = 0) -> int | None:
        """Line of `key` in `table` (its `index`-th occurrence for [[arrays]]); the table header
        when key is None."""
        current: tuple[str | None, int] = (None, 0)
        seen: dict[str, int] = {}
        for no, line in enumerate(self.lines, 1):
            if m := self._ARRAY.match(line):
                seen[m.group(1)] = seen.get(m.group(1), -1) + 1
                current = (m.group(1), seen[m.group(1)])
                if key is None and current == (table, index):
                    return no
            elif m := self._TABLE.match(line):
                current = (m.group(1), 0)
                if key is None and current == (table, index):
                    return no
            elif key is not None and current == (table, index) and (m := self._KEY.match(line)) \
                    and m.group(1) == key:
                return no
        return None

    def error(self, where: str, message: str, key: str | None = None, table: str | None = None,
              index: int = 0) -> SweepError:
        line = self.line_of(key, table, index) if (key or table) else None
        if line is None and key is not None and table is not None:
            line = self.line_of(None, table, index)
        prefix = f"{self.path}:{line}" if line else f"{self.path}"
        return SweepError(f"{prefix}: {where}: {message}")


def _check_type(src: _Source, value: Any, types: type | tuple[type, ...], where: str, what: str,
                key: str, table: str | None = None, index: int = 0) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise src.error(where, f"expected {what}, got {value!r}", key, table, index)
    if not isinstance(value, types):
        raise src.error(where, f"expected {what}, got {type(value).__name__} {value!r}", key, table, index)
    return value


def _str_list(src: _Source, value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise src.error(key, "expected a non-empty list of strings", key)
    return list(value)


def _sanitise(name: str) -> str:
    """A folder name from a model or dataset name ("gguf:qwen" -> "gguf_qwen"), never `..`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"


def _resolve_path(value: str, base: Path) -> str:
    """Config paths are relative to the config file; `~` is expanded."""
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def _data_spec(value: str, base: Path) -> str:
    """A dataset name (sample, masakhaner2:...) stays as is; anything else is a path."""
    if value == "sample" or _DATASET_SPEC.match(value):
        return value
    return _resolve_path(value, base)


def _dataset_label(spec: str, language: str | None) -> str:
    """Short name of a dataset for tables and folders: its language, with the split if not test."""
    from tf_prompt.data.languages import guess_language

    if spec.lower().startswith("masakhaner2:"):
        parts = spec.split(":")
        lang = parts[1].lower() if len(parts) > 1 else "?"
        split = parts[2].lower() if len(parts) > 2 else "test"
        return lang if split == "test" else f"{lang}-{split}"
    return language or guess_language(spec) or Path(spec).stem


def _validation_message(e: Exception) -> tuple[str, str]:
    """(field, message) of a pydantic ValidationError's first error."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        return ".".join(map(str, first["loc"])) or "?", first["msg"]
    return "?", str(e)


def load_config(path: str | Path, out: str | Path | None = None) -> SweepConfig:
    """Read and check a sweep config; every cell's RunSettings is validated before anything runs.

    `out` (the --out option) overrides the config's `out`.
    """
    from pydantic import ValidationError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(f"{path}: cannot read ({e})") from None
    src = _Source(path, text)
    try:
        conf = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$", msg)
        if m:
            line = m.group(1) or max(1, len(src.lines))
            raise SweepError(f"{path}:{line}: invalid TOML: {msg[:m.start()]}") from None
        raise SweepError(f"{path}: invalid TOML: {msg}") from None
    base = path.resolve().parent

    for key in conf:
        if key not in _TOP_KEYS:
            raise src.error(key, f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}", key)

    out_dir = Path(out) if out is not None else (
        Path(_resolve_path(_check_type(src, conf["out"], str, "out", "a folder path", "out"), base))
        if "out" in conf else path.with_suffix(""))
    max_cost = conf.get("max_cost")
    if max_cost is not None:
        _check_type(src, max_cost, (int, float), "max_cost", "a number of USD", "max_cost")
        if max_cost < 0:
            raise src.error("max_cost", "must be >= 0", "max_cost")
        max_cost = float(max_cost)
    limit = conf.get("limit")
    if limit is not None and (_check_type(src, limit, int, "limit", "a whole number", "limit") <= 0):
        raise src.error("limit", "must be > 0", "limit")
    concurrency = _check_type(src, conf.get("concurrency", 8), int, "concurrency", "a whole number",
                              "concurrency")
    labels = _str_list(src, conf["labels"], "labels") if "labels" in conf else None
    methods = _str_list(src, conf.get("methods", ["direct", "transfusion"]), "methods")
    for m in methods:
        if m not in METHODS:
            raise src.error("methods", f"unknown method {m!r}; choose from {', '.join(METHODS)}", "methods")

    datasets = _read_datasets(src, conf, base)
    models = _read_models(src, conf)
    prompts = _read_prompts(src, conf, base)
    run = _read_run(src, conf, base)

    cells: list[Cell] = []
    for mi, model in enumerate(models):
        model_fields = {k: v for k, v in model.items() if k not in ("name", "label")}
        for data, language, label in datasets:
            for method in methods:
                for prompt in prompts:
                    pname = prompt["name"]
                    cell_out = out_dir / _sanitise(model["label"]) / _sanitise(label) / _cell_folder(method, pname)
                    fields = {**run, **model_fields, "model": model["name"], "method": method, "data": data,
                              "language": language, "labels": labels, "limit": limit,
                              "concurrency": concurrency, "out": str(cell_out),
                              # combine shapes transfusion's answer; other methods ignore it
                              **{k: v for k, v in prompt.items()
                                 if k != "name" and not (k == "combine" and method != "transfusion")}}
                    try:
                        settings = RunSettings(**fields)
                    except ValidationError as e:
                        raise _locate(src, e, model, mi, prompt, prompts.index(prompt)) from None
                    cells.append(Cell(model["label"], data, label, method, pname, settings))
    _check_folders(src, cells)
    return SweepConfig(path=path, out=out_dir, max_cost=max_cost, cells=cells)


def _cell_folder(method: str, prompt: str) -> str:
    """A cell's folder under OUT/<model>/<language>/: the method, or `<method>-<prompt>`.

    Readable, and distinct for distinct (method, prompt) pairs: a short hash of the pair is
    added when the folder alone could not be read back, i.e. when sanitising changed the prompt
    name ("x/y" and "x y" both become "x_y") or when the name would start with a longer method
    (method "transfusion" with prompt "1call" vs method "transfusion-1call").
    """
    if prompt == "default":
        return method
    safe = _sanitise(prompt)
    folder = f"{method}-{safe}"
    reads_as = max((m for m in METHODS if folder == m or folder.startswith(m + "-")), key=len)
    if safe != prompt or reads_as != method:
        folder += "-" + hashlib.sha256(f"{method}\0{prompt}".encode("utf-8")).hexdigest()[:8]
    return folder


def _check_folders(src: _Source, cells: Sequence[Cell]) -> None:
    """Two cells must never share a folder (one would pass as the other's finished cell); case is
    ignored, as some file systems do."""
    seen: dict[str, Cell] = {}
    for cell in cells:
        key = str(cell.out_dir).casefold()
        other = seen.setdefault(key, cell)
        if other is not cell:
            raise src.error("folders", f"cells {other.model} / {other.language} / {other.method} / {other.prompt} "
                            f"and {cell.model} / {cell.language} / {cell.method} / {cell.prompt} would share "
                            f"the folder {cell.out_dir}; rename one of them")


def _locate(src: _Source, e: Exception, model: dict[str, Any], mi: int, prompt: dict[str, Any],
            pi: int) -> SweepError:
    """Point a cell's validation error at the table that set the bad field."""
    loc, msg = _validation_message(e)
    field = loc.split(".")[0]
    if field in prompt:
        key = "prompts_dir" if field == "prompts" else field
        return src.error(f"prompts[{pi}].{key}", msg, key, "prompts", pi)
    if field in model or field == "model":
        key = "name" if field == "model" else field
        return src.error(f"models[{mi}].{key}", msg, key, "models", mi)
    return src.error(loc, msg, loc)


def _read_datasets(src: _Source, conf: dict[str, Any], base: Path) -> list[tuple[str, str | None, str]]:
    """(data spec, language or None, label) per dataset; labels must be distinct (they are folders)."""
    if ("datasets" in conf) == ("languages" in conf):
        raise src.error("datasets", "give exactly one of datasets = [...] or languages = [...]",
                        "datasets" if "datasets" in conf else None)
    out: list[tuple[str, str | None, str]] = []
    if "languages" in conf:
        for lang in _str_list(src, conf["languages"], "languages"):
            out.append((f"masakhaner2:{lang.lower()}:test", None, lang.lower()))
    else:
        items = conf["datasets"]
        if not isinstance(items, list) or not items:
            raise src.error("datasets", "expected a non-empty list", "datasets")
        for i, item in enumerate(items):
            if isinstance(item, str) and item:
                spec = _data_spec(item, base)
                out.append((spec, None, _dataset_label(spec, None)))
            elif isinstance(item, dict) and isinstance(item.get("data"), str):
                extra = set(item) - _DATASET_KEYS
                if extra:
                    raise src.error(f"datasets[{i}]", f"unknown key {sorted(extra)[0]!r}; expected "
                                    f"{', '.join(sorted(_DATASET_KEYS))}", "datasets")
                spec = _data_spec(item["data"], base)
                language = item.get("language")
                out.append((spec, language, item.get("name") or _dataset_label(spec, language)))
            else:
                raise src.error(f"datasets[{i}]", 'expected a string or {data = "...", language = "...", '
                                'name = "..."}', "datasets")
    seen: dict[str, str] = {}
    for spec, _, label in out:
        if _sanitise(label) in seen:
            raise src.error("datasets", f"{seen[_sanitise(label)]!r} and {spec!r} would share the folder "
                            f"{_sanitise(label)!r}; give one a name: {{data = ..., name = ...}}",
                            "datasets" if "datasets" in conf else "languages")
        seen[_sanitise(label)] = spec
    return out


def _read_models(src: _Source, conf: dict[str, Any]) -> list[dict[str, Any]]:
    models = conf.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
        raise src.error("models", 'add at least one [[models]] table with name = "..."', "models")
    labels: set[str] = set()
    out = []
    for i, m in enumerate(models):
        extra = set(m) - _MODEL_KEYS
        if extra:
            k = sorted(extra)[0]
            raise src.error(f"models[{i}].{k}", f"unknown key; expected one of {', '.join(sorted(_MODEL_KEYS))}",
                            k, "models", i)
        name = m.get("name")
        if not isinstance(name, str) or not name:
            raise src.error(f"models[{i}].name", "a model name is required", "name", "models", i)
        label = m.get("label", name)
        _check_type(src, label, str, f"models[{i}].label", "a string", "label", "models", i)
        if _sanitise(label) in labels:
            raise src.error(f"models[{i}]", f"two models share the folder {_sanitise(label)!r}; "
                            'tell them apart with label = "..."', None, "models", i)
        labels.add(_sanitise(label))
        out.append({**m, "label": label})
    return out


def _read_prompts(src: _Source, conf: dict[str, Any], base: Path) -> list[dict[str, Any]]:
    """Prompt variants as RunSettings fields (+ name); one variant "default" when none is given."""
    items = conf.get("prompts", [{"name": "default"}])
    if not isinstance(items, list) or not items or not all(isinstance(p, dict) for p in items):
        raise src.error("prompts", "expected [[prompts]] tables", "prompts")
    out: list[dict[str, Any]] = []
    for i, p in enumerate(items):
        extra = set(p) - _PROMPT_KEYS
        if extra:
            k = sorted(extra)[0]
            raise src.error(f"prompts[{i}].{k}", f"unknown key; expected one of {', '.join(sorted(_PROMPT_KEYS))}",
                            k, "prompts", i)
        name = p.get("name", "default" if len(items) == 1 else None)
        if not isinstance(name, str) or not name:
            raise src.error(f"prompts[{i}].name", "each prompt variant needs a name", "name", "prompts", i)
        if name in {v["name"] for v in out}:
            raise src.error(f"prompts[{i}].name", f"duplicate prompt name {name!r}", "name", "prompts", i)
        if "style" in p and p["style"] not in STYLES:
            raise src.error(f"prompts[{i}].style", f"unknown style {p['style']!r}; choose from {', '.join(STYLES)}",
                            "style", "prompts", i)
        variant: dict[str, Any] = {"name": name}
        for key in ("style", "shots", "schema", "combine"):
            if key in p:
                variant[key] = p[key]
        if "shots_from" in p:
            variant["shots_from"] = _data_spec(str(p["shots_from"]), base)
        if "prompts_dir" in p:
            variant["prompts"] = _resolve_path(str(p["prompts_dir"]), base)
        if isinstance(variant.get("schema"), str) and Path(variant["schema"]).suffix:
            variant["schema"] = _resolve_path(variant["schema"], base)
        out.append(variant)
    return out


def _read_run(src: _Source, conf: dict[str, Any], base: Path) -> dict[str, Any]:
    """[run]: other RunSettings fields applied to every cell, checked by RunSettings itself."""
    from pydantic import ValidationError

    run = conf.get("run", {})
    if not isinstance(run, dict):
        raise src.error("run", "expected a [run] table", "run")
    known = set(RunSettings.model_fields) | {"schema"}
    for key, value in run.items():
        if key in _SET_BY_SWEEP:
            raise src.error(f"run.{key}", f"set by the sweep: use {_SET_BY_SWEEP[key]}", key, "run")
        if key not in known:
            raise src.error(f"run.{key}", "not a run setting (see tf-prompt run --help)", key, "run")
    fields = dict(run)
    for key in _PATH_FIELDS & set(fields):
        if isinstance(fields[key], str) and (key != "schema" or Path(fields[key]).suffix):
            fields[key] = _resolve_path(fields[key], base)
    try:
        RunSettings(**fields)
    except ValidationError as e:
        loc, msg = _validation_message(e)
        raise src.error(f"run.{loc}", msg, loc.split(".")[0], "run") from None
    return fields


# -- resuming --------------------------------------------------------------------------------------

def cell_fingerprint(settings: RunSettings) -> dict[str, Any]:
    """Everything that determines a cell's replies and scores: settings, the identity of each
    template it renders, and the contents of its data file."""
    from tf_prompt.api import default_model
    from tf_prompt.backends.openai_compat import effective_base_url   # the endpoint, even from $OPENAI_BASE_URL
    from tf_prompt.data.datasets import resolve_dataset
    from tf_prompt.methods.templates import template_identities  # the templates metrics.json records
    from tf_prompt.prompting.templates import TemplateSet

    fields = settings.model_dump(exclude=_NOT_IN_HASH, by_alias=True)
    fields["base_url"] = effective_base_url(default_model(settings)[0], settings.base_url)   # redacted
    fields["templates"] = template_identities(settings, TemplateSet(settings.prompts))
    if settings.data is not None:
        data = resolve_dataset(settings.data)
        fields["data_sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    return fields


def _digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def finished_metrics(cell: Cell, digest: str) -> dict[str, Any] | None:
    """The cell's metrics if it already ran to completion with the same fingerprint, else None."""
    try:
        stamp = json.loads((cell.out_dir / CELL_FILE).read_text(encoding="utf-8"))
        metrics = json.loads((cell.out_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp.get("hash") == digest and metrics.get("complete") is True:
        return metrics
    return None


# -- estimating ------------------------------------------------------------------------------------

async def estimate_sweep(config: SweepConfig) -> list[dict[str, Any]]:
    """One estimate per cell (tf_prompt.api.estimate_async: nothing is sent); a cell that already
    finished gets `{"status": "done"}` and costs nothing, since it will be skipped."""
    from tf_prompt.api import estimate_async

    out: list[dict[str, Any]] = []
    for cell in config.cells:
        fingerprint = cell_fingerprint(cell.settings)
        digest = _digest(fingerprint)
        if finished_metrics(cell, digest) is not None:
            out.append({"status": "done", "hash": digest, "fingerprint": fingerprint, "calls": 0,
                        "cached_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
            continue
        est = await estimate_async(cell.settings.model_copy(update={"max_cost": None, "progress": False}))
        out.append({**est, "status": "to run", "hash": digest, "fingerprint": fingerprint})
    return out


def _money(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.4f}"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int) -> str:
    """A markdown table; columns from `numeric_from` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_cost_table(config: SweepConfig, estimates: Sequence[dict[str, Any]]) -> str:
    """The markdown cost table printed before a sweep spends anything, with a total and notes."""
    rows = []
    for cell, est in zip(config.cells, estimates):
        rows.append([cell.model, cell.dataset, cell.method, cell.prompt, est["status"], est["calls"],
                     est["prompt_tokens"], est["completion_tokens"], _money(est["cost_usd"]), est["cached_calls"]])
    known = sum(e["cost_usd"] or 0.0 for e in estimates)
    unknown = sorted({c.settings.model or c.model for c, e in zip(config.cells, estimates)
                      if e["cost_usd"] is None})
    total = ["**total**", "", "", "", "", sum(e["calls"] for e in estimates),
             sum(e["prompt_tokens"] for e in estimates), sum(e["completion_tokens"] for e in estimates),
             f"{known:.4f}" + (" + unknown" if unknown else ""), sum(e["cached_calls"] for e in estimates)]
    text = _md_table(["model", "dataset", "method", "prompt", "status", "calls", "prompt tokens",
                      "completion tokens", "$", "cached calls"], rows + [total], 5)
    notes = [f"estimate for {len(config.cells)} cells; nothing was sent. Cached calls are free; "
             "tokens after the first step are approximate (stand-in replies)."]
    priced = [e for e in estimates if e.get("prices_date")]
    if priced:
        notes.append(f"prices of {priced[0]['prices_date']} (tf_prompt/resources/prices.json or [run] prices)")
    if unknown:
        cap = ("their cells count as $0 against max_cost, which cannot be enforced for them"
               if config.max_cost is not None else "their cost is not counted")
        notes.append(f"no price for {', '.join(unknown)}: {cap} (add a price with [run] prices = FILE)")
    if config.max_cost is not None:
        notes.append(f"max_cost: ${config.max_cost:.4f}")
    return text + "\n\n" + "\n".join(f"- {n}" for n in notes)


# -- results ---------------------------------------------------------------------------------------

CELL_COLUMNS = ["model", "language", "method", "prompt", "f1", "precision", "recall", "n", "calls", "cache_hits",
                "prompt_tokens", "completion_tokens", "cost_usd", "wall_seconds", "parse_failures"]


def cell_row(cell: Cell, metrics: dict[str, Any]) -> dict[str, Any]:
    """One results row from a cell's metrics.json (usage is that of the run that wrote it)."""
    u = metrics.get("usage", {})
    return {"model": cell.model, "language": cell.language, "method": cell.method, "prompt": cell.prompt,
            "f1": metrics.get("f1"), "precision": metrics.get("precision"), "recall": metrics.get("recall"),
            "n": metrics.get("n_sentences", 0), "calls": u.get("calls", 0), "cache_hits": u.get("cache_hits", 0),
            "prompt_tokens": u.get("prompt_tokens", 0), "completion_tokens": u.get("completion_tokens", 0),
            "cost_usd": u.get("cost_usd"), "wall_seconds": u.get("wall_seconds", 0.0),
            "parse_failures": metrics.get("parse_failures", 0), "complete": bool(metrics.get("complete")),
            "dataset": cell.dataset, "out_dir": str(cell.out_dir)}


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def averages(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, method, prompt): macro averages of F1/P/R over languages (as the paper reports),
    sums of counts, tokens and cost (None if any cell's cost is unknown)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"], r["prompt"]), []).append(r)
    out = []
    for (model, method, prompt), rs in groups.items():
        costs = [r["cost_usd"] for r in rs]
        out.append({"model": model, "language": "avg", "method": method, "prompt": prompt, "languages": len(rs),
                    **{k: _mean([r[k] for r in rs]) for k in ("f1", "precision", "recall")},
                    **{k: sum(r[k] for r in rs) for k in ("n", "calls", "cache_hits", "prompt_tokens",
                                                            "completion_tokens", "parse_failures")},
                    "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6),
                    "wall_seconds": round(sum(r["wall_seconds"] for r in rs), 3)})
    return out


def gains(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """TransFusion minus direct F1 per (model, prompt, language) where both were scored, then the
    average per (model, prompt) with language "avg"."""
    f1 = {(r["model"], r["prompt"], r["language"], r["method"]): r["f1"] for r in rows if r["f1"] is not None}
    out: list[dict[str, Any]] = []
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (model, prompt, lang, method), tf in f1.items():
        direct = f1.get((model, prompt, lang, "direct"))
        if method != "transfusion" or direct is None:
            continue
        g = {"model": model, "prompt": prompt, "language": lang, "direct_f1": direct, "transfusion_f1": tf,
             "gain": tf - direct}
        by_group.setdefault((model, prompt), []).append(g)
    for (model, prompt), gs in by_group.items():
        out.extend(gs)
        out.append({"model": model, "prompt": prompt, "language": "avg",
                    "direct_f1": _mean([g["direct_f1"] for g in gs]),
                    "transfusion_f1": _mean([g["transfusion_f1"] for g in gs]),
                    "gain": _mean([g["gain"] for g in gs])})
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def format_results(rows: Sequence[dict[str, Any]], title: str, notes: Sequence[str] = ()) -> str:
    """results.md: cells, averages over languages, TransFusion gains (F1 in %, 1 decimal)."""
    def usage_cols(r: dict[str, Any]) -> list[Any]:
        return [r["n"], r["calls"], r["cache_hits"], r["prompt_tokens"], r["completion_tokens"],
                _money(r["cost_usd"]), f"{r['wall_seconds']:.1f}", r["parse_failures"]]

    usage_heads = ["n", "calls", "cache hits", "prompt tok", "compl. tok", "$", "wall s", "parse fail"]
    parts = [f"# {title}", "", "## Cells", "",
             _md_table(["model", "language", "method", "prompt", "F1", "P", "R", *usage_heads],
                       [[r["model"], r["language"] + ("" if r.get("complete", True) else " (incomplete)"),
                         r["method"], r["prompt"], _pct(r["f1"]), _pct(r["precision"]), _pct(r["recall"]),
                         *usage_cols(r)] for r in rows], 4)]
    avg = averages(rows)
    if avg:
        parts += ["", "## Averages over languages (macro)", "",
                  _md_table(["model", "method", "prompt", "languages", "F1", "P", "R", *usage_heads],
                            [[a["model"], a["method"], a["prompt"], a["languages"], _pct(a["f1"]),
                              _pct(a["precision"]), _pct(a["recall"]), *usage_cols(a)] for a in avg], 3)]
    gs = gains(rows)
    if gs:
        parts += ["", "## TransFusion gain over direct (F1 points)", "",
                  _md_table(["model", "prompt", "language", "direct F1", "transfusion F1", "gain"],
                            [[g["model"], g["prompt"], g["language"] if g["language"] != "avg" else "**avg**",
                              _pct(g["direct_f1"]), _pct(g["transfusion_f1"]),
                              f"{100 * g['gain']:+.1f}"] for g in gs], 3)]
    if notes:
        parts += [""] + [f"- {n}" for n in notes]
    return "\n".join(parts) + "\n"


def write_results(out: Path, rows: Sequence[dict[str, Any]], title: str, notes: Sequence[str] = (),
                  *, plots: bool = True) -> list[str]:
    """Write results.md/.csv/.json, then the plots; returns notes about what could not be done.

    The tables come first and each file is attempted whatever happened to the others, so no plot
    can cost them: a plot that fails for any reason other than the disk is a one-line note (also
    in results.md/.json, which are then rewritten to list only the plots drawn), and its stale
    file from an earlier sweep is removed. Each file is replaced whole (atomic.py); the first
    file that cannot be written is then raised as one OutputError line.
    """
    from tf_prompt.runs.rundir import OutputError

    extra: list[str] = []
    plotters: list[tuple[str, Callable[[Sequence[dict[str, Any]], Path], Any]]] = []
    if plots and rows:
        try:
            from tf_prompt.experiments.plots import plot_cost_vs_f1, plot_f1_by_language
        except ImportError:
            extra.append("plots skipped: matplotlib is not installed (pip install matplotlib)")
        else:
            plotters = [("f1_by_language.png", plot_f1_by_language), ("cost_vs_f1.png", plot_cost_vs_f1)]
    avg, gs = averages(rows), gains(rows)

    def csv_table(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["kind", *CELL_COLUMNS], extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow({"kind": "cell", **r})
            for a in avg:
                writer.writerow({"kind": "average", **a})
            for g in gs:
                writer.writerow({"kind": "gain", "model": g["model"], "language": g["language"],
                                 "method": "transfusion-direct", "prompt": g["prompt"], "f1": g["gain"]})

    def summaries(plot_files: list[str]) -> list[tuple[str, Callable[[Path], None]]]:
        all_notes = [*notes, *extra]
        return [
            ("results.md", lambda path: atomic.write_text(path, format_results(rows, title, all_notes))),
            ("results.json", lambda path: atomic.write_text(path, json.dumps(
                {"title": title, "cells": list(rows), "averages": avg, "gains": gs, "notes": all_notes,
                 "plots": plot_files}, indent=2, ensure_ascii=False) + "\n")),
        ]

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the sweep folder ({e.strerror or e})") from None
    failures: dict[str, str] = {}

    def attempt(writers: Sequence[tuple[str, Callable[[Path], None]]]) -> None:
        for name, write in writers:
            try:
                write(out / name)
            except OSError as e:
                failures.setdefault(name, f"{out / name}: cannot write ({e.strerror or e})")
            else:
                failures.pop(name, None)

    planned = [name for name, _ in plotters]
    attempt([*summaries(planned), ("results.csv", lambda path: _replace_with(path, csv_table))])
    drawn = []
    for name, plot in plotters:
        try:
            _replace_with(out / name, lambda tmp, plot=plot: plot(rows, tmp))
        except OSError as e:
            failures.setdefault(name, f"{out / name}: cannot write ({e.strerror or e})")
        except Exception as e:   # matplotlib: any figure it cannot draw; the results stand without it
            reason = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
            extra.append(f"{name} not drawn ({type(e).__name__}{': ' + reason[:120] if reason else ''})"
                         + _removed_stale(out / name))
        else:
            drawn.append(name)
    if drawn != planned:   # say so where the results are read, and list only the plots drawn
        attempt(summaries(drawn))
    if failures:
        first, *rest = failures.values()
        more = f" (and {len(rest)} more)" if rest else ""
        raise OutputError(f"{first}{more}; the other results were written, and each cell's run folder is kept")
    return extra


def _removed_stale(path: Path) -> str:
    """Remove an earlier sweep's plot that this sweep could not redraw (it shows other results)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return ""
    except OSError:
        return f"; {path.name} from an earlier sweep is still there"
    return f"; the earlier {path.name} was removed"


def _replace_with(path: Path, write: Callable[[Path], Any]) -> None:
    """Run a writer that needs a file name, so that `path` is replaced whole (atomic.py)."""
    with atomic.replacing(path) as tmp:
        write(tmp)


# -- running ---------------------------------------------------------------------------------------

def _say(msg: str) -> None:
    print(f"tf-prompt: {msg}", file=sys.stderr, flush=True)


async def run_sweep(config: SweepConfig, *, dry_run: bool = False, proceed_up_to_cap: bool = False,
                    overwrite: bool = False) -> int:
    """Estimate, check the cap, run the cells in order, write the results; returns an exit code.

    A cell whose folder holds a run with other settings (the config was edited) is refused
    (rundir.py) unless `overwrite`.
    """
    from tf_prompt.api import run_async
    from tf_prompt.backends.base import BackendError
    from tf_prompt.llm.client import BudgetExceeded

    estimates = await estimate_sweep(config)
    print(format_cost_table(config, estimates), flush=True)
    if dry_run:
        return 0
    cap = config.max_cost
    total = sum(e["cost_usd"] or 0.0 for e in estimates)
    if cap is not None and total > cap and not proceed_up_to_cap:
        _say(f"sweep estimate ${total:.4f} exceeds max_cost ${cap:.4f} in {config.path}: raise max_cost, "
             f"or rerun with --proceed-up-to-cap to run cells in order until ${cap:.4f} is spent")
        return EXIT_REFUSED

    title = f"Sweep results: {config.path.name}"
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    spent = 0.0
    code = 0
    try:
        for i, (cell, est) in enumerate(zip(config.cells, estimates), 1):
            name = f"[{i}/{len(config.cells)}] {cell.model} / {cell.language} / {cell.method} / {cell.prompt}"
            done = finished_metrics(cell, est["hash"]) if est["status"] == "done" else None
            if done is not None:
                _say(f"{name}: already complete, skipped")
                rows.append(cell_row(cell, done))
                continue
            settings = cell.settings.model_copy(update={"overwrite": overwrite})
            if cap is not None and est["cost_usd"] is not None:   # unpriced models cannot be capped
                remaining = cap - spent
                settings = settings.model_copy(update={"max_cost": max(remaining, 0.0)})
            (cell.out_dir / CELL_FILE).unlink(missing_ok=True)    # a stopped rerun must not look finished
            _say(f"{name}: running ({est['calls']} calls estimated, {est['cached_calls']} cached)")
            try:
                summary = await run_async(settings)
            except BudgetExceeded:
                spent += _spent_in(cell.out_dir)
                msg = (f"sweep stopped by max_cost in {name}: ${spent:.4f} spent of ${cap:.4f} and the next "
                       f"call might not fit; {len(rows)} finished cells are in {config.out / 'results.md'}. "
                       f"Raise max_cost and rerun: finished cells are skipped, cached replies are free")
                notes.append(f"stopped by max_cost in {cell.model} / {cell.language} / {cell.method} / "
                             f"{cell.prompt}: ${spent:.4f} spent of ${cap:.4f}")
                _say(msg)
                code = EXIT_BUDGET
                break
            metrics = summary.metrics
            spent += metrics["usage"].get("cost_usd") or 0.0
            rows.append(cell_row(cell, metrics))
            if metrics.get("complete"):
                atomic.write_text(cell.out_dir / CELL_FILE, json.dumps(
                    {"hash": est["hash"], "fingerprint": est["fingerprint"]}, indent=2,
                    default=str) + "\n")
            else:
                notes.append(f"{cell.model} / {cell.language} / {cell.method} / {cell.prompt} is incomplete "
                             f"(failed sentences): rerun the sweep to retry them")
                code = code or EXIT_INCOMPLETE
            f1 = metrics.get("f1")
            _say(f"{name}: F1 {_pct(f1)}, {metrics['usage']['calls']} calls, "
                 f"cost {_money(metrics['usage'].get('cost_usd'))}")
    except (BackendError, KeyboardInterrupt, asyncio.CancelledError):
        if rows:   # keep what finished; the error itself is reported by the caller
            write_results(config.out, rows, title, [*notes, "sweep interrupted"], plots=False)
        raise
    for note in write_results(config.out, rows, title, notes):
        _say(note)
    print()
    print((config.out / "results.md").read_text(encoding="utf-8"), end="")
    print(f"outputs: {config.out}")
    return code


def _spent_in(out_dir: Path) -> float:
    """What a cell stopped by the budget paid (its metrics.json is written on a clean stop)."""
    try:
        metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
        return float(metrics["usage"]["cost_usd"] or 0.0)
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


# -- command line ----------------------------------------------------------------------------------

def cmd_sweep(args: argparse.Namespace) -> int:
    """`tf-prompt sweep CONFIG`: errors are raised (SweepError, DataError...) for the CLI to print."""
    config = load_config(args.config, args.out)
    return asyncio.run(run_sweep(config, dry_run=args.dry_run, proceed_up_to_cap=args.proceed_up_to_cap,
                                 overwrite=args.overwrite))


def add_sweep_parser(subparsers: Any) -> None:
    """Register `sweep` on the CLI's subparsers (cli.py calls this)."""
    p = subparsers.add_parser("sweep", help="run models x datasets x methods x prompts from a TOML config",
                              description="Run every cell of a sweep config (see benchmarks/sweep_example.toml)"
                                          " and write results.md/.csv/.json and plots.")
    p.add_argument("config", help="sweep config (TOML)")
    p.add_argument("--dry-run", action="store_true", help="print the cost table and exit; nothing is sent")
    p.add_argument("--proceed-up-to-cap", action="store_true",
                   help="when the estimate exceeds max_cost, run cells in order until max_cost is spent")
    p.add_argument("--out", help="sweep folder (overrides out in the config)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace cell folders that hold runs with other settings (after the config was edited)")
    p.set_defaults(func=cmd_sweep)


def main_sweep(argv: Sequence[str] | None = None) -> int:
    """`tf-prompt sweep` on its own, with the CLI's error handling (one line, exit code)."""
    from pydantic import ValidationError

    from tf_prompt.backends.base import BackendError
    from tf_prompt.llm.client import BudgetExceeded
    from tf_prompt.llm.cost import PriceError
    from tf_prompt.data.schema import SchemaError
    from tf_prompt.prompting.templates import TemplateError

    parser = argparse.ArgumentParser(prog="tf-prompt")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (DataError, SchemaError, TemplateError, PriceError) as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return 2
    except ValidationError as e:
        loc, msg = _validation_message(e)
        print(f"tf-prompt: error: {loc}: {msg}", file=sys.stderr)
        return 2
    except (BackendError, BudgetExceeded) as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tf-prompt: interrupted; finished cells are kept", file=sys.stderr)
        return 130
