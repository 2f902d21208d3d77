"""Parsers of single-cell file formats into :class:`anndata.AnnData`.

* :func:`read_10x_h5` -- 10x Genomics HDF5 matrices (Cell Ranger >= 3 / ARC / ATAC, legacy Cell Ranger 2);
* :func:`read_10x_mtx` -- 10x Matrix Market triples (matrix, features, barcodes);
* :func:`read_count_table` -- dense text count tables (GEO style), read chunk by chunk;
* :func:`read_fcs` -- list-mode FCS 2.0/3.0/3.1 cytometry files;
* :func:`read_loom` -- loom files.

Repeated feature names are made unique (as anndata's ``var_names_make_unique``). The HDF5, Matrix Market and
text formats are read with h5py, scipy and pandas.

FCS files are parsed by `flowio <https://github.com/whitews/FlowIO>`_ (BSD-3, numpy only; also the parser
under FlowKit and readfcs): HEADER, TEXT and DATA segments, float, double and integer data in either byte
order, data offsets in the HEADER or the TEXT. Of the maintained readers compared, flowio was kept because
readfcs (2.1.1) is a thin AnnData layer over flowio itself, with var and uns conventions of its own and no
``$PnE`` decoding, and fcsparser (0.2.8, its latest release) pins numpy < 2, so it does not install next to
this package. What the FCS standard asks beyond the parsing is done here, explicitly, on flowio's values as
stored: the ``$PnR`` bit mask of integer data (flowio 1.4 masks as well; ours makes the result independent of
the flowio version and is a no-op after it), ``$PnE`` decoding (flowio's own preprocessing would also divide by
``$PnG``, which the values here keep) and compensation with the file's spillover matrix.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import flowio
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


def _flow_data(path: str | os.PathLike) -> flowio.FlowData:
    # nextdata_offset=0: the first data set of a multi-set file (flowio would refuse it otherwise)
    try:
        return flowio.FlowData(str(path), nextdata_offset=0)
    except KeyError as err:  # no $BEGINDATA/$ENDDATA (FCS 3.x asks for them): the HEADER offsets are all there is
        if err.args[0] not in ("begindata", "enddata"):
            raise
        return flowio.FlowData(str(path), use_header_offsets=True, nextdata_offset=0)
    except flowio.exceptions.DataOffsetDiscrepancyError:
        header = flowio.FlowData(str(path), ignore_offset_discrepancy=True, only_text=True, nextdata_offset=0).header
        if header["data_start"] or header["data_stop"]:
            raise
        # zeros in the HEADER defer to $BEGINDATA/$ENDDATA (FCS 3.1, past 99,999,999 bytes; some writers always)
        return flowio.FlowData(str(path), ignore_offset_discrepancy=True, nextdata_offset=0)


def _fcs_bit_mask(values: np.ndarray, ranges: Sequence[float], bits: Sequence[int]) -> np.ndarray:
    # integer channels keep the bits their $PnR needs: instruments may store e.g. 10-bit values in 16-bit words
    # with other data in the high bits
    masks = []
    for r, b in zip(ranges, bits, strict=True):
        width = (max(int(np.ceil(r)), 1) - 1).bit_length()  # values lie in [0, PnR): ceil(log2(PnR)) bits
        masks.append((1 << min(width, int(b))) - 1)
    return (np.asarray(values).astype(np.uint64) & np.asarray(masks, dtype=np.uint64)).astype(np.float64)


def _fcs_linear(values: np.ndarray, amplification: Sequence[Sequence[float]], ranges: Sequence[float]) -> np.ndarray:
    """Decode ``$PnE f1,f2`` log-amplified channels to linear values, ``f2 * 10**(f1 * x / PnR)`` where ``f1 > 0``
    (``f2 = 0`` read as 1, as FCS 3.1 asks); linear channels (``f1 = 0``) are returned as they are."""
    out = np.array(values, dtype=np.float64)
    for k, ((decades, offset), r) in enumerate(zip(amplification, ranges, strict=True)):
        if decades > 0:
            out[:, k] = (offset or 1.0) * 10.0 ** (decades * out[:, k] / r)
    return out


def _fcs_spillover(value: str) -> tuple[list[str], np.ndarray]:
    """Parse a ``$SPILLOVER`` / ``$SPILL`` / ``SPILL`` value ``n,name_1,...,name_n,s_11,s_12,...,s_nn`` into the
    channel names (``$PnN``) and the n x n spillover matrix (row i: the spill of channel i into each channel)."""
    tokens = [t.strip() for t in value.strip().split(",")]
    n = int(float(tokens[0]))
    names, entries = tokens[1 : n + 1], tokens[n + 1 :]
    if len(names) != n or len(entries) != n * n:
        raise ValueError(f"spillover matrix of {n} channels needs {n} names and {n * n} values, got {value!r}")
    return names, np.asarray(entries, dtype=np.float64).reshape(n, n)


def _fcs_compensate(values: np.ndarray, columns: Sequence[int], spillover: np.ndarray) -> np.ndarray:
    """Compensated values: ``values[:, columns] @ inv(spillover)``, the other columns unchanged."""
    out = np.array(values, dtype=np.float64)
    # x @ inv(S) solved as S.T y.T = x.T: no explicit inverse
    out[:, columns] = np.linalg.solve(np.asarray(spillover, dtype=np.float64).T, out[:, columns].T).T
    return out


def read_fcs(path: str | os.PathLike) -> ad.AnnData:
    """Read a list-mode FCS 2.0/3.0/3.1 file (its first data set) with flowio, decoded as the standard asks.

    Integer data are masked to the bits their ``$PnR`` range needs, log-amplified channels (``$PnE f1,f2``,
    ``f1 > 0``) are decoded to linear values ``f2 * 10**(f1 * x / PnR)`` (``f2 = 0`` read as 1), and a spillover
    matrix ``S`` (``$SPILLOVER``, ``$SPILL`` or ``SPILL``) compensates the channels it names (by ``$PnN``):
    ``x[:, named] @ inv(S)``. ``$PnG`` gains and ``$TIMESTEP`` are not applied.

    Returns events x parameters float32. ``var_names`` are the ``$PnS`` marker names when all are set and
    unique, else the ``$PnN`` channel names; both are kept in ``var['channel']`` / ``var['marker']``.
    ``uns['fcs_meta']`` holds the TEXT keywords other than the per-channel ones (``$COM``, ``$CYT``, ...: flowio
    drops every ``$`` on reading, the standard keywords get theirs back), and ``uns['fcs_compensation']`` the
    ``channels`` and ``spillover`` matrix applied, when the file has one.
    """
    flow = _flow_data(path)
    text, n_par = flow.text, flow.channel_count
    channels = [text.get(f"p{k}n", f"P{k}") for k in range(1, n_par + 1)]
    markers = [text.get(f"p{k}s", "").strip() for k in range(1, n_par + 1)]
    ranges = [float(text[f"p{k}r"]) for k in range(1, n_par + 1)]
    values = flow.as_array(preprocess=False)  # as stored: flowio's preprocessing would also divide by $PnG
    if flow.data_type.upper() == "I":
        values = _fcs_bit_mask(values, ranges, [int(text[f"p{k}b"]) for k in range(1, n_par + 1)])
    amplification = [[float(v) for v in text.get(f"p{k}e", "0,0").split(",")] for k in range(1, n_par + 1)]
    values = _fcs_linear(values, amplification, ranges)
    meta = {("$" if k in flowio.fcs_keywords.FCS_STANDARD_KEYWORDS else "") + k.upper(): v for k, v in text.items()
            if not re.fullmatch(r"p\d+[a-z]+", k)}  # fmt: skip
    spill = text.get("spillover") or text.get("spill")
    compensation = None
    if spill and spill.strip():
        names, matrix = _fcs_spillover(spill)
        lookup = {name: k for k, name in enumerate(markers) if name} | {name: k for k, name in enumerate(channels)}
        missing = [name for name in names if name not in lookup]
        if missing:
            raise ValueError(f"{path}: the spillover matrix names channels {missing} that the file does not have")
        values = _fcs_compensate(values, [lookup[name] for name in names], matrix)
        compensation = {"channels": np.asarray(names, dtype=object), "spillover": matrix}
    use_markers = all(markers) and len(set(markers)) == n_par
    var = pd.DataFrame({"channel": channels, "marker": markers}, index=pd.Index(markers if use_markers else channels))
    adata = ad.AnnData(X=values.astype(np.float32), var=var)
    adata.obs_names = [str(i) for i in range(adata.n_obs)]
    adata.uns["fcs_meta"] = meta
    if compensation is not None:
        adata.uns["fcs_compensation"] = compensation
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
