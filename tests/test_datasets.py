"""Tests for scmodal_jax.data.loaders.shared (the shared-file loaders) and the re-exports of the loaders
package and of scmodal_jax.data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import skip_without_shared_data

import scmodal_jax
from scmodal_jax import data
from scmodal_jax.data import download, loaders, registry
from scmodal_jax.data.loaders import paper
from scmodal_jax.data.loaders import shared as ds

HAVE_SHARED = ds.shared_data_available()
needs_shared = skip_without_shared_data(HAVE_SHARED)


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
    expected = Path(scmodal_jax.__file__).resolve().parents[2] / "shared" / "data"
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
    assert registry.load_dataset("pbmc_adt").shape == (5107, 29)


# ------------------------------------------------------------------------------------------------------
# Re-exports
# ------------------------------------------------------------------------------------------------------


def test_loaders_package_reexports_both_families():
    for module in (ds, paper):
        for name in module.__all__:
            assert getattr(loaders, name) is getattr(module, name), name
            assert name in loaders.__all__, name


def test_data_package_keeps_its_public_names():
    expected = {
        "Integration", "Prepared", "bmmc_cite", "bmmc_multiome", "build", "fetch", "gene_activity", "get_data_dir",
        "highly_variable_genes_seurat_v3", "make_multimodal", "pbmc5k_cite", "pbmc_adt", "pbmc_cytof",
        "prepare_generic", "prepare_protein_protein", "prepare_rna_atac", "prepare_rna_protein",
        "protein_gene_pairs", "protein_gene_table", "read_h5ad", "read_h5mu", "shared_markers", "to_anndata",
        "to_mudata", "write_h5ad", "write_h5mu", "list_datasets", "load_dataset", "dataset_info",
    }  # fmt: skip
    assert set(data.__all__) == expected
    assert all(hasattr(data, name) for name in expected)
    assert data.fetch is download.fetch and data.bmmc_cite is ds.bmmc_cite
    assert data.load_dataset is registry.load_dataset
