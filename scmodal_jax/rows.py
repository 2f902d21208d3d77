"""Row sources: validated cells x features matrices that may stay sparse (CSR) or on disk (backed AnnData).

Training on the device densifies a whole source once; streamed training and prediction only ever densify the
rows they need (`take_rows`, `iter_blocks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

# Rows read per block when scanning a source (validation, prediction).
BLOCK_ROWS = 16_384


def _is_backed(x: Any) -> bool:
    """An h5py dataset or anndata's backed sparse dataset: indexable by rows, not held in memory."""
    return (
        hasattr(x, "shape")
        and not isinstance(x, np.ndarray)
        and not sp.issparse(x)
        and hasattr(x, "dtype")
        and (hasattr(x, "to_memory") or type(x).__module__.startswith("h5py"))
    )


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind == "O" or not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise ValueError(f"{name}: non-numeric data of dtype {dtype}")
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"{name}: complex data is not supported")


def _check_finite(values: np.ndarray, name: str, row_offset: int = 0, csr: sp.csr_matrix | None = None) -> None:
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    first = int(np.flatnonzero(bad.ravel())[0])
    kind = "NaN" if np.isnan(values.ravel()[first]) else "inf"
    if csr is not None:  # position of a stored value -> (row, column)
        row = int(np.searchsorted(csr.indptr, first, side="right") - 1)
        col = int(csr.indices[first])
    else:
        row, col = np.unravel_index(first, values.shape)
    raise ValueError(
        f"{name}: {int(bad.sum())} non-finite value(s) ({kind} first at row {int(row) + row_offset}, column {int(col)})"
    )


def as_row_source(x: Any, name: str) -> np.ndarray | sp.csr_matrix | Any:
    """Validate `x` (numpy, scipy sparse, pandas, AnnData incl. backed) without densifying sparse or backed data.

    Returns a float32 numpy array, a float32 CSR matrix, or the backed dataset itself. Raises ValueError
    naming `name` for non-numeric data, a shape that is not 2-D, NaN or inf.
    """
    if hasattr(x, "X") and hasattr(x, "obs_names"):  # AnnData, without importing anndata
        x = x.X
        if x is None:
            raise ValueError(f"{name}: the AnnData object has no .X")
    if _is_backed(x):
        _check_dtype(np.dtype(x.dtype), name)
        if len(x.shape) != 2:
            raise ValueError(f"{name}: expected a 2-D matrix (cells x features), got shape {tuple(x.shape)}")
        for start, block in iter_blocks(x):
            _check_finite(block, name, start)
        return x
    if sp.issparse(x):
        _check_dtype(x.dtype, name)
        csr = sp.csr_matrix(x, dtype=np.float32)
        csr.sum_duplicates()
        _check_finite(csr.data, name, csr=csr)
        return csr
    if hasattr(x, "to_numpy") and hasattr(x, "columns"):  # pandas DataFrame
        try:
            x = x.to_numpy(dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: non-numeric data in the DataFrame ({err})") from None
    x = np.asarray(x)
    _check_dtype(x.dtype, name)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D matrix (cells x features), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    _check_finite(x, name)
    return x


def _dense(block: Any) -> np.ndarray:
    if sp.issparse(block):
        return block.toarray().astype(np.float32, copy=False)
    return np.asarray(block, dtype=np.float32)


def take_rows(source: Any, idx: np.ndarray) -> np.ndarray:
    """Dense float32 rows `idx` (any order, repeats allowed) of a source."""
    idx = np.asarray(idx)
    if isinstance(source, np.ndarray) or sp.issparse(source):
        return _dense(source[idx])
    # Backed datasets read sorted unique rows; the order and repeats are restored in memory.
    unique, inverse = np.unique(idx, return_inverse=True)
    return _dense(source[unique])[inverse]


def iter_blocks(source: Any, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, dense float32 block) over the rows of a source."""
    for start in range(0, source.shape[0], block_rows):
        stop = min(start + block_rows, source.shape[0])
        yield start, _dense(source[start:stop])


def densify(source: Any) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    out = np.empty(source.shape, np.float32)
    for start, block in iter_blocks(source):
        out[start : start + len(block)] = block
    return out


def dense_nbytes(source: Any) -> int:
    return int(source.shape[0]) * int(source.shape[1]) * 4


def resident_nbytes(source: Any) -> int:
    """Bytes the source itself holds in memory (0 for backed data)."""
    if isinstance(source, np.ndarray):
        return source.nbytes
    if sp.issparse(source):
        return source.data.nbytes + source.indices.nbytes + source.indptr.nbytes
    return 0
