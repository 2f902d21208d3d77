"""Recipe: N >= 2 datasets chained by user-given feature name pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from ._lookup import index_of, labels_of
from ._matrix import (
    Matrix,
    apply_elementwise,
    check_counts,
    finish,
    layer_matrix,
    normalize_log1p,
    row_sums,
    take_columns,
)
from .containers import LinkBlock, Prepared

__all__ = ["prepare_generic"]


Normalization = Literal["none", "log1p", "counts", "arcsinh"] | Callable[[Any], Any]


def _normalize_generic(
    X: Matrix, cols: np.ndarray, how: Normalization, cofactor: float
) -> tuple[Any, dict[str, Any] | None]:
    """The normalised columns and a record of the step (None for a callable, which cannot be stored)."""
    B = take_columns(X, cols)
    p = int(len(cols))
    if callable(how):
        return how(B), None
    if how == "none":
        return B, {"start": 0, "stop": p, "transform": "none"}
    if how == "log1p":
        return apply_elementwise(B, np.log1p), {"start": 0, "stop": p, "transform": "log1p"}
    if how == "arcsinh":
        step = {"start": 0, "stop": p, "transform": "arcsinh", "cofactor": float(cofactor)}
        return apply_elementwise(B, lambda v: np.arcsinh(v / cofactor)), step
    if how == "counts":
        lib = row_sums(X)
        target = float(np.median(lib))
        step = {"start": 0, "stop": p, "transform": "normalize_total+log1p", "target_sum": target, "totals": "input"}
        return normalize_log1p(B, lib, target), step
    raise ValueError(f"unknown normalisation {how!r}: use 'none', 'log1p', 'counts', 'arcsinh' or a callable")


def prepare_generic(
    adatas: Sequence[Any],
    links_by_name: Sequence[Sequence[tuple[str, str]]],
    normalize: Normalization | Sequence[Normalization] = "none",
    scale: bool = False,
    max_value: float | None = 10.0,
    features: Sequence[Sequence[str] | None] | None = None,
    layer: str | None = None,
    cofactor: float = 5.0,
    label_key: str | None = None,
    modalities: Sequence[str] | None = None,
) -> Prepared:
    """N >= 2 datasets chained by user-given links: ``links_by_name[i]`` pairs features of ``adatas[i]``
    with features of ``adatas[i + 1]``.

    Column order of dataset ``i``: the features linked to ``i - 1`` (pair order), then those linked to
    ``i + 1`` (pair order), each feature once (a feature linked on both sides or to several partners is
    one column that every link uses), then the other features (all, or those listed in ``features[i]``).

    Args:
        normalize: per dataset (or one for all): ``"none"`` (default), ``"log1p"``, ``"counts"``
            (``normalize_total`` to the median library size + ``log1p``; raw counts are checked),
            ``"arcsinh"`` (``arcsinh(x / cofactor)``) or a callable applied to the selected columns.
        scale: z-score every feature and clip at ``max_value``.
        features: per dataset, the unlinked features to keep (``None``: all).

    Raises:
        ValueError: fewer than two datasets, wrong number of link lists, an empty link list, or names
            absent from a dataset (listed).
    """
    n = len(adatas)
    if n < 2:
        raise ValueError("prepare_generic needs at least two datasets")
    if len(links_by_name) != n - 1:
        raise ValueError(f"{n} datasets need {n - 1} link lists (one per consecutive pair), got {len(links_by_name)}")
    modalities = list(modalities) if modalities is not None else [f"dataset{i}" for i in range(n)]
    norms = list(normalize) if isinstance(normalize, (list, tuple)) else [normalize] * n
    feats = list(features) if features is not None else [None] * n
    names = [[str(v) for v in ad_.var_names] for ad_ in adatas]
    idx = [index_of(nm)[0] for nm in names]
    labels = labels_of([ad_.obs for ad_ in adatas], label_key, modalities)

    link_cols: list[tuple[np.ndarray, np.ndarray]] = []
    for i, pl in enumerate(links_by_name):
        if len(pl) == 0:
            raise ValueError(f"no link between dataset {i} ({modalities[i]}) and {i + 1} ({modalities[i + 1]})")
        miss_l = [x for x, _ in pl if x not in idx[i]]
        miss_r = [y for _, y in pl if y not in idx[i + 1]]
        if miss_l or miss_r:
            raise ValueError(
                f"link names between dataset {i} and {i + 1} not found: in {modalities[i]}: {miss_l[:10]}, "
                f"in {modalities[i + 1]}: {miss_r[:10]}"
            )
        link_cols.append(
            (np.asarray([idx[i][x] for x, _ in pl], np.int64), np.asarray([idx[i + 1][y] for _, y in pl], np.int64))
        )

    datasets, fnames, linked_masks, scalings, positions, steps = [], [], [], [], [], []
    for i, adata in enumerate(adatas):
        X = layer_matrix(adata, layer)
        if norms[i] == "counts":
            check_counts(X, f"{modalities[i]} matrix", " Use normalize='none' for processed values.")
        prev = link_cols[i - 1][1] if i > 0 else np.zeros(0, np.int64)
        nxt = link_cols[i][0] if i < n - 1 else np.zeros(0, np.int64)
        used = np.union1d(prev, nxt)
        if feats[i] is None:
            rest = np.setdiff1d(np.arange(len(names[i])), used)
        else:
            miss = [f for f in feats[i] if f not in idx[i]]
            if miss:
                raise ValueError(f"features not found in {modalities[i]}: {miss[:10]}")
            rest = np.asarray([idx[i][f] for f in feats[i] if idx[i][f] not in set(used.tolist())], np.int64)
        # A feature linked on both sides (or to several partners) is one column, used by every link.
        linked_cols = np.asarray(list(dict.fromkeys(np.concatenate([prev, nxt]).tolist())), np.int64)
        position = {int(c): k for k, c in enumerate(linked_cols)}
        cols = np.concatenate([linked_cols, rest])
        B, step = _normalize_generic(X, cols, norms[i], cofactor)
        steps.append(None if step is None else [step])
        Z, scl = finish([B], scale, max_value)
        datasets.append(Z)
        scalings.append(scl)
        fnames.append([names[i][c] for c in cols])
        mask = np.zeros(cols.size, dtype=bool)
        mask[: linked_cols.size] = True
        linked_masks.append(mask)
        positions.append(
            (
                np.asarray([position[int(c)] for c in prev], np.int64),
                np.asarray([position[int(c)] for c in nxt], np.int64),
            )
        )

    links = []
    for i, pl in enumerate(links_by_name):
        links.append(
            LinkBlock(
                pair=(i, i + 1),
                names=[(str(x), str(y)) for x, y in pl],
                left_cols=positions[i][1],
                right_cols=positions[i + 1][0],
            )
        )
    return Prepared(
        datasets=datasets,
        modalities=modalities,
        feature_names=fnames,
        links=links,
        linked=linked_masks,
        scaling=scalings,
        obs=[ad_.obs.copy() for ad_ in adatas],
        labels=labels,
        info={
            "recipe": "generic",
            "normalize": [n_ if isinstance(n_, str) else "callable" for n_ in norms],
            # Per dataset, what was applied (read back when new cells are mapped); absent for callables.
            **({"normalization": steps} if all(st is not None for st in steps) else {}),
        },
    )
