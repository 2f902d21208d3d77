"""Tests for scmodal_jax.data.readers on small synthetic files (written by tests/files.py)."""

from __future__ import annotations

import flowio
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
    ("datatype", "big_endian", "offsets_in_text"),
    [("F", False, False), ("F", True, True), ("I", True, False), ("D", False, True)],
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


def test_read_fcs_masks_integer_words_to_their_range(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.integers(0, 1024, size=(50, 3))  # 10-bit values ...
    junk = rng.integers(1, 64, size=(50, 3)) << 10  # ... in 16-bit words whose 6 high bits hold something else
    words = values | junk
    path = tmp_path / "int.fcs"
    # $PnR 1024 -> 10 bits; 1000 (not a power of two) -> also 10 bits; 65536 -> all 16 bits are data
    write_fcs(path, words, ["FL1", "FL2", "FL3"], datatype="I", big_endian=True, ranges=[1024, 1000, 65536])
    a = rd.read_fcs(path)
    np.testing.assert_array_equal(a.X[:, :2], values[:, :2])
    np.testing.assert_array_equal(a.X[:, 2], words[:, 2])
    assert (words[:, :2] >= 1024).all()  # the junk really was there
    # our mask alone (flowio 1.4 masks as well): the same words from the raw ones
    np.testing.assert_array_equal(rd._fcs_bit_mask(words, [1024, 1000, 65536], [16, 16, 16]), a.X)


def test_read_fcs_decodes_log_amplified_channels(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.integers(0, 1024, size=(40, 3))
    path = tmp_path / "log.fcs"
    # 4 decades from 1; 3 decades with f2 = 0 (read as 1); a linear channel
    write_fcs(path, x, ["FL1-H", "FL2-H", "FSC-H"], datatype="I", amplification=["4,1", "3,0", "0,0"])
    a = rd.read_fcs(path)
    expected = np.column_stack([1.0 * 10 ** (4 * x[:, 0] / 1024), 1.0 * 10 ** (3 * x[:, 1] / 1024), x[:, 2]])
    np.testing.assert_allclose(a.X, expected, rtol=1e-6)
    assert a.X[:, 0].max() > 1000  # decoded, not the stored channel numbers


def _spillover(names, matrix):
    return ",".join([str(len(names)), *names, *(f"{v:.6g}" for v in matrix.ravel())])


SPILL_NAMES = ["FL3-A", "FL1-A", "FL2-A"]  # not in the file's column order
SPILL = np.array([[1.0, 0.02, 0.15], [0.1, 1.0, 0.3], [0.01, 0.2, 1.0]])


@pytest.mark.parametrize("keyword", ["$SPILLOVER", "$SPILL", "SPILL"])
def test_read_fcs_compensates_with_the_spillover_matrix(tmp_path, keyword):
    raw = np.random.default_rng(7).uniform(0, 5000, size=(30, 5)).astype(np.float32)
    names = ["FSC-A", "FL1-A", "FL2-A", "FL3-A", "Time"]
    path = tmp_path / "comp.fcs"
    write_fcs(path, raw, names, ["", "CD3", "CD4", "CD8", ""], keywords={keyword: _spillover(SPILL_NAMES, SPILL)})
    a = rd.read_fcs(path)
    columns = [names.index(n) for n in SPILL_NAMES]
    expected = raw.astype(np.float64)
    expected[:, columns] = raw[:, columns].astype(np.float64) @ np.linalg.inv(SPILL)
    np.testing.assert_allclose(a.X, expected, rtol=1e-5, atol=1e-3)
    assert not np.allclose(a.X[:, columns], raw[:, columns])  # compensation changed them
    assert list(a.uns["fcs_compensation"]["channels"]) == SPILL_NAMES
    np.testing.assert_array_equal(a.uns["fcs_compensation"]["spillover"], SPILL)


def test_read_fcs_reads_the_spillover_written_by_flowio(tmp_path):
    raw = np.random.default_rng(8).uniform(0, 5000, size=(25, 4)).astype(np.float32)
    names = ["FL1-A", "FL2-A", "FL3-A", "SSC-A"]
    path = tmp_path / "flowio.fcs"
    with open(path, "wb") as fh:
        flowio.create_fcs(fh, raw.ravel().tolist(), names, ["CD3", "CD4", "CD8", ""],
                          metadata_dict={"spillover": _spillover(SPILL_NAMES, SPILL)})  # fmt: skip
    a = rd.read_fcs(path)
    assert list(a.var["channel"]) == names and list(a.var["marker"]) == ["CD3", "CD4", "CD8", ""]
    assert "$SPILLOVER" in a.uns["fcs_meta"]
    columns = [names.index(n) for n in SPILL_NAMES]
    expected = raw.astype(np.float64)
    expected[:, columns] = raw[:, columns].astype(np.float64) @ np.linalg.inv(SPILL)
    np.testing.assert_allclose(a.X, expected, rtol=1e-5, atol=1e-3)


def test_read_fcs_spillover_naming_an_unknown_channel_is_an_error(tmp_path):
    path = tmp_path / "bad.fcs"
    spill = _spillover(["FL1-A", "FL9-A"], np.eye(2))
    write_fcs(path, np.ones((3, 2), np.float32), ["FL1-A", "FL2-A"], keywords={"$SPILLOVER": spill})
    with pytest.raises(ValueError, match="FL9-A"):
        rd.read_fcs(path)


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
