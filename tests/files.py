"""Writers of small single-cell files in real formats, for the tests (a helper module, not a test module).

Used by tests/test_readers.py, tests/test_paper.py and tests/standins.py: 10x HDF5 matrices, 10x Matrix Market
triples, list-mode FCS files, and Poisson counts to fill them.
"""

from __future__ import annotations

import gzip
import io

import h5py
import numpy as np
import scipy.io
import scipy.sparse as sp

__all__ = ["counts_matrix", "write_10x_h5", "write_mtx_triple", "write_fcs"]


def counts_matrix(n_cells, n_feat, seed=0):
    """Dense float32 Poisson(0.7) counts, cells x features."""
    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.7, size=(n_cells, n_feat)).astype(np.float32)
    return dense


def write_10x_h5(path, dense, names, barcodes, feature_types=None, legacy=False):
    """A 10x HDF5 matrix (Cell Ranger >= 3 ``matrix`` group, or the legacy per-genome layout) of ``dense``."""
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


def write_mtx_triple(folder, prefix, dense, features, barcodes, n_feature_cols=3):
    """A 10x Matrix Market triple ``<prefix>-matrix.mtx.gz``, ``-features.tsv.gz``, ``-barcodes.tsv.gz``;
    returns their paths by part."""
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


def write_fcs(
    path,
    values,
    names,
    markers=None,
    datatype="F",
    big_endian=False,
    offsets_in_text=False,
    ranges=None,
    amplification=None,
    keywords=None,
):
    """A list-mode FCS 3.0 file of ``values`` (events x parameters): float (``F``), double (``D``) or 16-bit
    integer (``I``) words, written as given (so integer words may carry junk above their ``$PnR`` bits).

    ``ranges`` / ``amplification``: ``$PnR`` / ``$PnE`` per channel (default ``1024`` / ``0,0``); ``keywords``:
    further TEXT pairs, e.g. ``{"$SPILLOVER": "2,FL1,FL2,1,0.1,0.05,1"}``. ``offsets_in_text`` puts the DATA
    offsets in ``$BEGINDATA`` / ``$ENDDATA`` only (zeros in the HEADER, as for files past 99,999,999 bytes);
    otherwise they are in the HEADER only.
    """
    n_tot, n_par = values.shape
    endian = ">" if big_endian else "<"
    bits = {"F": 32, "D": 64, "I": 16}[datatype]
    raw = values.astype(endian + {"F": "f4", "D": "f8", "I": "u2"}[datatype]).tobytes()
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
        pairs[f"$P{k}R"] = str(ranges[k - 1]) if ranges else "1024"
        pairs[f"$P{k}E"] = amplification[k - 1] if amplification else "0,0"
        if markers and markers[k - 1]:  # FCS 3 forbids empty values: unset markers are left out
            pairs[f"$P{k}S"] = markers[k - 1]
    pairs.update(keywords or {})
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
