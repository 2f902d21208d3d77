"""Tests for scmodal_jax.data.readers on small synthetic files. The file writers here are reused by
tests/test_paper.py."""

from __future__ import annotations

import gzip
import io

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scmodal_jax.data import readers as rd

# ------------------------------------------------------------------------------------------------------
# Parsers on synthetic files
# ------------------------------------------------------------------------------------------------------


def counts_matrix(n_cells, n_feat, seed=0):
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
