"""Feature relationships across modalities (the paper's gene-protein and gene-peak links).

For the cells of one modality, the model imputes the features of another; Pearson correlations across cells
between the imputed features (``feature_a``) and the measured ones (``feature_b``) rank candidate links.

* :func:`feature_correlations`: the statistics on given matrices (``a`` may be a stream of row blocks), all
  pairs, an explicit pair list, or the pairs within a genomic ``window`` when coordinates are given.
* :func:`infer_relationships`: the same on a model: measured features of ``measured`` cells vs their imputed
  ``imputed`` features.
* anchors and window filtering live in :mod:`.genomic` (:func:`genomic_coordinates`, :func:`window_pairs`).

Statistics: ``r`` is Pearson's correlation over the ``n_cells`` cells, accumulated in float64 over row blocks
from shifted sums (so the imputed matrix is never held whole). P-values come from permutations of the cells:
permutation ``k`` (``rng = np.random.default_rng(seed)``, ``perm_k = rng.permutation(n_cells)`` for
``k = 1..n_permutations``) pairs ``a`` with ``b[perm_k]``, giving null correlations ``r_k``; then

* ``pvalue="permutation"`` (per pair, two-sided): ``(1 + #{k: |r_k| >= |r|}) / (1 + n_permutations)``;
* ``pvalue="empirical"``: the null of every tested pair and permutation pooled,
  ``(1 + #{null: |r_null| >= |r|}) / (1 + size of the pool)`` (finer resolution from few permutations);
* ``pvalue=None`` (or ``n_permutations=0``): no p-values (NaN).

A feature constant over the cells has ``r`` (and p) NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._rows import iter_row_blocks, to_dense
from ._common import check_block_size
from .genomic import DEFAULT_WINDOW, window_pairs
from .mapping import DEFAULT_BLOCK_SIZE, preprocess
from .normalization import resolve_modality

__all__ = ["feature_correlations", "infer_relationships"]

PVALUES = ("permutation", "empirical", None)
_MAX_NULL_VALUES = 2**28  # float64 null correlations kept in memory (2 GiB)


def _blocks_of(a: Any, n: int, block_size: int) -> Iterable[tuple[int, int, Any]]:
    if hasattr(a, "shape") and len(a.shape) == 2:
        if a.shape[0] != n:
            raise ValueError(f"a has {a.shape[0]} cells but b has {n}")
        return iter_row_blocks(a, block_size)
    return a


def feature_correlations(
    a: Any,
    b: Any,
    names_a: Sequence[str] | None = None,
    names_b: Sequence[str] | None = None,
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    coords_a: Any = None,
    coords_b: Any = None,
    window: float | None = None,
    n_permutations: int = 100,
    pvalue: str | None = "permutation",
    seed: int = 0,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> pd.DataFrame:
    """Pearson correlations across cells between the columns of ``a`` and of ``b`` (see the module docstring).

    Args:
        a: (n_cells, p_a) matrix, or an iterable of ``(start, stop, block)`` row blocks covering the cells in
            order (e.g. :func:`~scmodal_jax.analysis.imputation.iter_impute`).
        b: (n_cells, p_b) matrix (dense or sparse) held in memory (it is permuted).
        names_a, names_b: column names (default ``a0, a1, ...`` / ``b0, b1, ...``).
        pairs: test only these ``(name_a, name_b)`` pairs.
        coords_a, coords_b: :func:`genomic_coordinates` inputs; with both, only pairs within ``window`` bp
            (default 10 kb) are tested and a ``distance`` column is added.
        n_permutations, pvalue, seed: the permutation null (see the module docstring).

    Returns:
        A DataFrame with one row per tested pair: ``feature_a``, ``feature_b``, ``r``, ``n_cells``, ``p_value``
        (and ``distance``), sorted by decreasing ``|r|``.
    """
    n, p_b = int(b.shape[0]), int(b.shape[1])
    block_size = check_block_size(block_size)
    if pvalue not in PVALUES:
        raise ValueError(f"pvalue must be one of {PVALUES}, got {pvalue!r}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 0:
        raise ValueError(f"n_permutations must be a non-negative integer, got {n_permutations!r}")
    n_perm = 0 if pvalue is None else int(n_permutations)
    if pvalue is not None and n_perm == 0:
        pvalue = None
    names_b = [f"b{j}" for j in range(p_b)] if names_b is None else [str(x) for x in names_b]
    if len(names_b) != p_b:
        raise ValueError(f"{len(names_b)} names_b for {p_b} columns of b")
    if n < 3:
        raise ValueError(f"correlations need at least 3 cells, got {n}")

    blocks = iter(_blocks_of(a, n, block_size))
    first = next(blocks, None)
    if first is None:
        raise ValueError("a yielded no rows")
    p_a = int(first[2].shape[1])
    names_a = [f"a{j}" for j in range(p_a)] if names_a is None else [str(x) for x in names_a]
    if len(names_a) != p_a:
        raise ValueError(f"{len(names_a)} names_a for {p_a} columns of a")

    # ---- which pairs
    distance = None
    if coords_a is not None or coords_b is not None:
        if coords_a is None or coords_b is None:
            raise ValueError("a genomic window needs both coords_a and coords_b")
        ia, ib, distance = window_pairs(
            names_a, names_b, coords_a, coords_b, DEFAULT_WINDOW if window is None else window
        )
        if pairs is not None:
            wanted = {(str(x), str(y)) for x, y in pairs}
            keep = np.asarray([(names_a[i], names_b[j]) in wanted for i, j in zip(ia, ib, strict=True)], bool)
            ia, ib, distance = ia[keep], ib[keep], distance[keep]
        all_pairs = False
    elif pairs is not None:
        ia, ib = _pair_indices(pairs, names_a, names_b)
        all_pairs = False
    else:
        ia = ib = None
        all_pairs = True
    n_pairs = p_a * p_b if all_pairs else len(ia)
    if n_pairs * (1 + n_perm) > _MAX_NULL_VALUES:
        raise ValueError(
            f"{n_pairs} pairs x {1 + n_perm} (observed + permutations) correlations would not fit in memory; "
            "restrict the features, use coordinates/pairs, or fewer permutations with pvalue='empirical'"
        )

    # ---- accumulate shifted sums over row blocks
    b_cols = np.arange(p_b) if all_pairs else np.unique(ib)
    b_pos = None if all_pairs else np.searchsorted(b_cols, ib)
    a_cols = np.arange(p_a) if all_pairs else np.unique(ia)
    a_pos = None if all_pairs else np.searchsorted(a_cols, ia)
    b_sel = b[:, b_cols] if not all_pairs else b
    shift_b = np.asarray(b_sel.mean(axis=0), np.float64).ravel()
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n).astype(np.int32 if n < 2**31 else np.int64) for _ in range(n_perm)]
    sa = np.zeros(a_cols.size)
    saa = np.zeros(a_cols.size)
    sb = np.zeros(b_cols.size)
    sbb = np.zeros(b_cols.size)
    cross = np.zeros((1 + n_perm, a_cols.size, b_cols.size)) if all_pairs else np.zeros((1 + n_perm, n_pairs))
    shift_a = None
    seen = 0
    pair_chunk = max(1, 2**22 // max(block_size, 1))
    for start, stop, blk in _chain(first, blocks):
        if start != seen:
            raise ValueError(f"blocks of a must cover the cells in order: got rows {start}:{stop} after {seen}")
        A = to_dense(blk, np.float64)
        if A.shape != (stop - start, p_a):
            raise ValueError(f"block {start}:{stop} of a has shape {A.shape}, expected {(stop - start, p_a)}")
        A = A[:, a_cols] if not all_pairs else A
        if shift_a is None:
            shift_a = A.mean(axis=0)
        A = A - shift_a
        B = to_dense(b_sel[start:stop], np.float64) - shift_b
        sa += A.sum(axis=0)
        saa += (A * A).sum(axis=0)
        sb += B.sum(axis=0)
        sbb += (B * B).sum(axis=0)
        b_views = [B] + [to_dense(b_sel[perm[start:stop]], np.float64) - shift_b for perm in perms]
        if all_pairs:
            stacked = np.hstack(b_views)
            cross += (A.T @ stacked).reshape(a_cols.size, 1 + n_perm, b_cols.size).transpose(1, 0, 2)
        else:
            for c0 in range(0, n_pairs, pair_chunk):
                pa_, pb_ = a_pos[c0 : c0 + pair_chunk], b_pos[c0 : c0 + pair_chunk]
                Ap = A[:, pa_]
                for k, Bv in enumerate(b_views):
                    cross[k, c0 : c0 + pair_chunk] += np.einsum("ij,ij->j", Ap, Bv[:, pb_])
        seen = stop
    if seen != n:
        raise ValueError(f"a covered {seen} cells but b has {n}")

    # ---- correlations
    var_a = saa - sa * sa / n
    var_b = sbb - sb * sb / n
    if all_pairs:
        cov = cross - (sa[:, None] * sb[None, :] / n)[None]
        denom = np.sqrt(np.clip(var_a, 0, None)[:, None] * np.clip(var_b, 0, None)[None, :])[None]
        ia_out = np.repeat(np.arange(p_a), p_b)
        ib_out = np.tile(np.arange(p_b), p_a)
    else:
        cov = cross - (sa[a_pos] * sb[b_pos] / n)[None]
        denom = np.sqrt(np.clip(var_a[a_pos], 0, None) * np.clip(var_b[b_pos], 0, None))[None]
        ia_out, ib_out = ia, ib
    # a (numerically) constant feature has no correlation
    tiny_a = var_a <= 1e-12 * np.maximum(saa, 1e-300)
    tiny_b = var_b <= 1e-12 * np.maximum(sbb, 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_all = np.clip(cov / denom, -1.0, 1.0).reshape(1 + n_perm, -1)
    const = (tiny_a[:, None] | tiny_b[None, :]).ravel() if all_pairs else tiny_a[a_pos] | tiny_b[b_pos]
    r_all[:, const] = np.nan
    r = r_all[0]

    p = np.full(r.shape, np.nan)
    if pvalue == "permutation":
        null = np.abs(r_all[1:])
        p = (1.0 + np.sum(null >= np.abs(r)[None] - 1e-12, axis=0)) / (1.0 + n_perm)
        p[np.isnan(r)] = np.nan
    elif pvalue == "empirical":
        pool = np.abs(r_all[1:]).ravel()
        pool = np.sort(pool[np.isfinite(pool)])
        ok = np.isfinite(r)
        n_ge = pool.size - np.searchsorted(pool, np.abs(r[ok]) - 1e-12, side="left")
        p[ok] = (1.0 + n_ge) / (1.0 + pool.size)

    out = pd.DataFrame(
        {
            "feature_a": np.asarray(names_a, dtype=object)[ia_out],
            "feature_b": np.asarray(names_b, dtype=object)[ib_out],
            "r": r,
            "n_cells": n,
            "p_value": p,
        }
    )
    if distance is not None:
        out["distance"] = distance
    order = np.argsort(-np.nan_to_num(np.abs(r), nan=-1.0), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def _chain(first, rest):
    yield first
    yield from rest


def _pair_indices(pairs, names_a, names_b) -> tuple[np.ndarray, np.ndarray]:
    ix_a = {n: i for i, n in reversed(list(enumerate(names_a)))}
    ix_b = {n: i for i, n in reversed(list(enumerate(names_b)))}
    miss = [(x, y) for x, y in pairs if str(x) not in ix_a or str(y) not in ix_b]
    if miss:
        raise ValueError(f"{len(miss)} pairs name unknown features, e.g. {miss[:5]}")
    ia = np.asarray([ix_a[str(x)] for x, _ in pairs], np.int64)
    ib = np.asarray([ix_b[str(y)] for _, y in pairs], np.int64)
    return ia, ib


def _subset(names: list[str], wanted: Sequence[str] | None, what: str) -> np.ndarray:
    if wanted is None:
        return np.arange(len(names))
    wanted = [str(w) for w in wanted]
    ix = {n: i for i, n in enumerate(names)}
    miss = [w for w in wanted if w not in ix]
    if miss:
        raise ValueError(f"{what} not found: {miss[:20]}" + (f" ({len(miss)} in all)" if len(miss) > 20 else ""))
    return np.asarray([ix[w] for w in dict.fromkeys(wanted)], np.int64)


def infer_relationships(
    model: Any,
    X: Any,
    measured: int | str,
    imputed: int | str,
    *,
    input: str = "scaled",
    features_a: Sequence[str] | None = None,
    features_b: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    coords_a: Any = None,
    coords_b: Any = None,
    window: float | None = None,
    n_permutations: int = 100,
    pvalue: str | None = "permutation",
    seed: int = 0,
    top: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    **options: Any,
) -> pd.DataFrame:
    """Links between the ``imputed`` modality's features (``feature_a``, imputed for the cells) and the
    ``measured`` modality's features (``feature_b``, measured in the same cells).

    ``X`` holds cells of ``measured`` (``input`` and ``options`` as in
    :func:`~scmodal_jax.analysis.mapping.preprocess`; default: the model's input matrix). Both sides are used
    on the model's scaled space, names repeated by links averaged (Pearson's r is unchanged by the per-feature
    affine z-score). ``features_a``/``features_b`` restrict the features; ``top`` keeps, per ``feature_b``, the
    ``top`` pairs with the largest ``|r|``. Other arguments as in :func:`feature_correlations`.
    """
    from .imputation import DuplicateAverager, iter_impute
    from .normalization import model_feature_names

    m = resolve_modality(model, measured, "measured")
    t = resolve_modality(model, imputed, "imputed")
    Z = preprocess(model, X, m, input=input, block_size=block_size, **options)
    avg_b = DuplicateAverager(model_feature_names(model, m))
    avg_a = DuplicateAverager(model_feature_names(model, t))
    cols_b = _subset(avg_b.names, features_b, f"features_b of {model.modalities[m]}")
    cols_a = _subset(avg_a.names, features_a, f"features_a of {model.modalities[t]}")
    B = avg_b(Z)[:, cols_b]
    names_b = [avg_b.names[j] for j in cols_b]
    names_a = [avg_a.names[j] for j in cols_a]
    stream = (
        (s, e, y[:, cols_a])
        for s, e, y in iter_impute(model, Z, m, t, scale="scaled", input="scaled", block_size=block_size)
    )
    df = feature_correlations(
        stream, B, names_a, names_b, pairs=pairs, coords_a=coords_a, coords_b=coords_b, window=window,
        n_permutations=n_permutations, pvalue=pvalue, seed=seed, block_size=block_size,
    )  # fmt: skip
    if top is not None:
        df = df.groupby("feature_b", sort=False, group_keys=False).head(int(top)).reset_index(drop=True)
    return df
