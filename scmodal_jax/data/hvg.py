"""Highly variable genes, ``seurat_v3`` flavour, on raw counts without densifying.

Follows Stuart et al. 2019 (Seurat v3) as implemented by ``scanpy.pp.highly_variable_genes(flavor=
"seurat_v3")`` for a single batch:

1. per-gene mean and variance (``ddof=1``) of the raw counts;
2. a loess fit (span 0.3, degree 2) of ``log10(variance)`` on ``log10(mean)`` over non-constant genes,
   giving an expected standard deviation ``sigma_j`` per gene;
3. counts standardised as ``(x - mean_j) / sigma_j`` and clipped at ``sqrt(n_cells)`` (i.e. counts clipped
   at ``mean_j + sigma_j * sqrt(n_cells)``);
4. the variance of the clipped standardised values ranks the genes.

The loess is written here (local weighted quadratic regression with tricube weights, evaluated exactly at
every gene); ``scanpy`` uses ``skmisc.loess`` whose default kd-tree interpolation differs slightly, so the
selected sets agree closely but not always to the last gene.

Works on numpy arrays, any scipy sparse matrix and backed AnnData matrices (read in row blocks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._rows import column_mean_var, iter_row_blocks

__all__ = [
    "loess_fit",
    "highly_variable_genes_seurat_v3",
    "select_hvg",
    "user_highly_variable",
]


def loess_fit(
    x: np.ndarray, y: np.ndarray, span: float = 0.3, degree: int = 2, max_block: int = 2_000_000
) -> np.ndarray:
    """Loess fitted values at the data points (1-D predictor, Gaussian family, no robustness iterations).

    For each point ``x_i`` the ``q = floor(span * n)`` nearest points get tricube weights
    ``(1 - (|x_j - x_i| / h_i)^3)^3`` where ``h_i`` is the distance to the ``q``-th nearest point, and a
    weighted polynomial of ``degree`` (1 or 2) is fitted; its value at ``x_i`` is returned.

    Args:
        x, y: 1-D arrays of the same length.
        span: fraction of points in each local neighbourhood (``0 < span <= 1``).
        degree: local polynomial degree, 1 or 2.
        max_block: cap on the temporary ``points x neighbours`` array size (memory control).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("x and y must be 1-D arrays of the same length")
    if degree not in (1, 2):
        raise ValueError("degree must be 1 or 2")
    n = x.size
    if n == 0:
        return np.zeros(0)
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    q = int(np.floor(n * span))
    q = min(max(q, degree + 1), n)

    # Window [lo, lo + q) of the q nearest neighbours of each sorted point: the smallest lo with
    # xs[lo + q - 1] - x >= x - xs[lo], or the one before it.
    nwin = n - q + 1
    s = xs[q - 1 :] + xs[:nwin]
    lo = np.clip(np.searchsorted(s, 2.0 * xs, side="left"), 0, nwin - 1)
    lo_prev = np.maximum(lo - 1, 0)
    h_lo = np.maximum(xs[lo + q - 1] - xs, xs - xs[lo])
    h_prev = np.maximum(xs[lo_prev + q - 1] - xs, xs - xs[lo_prev])
    use_prev = h_prev < h_lo
    lo = np.where(use_prev, lo_prev, lo)
    h = np.where(use_prev, h_prev, h_lo)
    if span > 1:
        h = h * span
    h = np.where(h > 0, h, 1.0)

    fitted_sorted = np.empty(n)
    p = degree + 1
    step = max(1, max_block // q)
    offs = np.arange(q)
    for a in range(0, n, step):
        b = min(a + step, n)
        idx = lo[a:b, None] + offs[None, :]
        t = (xs[idx] - xs[a:b, None]) / h[a:b, None]
        u = np.minimum(np.abs(t), 1.0)
        w = (1.0 - u**3) ** 3
        pw = [w]
        for _ in range(2 * degree):
            pw.append(pw[-1] * t)
        moments = np.stack([m.sum(axis=1) for m in pw], axis=1)  # (c, 2*degree+1)
        yv = ys[idx]
        rhs = np.stack([(pw[k] * yv).sum(axis=1) for k in range(p)], axis=1)  # (c, p)
        A = np.empty((b - a, p, p))
        for r in range(p):
            for c in range(p):
                A[:, r, c] = moments[:, r + c]
        # pseudo-inverse: degenerate neighbourhoods (ties) fall back to lower-order fits
        beta = np.einsum("nij,nj->ni", np.linalg.pinv(A, rcond=1e-10), rhs)
        fitted_sorted[a:b] = beta[:, 0]
    fitted = np.empty(n)
    fitted[order] = fitted_sorted
    return fitted


def highly_variable_genes_seurat_v3(
    X: Any,
    n_top_genes: int = 3000,
    span: float = 0.3,
    gene_names: Sequence[str] | None = None,
    chunk_size: int = 10_000,
) -> pd.DataFrame:
    """Seurat v3 highly variable genes on raw counts.

    Args:
        X: cells x genes raw counts (numpy, scipy sparse, or backed AnnData ``X``); never densified.
        n_top_genes: number of genes flagged ``highly_variable`` (all genes when larger).
        span: loess span.
        gene_names: index of the returned frame.
        chunk_size: rows per block for backed matrices.

    Returns:
        DataFrame (one row per gene, input order) with ``means``, ``variances``, ``variances_norm``
        (variance of the clipped standardised counts), ``rank`` (0 = most variable) and
        ``highly_variable`` (bool).
    """
    n, p = X.shape
    mean, var = column_mean_var(X, ddof=1, block_rows=chunk_size)
    not_const = var > 0
    estimated = np.zeros(p)
    if not_const.sum() > 0:
        estimated[not_const] = loess_fit(np.log10(mean[not_const]), np.log10(var[not_const]), span=span)
    reg_std = np.sqrt(10.0**estimated)
    clip_val = reg_std * np.sqrt(n) + mean

    s1 = np.zeros(p)
    s2 = np.zeros(p)
    for _, _, block in iter_row_blocks(X, chunk_size, whole_in_memory=True):
        if sp.issparse(block):
            data = np.minimum(block.data.astype(np.float64), clip_val[block.indices])
            s1 += np.bincount(block.indices, weights=data, minlength=p)
            s2 += np.bincount(block.indices, weights=data * data, minlength=p)
        else:
            b = np.minimum(block.astype(np.float64), clip_val[None, :])
            s1 += b.sum(axis=0)
            s2 += (b * b).sum(axis=0)
    norm_var = (n * mean**2 + s2 - 2.0 * s1 * mean) / ((n - 1) * reg_std**2)
    norm_var[~not_const] = 0.0

    order = np.argsort(-norm_var, kind="stable")
    rank = np.empty(p, dtype=np.int64)
    rank[order] = np.arange(p)
    hv = rank < min(n_top_genes, p)
    index = pd.Index([str(g) for g in gene_names]) if gene_names is not None else pd.RangeIndex(p)
    return pd.DataFrame(
        {"means": mean, "variances": var, "variances_norm": norm_var, "rank": rank, "highly_variable": hv},
        index=index,
    )


def select_hvg(
    X: Any,
    n_top_genes: int = 3000,
    span: float = 0.3,
    exclude: np.ndarray | Sequence[int] | None = None,
    chunk_size: int = 10_000,
) -> np.ndarray:
    """Column indices (ascending) of the ``n_top_genes`` most variable genes (Seurat v3 on counts).

    The ranking is computed on all genes; genes in ``exclude`` (indices) are skipped and the next-ranked
    genes take their place.
    """
    df = highly_variable_genes_seurat_v3(X, n_top_genes=n_top_genes, span=span, chunk_size=chunk_size)
    order = np.argsort(df["rank"].to_numpy())
    if exclude is not None and len(exclude):
        mask = np.ones(X.shape[1], dtype=bool)
        mask[np.asarray(exclude, dtype=np.int64)] = False
        order = order[mask[order]]
    return np.sort(order[:n_top_genes])


def user_highly_variable(adata: Any, use: bool | None) -> np.ndarray | None:
    """The user's own HVG choice, as scanpy's `use_highly_variable` reads it: the genes flagged in
    `adata.var["highly_variable"]` (indices), or None to let the recipe select its own.

    `use=None` (default): the column when it exists; True: the column, which must exist; False: never."""
    column = getattr(adata, "var", None)
    has = column is not None and "highly_variable" in column.columns
    if use is False or (use is None and not has):
        return None
    if not has:
        raise KeyError("use_highly_variable=True but the RNA's var has no 'highly_variable' column")
    flags = column["highly_variable"].to_numpy()
    if flags.dtype != bool:
        raise ValueError(f"var['highly_variable'] must be boolean, got dtype {flags.dtype}")
    if not flags.any():
        raise ValueError("var['highly_variable'] flags no gene; pass use_highly_variable=False to select HVGs here")
    return np.flatnonzero(flags)
