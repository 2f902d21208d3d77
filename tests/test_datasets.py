"""Tests for scmodal_jax.data.datasets: shared-file loaders, fetch (file:// only, no network), parsers,
and the paper loaders run end to end on small synthetic files served through file:// URLs."""

from __future__ import annotations

import gzip
import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scmodal_jax.data import datasets as ds

HAVE_SHARED = ds.shared_data_available()
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason="shared data folder not available")


# ------------------------------------------------------------------------------------------------------
# Data folder resolution
# ------------------------------------------------------------------------------------------------------


def test_data_dir_resolution(tmp_path, monkeypatch):
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    env_dir.mkdir()
    arg_dir.mkdir()
    monkeypatch.setenv(ds.DATA_DIR_ENV, str(env_dir))
    assert ds.get_data_dir() == env_dir
    assert ds.get_data_dir(arg_dir) == arg_dir  # explicit argument wins
    missing = tmp_path / "nope"
    monkeypatch.setenv(ds.DATA_DIR_ENV, str(missing))
    with pytest.raises(FileNotFoundError) as err:
        ds.get_data_dir()
    assert str(missing) in str(err.value) and ds.DATA_DIR_ENV in str(err.value)
    assert not ds.shared_data_available()
    with pytest.raises(FileNotFoundError, match="pbmc_cytof|cytof"):
        ds.pbmc_cytof(data_dir=env_dir)  # folder exists but the file does not


def test_default_data_dir_is_next_to_project(monkeypatch):
    monkeypatch.delenv(ds.DATA_DIR_ENV, raising=False)
    expected = Path(ds.__file__).resolve().parents[3] / "shared" / "data"
    if expected.is_dir():
        assert ds.get_data_dir() == expected
    else:
        with pytest.raises(FileNotFoundError, match=ds.DATA_DIR_ENV):
            ds.get_data_dir()


# ------------------------------------------------------------------------------------------------------
# Shared small files
# ------------------------------------------------------------------------------------------------------


@needs_shared
def test_bmmc_cite():
    rna, adt = ds.bmmc_cite()
    assert rna.shape == (600, 1000) and adt.shape == (600, 134)
    assert "protein_counts" not in rna.obsm
    assert list(rna.obs_names) == list(adt.obs_names)
    assert rna.obs["cell_type"].nunique() == 41 and "batch" in adt.obs
    assert adt.X.dtype == np.float32 and "CD86" in adt.var_names
    rna_s, adt_s = ds.bmmc_cite(paired_obs_suffix=True)
    assert not set(rna_s.obs_names) & set(adt_s.obs_names)
    assert rna_s.obs_names[0].endswith("-rna") and adt_s.obs_names[0].endswith("-adt")
    assert list(rna_s.obs["barcode"]) == list(rna.obs_names)
    rna_c, _ = ds.bmmc_cite(paired_obs_suffix=("_r", "_p"))
    assert rna_c.obs_names[0].endswith("_r")
    with pytest.raises(ValueError):
        ds.bmmc_cite(paired_obs_suffix=("_x", "_x"))


@needs_shared
def test_pbmc_unpaired_and_multiome():
    cytof, adt = ds.pbmc_cytof(), ds.pbmc_adt(obs_suffix="-adt")
    assert cytof.shape == (4606, 30) and adt.shape == (5107, 29)
    assert "cell_type" in cytof.obs and "cell_type" in adt.obs
    assert adt.obs_names[0].endswith("-adt") and cytof.obs.index.name is None
    rna, atac = ds.bmmc_multiome(paired_obs_suffix=True)
    assert rna.shape == (500, 600) and atac.shape == (500, 600)
    assert atac.var_names[0].startswith("chr") and atac.obs_names[0].endswith("-atac")
    assert (rna.obs["cell_type"].to_numpy() == atac.obs["cell_type"].to_numpy()).all()


