"""Reading a sweep.toml: every key checked, every cell's RunSettings validated before anything runs.

Errors are one line, `FILE:LINE: key: what is wrong`: tomllib reports lines only for syntax
errors, so the source is searched for the key that set a bad value. Relative paths in the config
are relative to the config file, so a sweep folder can be moved.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

from tf_prompt.data.conll import DataError, physical_lines
from tf_prompt.experiments.sweep.plan import Cell, cell_folder, sanitise
from tf_prompt.methods import METHODS, STYLES, get_method
from tf_prompt.settings import RunSettings, combining_methods
from tf_prompt.util.validation import did_you_mean, first_problem

#: RunSettings fields that the sweep sets itself (from the top level, [[models]], datasets or
#: [[prompts]]); [run] may not set them, so each value has exactly one place in the config.
_SET_BY_SWEEP = {
    "model": "[[models]] name", "base_url": "[[models]] base_url", "api_version": "[[models]] api_version",
    # a key variable goes with its endpoint: in [run] it would send one provider's key to every model's
    "api_key_env": "[[models]] api_key_env",
    "method": "methods",
    "data": "datasets", "language": "datasets (as {data = ..., language = ...})", "out": "out",
    "limit": "limit", "concurrency": "concurrency", "labels": "labels", "max_cost": "max_cost",
    "style": "[[prompts]] style", "shots": "[[prompts]] shots", "shots_from": "[[prompts]] shots_from",
    "prompts": "[[prompts]] prompts_dir", "combine": "[[prompts]] combine",
}
_MODEL_KEYS = {"name", "label", "base_url", "api_key_env", "api_version", "n_threads", "n_ctx"}
#: `constrain` may also be set in [run] (every cell); a prompt variant's value wins for its cells.
_PROMPT_KEYS = {"name", "style", "shots", "shots_from", "prompts_dir", "schema", "combine", "constrain"}
_DATASET_KEYS = {"data", "language", "name"}
_TOP_KEYS = {"out", "max_cost", "limit", "concurrency", "labels", "methods", "datasets", "languages",
             "models", "prompts", "run"}
_PATH_FIELDS = {"cache_dir", "prices", "schema", "prompts"}
_DATASET_SPEC = re.compile(r"^[A-Za-z][A-Za-z0-9_-]+:")


class SweepError(DataError):
    """A bad sweep config. One line, `FILE:LINE: key: what is wrong` (or `FILE: key: ...`).

    A DataError (hence a ValueError) so the CLI prints it like any other bad input, exit 2.
    """


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
    for method in methods:
        if method not in METHODS:
            raise src.error("methods", f"unknown method {method!r}; choose from {', '.join(METHODS)}", "methods")

    datasets = _read_datasets(src, conf, base)
    models = _read_models(src, conf)
    prompts = _read_prompts(src, conf, base)
    _check_combine(src, prompts, methods)
    run = _read_run(src, conf, base)

    cells: list[Cell] = []
    for mi, model in enumerate(models):
        model_fields = {k: v for k, v in model.items() if k not in ("name", "label")}
        for data, language, label in datasets:
            for method in methods:
                for prompt in prompts:
                    pname = prompt["name"]
                    cell_out = out_dir / sanitise(model["label"]) / sanitise(label) / cell_folder(method, pname)
                    fields = {**run, **model_fields, "model": model["name"], "method": method, "data": data,
                              "language": language, "labels": labels, "limit": limit,
                              "concurrency": concurrency, "out": str(cell_out),
                              # combine shapes the answer of a method that combines; the variant's
                              # other cells run without it (and record none: _check_combine)
                              **{k: v for k, v in prompt.items()
                                 if k != "name" and not (k == "combine" and not get_method(method).combines)}}
                    try:
                        settings = RunSettings(**fields)
                    except ValidationError as e:
                        raise _locate(src, e, model, mi, prompt, prompts.index(prompt)) from None
                    cells.append(Cell(model["label"], data, label, method, pname, settings))
    _check_folders(src, cells)
    return SweepConfig(path=path, out=out_dir, max_cost=max_cost, cells=cells)


def _check_combine(src: _Source, prompts: Sequence[dict[str, Any]], methods: Sequence[str]) -> None:
    """A prompt variant's `combine` applies to the sweep's methods that combine answers (transfusion);
    its cells of other methods run without it, so that `direct` and `transfusion` are compared
    under the same variant. With no such method in `methods` it would apply to no cell: refused."""
    if any(get_method(m).combines for m in methods):
        return
    for i, prompt in enumerate(prompts):
        if prompt.get("combine") not in (None, "none"):
            raise src.error(f"prompts[{i}].combine", f"applies to methods that combine answers "
                            f"({combining_methods()}), and methods has none ({', '.join(methods)}): "
                            f"add one, or remove combine", "combine", "prompts", i)


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
    """Point a cell's validation error at the table that set the bad field (for a check across
    fields, the field its error names)."""
    problem = first_problem(e)
    field, msg = problem.field.split(".")[0], problem.message
    if field in prompt:
        key = "prompts_dir" if field == "prompts" else field
        return src.error(f"prompts[{pi}].{key}", msg, key, "prompts", pi)
    if field in model or field == "model":
        key = "name" if field == "model" else field
        return src.error(f"models[{mi}].{key}", msg, key, "models", mi)
    if field in _SET_BY_SWEEP:   # a top-level key (methods, datasets, labels...)
        return src.error(_SET_BY_SWEEP[field].split()[0], msg, _SET_BY_SWEEP[field].split()[0])
    return src.error(f"run.{field}" if field else "run", msg, field or None, "run")


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
        if sanitise(label) in seen:
            raise src.error("datasets", f"{seen[sanitise(label)]!r} and {spec!r} would share the folder "
                            f"{sanitise(label)!r}; give one a name: {{data = ..., name = ...}}",
                            "datasets" if "datasets" in conf else "languages")
        seen[sanitise(label)] = spec
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
        if sanitise(label) in labels:
            raise src.error(f"models[{i}]", f"two models share the folder {sanitise(label)!r}; "
                            'tell them apart with label = "..."', None, "models", i)
        labels.add(sanitise(label))
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
        for key in ("style", "shots", "schema", "combine", "constrain"):
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
    names = RunSettings.setting_names()
    known = set(RunSettings.model_fields) | set(names)
    for key in run:
        if key in _SET_BY_SWEEP:
            raise src.error(f"run.{key}", f"set by the sweep: use {_SET_BY_SWEEP[key]}", key, "run")
        if key not in known:
            hint = did_you_mean(key, (n for n in names if n not in _SET_BY_SWEEP))
            raise src.error(f"run.{key}", f"not a run setting{hint} (see tf-prompt run --help)", key, "run")
    fields = dict(run)
    for key in _PATH_FIELDS & set(fields):
        if isinstance(fields[key], str) and (key != "schema" or Path(fields[key]).suffix):
            fields[key] = _resolve_path(fields[key], base)
    try:
        RunSettings(**fields)
    except ValidationError as e:
        problem = first_problem(e)
        key = problem.field.split(".")[0]
        raise src.error(f"run.{problem.field}" if problem.field else "run", problem.message, key or None,
                        "run") from None
    return fields
