"""Named datasets: turn ``sample`` or ``masakhaner2:LANG[:SPLIT]`` into a local CoNLL file.

* ``masakhaner2:LANG[:SPLIT]`` -- MasakhaNER 2.0, looked up in
  ``$TF_PROMPT_DATA``, then a local cache, then downloaded once.
* ``sample`` -- ``tf_prompt/resources/sample.conll``, a tiny file written for
  tf-prompt (released under CC0, not taken from any corpus): 12 short
  news-style sentences, 6 Swahili then 6 Hausa, ``token TAG`` per line in IOB2
  with PER, ORG, LOC and DATE. It has multi-token entities ("Dar es Salaam",
  "Benki Kuu ya Tanzania"), repeated mentions ("Amina", "Musa Bello"), a token
  with an inner apostrophe ("masana'anta") and one sentence with no entity,
  so the whole pipeline can be smoke-tested offline.

Reading the file is :mod:`tf_prompt.data.conll`'s job; this module only finds it.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

from tf_prompt.types import DataError
from tf_prompt.util import atomic

__all__ = [
    "MASAKHANER2_LANGS",
    "MASAKHANER2_SPLITS",
    "MASAKHANER2_URL",
    "resolve_dataset",
    "sample_path",
]

# Module-level so tests (and mirrors) can point downloads elsewhere.
MASAKHANER2_URL = (
    "https://raw.githubusercontent.com/masakhane-io/masakhane-ner/main/MasakhaNER2.0/data"
)
MASAKHANER2_LANGS = (
    "bam", "bbj", "ewe", "fon", "hau", "ibo", "kin", "lug", "luo", "mos",
    "nya", "pcm", "sna", "swa", "tsn", "twi", "wol", "xho", "yor", "zul",
)
MASAKHANER2_SPLITS = ("train", "dev", "test")
DOWNLOAD_TIMEOUT = 30.0


def sample_path() -> Path:
    """Path of the small Swahili/Hausa sample shipped inside the package."""
    return Path(str(resources.files("tf_prompt.resources").joinpath("sample.conll")))


def _cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("TF_PROMPT_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "tf-prompt"


def _download(url: str, dest: Path, spec: str) -> None:
    """Fetch url into dest atomically: a failed download never leaves a partial file."""
    hint = (
        f"{spec}: could not download {url} ({{reason}}); there is probably no "
        "network access or the URL failed. Set TF_PROMPT_DATA to a folder "
        "containing a local copy laid out as masakhaner2/LANG/SPLIT.txt"
    )
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DataError(hint.format(reason=reason)) from None
    if not data.strip():
        raise DataError(hint.format(reason="empty response"))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(dest, data)
    except OSError as e:
        raise DataError(f"{dest}: cannot write downloaded data ({e.strerror or e})") from None


def _resolve_masakhaner2(spec: str, rest: list[str], cache_dir: Path | None) -> Path:
    if not rest or len(rest) > 2 or rest[0].lower() not in MASAKHANER2_LANGS:
        got = f"unknown language '{rest[0]}'" if rest and rest[0] else "missing language"
        raise DataError(
            f"{spec}: {got}; expected masakhaner2:LANG[:SPLIT] with LANG one of "
            f"{', '.join(MASAKHANER2_LANGS)}"
        )
    lang = rest[0].lower()
    split = rest[1].lower() if len(rest) == 2 else "test"
    if split not in MASAKHANER2_SPLITS:
        raise DataError(
            f"{spec}: unknown split '{rest[1]}'; expected one of "
            f"{', '.join(MASAKHANER2_SPLITS)}"
        )
    rel = Path("masakhaner2") / lang / f"{split}.txt"
    data_dir = os.environ.get("TF_PROMPT_DATA")
    if data_dir and (Path(data_dir) / rel).is_file():
        return Path(data_dir) / rel
    cached = _cache_root(cache_dir) / "data" / rel
    if cached.is_file():
        return cached
    _download(f"{MASAKHANER2_URL}/{lang}/{split}.txt", cached, spec)
    return cached


def resolve_dataset(spec: str, *, cache_dir: Path | None = None) -> Path:
    """Turn a dataset spec (file path, ``sample`` or ``masakhaner2:LANG[:SPLIT]``) into a local file.

    Local copies win over the cache, and the network is only a last resort,
    so experiments run offline once data is in place.
    """
    if spec == "sample":
        return sample_path()
    name, sep, rest = spec.partition(":")
    if sep and name.lower() == "masakhaner2":
        return _resolve_masakhaner2(spec, rest.split(":") if rest else [], cache_dir)
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        raise DataError(f"{spec}: is a directory, expected a CoNLL file or dataset name")
    # "foo:bar" with a word-like prefix looks like a dataset name, not a path
    # (a single letter could be a Windows drive).
    if sep and len(name) > 1 and name.replace("_", "").replace("-", "").isalnum():
        raise DataError(
            f"{spec}: unknown dataset '{name}'; expected 'sample' or "
            "masakhaner2:LANG[:SPLIT]"
        )
    raise DataError(
        f"{spec}: no such file or dataset (expected a CoNLL file path, 'sample' "
        "or masakhaner2:LANG[:SPLIT])"
    )
