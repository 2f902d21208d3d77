"""Recipe: RNA vs an antibody panel (CITE-seq ADT, CODEX, CyTOF), linked through the protein -> gene table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from ..hvg import select_hvg, user_highly_variable
from ..links import ProteinGeneTable, protein_gene_pairs
from ._lookup import index_of, labels_of
from ._matrix import (
    Matrix,
    Transform,
    apply_elementwise,
    check_counts,
    finish,
    layer_matrix,
    nonconstant,
    normalize_log1p,
    resolve_kind,
    row_sums,
    take_columns,
)
from .containers import LinkBlock, Prepared

log = logging.getLogger(__name__)

__all__ = ["prepare_rna_protein"]


def _protein_input(protein: Any, rna: Any, protein_key: str) -> tuple[Matrix, list[str], pd.DataFrame]:
    """(matrix, marker names, obs) of the protein dataset: an AnnData, a DataFrame, or ``None`` to use
    ``rna.obsm[protein_key]`` (CITE-seq)."""
    import anndata as ad

    if protein is None:
        if protein_key not in rna.obsm:
            raise KeyError(
                f"protein=None but rna.obsm has no '{protein_key}'; available obsm keys: {list(rna.obsm.keys())}"
            )
        protein = rna.obsm[protein_key]
        if isinstance(protein, pd.DataFrame):
            return protein.to_numpy(dtype=np.float64), [str(c) for c in protein.columns], rna.obs.copy()
        raise TypeError(f"rna.obsm['{protein_key}'] must be a DataFrame with marker names as columns")
    if isinstance(protein, pd.DataFrame):
        obs = pd.DataFrame(index=protein.index.astype(str))
        return protein.to_numpy(dtype=np.float64), [str(c) for c in protein.columns], obs
    if isinstance(protein, ad.AnnData):
        return protein.X, [str(v) for v in protein.var_names], protein.obs.copy()
    raise TypeError("protein must be an AnnData, a DataFrame (cells x markers) or None")


def prepare_rna_protein(
    rna: Any,
    protein: Any = None,
    table: ProteinGeneTable | pd.DataFrame | str | PathLike[str] | None = None,
    n_hvg: int | None = 3000,
    pairs: Sequence[tuple[str, str]] | None = None,
    protein_key: str = "protein_counts",
    layer: str | None = None,
    protein_transform: Transform = "auto",
    cofactor: float = 5.0,
    min_target_sum: float = 20.0,
    drop_constant_links: bool = True,
    max_value: float | None = 10.0,
    label_key: str | None = None,
    modalities: tuple[str, str] = ("rna", "protein"),
    use_highly_variable: bool | None = None,
) -> Prepared:
    """RNA vs antibody panel (CITE-seq ADT, CODEX, CyTOF), linked through the protein -> gene table.

    Follows the scMODAL tutorials:

    * linked pairs (protein, gene) from :func:`~scmodal_jax.data.links.protein_gene_pairs` (a protein may
      link several genes and a gene several proteins: one column per pair on both sides);
    * linked RNA block and linked protein block: ``normalize_total`` with ``target_sum = max(median linked
      RNA counts per cell, min_target_sum)`` (each cell divided by its total over the block), then
      ``log1p``; pairs with a constant side are dropped (``drop_constant_links``);
    * unlinked RNA: the ``n_hvg`` Seurat-v3 HVGs (on counts, linked genes excluded; ``None`` keeps all
      unlinked genes), unlinked protein: all markers; both ``normalize_total`` to the median library size
      (totals over all features of the dataset) + ``log1p``;
    * each dataset z-scored per feature and clipped at ``max_value``; linked columns first, in pair order.

    Non-count panels: ``protein_transform="auto"`` treats integer values as counts (as above), raw
    intensities (CyTOF/CODEX, values > 50) with ``arcsinh(x / cofactor)`` and already transformed values as
    they are.

    Args:
        rna: AnnData with raw counts in ``X`` (or ``layer``); in memory, sparse or backed.
        protein: AnnData (markers in ``var_names``), DataFrame (cells x markers), or ``None`` for
            ``rna.obsm[protein_key]`` (CITE-seq).
        table: protein -> gene table (default: the curated table shipped with the package).
        n_hvg: number of unlinked HVGs kept (``None``: all unlinked genes).
        use_highly_variable: take the unlinked genes from ``rna.var["highly_variable"]`` instead of selecting
            ``n_hvg`` (scanpy's convention; ``None``: when the column exists, logged; linked genes always kept).
        pairs: explicit ``(protein, gene)`` links instead of the table.
        label_key: obs column whose labels are returned in ``Prepared.labels`` (must exist in both).

    Raises:
        ValueError: counts expected but negative/non-integer values found; no protein <-> gene link.
        KeyError: missing ``label_key``, layer or ``protein_key``.
    """
    Xr = layer_matrix(rna, layer)
    check_counts(Xr, "RNA matrix", " Pass layer='counts' (or the layer holding raw counts).")
    Xp, prot_names, prot_obs = _protein_input(protein, rna, protein_key)
    gene_names = [str(g) for g in rna.var_names]
    labels = labels_of([rna.obs, prot_obs], label_key, modalities)
    kind = resolve_kind(Xp, protein_transform, "protein matrix")

    if pairs is None:
        pairs = protein_gene_pairs(prot_names, gene_names, table=table)
    g_exact, g_upper = index_of(gene_names)
    p_exact, _ = index_of(prot_names)
    p_idx, g_idx, names = [], [], []
    missing = []
    for p, g in pairs:
        gi = g_exact.get(str(g), g_upper.get(str(g).upper()))
        pi = p_exact.get(str(p))
        if gi is None or pi is None:
            missing.append((p, g))
            continue
        p_idx.append(pi)
        g_idx.append(gi)
        names.append((gene_names[gi], prot_names[pi]))
    if missing:
        raise ValueError(f"link pairs not found in the data (protein, gene): {missing[:10]}")
    p_idx_a, g_idx_a = np.asarray(p_idx, np.int64), np.asarray(g_idx, np.int64)

    rna_link = take_columns(Xr, g_idx_a)
    prot_link = take_columns(Xp, p_idx_a)
    dropped: list[tuple[str, str]] = []
    if drop_constant_links:
        keep = nonconstant(rna_link) & nonconstant(prot_link)
        dropped = [names[k] for k in np.flatnonzero(~keep)]
        if not keep.any():
            raise ValueError(f"every linked pair has a constant feature on one side: {names[:10]}")
        if not keep.all():
            g_idx_a, p_idx_a = g_idx_a[keep], p_idx_a[keep]
            names = [names[k] for k in np.flatnonzero(keep)]
            rna_link = rna_link[:, np.flatnonzero(keep)]
            prot_link = prot_link[:, np.flatnonzero(keep)]
    k = len(names)

    # linked blocks
    rna_link_tot = row_sums(rna_link)
    target_link = max(float(np.median(rna_link_tot)), float(min_target_sum))
    rna_link_n = normalize_log1p(rna_link, rna_link_tot, target_link)
    if kind == "counts":
        prot_link_n = normalize_log1p(prot_link, row_sums(prot_link), target_link)
    elif kind == "arcsinh":
        prot_link_n = apply_elementwise(prot_link, lambda v: np.arcsinh(v / cofactor))
    else:
        prot_link_n = prot_link

    # unlinked RNA: HVGs on counts
    linked_genes = np.unique(g_idx_a)
    n_unlinked = Xr.shape[1] - linked_genes.size
    own = user_highly_variable(rna, use_highly_variable)
    if own is not None:
        hvg = np.setdiff1d(own, linked_genes)
        log.info("RNA genes: the %d of var['highly_variable'] (+ %d linked); n_hvg=%s not used "
                 "(use_highly_variable=False selects them here)", own.size, linked_genes.size, n_hvg)  # fmt: skip
    elif n_hvg is None or n_hvg >= n_unlinked:
        hvg = np.setdiff1d(np.arange(Xr.shape[1]), linked_genes)
    elif n_hvg <= 0:
        hvg = np.zeros(0, np.int64)
    else:
        hvg = select_hvg(Xr, n_top_genes=n_hvg, exclude=linked_genes)
    lib = row_sums(Xr)
    target_rna = float(np.median(lib))
    rna_rest = normalize_log1p(take_columns(Xr, hvg), lib, target_rna)

    # unlinked protein: whole rest of the panel
    rest_p = np.setdiff1d(np.arange(len(prot_names)), np.unique(p_idx_a))
    prest = take_columns(Xp, rest_p)
    if kind == "counts":
        ptot = row_sums(Xp)
        target_prot: float | None = float(np.median(ptot))
        prest_n = normalize_log1p(prest, ptot, target_prot)
    elif kind == "arcsinh":
        target_prot = None
        prest_n = apply_elementwise(prest, lambda v: np.arcsinh(v / cofactor))
    else:
        target_prot = None
        prest_n = prest

    Zr, sc_r = finish([rna_link_n, rna_rest], True, max_value)
    Zp, sc_p = finish([prot_link_n, prest_n], True, max_value)
    feats_r = [gene_names[i] for i in g_idx_a] + [gene_names[i] for i in hvg]
    feats_p = [prot_names[i] for i in p_idx_a] + [prot_names[i] for i in rest_p]
    ar = np.arange(k)
    return Prepared(
        datasets=[Zr, Zp],
        modalities=list(modalities),
        feature_names=[feats_r, feats_p],
        links=[LinkBlock(pair=(0, 1), names=names, left_cols=ar, right_cols=ar.copy())],
        linked=[np.arange(Zr.shape[1]) < k, np.arange(Zp.shape[1]) < k],
        scaling=[sc_r, sc_p],
        obs=[rna.obs.copy(), prot_obs],
        labels=labels,
        info={
            "recipe": "rna_protein",
            "protein_transform": kind,
            "target_sum_linked": target_link,
            "target_sum_rna": target_rna,
            "target_sum_protein": target_prot,
            "n_hvg": int(hvg.size),
            "hvg_source": "var['highly_variable']" if own is not None else "seurat_v3",
            "dropped_links": dropped,
        },
    )
