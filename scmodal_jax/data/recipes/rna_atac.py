"""Recipe: RNA vs ATAC gene activity, linked by shared highly variable genes (optionally a joint PCA)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..hvg import select_hvg, user_highly_variable
from ._lookup import index_of, labels_of
from ._matrix import (
    check_counts,
    finish,
    fit_joint_pca,
    layer_matrix,
    nonconstant,
    normalize_log1p,
    row_sums,
    sample_values,
    take_columns,
)
from .containers import LinkBlock, Prepared

log = logging.getLogger(__name__)

__all__ = ["prepare_rna_atac"]


def prepare_rna_atac(
    rna: Any,
    atac_gene_activity: Any,
    n_hvg: int = 3000,
    joint_pca: int | None = 30,
    n_hvg_atac: int = 0,
    layer: str | None = None,
    atac_layer: str | None = None,
    drop_constant_links: bool = True,
    max_value: float | None = 10.0,
    label_key: str | None = None,
    modalities: tuple[str, str] = ("rna", "atac"),
    use_highly_variable: bool | None = None,
) -> Prepared:
    """RNA vs ATAC gene activity, linked by shared highly variable genes.

    * RNA: the ``n_hvg`` Seurat-v3 HVGs (on counts), ``normalize_total`` to the median library size +
      ``log1p``; genes that also have a gene activity score come first (the links).
    * ATAC: gene activity (e.g. :func:`~scmodal_jax.data.gene_activity.gene_activity`) of the linked genes,
      plus the ``n_hvg_atac`` most variable other gene-activity genes, ``normalize_total`` (median
      library size over all gene-activity genes) + ``log1p``.
    * both z-scored per feature and clipped at ``max_value``.
    * ``use_highly_variable``: the RNA genes flagged in ``rna.var["highly_variable"]`` instead of the
      ``n_hvg`` selected here (scanpy's convention; ``None``: when the column exists, logged).
    * ``joint_pca``: when set, the link matrices are the first ``joint_pca`` principal components of the
      concatenated (cells of both datasets) scaled linked blocks; else the linked leading columns.

    Raises:
        ValueError: raw counts expected; no HVG of the RNA has a gene activity score.
    """
    Xr = layer_matrix(rna, layer)
    Xa = layer_matrix(atac_gene_activity, atac_layer)
    check_counts(Xr, "RNA matrix", " Pass layer='counts' (or the layer holding raw counts).")
    va = sample_values(Xa)
    if va.size and (not np.all(np.isfinite(va)) or va.min() < 0):
        raise ValueError("gene activity matrix has negative or non-finite values; raw gene activity is expected")
    labels = labels_of([rna.obs, atac_gene_activity.obs], label_key, modalities)
    gr = [str(g) for g in rna.var_names]
    ga = [str(g) for g in atac_gene_activity.var_names]

    hvg = user_highly_variable(rna, use_highly_variable)
    if hvg is not None:
        log.info("RNA genes: the %d of var['highly_variable']; n_hvg=%d not used", hvg.size, n_hvg)
    else:
        hvg = select_hvg(Xr, n_top_genes=min(n_hvg, Xr.shape[1]))
    a_exact, a_upper = index_of(ga)
    pairs_r, pairs_a = [], []
    for gi in hvg:
        ai = a_exact.get(gr[gi], a_upper.get(gr[gi].upper()))
        if ai is not None:
            pairs_r.append(gi)
            pairs_a.append(ai)
    if not pairs_r:
        raise ValueError(
            f"none of the {hvg.size} RNA HVGs has a gene activity score (RNA HVGs e.g. "
            f"{[gr[i] for i in hvg[:8]]}, gene activity genes e.g. {ga[:8]}); check gene naming"
        )
    cols_r = np.asarray(pairs_r, np.int64)
    cols_a = np.asarray(pairs_a, np.int64)
    lib_r, lib_a = row_sums(Xr), row_sums(Xa)
    tr, ta = float(np.median(lib_r)), float(np.median(lib_a))
    link_r = normalize_log1p(take_columns(Xr, cols_r), lib_r, tr)
    link_a = normalize_log1p(take_columns(Xa, cols_a), lib_a, ta)
    dropped: list[str] = []
    if drop_constant_links:
        keep = nonconstant(link_r) & nonconstant(link_a)
        dropped = [gr[i] for i in cols_r[~keep]]
        if not keep.any():
            raise ValueError("every shared HVG is constant in one modality")
        cols_r, cols_a = cols_r[keep], cols_a[keep]
        link_r, link_a = link_r[:, np.flatnonzero(keep)], link_a[:, np.flatnonzero(keep)]
    k = cols_r.size
    rest_r = np.setdiff1d(hvg, cols_r)
    rest_r_n = normalize_log1p(take_columns(Xr, rest_r), lib_r, tr)
    rest_a = np.zeros(0, np.int64)
    if n_hvg_atac > 0:
        rest_a = select_hvg(Xa, n_top_genes=n_hvg_atac, exclude=cols_a)
    rest_a_n = normalize_log1p(take_columns(Xa, rest_a), lib_a, ta)

    Zr, sr = finish([link_r, rest_r_n], True, max_value)
    Za, sa = finish([link_a, rest_a_n], True, max_value)
    names = [(gr[i], ga[j]) for i, j in zip(cols_r, cols_a, strict=True)]
    ar = np.arange(k)
    if joint_pca:
        nc = int(min(joint_pca, k, Zr.shape[0] + Za.shape[0] - 1))
        L, R, V = fit_joint_pca(Zr[:, :k], Za[:, :k], nc)
        link = LinkBlock(
            pair=(0, 1),
            names=[(f"PC{c + 1}", f"PC{c + 1}") for c in range(nc)],
            left_cols=ar,
            right_cols=ar.copy(),
            left_matrix=L,
            right_matrix=R,
            components=V,
        )
    else:
        link = LinkBlock(pair=(0, 1), names=names, left_cols=ar, right_cols=ar.copy())
    return Prepared(
        datasets=[Zr, Za],
        modalities=list(modalities),
        feature_names=[
            [gr[i] for i in cols_r] + [gr[i] for i in rest_r],
            [ga[i] for i in cols_a] + [ga[i] for i in rest_a],
        ],
        links=[link],
        linked=[np.arange(Zr.shape[1]) < k, np.arange(Za.shape[1]) < k],
        scaling=[sr, sa],
        obs=[rna.obs.copy(), atac_gene_activity.obs.copy()],
        labels=labels,
        info={
            "recipe": "rna_atac",
            "linked_features": names,
            "target_sum_rna": tr,
            "target_sum_atac": ta,
            "n_hvg": int(hvg.size),
            "joint_pca": int(link.n_features) if joint_pca else None,
            "dropped_links": dropped,
        },
    )
