"""Model identity: a hash sidecar vouches only for the exact file it was computed from.

Small fake files stand in for models: the rule is the same for 1 GB, and nothing here needs a
real model. Each case is a way another model can sit at the path of a verified one with the
same size: rewritten in place, copied in with an older mtime (`cp -p`, `rsync -a`, `tar x`), or
renamed over it with the old mtime kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tf_prompt.cli import main
from tf_prompt.llm import presets as models
from tf_prompt.llm.presets import PRESETS, ModelError, Preset

GOOD = b"GGUF" + b"the verified model " * 50
OTHER = b"GGUF" + b"another model!!!!! " * 50
assert len(GOOD) == len(OTHER) and GOOD != OTHER


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Preset:
    """A preset whose pinned file is GOOD; its packages are not installed and the hub is off."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    p = Preset("tiny-test", "tf-prompt-no-such-part", 2, "0.0.1", _sha(GOOD), len(GOOD), "none/none", "x.gguf")
    monkeypatch.setitem(PRESETS, p.name, p)
    src = tmp_path / "src.bin"
    src.write_bytes(GOOD)
    models._write_verified(p, [src], models.preset_path(p, tmp_path))   # as a real assembly would
    return p


def _rewrite_in_place(path: Path) -> None:
    """Same size, same inode, other bytes; the mtime moves on as with any write."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(OTHER)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def _copy_preserving_mtime(path: Path) -> None:
    """`cp -p other path`: the same inode is overwritten, then given the other file's older mtime."""
    other = path.with_name("other.gguf")
    other.write_bytes(OTHER)
    old = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(other, ns=(old, old))
    shutil.copy2(other, path)


def _replace_keeping_mtime(path: Path) -> None:
    """`rsync -a` / `tar x`: a new file renamed over the old one, with exactly the old mtime."""
    st = path.stat()
    tmp = path.with_name(".incoming")
    tmp.write_bytes(OTHER)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_ino != st.st_ino


SWAPS: dict[str, Callable[[Path], None]] = {"same size other bytes": _rewrite_in_place,
                                            "cp -p older mtime": _copy_preserving_mtime,
                                            "replaced inode same mtime": _replace_keeping_mtime}


def test_a_verified_preset_is_used_without_rehashing(tiny: Preset, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hashing(path: object) -> str:
        raise AssertionError("an unchanged verified file was hashed again")

    monkeypatch.setattr(models, "file_sha256", no_hashing)
    assert models.resolve_gguf(tiny.name, tmp_path) == models.preset_path(tiny, tmp_path)


@pytest.mark.parametrize("swap", list(SWAPS))
def test_another_model_at_a_preset_path_is_rehashed_and_rejected(tiny: Preset, tmp_path: Path, swap: str) -> None:
    dest = models.preset_path(tiny, tmp_path)
    SWAPS[swap](dest)
    assert dest.stat().st_size == tiny.size
    assert not models._is_verified(tiny, dest)
    with pytest.raises(ModelError, match="missing packages"):    # rebuilt from packages, never used
        models.resolve_gguf(tiny.name, tmp_path)


def test_a_stale_sidecar_of_the_right_file_is_renewed(tiny: Preset, tmp_path: Path) -> None:
    """A touched (but unchanged) file is hashed once more, found good, and trusted again."""
    dest = models.preset_path(tiny, tmp_path)
    os.utime(dest, ns=(0, 10**18))
    assert models.resolve_gguf(tiny.name, tmp_path) == dest
    recorded = json.loads(dest.with_name(dest.name + ".sha256").read_text())
    assert recorded["sha256"] == tiny.sha256 and recorded["mtime_ns"] == 10**18
    assert recorded["inode"] == dest.stat().st_ino and recorded["size"] == tiny.size


def test_an_old_format_sidecar_is_not_trusted(tiny: Preset, tmp_path: Path) -> None:
    dest = models.preset_path(tiny, tmp_path)
    dest.write_bytes(OTHER)
    dest.with_name(dest.name + ".sha256").write_text(f"{tiny.sha256}  {dest.name}\n")   # sha256sum format
    assert not models._is_verified(tiny, dest)


@pytest.mark.parametrize("swap", list(SWAPS))
def test_a_user_file_gets_the_hash_of_its_current_content(tmp_path: Path, swap: str) -> None:
    """The cache key of a user's model is its content hash: another model swapped in at the same
    path must not be keyed (and answered from the cache) as the first one."""
    from tf_prompt.backends.gguf import GGUFBackend

    path = tmp_path / "mine.gguf"
    path.write_bytes(GOOD)
    assert models.cached_sha256(path, tmp_path) == _sha(GOOD)
    SWAPS[swap](path)
    assert models.cached_sha256(path, tmp_path) == _sha(OTHER)
    assert GGUFBackend(model=str(path), cache_dir=str(tmp_path)).identity()["sha256"] == _sha(OTHER)


def test_models_verify_rehashes_what_the_sidecar_cannot_see(tiny: Preset, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes changed with size, mtime and inode kept pass the sidecar; `models verify` reads them."""
    dest = models.preset_path(tiny, tmp_path)
    assert main(["models", "verify", tiny.name, "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("ok ")
    st = dest.stat()
    with open(dest, "r+b") as f:
        f.write(OTHER)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert main(["models", "verify", tiny.name, "--cache-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("mismatch tiny-test") and _sha(OTHER) in out and "\n" not in out.strip()
    assert not models._is_verified(tiny, dest)          # the next run rebuilds instead of using it


def test_models_verify_on_a_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.gguf"
    path.write_bytes(GOOD)
    assert main(["models", "verify", str(path)]) == 0
    assert _sha(GOOD) in capsys.readouterr().out
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(OTHER)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert models.cached_sha256(path) == _sha(GOOD)     # the sidecar cannot see this change...
    assert main(["models", "verify", str(path)]) == 1   # ...verify can, and re-keys the file
    assert "mismatch" in capsys.readouterr().out
    assert models.cached_sha256(path) == _sha(OTHER)
    assert main(["models", "verify", str(tmp_path / "absent.gguf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tf-prompt: error: model file not found") and err.count("\n") == 1
