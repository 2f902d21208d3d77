"""Tests for scmodal_jax.data.readers on small synthetic files (written by tests/files.py)."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from files import counts_matrix, write_10x_h5, write_fcs, write_mtx_triple

from scmodal_jax.data import readers as rd

# ------------------------------------------------------------------------------------------------------
# Parsers on synthetic files
# ------------------------------------------------------------------------------------------------------


def test_read_10x_h5_v3_and_legacy(tmp_path):
    dense = counts_matrix(6, 5)
    names = ["A", "B", "B", "chr1-1-10", "chr1-20-30"]
    types = ["Gene Expression"] * 3 + ["Peaks"] * 2
    write_10x_h5(tmp_path / "v3.h5", dense, names, [f"c{i}-1" for i in range(6)], types)
    a = rd.read_10x_h5(tmp_path / "v3.h5")
    assert a.shape == (6, 5) and a.X.dtype == np.float32 and sp.issparse(a.X)
    np.testing.assert_array_equal(a.X.toarray(), dense)
    assert list(a.var["feature_types"]) == types and a.var_names.is_unique
    assert list(a.obs_names[:2]) == ["c0-1", "c1-1"] and a.var["gene_ids"].iloc[0] == "ID0"
    write_10x_h5(tmp_path / "v2.h5", dense, names, [f"c{i}-1" for i in range(6)], legacy=True)
    b = rd.read_10x_h5(tmp_path / "v2.h5")
    np.testing.assert_array_equal(b.X.toarray(), dense)
    assert b.var["genome"].iloc[0] == "mm10"


def test_read_10x_mtx(tmp_path):
    dense = counts_matrix(5, 4, seed=1)
    p = write_mtx_triple(tmp_path, "rna", dense, ["G1", "G2", "G3", "G4"], [f"b{i}" for i in range(5)])
    a = rd.read_10x_mtx(p["matrix"], p["features"], p["barcodes"])
    np.testing.assert_array_equal(a.X.toarray(), dense)
    assert list(a.var_names) == ["G1", "G2", "G3", "G4"] and a.var["feature_types"].iloc[0] == "Gene Expression"
    p = write_mtx_triple(tmp_path / "one", "adt", dense, ["P1", "P2", "P3", "P4"], list("vwxyz"), n_feature_cols=1)
    a = rd.read_10x_mtx(p["matrix"], p["features"], p["barcodes"])
    assert list(a.var_names) == ["P1", "P2", "P3", "P4"] and list(a.obs_names) == list("vwxyz")


def test_read_count_table(tmp_path):
    dense = counts_matrix(7, 3, seed=2)
    table = pd.DataFrame(dense.T, index=["G1", "G2", "G3"], columns=[f"a_CELL{i}.1" for i in range(7)])
    path = tmp_path / "t.tsv.gz"
    table.to_csv(path, sep="\t")
    a = rd.read_count_table(path, chunksize=2)
    assert a.shape == (7, 3) and list(a.var_names) == ["G1", "G2", "G3"]
    np.testing.assert_array_equal(a.X.toarray(), dense)
    b = rd.read_count_table(path, features_in_rows=False)
    assert b.shape == (3, 7)


@pytest.mark.parametrize(
    ("datatype", "big_endian", "offsets_in_text"), [("F", False, False), ("F", True, True), ("I", True, False)]
)
def test_read_fcs(tmp_path, datatype, big_endian, offsets_in_text):
    values = np.random.default_rng(3).integers(0, 1000, size=(11, 4)).astype(np.float32)
    path = tmp_path / "x.fcs"
    write_fcs(path, values, ["Nd142Di", "Nd143Di", "Time", "label"], ["CD19", "CD3", "", ""], datatype,
              big_endian, offsets_in_text)  # fmt: skip
    a = rd.read_fcs(path)
    np.testing.assert_array_equal(a.X, values)
    assert list(a.var_names) == ["Nd142Di", "Nd143Di", "Time", "label"]  # $PnS incomplete -> channel names
    assert a.var["marker"].iloc[0] == "CD19" and a.uns["fcs_meta"]["$COM"] == "a/b"


def test_read_loom(tmp_path):
    dense = counts_matrix(9, 5, seed=4)
    path = tmp_path / "x.loom"
    with h5py.File(path, "w") as f:
        f.create_dataset("matrix", data=dense.T, chunks=(5, 3))
        f["row_attrs/Gene"] = np.array([f"g{i}" for i in range(5)], dtype="S")
        f["col_attrs/CellID"] = np.array([f"cell{i}" for i in range(9)], dtype="S")
        f["col_attrs/TaxonomyRank4"] = np.array(["neuron", "glia", "vascular"] * 3, dtype="S")
        f["col_attrs/Age"] = np.arange(9.0)
    a = rd.read_loom(path, cell_block=4)
    np.testing.assert_array_equal(a.X.toarray(), dense)
    assert list(a.obs_names[:2]) == ["cell0", "cell1"] and list(a.var_names[:2]) == ["g0", "g1"]
    assert a.obs["TaxonomyRank4"].iloc[1] == "glia" and a.obs["Age"].iloc[3] == 3.0
