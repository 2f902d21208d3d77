"""Row sources and blockwise matrix helpers: the one copy every layer uses (internal API).

A *row source* is a validated cells x features matrix that may stay sparse (CSR) or on disk (backed AnnData,
h5py). Training on the device densifies a whole source once; streamed training, prediction, preprocessing
and analyses only ever read the rows they need, a block at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "BLOCK_ROWS",
    "is_backed",
    "as_row_source",
    "to_dense",
    "row_slice",
    "iter_row_blocks",
    "iter_dense_blocks",
    "take_rows",
    "densify",
    "dense_nbytes",
    "resident_nbytes",
    "column_mean_var",
]

# Rows read per block when scanning a source (validation, prediction, statistics).
BLOCK_ROWS = 16_384


def is_backed(x: Any) -> bool:
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


def as_row_source(
    x: Any, name: str, on_block: Callable[[np.ndarray], None] | None = None
) -> np.ndarray | sp.csr_matrix | Any:
    """Validate `x` (numpy, scipy sparse, pandas, AnnData incl. backed) without densifying sparse or backed data.

    Returns a float32 numpy array, a float32 CSR matrix, or the backed dataset itself. Raises ValueError
    naming `name` for non-numeric data, a shape that is not 2-D, NaN or inf. Backed data are read once, a
    block at a time; `on_block(dense_block)` sees each block of that read (so callers need no second pass).
    """
    if hasattr(x, "X") and hasattr(x, "obs_names"):  # AnnData, without importing anndata
        x = x.X
        if x is None:
            raise ValueError(f"{name}: the AnnData object has no .X")
    if is_backed(x):
        _check_dtype(np.dtype(x.dtype), name)
        if len(x.shape) != 2:
            raise ValueError(f"{name}: expected a 2-D matrix (cells x features), got shape {tuple(x.shape)}")
        for start, block in iter_dense_blocks(x):
            _check_finite(block, name, start)
            if on_block is not None:
                on_block(block)
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


def to_dense(block: Any, dtype: Any = np.float32) -> np.ndarray:
    """A dense numpy array of `dtype` from a numpy, scipy sparse or array-like block (no copy when possible)."""
    if sp.issparse(block):
        return block.toarray().astype(dtype, copy=False)
    return np.asarray(block, dtype=dtype)


def row_slice(X: Any, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
    """Rows ``start:stop`` of a dense, sparse or backed matrix, in memory: numpy or CSR (never densified)."""
    block = X[start:stop]
    if sp.issparse(block):
        return block if sp.isspmatrix_csr(block) else sp.csr_matrix(block)
    return np.asarray(block)


def iter_row_blocks(
    X: Any, block_rows: int = BLOCK_ROWS, *, whole_in_memory: bool = False
) -> Iterator[tuple[int, int, np.ndarray | sp.csr_matrix]]:
    """``(start, stop, block)`` over the rows of `X`; blocks are numpy or CSR, never densified.

    With ``whole_in_memory=True`` a numpy or scipy matrix comes as one block (sparse as CSR); backed matrices
    are always read `block_rows` rows at a time.
    """
    n = X.shape[0]
    if whole_in_memory and (isinstance(X, np.ndarray) or sp.issparse(X)):
        yield 0, n, (X if isinstance(X, np.ndarray) or sp.isspmatrix_csr(X) else sp.csr_matrix(X))
        return
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        yield start, stop, row_slice(X, start, stop)


def iter_dense_blocks(source: Any, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, dense float32 block) over the rows of a source."""
    for start, _, block in iter_row_blocks(source, block_rows):
        yield start, to_dense(block)


def take_rows(source: Any, idx: np.ndarray) -> np.ndarray:
    """Dense float32 rows `idx` (any order, repeats allowed) of a source."""
    idx = np.asarray(idx)
    if isinstance(source, np.ndarray) or sp.issparse(source):
        return to_dense(source[idx])
    # Backed datasets read sorted unique rows; the order and repeats are restored in memory.
    unique, inverse = np.unique(idx, return_inverse=True)
    return to_dense(source[unique])[inverse]


def densify(source: Any) -> np.ndarray:
    """The whole source as one dense float32 array (a numpy source is returned as it is)."""
    if isinstance(source, np.ndarray):
        return source
    out = np.empty(source.shape, np.float32)
    for start, block in iter_dense_blocks(source):
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


def column_mean_var(X: Any, ddof: int = 1, block_rows: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and variance (float64) of a dense, sparse or backed matrix without densifying it."""
    n, p = X.shape
    s1 = np.zeros(p, dtype=np.float64)
    s2 = np.zeros(p, dtype=np.float64)
    for _, _, block in iter_row_blocks(X, block_rows, whole_in_memory=True):
        if sp.issparse(block):
            data = block.data.astype(np.float64, copy=False)
            s1 += np.bincount(block.indices, weights=data, minlength=p)
            s2 += np.bincount(block.indices, weights=data * data, minlength=p)
        else:
            b = block.astype(np.float64, copy=False)
            s1 += b.sum(axis=0)
            s2 += (b * b).sum(axis=0)
    mean = s1 / n
    var = np.maximum(s2 / n - mean**2, 0.0)
    if ddof and n > ddof:
        var *= n / (n - ddof)
    return mean, var
