"""Parsers of single-cell file formats into :class:`anndata.AnnData`, using only h5py, scipy and pandas.

* :func:`read_10x_h5` -- 10x Genomics HDF5 matrices (Cell Ranger >= 3 / ARC / ATAC, legacy Cell Ranger 2);
* :func:`read_10x_mtx` -- 10x Matrix Market triples (matrix, features, barcodes);
* :func:`read_count_table` -- dense text count tables (GEO style), read chunk by chunk;
* :func:`read_fcs` -- list-mode FCS 2.0/3.0/3.1 cytometry files;
* :func:`read_loom` -- loom files.

Repeated feature names are made unique (as anndata's ``var_names_make_unique``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from ._obs import unique_names

__all__ = [
    "read_10x_h5",
    "read_10x_mtx",
    "read_count_table",
    "read_fcs",
    "read_loom",
]


def _decode(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8").astype(object)
    if arr.dtype.kind == "O":
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr], dtype=object)
    return arr.astype(str).astype(object)


# ----------------------------------------------------------------------------------------------------------
# Parsers
# ----------------------------------------------------------------------------------------------------------


def read_10x_h5(path: str | os.PathLike, genome: str | None = None) -> ad.AnnData:
    """Read a 10x Genomics HDF5 matrix (Cell Ranger >= 3 / ARC / ATAC ``matrix`` group, or the legacy
    Cell Ranger 2 per-genome layout) with h5py.

    Returns cells x features CSR float32 counts; ``var`` has ``gene_ids``, ``feature_types`` and ``genome``
    when present. Feature names are made unique (anndata's ``var_names_make_unique``).
    """
    with h5py.File(path, "r") as f:
        if "matrix" in f:
            grp = f["matrix"]
            feats = grp["features"]
            names = _decode(feats["name"][()])
            var = pd.DataFrame({"gene_ids": _decode(feats["id"][()])})
            for col, key in (("feature_types", "feature_type"), ("genome", "genome")):
                if key in feats:
                    var[col] = _decode(feats[key][()])
        else:
            groups = [k for k in f if isinstance(f[k], h5py.Group)]
            if not groups:
                raise ValueError(f"{path} is not a 10x HDF5 matrix (no 'matrix' or genome group)")
            if genome is None and len(groups) > 1:
                raise ValueError(f"{path} holds several genomes {groups}; pass genome=")
            grp = f[genome or groups[0]]
            names = _decode(grp["gene_names"][()])
            var = pd.DataFrame({"gene_ids": _decode(grp["genes"][()]), "genome": genome or groups[0]})
        n_features, n_cells = (int(v) for v in grp["shape"][()])
        # CSC features x cells == CSR cells x features
        X = sp.csr_matrix(
            (grp["data"][()].astype(np.float32), grp["indices"][()], grp["indptr"][()]), shape=(n_cells, n_features)
        )
        barcodes = _decode(grp["barcodes"][()])
    var.index = unique_names(names)
    return ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index(barcodes.astype(str))), var=var)


def _open_text(path: str | os.PathLike):
    path = Path(path)
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def read_10x_mtx(matrix: str | os.PathLike, features: str | os.PathLike, barcodes: str | os.PathLike) -> ad.AnnData:
    """Read a 10x Matrix Market triple (``matrix.mtx[.gz]``, ``features.tsv[.gz]``/``genes.tsv``,
    ``barcodes.tsv[.gz]``) into a cells x features AnnData (CSR float32).

    Feature tables with one column (names only), two (id, name) or three+ (id, name, type) are accepted.
    """
    with _open_text(matrix) as fh:
        X = sp.csr_matrix(scipy.io.mmread(fh).T, dtype=np.float32)
    feats = pd.read_csv(features, sep="\t", header=None, dtype=str)
    cells = pd.read_csv(barcodes, sep="\t", header=None, dtype=str).iloc[:, 0].to_numpy()
    if feats.shape[1] == 1:
        var = pd.DataFrame(index=unique_names(feats.iloc[:, 0]))
    else:
        var = pd.DataFrame({"gene_ids": feats.iloc[:, 0].to_numpy()}, index=unique_names(feats.iloc[:, 1]))
        if feats.shape[1] >= 3:
            var["feature_types"] = feats.iloc[:, 2].to_numpy()
    if X.shape != (len(cells), len(var)):
        raise ValueError(f"matrix shape {X.shape[::-1]} does not match {len(var)} features x {len(cells)} barcodes")
    return ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index(cells)), var=var)


def read_count_table(
    path: str | os.PathLike, sep: str = "\t", features_in_rows: bool = True, chunksize: int = 2000
) -> ad.AnnData:
    """Read a dense text count table (first column = row names, header = column names) into a sparse
    cells x features AnnData, chunk by chunk so large tables (e.g. GSE128639) fit in memory.

    Args:
        features_in_rows: True for features x cells tables (GEO style), False for cells x features.
    """
    blocks, rows = [], []
    for chunk in pd.read_csv(path, sep=sep, index_col=0, chunksize=chunksize):
        blocks.append(sp.csr_matrix(chunk.to_numpy(dtype=np.float32)))
        rows.append(chunk.index.astype(str))
        columns = chunk.columns.astype(str)
    if not blocks:
        raise ValueError(f"{path} holds no rows")
    M = sp.vstack(blocks).tocsr()
    row_names = np.concatenate([np.asarray(r) for r in rows])
    if features_in_rows:
        M, cells, feats = M.T.tocsr(), np.asarray(columns), row_names
    else:
        cells, feats = row_names, np.asarray(columns)
    return ad.AnnData(X=M, obs=pd.DataFrame(index=pd.Index(cells)), var=pd.DataFrame(index=unique_names(feats)))


def _parse_fcs_text(raw: bytes) -> dict[str, str]:
    text = raw.decode("latin-1")
    delim = text[0]
    fields, buf, i = [], [], 1
    while i < len(text):
        ch = text[i]
        if ch == delim:
            if i + 1 < len(text) and text[i + 1] == delim:  # escaped delimiter
                buf.append(delim)
                i += 2
                continue
            fields.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    if buf:
        fields.append("".join(buf))
    return {fields[k].strip().upper(): fields[k + 1].strip() for k in range(0, len(fields) - 1, 2)}


def read_fcs(path: str | os.PathLike) -> ad.AnnData:
    """Read a list-mode FCS 2.0/3.0/3.1 file (``$DATATYPE`` F, D or I with equal bit widths).

    Returns events x parameters float32. ``var_names`` are the ``$PnS`` marker names when all are set and
    unique, else the ``$PnN`` channel names; both are kept in ``var['channel']`` / ``var['marker']``. No
    compensation or transformation is applied.
    """
    data = Path(path).read_bytes()
    if not data[:3] == b"FCS":
        raise ValueError(f"{path} is not an FCS file")
    offsets = [int(data[10 + 8 * k : 18 + 8 * k].strip() or 0) for k in range(4)]
    meta = _parse_fcs_text(data[offsets[0] : offsets[1] + 1])
    begin, end = offsets[2], offsets[3]
    if begin == 0 and end == 0:  # large files put the offsets in TEXT
        begin, end = int(meta["$BEGINDATA"]), int(meta["$ENDDATA"])
    n_par, n_tot = int(meta["$PAR"]), int(meta["$TOT"])
    if meta.get("$MODE", "L").upper() != "L":
        raise ValueError(f"{path}: only list-mode ($MODE L) FCS files are supported")
    order = meta.get("$BYTEORD", "1,2,3,4")
    endian = "<" if order.startswith("1") else ">"
    kind = meta["$DATATYPE"].upper()
    if kind == "F":
        dtype = np.dtype(endian + "f4")
    elif kind == "D":
        dtype = np.dtype(endian + "f8")
    elif kind == "I":
        bits = {int(meta[f"$P{k}B"]) for k in range(1, n_par + 1)}
        if len(bits) != 1 or next(iter(bits)) not in (8, 16, 32, 64):
            raise ValueError(f"{path}: integer FCS data with bit widths {sorted(bits)} are not supported")
        dtype = np.dtype(f"{endian}u{next(iter(bits)) // 8}")
    else:
        raise ValueError(f"{path}: $DATATYPE {kind} is not supported")
    values = np.frombuffer(data[begin : end + 1], dtype=dtype, count=n_par * n_tot).reshape(n_tot, n_par)
    channels = [meta.get(f"$P{k}N", f"P{k}") for k in range(1, n_par + 1)]
    markers = [meta.get(f"$P{k}S", "") for k in range(1, n_par + 1)]
    use_markers = all(markers) and len(set(markers)) == n_par
    var = pd.DataFrame({"channel": channels, "marker": markers}, index=pd.Index(markers if use_markers else channels))
    adata = ad.AnnData(X=values.astype(np.float32), var=var)
    adata.obs_names = [str(i) for i in range(n_tot)]
    adata.uns["fcs_meta"] = {k: v for k, v in meta.items() if not k.startswith("$P")}
    return adata


def read_loom(path: str | os.PathLike, cell_block: int = 4096) -> ad.AnnData:
    """Read a loom file (``/matrix`` genes x cells, ``/row_attrs``, ``/col_attrs``) with h5py into a sparse
    cells x genes AnnData, reading ``cell_block`` cells at a time. 1-D column attributes become obs columns
    (``CellID`` is used as obs_names when present), 1-D row attributes become var columns (``Gene`` names).
    """
    with h5py.File(path, "r") as f:
        mat = f["matrix"]
        n_genes, n_cells = mat.shape
        blocks = [sp.csr_matrix(mat[:, s : s + cell_block].T.astype(np.float32)) for s in range(0, n_cells, cell_block)]

        def attrs(group: str, n: int) -> pd.DataFrame:
            out = {}
            for key, ds in f.get(group, {}).items():
                if isinstance(ds, h5py.Dataset) and ds.ndim == 1 and ds.shape[0] == n:
                    vals = ds[()]
                    out[key] = _decode(vals) if vals.dtype.kind in "SOU" else vals
            return pd.DataFrame(out)

        obs, var = attrs("col_attrs", n_cells), attrs("row_attrs", n_genes)
    obs.index = pd.Index(obs.pop("CellID").astype(str)) if "CellID" in obs else pd.Index(map(str, range(n_cells)))
    var.index = unique_names(var.pop("Gene")) if "Gene" in var else pd.Index(map(str, range(n_genes)))
    return ad.AnnData(X=sp.vstack(blocks).tocsr() if blocks else sp.csr_matrix((0, n_genes)), obs=obs, var=var)
