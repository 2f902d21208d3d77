"""Matrix helpers of the recipes (internal API of :mod:`scmodal_jax.data.recipes`): sparse / backed aware
column selection, library sizes, normalisation, raw-count checks, z-scoring (:func:`standardize`) and the joint
PCA of linked blocks.

Matrices may be numpy arrays, scipy sparse matrices or backed AnnData matrices: library sizes and
normalisation run on sparse row blocks, and only the selected features are densified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from ..._rows import column_mean_var, iter_row_blocks
from .containers import Scaling

__all__ = [
    "Matrix",
    "Transform",
    "layer_matrix",
    "sample_values",
    "check_counts",
    "take_columns",
    "row_sums",
    "apply_elementwise",
    "normalize_log1p",
    "standardize",
    "nonconstant",
    "resolve_kind",
    "finish",
    "fit_joint_pca",
]


Matrix = Any  # np.ndarray | scipy sparse | backed AnnData matrix
Transform = Literal["auto", "counts", "arcsinh", "none"]


def layer_matrix(adata: Any, layer: str | None) -> Matrix:
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise KeyError(f"layer '{layer}' not found; available layers: {list(adata.layers.keys())}")
    return adata.layers[layer]


def sample_values(X: Matrix, max_rows: int = 20_000) -> np.ndarray:
    """Stored values of (the first rows of) ``X``, for cheap sanity checks."""
    if sp.issparse(X):
        X = sp.csr_matrix(X) if not sp.isspmatrix_csr(X) else X
        return np.asarray(X.data)
    if isinstance(X, np.ndarray):
        return X.ravel()
    block = X[: min(max_rows, X.shape[0])]
    return np.asarray(block.data if sp.issparse(block) else block).ravel()


def check_counts(X: Matrix, what: str = "X", hint: str = "") -> None:
    """Raise ``ValueError`` unless ``X`` looks like raw counts (finite, non-negative integers).

    In-memory matrices are checked whole (the stored values of a sparse matrix); backed matrices on their
    first 20,000 rows.
    """
    v = sample_values(X)
    if v.size == 0:
        return
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} contains NaN or infinite values; raw counts are expected.{hint}")
    if v.min() < 0:
        raise ValueError(
            f"{what} has negative values (min {v.min():.3g}): it looks scaled or log-transformed, but this "
            f"recipe expects raw counts.{hint}"
        )
    frac = np.abs(v - np.round(v))
    if frac.max() > 1e-3:
        example = v[np.argmax(frac)]
        raise ValueError(
            f"{what} has non-integer values (e.g. {example:.4g}): it looks normalised or transformed, but "
            f"this recipe expects raw counts.{hint}"
        )


def _detect_kind(X: Matrix) -> Literal["counts", "intensity", "transformed"]:
    """Guess what an antibody matrix holds: integer counts, raw intensities (CyTOF/CODEX), or values
    that were already transformed (arcsinh/log/scaled)."""
    v = sample_values(X)
    if v.size == 0:
        return "counts"
    if v.min() >= 0 and np.all(np.abs(v - np.round(v)) <= 1e-3):
        return "counts"
    if np.quantile(v, 0.999) > 50:
        return "intensity"
    return "transformed"


def take_columns(X: Matrix, cols: np.ndarray, chunk_size: int = 10_000) -> sp.csr_matrix | np.ndarray:
    """Columns ``cols`` (duplicates allowed) of ``X``; sparse stays sparse (CSR), float64."""
    cols = np.asarray(cols, dtype=np.int64)
    if isinstance(X, np.ndarray):
        return X[:, cols].astype(np.float64)
    if sp.issparse(X):
        return sp.csr_matrix(sp.csr_matrix(X)[:, cols], dtype=np.float64)
    blocks = [blk[:, cols] for _, _, blk in iter_row_blocks(X, chunk_size, whole_in_memory=True)]
    if all(sp.issparse(b) for b in blocks):
        return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float64)
    return np.vstack([b.toarray() if sp.issparse(b) else b for b in blocks]).astype(np.float64)


def row_sums(X: Matrix, chunk_size: int = 10_000) -> np.ndarray:
    out = np.zeros(X.shape[0], dtype=np.float64)
    for a, b, blk in iter_row_blocks(X, chunk_size, whole_in_memory=True):
        out[a:b] = np.asarray(blk.sum(axis=1), dtype=np.float64).ravel()
    return out


def _scale_rows(B: sp.csr_matrix | np.ndarray, factor: np.ndarray) -> sp.csr_matrix | np.ndarray:
    if sp.issparse(B):
        B = sp.csr_matrix(B, dtype=np.float64, copy=True)
        B.data *= np.repeat(factor, np.diff(B.indptr))
        return B
    return np.asarray(B, dtype=np.float64) * factor[:, None]


def apply_elementwise(B: sp.csr_matrix | np.ndarray, fn: Callable[[np.ndarray], np.ndarray]):
    """Apply a zero-preserving elementwise function (log1p, arcsinh) without densifying."""
    if sp.issparse(B):
        B = sp.csr_matrix(B, dtype=np.float64, copy=True)
        B.data = fn(B.data)
        return B
    return fn(np.asarray(B, dtype=np.float64))


def normalize_log1p(B: sp.csr_matrix | np.ndarray, totals: np.ndarray, target_sum: float) -> sp.csr_matrix | np.ndarray:
    """normalize_total (each cell to ``target_sum`` given its ``totals``) then log1p; empty cells stay 0."""
    factor = np.divide(target_sum, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    return apply_elementwise(_scale_rows(B, factor), np.log1p)


def _dense(B: sp.csr_matrix | np.ndarray) -> np.ndarray:
    return B.toarray() if sp.issparse(B) else np.asarray(B)


def _hstack(blocks: Sequence[sp.csr_matrix | np.ndarray], n: int) -> sp.csr_matrix | np.ndarray:
    blocks = [b for b in blocks if b.shape[1] > 0]
    if not blocks:
        return np.zeros((n, 0))
    if all(sp.issparse(b) for b in blocks):
        return sp.hstack(blocks, format="csr")
    return np.hstack([_dense(b) for b in blocks])


def standardize(
    X: sp.spmatrix | np.ndarray, max_value: float | None = 10.0, ddof: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score every column of ``X`` and clip at ``+-max_value`` (as ``scanpy.pp.scale``).

    Mean and standard deviation (``ddof=1``) are computed on the sparse matrix; the result is dense.
    Constant columns get ``std = 1`` and become 0 (no NaN).

    Returns:
        ``(Z float32, mean float64, std float64)``; with ``max_value=None`` ``Z`` is not clipped.
    """
    mean, var = column_mean_var(X, ddof=ddof)
    std = np.sqrt(var)
    std[std == 0] = 1.0
    Z = (_dense(X).astype(np.float64) - mean) / std
    if max_value is not None:
        np.clip(Z, -max_value, max_value, out=Z)
    return Z.astype(np.float32), mean, std


