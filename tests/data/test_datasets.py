"""Tests for tf_prompt.data.datasets: the shipped sample and masakhaner2:LANG[:SPLIT] (local copy, cache, download)."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from pathlib import Path

import pytest

from conftest import require, shared_data_dir
from tf_prompt.data import datasets
from tf_prompt.data.conll import DataError, iob2, read_conll
from tf_prompt.data.datasets import resolve_dataset, sample_path


def require_shared() -> Path:
    root = shared_data_dir()
    require(root is not None, "shared data (../shared/data or $TF_PROMPT_TEST_DATA) not found")
    assert root is not None
    return root


def write(tmp_path: Path, content: str) -> Path:
    p = tmp_path / "in.conll"
    p.write_text(content, encoding="utf-8")
    return p


# --- sample ----------------------------------------------------------------


def test_sample_shipped_and_well_formed():
    p = sample_path()
    assert p.is_file() and p.name == "sample.conll"
    sents = read_conll(p)
    assert len(sents) == 12
    types = set()
    for s in sents:
        assert s.tags is not None and list(s.tags) == iob2(s.tags)
        types |= {t[2:] for t in s.tags if t != "O"}
        assert sum(t.startswith("B-") for t in s.tags) <= 3
    assert types == {"PER", "ORG", "LOC", "DATE"}
    assert any(all(t == "O" for t in s.tags) for s in sents)
    assert any("I-LOC" in s.tags for s in sents)
    assert resolve_dataset("sample") == p


# --- resolve_dataset -------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """Isolate from the developer's environment: no data dir, cache in tmp."""
    monkeypatch.delenv("TF_PROMPT_DATA", raising=False)
    monkeypatch.setenv("TF_PROMPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_resolve_via_tf_prompt_data(monkeypatch, no_env):
    root = require_shared()
    monkeypatch.setenv("TF_PROMPT_DATA", str(root))
    assert resolve_dataset("masakhaner2:hau") == root / "masakhaner2" / "hau" / "test.txt"
    assert resolve_dataset("masakhaner2:YOR:dev") == root / "masakhaner2" / "yor" / "dev.txt"


def test_resolve_prefers_cache(no_env, monkeypatch):
    cached = no_env / "data" / "masakhaner2" / "ibo" / "train.txt"
    cached.parent.mkdir(parents=True)
    cached.write_text("a O\n", encoding="utf-8")
    # An unusable URL proves no download is attempted.
    monkeypatch.setattr(datasets, "MASAKHANER2_URL", "http://127.0.0.1:1/none")
    assert resolve_dataset("masakhaner2:ibo:train") == cached


def test_resolve_cache_dir_argument(tmp_path, monkeypatch, no_env):
    cached = tmp_path / "mine" / "data" / "masakhaner2" / "zul" / "test.txt"
    cached.parent.mkdir(parents=True)
    cached.write_text("a O\n", encoding="utf-8")
    assert resolve_dataset("masakhaner2:zul", cache_dir=tmp_path / "mine") == cached


def _mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    (mirror / "wol").mkdir(parents=True)
    (mirror / "wol" / "dev.txt").write_text("Dakar B-LOC\n. O\n", encoding="utf-8")
    return mirror


def test_download_from_file_url(tmp_path, monkeypatch, no_env):
    monkeypatch.setattr(datasets, "MASAKHANER2_URL", _mirror(tmp_path).as_uri())
    p = resolve_dataset("masakhaner2:wol:dev")
    assert p == no_env / "data" / "masakhaner2" / "wol" / "dev.txt"
    assert read_conll(p)[0].tags == ("B-LOC", "O")
    assert list(p.parent.iterdir()) == [p]  # no temp files left behind


def test_download_from_local_http_server(tmp_path, monkeypatch, no_env):
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(_mirror(tmp_path))
    )
    handler.log_message = lambda *a: None  # keep pytest output clean
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        monkeypatch.setattr(datasets, "MASAKHANER2_URL", f"http://127.0.0.1:{port}")
        p = resolve_dataset("masakhaner2:wol:dev")
        assert p.read_text(encoding="utf-8") == "Dakar B-LOC\n. O\n"
        with pytest.raises(DataError, match="could not download"):  # HTTP 404
            resolve_dataset("masakhaner2:wol:train")
    finally:
        server.shutdown()
        server.server_close()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_unreachable_gives_data_error(monkeypatch, no_env):
    monkeypatch.setattr(datasets, "MASAKHANER2_URL", f"http://127.0.0.1:{_unused_port()}/x")
    with pytest.raises(DataError) as e:
        resolve_dataset("masakhaner2:lug")
    msg = str(e.value)
    assert msg.startswith("masakhaner2:lug: could not download")
    assert "no network access" in msg and "TF_PROMPT_DATA" in msg
    assert "\n" not in msg
    target = no_env / "data" / "masakhaner2" / "lug"
    assert not target.exists() or not any(target.iterdir())


def test_download_missing_file_url_leaves_nothing(tmp_path, monkeypatch, no_env):
    monkeypatch.setattr(datasets, "MASAKHANER2_URL", (tmp_path / "empty").as_uri())
    with pytest.raises(DataError, match="could not download"):
        resolve_dataset("masakhaner2:bbj")
    assert not (no_env / "data" / "masakhaner2" / "bbj" / "test.txt").exists()


def test_resolve_existing_file_path(tmp_path, no_env):
    p = write(tmp_path, "a O\n")
    assert resolve_dataset(str(p)) == p


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("masakhaner2:xyz", "unknown language 'xyz'"),
        ("masakhaner2", "no such file or dataset"),
        ("masakhaner2:", "missing language"),
        ("masakhaner2:hau:valid", "unknown split 'valid'"),
        ("masakhaner2:hau:dev:x", "unknown language"),
        ("conll2003:eng", "unknown dataset 'conll2003'"),
        ("no/such/file.conll", "no such file or dataset"),
    ],
)
def test_bad_specs(spec, expected, no_env):
    with pytest.raises(DataError) as e:
        resolve_dataset(spec)
    msg = str(e.value)
    assert msg.startswith(f"{spec}: ") and expected in msg


def test_bad_spec_lists_choices(no_env):
    with pytest.raises(DataError) as e:
        resolve_dataset("masakhaner2:eng")
    assert all(lang in str(e.value) for lang in datasets.MASAKHANER2_LANGS)
    with pytest.raises(DataError) as e:
        resolve_dataset("masakhaner2:hau:valid")
    assert "train, dev, test" in str(e.value)
