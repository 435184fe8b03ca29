"""A sweep's plan: its cells and their folders, what makes a cell finished, and the cost table.

Each cell is an ordinary run with its own folder `OUT/<model>/<language>/<method>[-<prompt>]/`.
A finished cell leaves `cell.json` with a hash of everything that determines its replies
(settings, template identities, data file contents); a cell whose hash matches and whose
metrics.json says `"complete": true` is skipped. Any other cell is rerun, and the reply cache makes
its already received replies free, so rerunning a finished sweep sends nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tf_prompt.methods import METHODS
from tf_prompt.runs.outputs import json_object_or_none, metrics_or_none
from tf_prompt.settings import RunSettings
from tf_prompt.util.formatting import md_table, money

if TYPE_CHECKING:
    from tf_prompt.experiments.sweep.config import SweepConfig

#: Written in a cell's folder when it finished: the hash of its fingerprint.
CELL_FILE = "cell.json"
#: Fields that change how calls are made but never a reply: left out of the resume hash, so
#: raising the concurrency or moving the cache does not rerun finished cells.
_NOT_IN_HASH = {"out", "concurrency", "cache_dir", "no_cache", "max_retries", "retry_initial", "rpm", "tpm",
                "max_cost", "prices", "progress", "timeout", "api_key_env", "n_threads"}


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


def sanitise(name: str) -> str:
    """A folder name from a model or dataset name ("gguf:qwen" -> "gguf_qwen"), never `..`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"



def cell_folder(method: str, prompt: str) -> str:
    """A cell's folder under OUT/<model>/<language>/: the method, or `<method>-<prompt>`.

    Readable, and distinct for distinct (method, prompt) pairs: a short hash of the pair is
    added when the folder alone could not be read back, i.e. when sanitising changed the prompt
    name ("x/y" and "x y" both become "x_y") or when the name would start with a longer method
    (method "transfusion" with prompt "1call" vs method "transfusion-1call").
    """
    if prompt == "default":
        return method
    safe = sanitise(prompt)
    folder = f"{method}-{safe}"
    reads_as = max((m for m in METHODS if folder == m or folder.startswith(m + "-")), key=len)
    if safe != prompt or reads_as != method:
        folder += "-" + hashlib.sha256(f"{method}\0{prompt}".encode()).hexdigest()[:8]
    return folder



# -- resuming --------------------------------------------------------------------------------------

def cell_fingerprint(settings: RunSettings) -> dict[str, Any]:
    """Everything that determines a cell's replies and scores: settings, the identity of each
    template it renders, and the contents of its data file."""
    from tf_prompt.api import default_model
    from tf_prompt.backends.openai_compat import effective_base_url  # the endpoint, even from $OPENAI_BASE_URL
    from tf_prompt.data.datasets import resolve_dataset
    from tf_prompt.methods.templates import template_identities  # the templates metrics.json records
    from tf_prompt.prompting.templates import TemplateSet

    fields = settings.model_dump(exclude=_NOT_IN_HASH, by_alias=True)
    if fields.get("constrain") == "none":   # added later: cells finished before it keep their fingerprint
        del fields["constrain"]
    # the scorer changes no reply but the cell's scores: another scorer reruns the cell, which the
    # cache makes free and its run folder takes as the same run (rundir.NOT_IDENTITY), re-scoring
    # it; added later, so cells scored with the default keep their fingerprint
    if fields.get("scorer") == "conll":
        del fields["scorer"]
    # what the cell does: only a method that pivots checks its translations; added later, so a
    # cell that never checks keeps the fingerprint it had before
    if settings.pivot_check_on():
        fields["pivot_check"] = True
    else:
        fields.pop("pivot_check", None)
    # redacted; an Azure deployment's with its api-version (which is why that field is dropped)
    fields["base_url"] = effective_base_url(default_model(settings)[0], settings.base_url, settings.api_version)
    fields.pop("api_version", None)
    fields["templates"] = template_identities(settings, TemplateSet(settings.prompts))
    if settings.data is not None:
        data = resolve_dataset(settings.data)
        fields["data_sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    # a file translator's English and a file annotator's entities are answers too: an edited file
    # reruns the cell (its run folder's identity has the same digests); only with such a component,
    # so other cells keep the fingerprint they had
    files = {key: _file_sha256(value.partition(":")[2]) for key, value in
             (("translator", settings.translator), ("annotator", settings.annotator)) if value.startswith("file:")}
    if files:
        fields["component_sha256"] = files
    return fields


def _file_sha256(path: str) -> str | None:
    """The file's SHA-256 (None if it cannot be read: the cell's run then says why, in one line)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def finished_metrics(cell: Cell, digest: str) -> dict[str, Any] | None:
    """The cell's metrics if it already ran to completion with the same fingerprint, else None."""
    stamp = json_object_or_none(cell.out_dir / CELL_FILE)   # damaged or missing: the cell runs again
    metrics = metrics_or_none(cell.out_dir)
    if stamp is not None and metrics is not None and stamp.get("hash") == digest and metrics.get("complete") is True:
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


def format_cost_table(config: SweepConfig, estimates: Sequence[dict[str, Any]]) -> str:
    """The markdown cost table printed before a sweep spends anything, with a total and notes."""
    rows = []
    for cell, est in zip(config.cells, estimates, strict=True):
        rows.append([cell.model, cell.dataset, cell.method, cell.prompt, est["status"], est["calls"],
                     est["prompt_tokens"], est["completion_tokens"], money(est["cost_usd"]), est["cached_calls"]])
    known = sum(e["cost_usd"] or 0.0 for e in estimates)
    unknown = sorted({c.settings.model or c.model for c, e in zip(config.cells, estimates, strict=True)
                      if e["cost_usd"] is None})
    total = ["**total**", "", "", "", "", sum(e["calls"] for e in estimates),
             sum(e["prompt_tokens"] for e in estimates), sum(e["completion_tokens"] for e in estimates),
             f"{known:.4f}" + (" + unknown" if unknown else ""), sum(e["cached_calls"] for e in estimates)]
    text = md_table(["model", "dataset", "method", "prompt", "status", "calls", "prompt tokens",
                      "completion tokens", "$", "cached calls"], rows + [total], 5)
    notes = [(f"estimate for {len(config.cells)} cells; nothing was sent. Cached calls are free; "
              "tokens after the first step are approximate (stand-in replies).")]
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