def nonconstant(B: sp.csr_matrix | np.ndarray) -> np.ndarray:
    _, var = column_mean_var(B, ddof=0)
    return var > 1e-12


def resolve_kind(X: Matrix, transform: Transform, what: str) -> str:
    if transform == "auto":
        kind = _detect_kind(X)
        return {"counts": "counts", "intensity": "arcsinh", "transformed": "none"}[kind]
    if transform == "counts":
        check_counts(X, what, " Use transform='arcsinh' for intensities or 'none' for processed values.")
    if transform not in ("counts", "arcsinh", "none"):
        raise ValueError(f"transform must be 'auto', 'counts', 'arcsinh' or 'none', got {transform!r}")
    return transform


def finish(
    blocks: list[sp.csr_matrix | np.ndarray], scale: bool, max_value: float | None
) -> tuple[np.ndarray, Scaling]:
    n = blocks[0].shape[0]
    B = _hstack(blocks, n)
    if scale:
        Z, mean, std = standardize(B, max_value=max_value)
        return Z, Scaling(mean, std, max_value)
    return _dense(B).astype(np.float32), Scaling(None, None, None)


def fit_joint_pca(L: np.ndarray, R: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the row-concatenation ``[L; R]`` -> projections of ``L`` and ``R`` and the loadings."""
    M = np.vstack([L, R]).astype(np.float64)
    mu = M.mean(axis=0)
    _, _, vt = np.linalg.svd(M - mu, full_matrices=False)
    V = vt[:n_components].T
    return ((L - mu) @ V).astype(np.float32), ((R - mu) @ V).astype(np.float32), V
