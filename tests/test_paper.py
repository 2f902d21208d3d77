"""Tests for scmodal_jax.data.loaders.paper: the paper loaders run end to end on small synthetic files served
through file:// URLs (the download registry is pointed at local copies)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from files import counts_matrix, write_10x_h5, write_fcs, write_mtx_triple

from scmodal_jax.data import download as dl
from scmodal_jax.data.loaders import paper

# ------------------------------------------------------------------------------------------------------
# Paper loaders end to end (registry pointed at local file:// copies)
# ------------------------------------------------------------------------------------------------------


def _serve(monkeypatch, key, path, checksum=True):
    data = Path(path).read_bytes()
    sha = hashlib.sha256(data).hexdigest() if checksum else None
    monkeypatch.setitem(
        dl.REGISTRY, key, replace(dl.REGISTRY[key], url=Path(path).as_uri(), sha256=sha, size=len(data))
    )


def test_teaseq_loader(tmp_path, monkeypatch):
    dense = counts_matrix(6, 5, seed=5)
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
    rna, atac, prot = paper.teaseq_pbmc(cache_dir=tmp_path / "cache", progress=False)
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
    counts = counts_matrix(n_rna, 4, seed=7)
    mtx = io.BytesIO()
    scipy.io.mmwrite(mtx, sp.coo_matrix(counts))  # cells x genes, as in the MaxFuse archive
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as zf:
        zf.writestr("data/tonsil/tonsil_codex.csv", codex.to_csv(index=False))
        zf.writestr("data/tonsil/tonsil_rna_counts.txt", mtx.getvalue())
        zf.writestr("data/tonsil/tonsil_rna_names.csv", pd.DataFrame({"names": list("ABCD")}).to_csv(index=False))
        zf.writestr("data/tonsil/tonsil_rna_meta.csv", pd.DataFrame({"cluster.info": ["B"] * 6}).to_csv())
        zf.writestr("data/other/ignored.txt", "x")
    _serve(monkeypatch, "tonsil_maxfuse_zip", tmp_path / "data.zip")
    cx, rna = paper.tonsil_codex_rna(cache_dir=tmp_path / "cache", progress=False)
    assert cx.shape == (n_codex, 3) and list(cx.var_names) == ["CD38", "CD19", "HLA-DR"]
    np.testing.assert_allclose(cx.obsm["spatial"][:, 1], np.arange(n_codex) * 2.0)
    assert cx.obs["cell_type"].iloc[1] == "Tcell"
    assert rna.shape == (n_rna, 4) and list(rna.var_names) == list("ABCD")
    np.testing.assert_array_equal(rna.X.toarray(), counts)
    assert (rna.obs["cell_type"] == "B").all()
    # second call reuses the extracted files (no re-download even if the source disappears)
    (tmp_path / "data.zip").unlink()
    cx2, _ = paper.tonsil_codex_rna(cache_dir=tmp_path / "cache", progress=False)
    assert cx2.shape == cx.shape


def test_hao2021_loader(tmp_path, monkeypatch):
    cells = [f"L1_AAAC{i}" for i in range(6)]
    rna_p = write_mtx_triple(tmp_path / "h", "rna", counts_matrix(6, 4, 8), ["G1", "G2", "G3", "G4"], cells)
    adt_p = write_mtx_triple(tmp_path / "h", "adt", counts_matrix(6, 2, 9), ["CD3-1", "CD4-1"], cells, n_feature_cols=1)
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
    rna, adt = paper.hao2021_pbmc_cite(donor="P1", cache_dir=tmp_path / "cache", progress=False)
    assert list(rna.obs_names) == ["L1_AAAC0", "L1_AAAC1", "L1_AAAC4"]  # P1, doublet dropped
    assert list(rna.obs["cell_type"]) == ["CD4 TCM", "B naive", "CD8 TEM"]
    assert list(adt.var_names) == ["CD3-1", "CD4-1"] and list(adt.obs_names) == list(rna.obs_names)


def test_stuart2019_loader_with_labels(tmp_path, monkeypatch):
    cells = ["a_AAAC.1", "a_AAAG.1", "b_CCCT.1"]
    rna = pd.DataFrame(counts_matrix(3, 4, 10).T, index=["G1", "G2", "G3", "G4"], columns=cells)
    adt = pd.DataFrame(counts_matrix(3, 2, 11).T, index=["CD3", "CD4"], columns=cells)
    rna.to_csv(tmp_path / "rna.tsv.gz", sep="\t")
    adt.to_csv(tmp_path / "adt.tsv.gz", sep="\t")
    _serve(monkeypatch, "stuart2019_rna", tmp_path / "rna.tsv.gz", checksum=False)
    _serve(monkeypatch, "stuart2019_adt", tmp_path / "adt.tsv.gz", checksum=False)
    pd.DataFrame({"celltype.l2": ["CD14 Mono", "NK", "B"]}, index=["a_AAAC-1", "a_AAAG-1", "b_CCCT-1"]).to_csv(
        tmp_path / "labels.csv"
    )
    r, p = paper.stuart2019_bm_cite(labels=tmp_path / "labels.csv", paired_obs_suffix=True, cache_dir=tmp_path / "c",
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
    a = paper.levine2015_bm_cytof(path=tmp_path / "Levine_32dim.fcs", population_names=tmp_path / "pop.txt")
    assert list(a.var_names) == markers and a.n_obs == 4
    assert list(a.obs["cell_type"]) == ["Basophils", "CD4_T_cells", "Basophils", "CD4_T_cells"]
    np.testing.assert_allclose(a.X, values[[0, 1, 3, 4]][:, 2:5])
    b = paper.levine2015_bm_cytof(path=tmp_path / "Levine_32dim.fcs", drop_unassigned=False, arcsinh_cofactor=5.0,
                               cache_dir=tmp_path / "empty")  # fmt: skip
    assert b.n_obs == 6 and b.obs["cell_type"].isna().sum() == 2 and b.obs["cell_type"].iloc[0] == "1"
    np.testing.assert_allclose(b.X, np.arcsinh(values[:, 2:5] / 5.0), rtol=1e-6)
