"""Recipe: two antibody panels (e.g. CITE-seq ADT vs CyTOF), linked by their shared markers."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..links import ProteinGeneTable, shared_markers
from ._lookup import index_of, labels_of
from ._matrix import (
    Matrix,
    Transform,
    apply_elementwise,
    finish,
    layer_matrix,
    nonconstant,
    normalize_log1p,
    resolve_kind,
    row_sums,
    take_columns,
)
from .containers import LinkBlock, Prepared

__all__ = ["prepare_protein_protein"]


def _transform_panel(
    X: Matrix, kind: str, target_sum: float | None, cofactor: float
) -> tuple[sp.csr_matrix | np.ndarray, dict[str, Any]]:
    """Normalise a whole antibody panel (all columns) according to ``kind``."""
    B = take_columns(X, np.arange(X.shape[1]))
    if kind == "counts":
        totals = row_sums(B)
        tgt = float(np.median(totals)) if target_sum is None else float(target_sum)
        return normalize_log1p(B, totals, tgt), {"transform": "normalize_total+log1p", "target_sum": tgt}
    if kind == "arcsinh":
        return apply_elementwise(B, lambda v: np.arcsinh(v / cofactor)), {
            "transform": "arcsinh",
            "cofactor": cofactor,
        }
    return B, {"transform": "none"}


def prepare_protein_protein(
    a: Any,
    b: Any,
    pairs: Sequence[tuple[str, str]] | None = None,
    table: ProteinGeneTable | pd.DataFrame | str | PathLike[str] | None = None,
    transform: tuple[Transform, Transform] = ("auto", "auto"),
    cofactor: float = 5.0,
    target_sum: tuple[float | None, float | None] = (None, None),
    layer: tuple[str | None, str | None] = (None, None),
    drop_constant_links: bool = True,
    max_value: float | None = 10.0,
    label_key: str | None = None,
    modalities: tuple[str, str] = ("protein_a", "protein_b"),
) -> Prepared:
    """Two antibody panels (e.g. CITE-seq ADT counts vs CyTOF intensities).

    Links are the markers of both panels (:func:`~scmodal_jax.data.links.shared_markers`: names matched
    after normalisation and table synonyms). Per panel, ``transform``:

    * ``"counts"`` (ADT): ``normalize_total`` + ``log1p`` with ``target_sum`` = the median per-cell total of
      the *other* panel when that one is raw (counts or intensities), else the panel's own median;
    * ``"arcsinh"`` (raw CyTOF/CODEX intensities): ``arcsinh(x / cofactor)``;
    * ``"none"``: values kept (already transformed);
    * ``"auto"``: integer -> counts, non-integer with values > 50 -> arcsinh, otherwise none.

    Each panel is then z-scored per marker and clipped at ``max_value``; linked markers come first.
    """
    import anndata as ad

    mats, names, obs = [], [], []
    for x, lay in zip((a, b), layer, strict=True):
        if isinstance(x, pd.DataFrame):
            mats.append(x.to_numpy(dtype=np.float64))
            names.append([str(c) for c in x.columns])
            obs.append(pd.DataFrame(index=x.index.astype(str)))
        elif isinstance(x, ad.AnnData):
            mats.append(layer_matrix(x, lay))
            names.append([str(v) for v in x.var_names])
            obs.append(x.obs.copy())
        else:
            raise TypeError("each panel must be an AnnData or a DataFrame (cells x markers)")
    labels = labels_of(obs, label_key, modalities)
    kinds = [resolve_kind(m, t, f"{mod} matrix") for m, t, mod in zip(mats, transform, modalities, strict=True)]
    raw_totals = [float(np.median(row_sums(m))) if k != "none" else None for m, k in zip(mats, kinds, strict=True)]

    if pairs is None:
        pairs = shared_markers(names[0], names[1], table=table)
    ia, ib = index_of(names[0])[0], index_of(names[1])[0]
    bad = [(x, y) for x, y in pairs if x not in ia or y not in ib]
    if bad:
        raise ValueError(f"link pairs not found in the panels: {bad[:10]}")
    cols_a = np.asarray([ia[x] for x, _ in pairs], np.int64)
    cols_b = np.asarray([ib[y] for _, y in pairs], np.int64)

    normed, infos = [], []
    for i, (m, k) in enumerate(zip(mats, kinds, strict=True)):
        tgt = target_sum[i]
        if tgt is None and k == "counts":
            other = raw_totals[1 - i]
            tgt = other if other is not None else raw_totals[i]
        B, inf = _transform_panel(m, k, tgt, cofactor)
        normed.append(B)
        infos.append(inf)

    link_pairs = [(names[0][x], names[1][y]) for x, y in zip(cols_a, cols_b, strict=True)]
    dropped: list[tuple[str, str]] = []
    if drop_constant_links:
        keep = nonconstant(normed[0][:, cols_a]) & nonconstant(normed[1][:, cols_b])
        dropped = [link_pairs[j] for j in np.flatnonzero(~keep)]
        if not keep.any():
            raise ValueError(f"every shared marker is constant in one panel: {link_pairs[:10]}")
        cols_a, cols_b = cols_a[keep], cols_b[keep]
        link_pairs = [link_pairs[j] for j in np.flatnonzero(keep)]
    k = len(link_pairs)
    rest_a = np.setdiff1d(np.arange(len(names[0])), cols_a)
    rest_b = np.setdiff1d(np.arange(len(names[1])), cols_b)
    order_a = np.concatenate([cols_a, rest_a])
    order_b = np.concatenate([cols_b, rest_b])
    Za, sa = finish([normed[0][:, order_a]], True, max_value)
    Zb, sb = finish([normed[1][:, order_b]], True, max_value)
    ar = np.arange(k)
    return Prepared(
        datasets=[Za, Zb],
        modalities=list(modalities),
        feature_names=[[names[0][i] for i in order_a], [names[1][i] for i in order_b]],
        links=[LinkBlock(pair=(0, 1), names=link_pairs, left_cols=ar, right_cols=ar.copy())],
        linked=[np.arange(Za.shape[1]) < k, np.arange(Zb.shape[1]) < k],
        scaling=[sa, sb],
        obs=obs,
        labels=labels,
        info={"recipe": "protein_protein", "transforms": infos, "dropped_links": dropped},
    )