@needs_shared
def test_pbmc5k_cite_and_tables():
    rna, adt = ds.pbmc5k_cite()
    assert rna.shape == (3920, 4000) and adt.shape == (3920, 29)
    assert rna.obs["cell_type"].nunique() == 7
    genes = ds.hg38_gene_annotation()
    assert {"gene_name", "chrom", "start", "end", "strand"} <= set(genes.columns)
    conv = ds.protein_gene_conversion()
    assert list(conv.columns[:2]) == ["Protein name", "RNA name"]
    assert ds.load_dataset("pbmc_adt").shape == (5107, 29)


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
    got = ds.fetch(path.as_uri(), cache_dir=cache, sha256=digest, size=len(payload), progress=False)
    assert got.read_bytes() == payload and got.name == "payload.bin"
    assert got.is_relative_to(cache)
    assert got.with_name(got.name + ".sha256").read_text().strip() == digest
    assert not list(cache.rglob("*.part"))


def test_fetch_cache_hit_does_not_download(source, tmp_path, monkeypatch):
    path, payload, digest = source
    cache = tmp_path / "cache"
    first = ds.fetch(path.as_uri(), cache_dir=cache, progress=False)
    path.unlink()  # source gone: a second download would fail

    def boom(*args, **kwargs):
        raise AssertionError("network used on a cache hit")

    monkeypatch.setattr(urllib.request, "urlopen", boom)
    second = ds.fetch(path.as_uri(), cache_dir=cache, sha256=digest, size=len(payload), progress=False)
    assert second == first and second.read_bytes() == payload
    with pytest.raises(ds.ChecksumError, match="expected"):
        ds.fetch(path.as_uri(), cache_dir=cache, sha256="0" * 64, progress=False)
    with pytest.raises(ds.ChecksumError, match="bytes"):
        ds.fetch(path.as_uri(), cache_dir=cache, size=1, progress=False)


def test_fetch_checksum_mismatch_cleans_up(source, tmp_path):
    path, payload, _ = source
    cache = tmp_path / "cache"
    with pytest.raises(ds.ChecksumError, match="sha256"):
        ds.fetch(path.as_uri(), cache_dir=cache, sha256="f" * 64, progress=False)
    assert not [p for p in cache.rglob("*") if p.is_file()]  # neither the file nor a .part remains


def test_fetch_size_mismatch(source, tmp_path):
    path, payload, _ = source
    cache = tmp_path / "cache"
    with pytest.raises(ds.ChecksumError, match=str(len(payload) + 1)):
        ds.fetch(path.as_uri(), cache_dir=cache, size=len(payload) + 1, progress=False)
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_fetch_replaces_stale_part_file(source, tmp_path):
    path, payload, digest = source
    cache = tmp_path / "cache"
    key, entry = ds._resolve(path.as_uri(), None)
    stale = cache / entry.dataset / (entry.filename + ".part")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a download")
    got = ds.fetch(path.as_uri(), cache_dir=cache, sha256=digest, progress=False)
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
    with pytest.raises(ds.DownloadError, match="interrupted"):
        ds.fetch(path.as_uri(), cache_dir=cache, progress=False)
    assert not list(cache.rglob("*.part")) and not [p for p in cache.rglob("*") if p.is_file()]


def test_fetch_offline_error_message(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv(ds.CACHE_DIR_ENV, str(tmp_path / "envcache"))
    with pytest.raises(ds.DownloadError) as err:
        ds.fetch("teaseq_adt", progress=False)
    msg = str(err.value)
    entry = ds.REGISTRY["teaseq_adt"]
    expected_dest = tmp_path / "envcache" / entry.dataset / entry.filename
    assert entry.url in msg and str(expected_dest) in msg and ds.CACHE_DIR_ENV in msg
    assert "name resolution" in msg
    assert isinstance(err.value, ConnectionError)
    assert not list((tmp_path / "envcache").rglob("*.part"))


def test_fetch_unreachable_file_url(tmp_path):
    missing = (tmp_path / "missing.bin").as_uri()
    with pytest.raises(ds.DownloadError, match="missing.bin"):
        ds.fetch(missing, cache_dir=tmp_path / "cache", progress=False)


def test_fetch_manual_only_entry_and_unknown_name(tmp_path):
    with pytest.raises(ds.DownloadError) as err:
        ds.fetch("levine2015_32dim", cache_dir=tmp_path, progress=False)
    assert "flowrepository" in str(err.value).lower() and str(tmp_path) in str(err.value)
    # placed by hand -> found
    entry = ds.REGISTRY["levine2015_32dim"]
    manual = tmp_path / entry.dataset / entry.filename
    manual.parent.mkdir(parents=True)
    manual.write_bytes(b"x")
    assert ds.fetch("levine2015_32dim", cache_dir=tmp_path) == manual
    with pytest.raises(ValueError, match="neither"):
        ds.fetch("no_such_dataset", cache_dir=tmp_path)


def test_registry_entries_are_well_formed():
    for key, entry in ds.REGISTRY.items():
        assert entry.filename and entry.dataset, key
        assert entry.url is None or entry.url.startswith(("https://", "http://")), key
        assert entry.url is not None or entry.landing_page, key
        assert entry.sha256 is None or len(entry.sha256) == 64, key
        assert not entry.verified, key  # nothing was checked against the live servers yet
    assert set(ds.list_datasets()) >= {"hao2021_pbmc_cite", "tonsil_codex_rna", "bmmc_cite"}
    with pytest.raises(KeyError):
        ds.load_dataset("nope")


# ------------------------------------------------------------------------------------------------------
# Parsers on synthetic files
# ------------------------------------------------------------------------------------------------------


def _counts(n_cells, n_feat, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.7, size=(n_cells, n_feat)).astype(np.float32)
    return dense


def write_10x_h5(path, dense, names, barcodes, feature_types=None, legacy=False):
    csc = sp.csc_matrix(dense.T)  # features x cells
    with h5py.File(path, "w") as f:
        grp = f.create_group("mm10" if legacy else "matrix")
        grp["data"], grp["indices"], grp["indptr"] = csc.data.astype(np.int32), csc.indices, csc.indptr
        grp["shape"] = np.array(csc.shape, dtype=np.int32)
        grp["barcodes"] = np.array(barcodes, dtype="S")
        if legacy:
            grp["genes"] = np.array([f"ID{i}" for i in range(len(names))], dtype="S")
            grp["gene_names"] = np.array(names, dtype="S")
        else:
            feats = grp.create_group("features")
            feats["id"] = np.array([f"ID{i}" for i in range(len(names))], dtype="S")
            feats["name"] = np.array(names, dtype="S")
            feats["feature_type"] = np.array(feature_types or ["Gene Expression"] * len(names), dtype="S")
            feats["genome"] = np.array(["GRCh38"] * len(names), dtype="S")


def test_read_10x_h5_v3_and_legacy(tmp_path):
    dense = _counts(6, 5)
    names = ["A", "B", "B", "chr1-1-10", "chr1-20-30"]
    types = ["Gene Expression"] * 3 + ["Peaks"] * 2
    write_10x_h5(tmp_path / "v3.h5", dense, names, [f"c{i}-1" for i in range(6)], types)
    a = ds.read_10x_h5(tmp_path / "v3.h5")
    assert a.shape == (6, 5) and a.X.dtype == np.float32 and sp.issparse(a.X)
    np.testing.assert_array_equal(a.X.toarray(), dense)
    assert list(a.var["feature_types"]) == types and a.var_names.is_unique
    assert list(a.obs_names[:2]) == ["c0-1", "c1-1"] and a.var["gene_ids"].iloc[0] == "ID0"
    write_10x_h5(tmp_path / "v2.h5", dense, names, [f"c{i}-1" for i in range(6)], legacy=True)
    b = ds.read_10x_h5(tmp_path / "v2.h5")
    np.testing.assert_array_equal(b.X.toarray(), dense)
    assert b.var["genome"].iloc[0] == "mm10"


def write_mtx_triple(folder, prefix, dense, features, barcodes, n_feature_cols=3):
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    scipy.io.mmwrite(buf, sp.coo_matrix(dense.T))
    paths = {}
    paths["matrix"] = folder / f"{prefix}-matrix.mtx.gz"
    paths["matrix"].write_bytes(gzip.compress(buf.getvalue()))
    rows = [[f"ID{i}", name, "Gene Expression"][:n_feature_cols] for i, name in enumerate(features)]
    if n_feature_cols == 1:
        rows = [[name] for name in features]
    paths["features"] = folder / f"{prefix}-features.tsv.gz"
    paths["features"].write_bytes(gzip.compress("".join("\t".join(r) + "\n" for r in rows).encode()))
    paths["barcodes"] = folder / f"{prefix}-barcodes.tsv.gz"
    paths["barcodes"].write_bytes(gzip.compress("".join(b + "\n" for b in barcodes).encode()))
    return paths


def test_read_10x_mtx(tmp_path):
    dense = _counts(5, 4, seed=1)
    p = write_mtx_triple(tmp_path, "rna", dense, ["G1", "G2", "G3", "G4"], [f"b{i}" for i in range(5)])
    a = ds.read_10x_mtx(p["matrix"], p["features"], p["barcodes"])
    np.testing.assert_array_equal(a.X.toarray(), dense)
    assert list(a.var_names) == ["G1", "G2", "G3", "G4"] and a.var["feature_types"].iloc[0] == "Gene Expression"
    p = write_mtx_triple(tmp_path / "one", "adt", dense, ["P1", "P2", "P3", "P4"], list("vwxyz"), n_feature_cols=1)
    a = ds.read_10x_mtx(p["matrix"], p["features"], p["barcodes"])
    assert list(a.var_names) == ["P1", "P2", "P3", "P4"] and list(a.obs_names) == list("vwxyz")


def test_read_count_table(tmp_path):
    dense = _counts(7, 3, seed=2)
    table = pd.DataFrame(dense.T, index=["G1", "G2", "G3"], columns=[f"a_CELL{i}.1" for i in range(7)])
    path = tmp_path / "t.tsv.gz"
    table.to_csv(path, sep="\t")
    a = ds.read_count_table(path, chunksize=2)
    assert a.shape == (7, 3) and list(a.var_names) == ["G1", "G2", "G3"]
    np.testing.assert_array_equal(a.X.toarray(), dense)
    b = ds.read_count_table(path, features_in_rows=False)
    assert b.shape == (3, 7)


def write_fcs(path, values, names, markers=None, datatype="F", big_endian=False, offsets_in_text=False):
    n_tot, n_par = values.shape
    endian = ">" if big_endian else "<"
    if datatype == "F":
        raw = values.astype(endian + "f4").tobytes()
        bits = 32
    else:
        raw = values.astype(endian + "u2").tobytes()
        bits = 16
    pairs = {
        "$BYTEORD": "4,3,2,1" if big_endian else "1,2,3,4",
        "$DATATYPE": datatype,
        "$MODE": "L",
        "$NEXTDATA": "0",
        "$PAR": str(n_par),
        "$TOT": str(n_tot),
        "$COM": "a/b",  # contains the delimiter: must be escaped as //
    }
    for k, name in enumerate(names, start=1):
        pairs[f"$P{k}N"] = name
        pairs[f"$P{k}B"] = str(bits)
        pairs[f"$P{k}R"] = "1024"
        pairs[f"$P{k}E"] = "0,0"
        if markers and markers[k - 1]:  # FCS 3 forbids empty values: unset markers are left out
            pairs[f"$P{k}S"] = markers[k - 1]
    text_start = 58
    if offsets_in_text:
        pairs["$BEGINDATA"] = pairs["$ENDDATA"] = "0" * 12
    text = "/" + "".join(f"{k}/{v.replace('/', '//')}/" for k, v in pairs.items())
    data_start = text_start + len(text)
    data_end = data_start + len(raw) - 1
    if offsets_in_text:
        text = text.replace("$BEGINDATA/" + "0" * 12, f"$BEGINDATA/{data_start:012d}")
        text = text.replace("$ENDDATA/" + "0" * 12, f"$ENDDATA/{data_end:012d}")
    fields = [text_start, text_start + len(text) - 1, 0 if offsets_in_text else data_start]
    fields += [0 if offsets_in_text else data_end, 0, 0]
    header = "FCS3.0    " + "".join(f"{v:>8}" for v in fields)
    path.write_bytes(header.encode() + text.encode("latin-1") + raw)


@pytest.mark.parametrize(
    ("datatype", "big_endian", "offsets_in_text"), [("F", False, False), ("F", True, True), ("I", True, False)]
)
def test_read_fcs(tmp_path, datatype, big_endian, offsets_in_text):
    values = np.random.default_rng(3).integers(0, 1000, size=(11, 4)).astype(np.float32)
    path = tmp_path / "x.fcs"
    write_fcs(path, values, ["Nd142Di", "Nd143Di", "Time", "label"], ["CD19", "CD3", "", ""], datatype,
              big_endian, offsets_in_text)  # fmt: skip
    a = ds.read_fcs(path)
    np.testing.assert_array_equal(a.X, values)
    assert list(a.var_names) == ["Nd142Di", "Nd143Di", "Time", "label"]  # $PnS incomplete -> channel names
    assert a.var["marker"].iloc[0] == "CD19" and a.uns["fcs_meta"]["$COM"] == "a/b"


def test_read_loom(tmp_path):
    dense = _counts(9, 5, seed=4)
    path = tmp_path / "x.loom"
    with h5py.File(path, "w") as f:
        f.create_dataset("matrix", data=dense.T, chunks=(5, 3))
        f["row_attrs/Gene"] = np.array([f"g{i}" for i in range(5)], dtype="S")
        f["col_attrs/CellID"] = np.array([f"cell{i}" for i in range(9)], dtype="S")
        f["col_attrs/TaxonomyRank4"] = np.array(["neuron", "glia", "vascular"] * 3, dtype="S")
        f["col_attrs/Age"] = np.arange(9.0)
    a = ds.read_loom(path, cell_block=4)
    np.testing.assert_array_equal(a.X.toarray(), dense)
    assert list(a.obs_names[:2]) == ["cell0", "cell1"] and list(a.var_names[:2]) == ["g0", "g1"]
    assert a.obs["TaxonomyRank4"].iloc[1] == "glia" and a.obs["Age"].iloc[3] == 3.0


# ------------------------------------------------------------------------------------------------------
# Paper loaders end to end (registry pointed at local file:// copies)
# ------------------------------------------------------------------------------------------------------


def _serve(monkeypatch, key, path, checksum=True):
    data = Path(path).read_bytes()
    sha = hashlib.sha256(data).hexdigest() if checksum else None
    monkeypatch.setitem(
        ds.REGISTRY, key, replace(ds.REGISTRY[key], url=Path(path).as_uri(), sha256=sha, size=len(data))
    )


def test_teaseq_loader(tmp_path, monkeypatch):
    dense = _counts(6, 5, seed=5)
    barcodes = [f"AAAC{i}-1" for i in range(6)]
    write_10x_h5(tmp_path / "arc.h5", dense, ["G1", "G2", "chr1-1-9", "chr2-5-50", "G3"], barcodes,
                 ["Gene Expression", "Gene Expression", "Peaks", "Peaks", "Gene Expression"])  # fmt: skip
    adt = pd.DataFrame(
        {"CD3": [1, 2, 3, 4, 5], "CD4": [0, 1, 0, 1, 0], "total": [1, 3, 3, 5, 5]},
        index=pd.Index([f"AAAC{i}" for i in (4, 0, 1, 2, 3)], name="barcode"),  # one cell missing, shuffled
    )
    adt.to_csv(tmp_path / "adt.csv.gz")
    _serve(monkeypatch, "teaseq_h5", tmp_path / "arc.h5")
    _serve(monkeypatch, "teaseq_adt", tmp_path / "adt.csv.gz")
    rna, atac, prot = ds.teaseq_pbmc(cache_dir=tmp_path / "cache", progress=False)
    assert rna.shape == (5, 3) and atac.shape == (5, 2) and prot.shape == (5, 2)
    assert list(rna.obs_names) == list(prot.obs_names) == [f"AAAC{i}-1" for i in range(5)]
    assert list(prot.var_names) == ["CD3", "CD4"]
    np.testing.assert_array_equal(prot.X[:, 0], [2, 3, 4, 5, 1])
    np.testing.assert_array_equal(atac.X.toarray(), dense[:5, 2:4])


def test_tonsil_loader(tmp_path, monkeypatch):
    n_codex, n_rna = 8, 6
    rng = np.random.default_rng(6)
    codex = pd.DataFrame(rng.normal(size=(n_codex, 3)), columns=["CD38", "CD19", "HLA-DR"])
    codex["centroid_x"], codex["centroid_y"] = np.arange(n_codex), np.arange(n_codex) * 2.0
    codex["cluster.term"] = ["B-CD22-CD40", "Tcell"] * 4
    counts = _counts(n_rna, 4, seed=7)
    mtx = io.BytesIO()
    scipy.io.mmwrite(mtx, sp.coo_matrix(counts))  # cells x genes, as in the MaxFuse archive
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as zf:
        zf.writestr("data/tonsil/tonsil_codex.csv", codex.to_csv(index=False))
        zf.writestr("data/tonsil/tonsil_rna_counts.txt", mtx.getvalue())
        zf.writestr("data/tonsil/tonsil_rna_names.csv", pd.DataFrame({"names": list("ABCD")}).to_csv(index=False))
        zf.writestr("data/tonsil/tonsil_rna_meta.csv", pd.DataFrame({"cluster.info": ["B"] * 6}).to_csv())
        zf.writestr("data/other/ignored.txt", "x")
    _serve(monkeypatch, "tonsil_maxfuse_zip", tmp_path / "data.zip")
    cx, rna = ds.tonsil_codex_rna(cache_dir=tmp_path / "cache", progress=False)
    assert cx.shape == (n_codex, 3) and list(cx.var_names) == ["CD38", "CD19", "HLA-DR"]
    np.testing.assert_allclose(cx.obsm["spatial"][:, 1], np.arange(n_codex) * 2.0)
    assert cx.obs["cell_type"].iloc[1] == "Tcell"
    assert rna.shape == (n_rna, 4) and list(rna.var_names) == list("ABCD")
    np.testing.assert_array_equal(rna.X.toarray(), counts)
    assert (rna.obs["cell_type"] == "B").all()
    # second call reuses the extracted files (no re-download even if the source disappears)
    (tmp_path / "data.zip").unlink()
    cx2, _ = ds.tonsil_codex_rna(cache_dir=tmp_path / "cache", progress=False)
    assert cx2.shape == cx.shape


def test_hao2021_loader(tmp_path, monkeypatch):
    cells = [f"L1_AAAC{i}" for i in range(6)]
    rna_p = write_mtx_triple(tmp_path / "h", "rna", _counts(6, 4, 8), ["G1", "G2", "G3", "G4"], cells)
    adt_p = write_mtx_triple(tmp_path / "h", "adt", _counts(6, 2, 9), ["CD3-1", "CD4-1"], cells, n_feature_cols=1)
    meta = pd.DataFrame(
        {
            "celltype.l1": ["T", "B", "T", "Mono", "T", "B"],
            "celltype.l2": ["CD4 TCM", "B naive", "Doublet", "CD14 Mono", "CD8 TEM", "B naive"],
            "donor": ["P1", "P1", "P1", "P2", "P1", "P2"],
        },
        index=cells,
    )
    meta.to_csv(tmp_path / "meta.csv.gz")
    for part in ("matrix", "features", "barcodes"):
        _serve(monkeypatch, f"hao2021_rna_{part}", rna_p[part])
        _serve(monkeypatch, f"hao2021_adt_{part}", adt_p[part])
    _serve(monkeypatch, "hao2021_metadata", tmp_path / "meta.csv.gz")
    rna, adt = ds.hao2021_pbmc_cite(donor="P1", cache_dir=tmp_path / "cache", progress=False)
    assert list(rna.obs_names) == ["L1_AAAC0", "L1_AAAC1", "L1_AAAC4"]  # P1, doublet dropped
    assert list(rna.obs["cell_type"]) == ["CD4 TCM", "B naive", "CD8 TEM"]
    assert list(adt.var_names) == ["CD3-1", "CD4-1"] and list(adt.obs_names) == list(rna.obs_names)


def test_stuart2019_loader_with_labels(tmp_path, monkeypatch):
    cells = ["a_AAAC.1", "a_AAAG.1", "b_CCCT.1"]
    rna = pd.DataFrame(_counts(3, 4, 10).T, index=["G1", "G2", "G3", "G4"], columns=cells)
    adt = pd.DataFrame(_counts(3, 2, 11).T, index=["CD3", "CD4"], columns=cells)
    rna.to_csv(tmp_path / "rna.tsv.gz", sep="\t")
    adt.to_csv(tmp_path / "adt.tsv.gz", sep="\t")
    _serve(monkeypatch, "stuart2019_rna", tmp_path / "rna.tsv.gz", checksum=False)
    _serve(monkeypatch, "stuart2019_adt", tmp_path / "adt.tsv.gz", checksum=False)
    pd.DataFrame({"celltype.l2": ["CD14 Mono", "NK", "B"]}, index=["a_AAAC-1", "a_AAAG-1", "b_CCCT-1"]).to_csv(
        tmp_path / "labels.csv"
    )
    r, p = ds.stuart2019_bm_cite(labels=tmp_path / "labels.csv", paired_obs_suffix=True, cache_dir=tmp_path / "c",
                                 progress=False)  # fmt: skip
    assert r.shape == (3, 4) and p.shape == (3, 2)
    assert list(r.obs["cell_type"]) == ["CD14 Mono", "NK", "B"]
    assert r.obs_names[0] == "a_AAAC.1-rna" and p.obs["barcode"].iloc[2] == "b_CCCT.1"


def test_levine_loader(tmp_path):
    rng = np.random.default_rng(12)
    markers = ["CD45RA", "CD133", "CD19"]
    cols = ["Time", "Cell_length", *markers, "DNA1", "label", "individual"]
    values = np.column_stack(
        [np.arange(6), rng.integers(10, 40, 6), rng.normal(size=(6, 3)), rng.normal(size=6),
         [1, 2, np.nan, 1, 2, np.nan], [1, 1, 1, 2, 2, 2]]
    ).astype(np.float32)  # fmt: skip
    write_fcs(tmp_path / "Levine_32dim.fcs", values, cols)
    pd.DataFrame({"label": [1, 2], "population": ["Basophils", "CD4_T_cells"]}).to_csv(
        tmp_path / "pop.txt", sep="\t", index=False
    )
    a = ds.levine2015_bm_cytof(path=tmp_path / "Levine_32dim.fcs", population_names=tmp_path / "pop.txt")
    assert list(a.var_names) == markers and a.n_obs == 4
    assert list(a.obs["cell_type"]) == ["Basophils", "CD4_T_cells", "Basophils", "CD4_T_cells"]
    np.testing.assert_allclose(a.X, values[[0, 1, 3, 4]][:, 2:5])
    b = ds.levine2015_bm_cytof(path=tmp_path / "Levine_32dim.fcs", drop_unassigned=False, arcsinh_cofactor=5.0,
                               cache_dir=tmp_path / "empty")  # fmt: skip
    assert b.n_obs == 6 and b.obs["cell_type"].isna().sum() == 2 and b.obs["cell_type"].iloc[0] == "1"
    np.testing.assert_allclose(b.X, np.arcsinh(values[:, 2:5] / 5.0), rtol=1e-6)
