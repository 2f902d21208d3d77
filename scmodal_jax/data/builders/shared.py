"""Builders on the synthetic data and the small real files of the shared data folder.

==============  ===================================================================================
builder         inputs
==============  ===================================================================================
synthetic       :func:`~scmodal_jax.data.synthetic.make_multimodal` (``data.synthetic``), any order
bmmc_cite       NeurIPS 2021 BMMC CITE-seq subset: RNA + ADT (paired), ``prepare_rna_protein``
pbmc5k_cite     10x 5k PBMC CITE-seq: RNA + ADT (paired), ``prepare_rna_protein``
pbmc_cytof      PBMC CyTOF + 10x 5k PBMC ADT (unpaired), ``prepare_protein_protein``
bmmc_multiome   NeurIPS 2021 BMMC multiome subset: RNA + ATAC gene activity (paired), ``prepare_rna_atac``
pbmc_trimodal   RNA and ADT of disjoint halves of the 5k PBMC cells + CyTOF: a chain (unpaired)
==============  ===================================================================================

``data.options`` go to the recipe as keyword arguments (``pbmc_trimodal``: ``split_seed`` only).

Without the shared data folder the loaders fetch each file's original release (``data.cache_dir``); where that
release has no cell-type labels (the 10x PBMC files) the builder warns and runs without labels, so the run
reports label-free metrics only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..gene_activity import gene_activity
from ..loaders import shared as files
from ..loaders.releases import from_release
from ..recipes import LinkBlock, Prepared, Scaling, prepare_protein_protein, prepare_rna_atac, prepare_rna_protein
from ..synthetic import make_multimodal
from ._common import ChainConfig, Integration, Modality, chain, check_order, options, pair

__all__ = ["SHARED_BUILDERS", "synthetic", "bmmc_cite", "pbmc5k_cite", "pbmc_cytof", "bmmc_multiome", "pbmc_trimodal"]


# ---------------------------------------------------------------------------------------------- synthetic
def synthetic(cfg: Any) -> Integration:
    s = cfg.synthetic
    data = make_multimodal(
        n_cells=s.n_cells,
        n_features=tuple(s.n_features),
        n_linked=s.n_linked,
        n_clusters=s.n_clusters,
        paired=s.paired,
        seed=s.seed,
    )
    names = [f"mod{i}" for i in range(len(data.datasets))]
    order = check_order(cfg.order, names)
    perm = [names.index(o) for o in order]
    xs = [data.datasets[i] for i in perm]
    labels = [data.labels[i] for i in perm]
    k = data.n_linked
    obs = [
        pd.DataFrame({"cell_type": pd.Categorical(lab)}, index=[f"cell{j}" for j in range(len(lab))]) for lab in labels
    ]
    feature_names = [[f"{names[i]}_f{j}" for j in range(x.shape[1])] for i, x in zip(perm, xs, strict=True)]
    for f in feature_names:  # linked features share their names across modalities
        f[:k] = [f"link{j}" for j in range(k)]
    links = [
        LinkBlock(pair=(i, i + 1), names=[(f"link{j}", f"link{j}") for j in range(k)], left_cols=np.arange(k),
                  right_cols=np.arange(k))
        for i in range(len(xs) - 1)
    ]  # fmt: skip
    prep = Prepared(
        datasets=xs,
        modalities=order,
        feature_names=feature_names,
        links=links,
        linked=[np.arange(x.shape[1]) < k for x in xs],
        scaling=[Scaling(None, None, None) for _ in xs],
        obs=obs,
        labels=labels,
        info={"recipe": "synthetic"},
    )
    return Integration(prep, bool(s.paired), order)


# ---------------------------------------------------------------------------------------------- shared files
def _fetch(cfg: Any) -> dict[str, Any]:
    """Where a loader finds the shared folder and, without it, caches the original release."""
    return {"cache_dir": getattr(cfg, "cache_dir", None)}


def label_key_for(cfg: Any, *adatas: ad.AnnData) -> str | None:
    """``cfg.label_key``, or None (with a warning) when data prepared from an original release lack it.

    Our shared files add cell-type labels that some releases do not have; a run on such a release is label-free
    (label-free metrics only). A key missing from the shared files themselves is left to the recipe's error.
    """
    key = cfg.label_key
    if key is None or all(key in a.obs for a in adatas) or not any(from_release(a) for a in adatas):
        return key
    warnings.warn(
        f"data.label_key={key!r}: the original release fetched in place of the shared file has no such obs column "
        "(our shared files add the cell-type labels); running without labels: label-free metrics only.",
        UserWarning,
        stacklevel=2,
    )
    return None


def _rna_protein(rna: ad.AnnData, protein: ad.AnnData, cfg: Any, paired: bool) -> Integration:
    n_hvg = None if cfg.n_hvg is None else min(int(cfg.n_hvg), rna.n_vars)
    labels = label_key_for(cfg, rna, protein)
    prep = prepare_rna_protein(rna, protein, n_hvg=n_hvg, label_key=labels, **options(cfg))
    return pair(prep, ["rna", "protein"], cfg.order, paired)


def bmmc_cite(cfg: Any) -> Integration:
    rna, protein = files.bmmc_cite(cfg.data_dir, **_fetch(cfg))
    return _rna_protein(rna, protein, cfg, paired=True)


def pbmc5k_cite(cfg: Any) -> Integration:
    rna, protein = files.pbmc5k_cite(cfg.data_dir, **_fetch(cfg))
    return _rna_protein(rna, protein, cfg, paired=True)


def pbmc_cytof(cfg: Any) -> Integration:
    cytof = files.pbmc_cytof(cfg.data_dir)
    adt = files.pbmc_adt(cfg.data_dir, **_fetch(cfg))
    prep = prepare_protein_protein(
        cytof, adt, transform=("arcsinh", "counts"), label_key=label_key_for(cfg, cytof, adt),
        modalities=("cytof", "adt"), **options(cfg),
    )  # fmt: skip
    return pair(prep, ["cytof", "adt"], cfg.order, paired=False)


def _gene_activity_adata(atac: ad.AnnData, annotation: Any) -> ad.AnnData:
    ga = gene_activity(atac, annotation)
    if isinstance(ga, ad.AnnData):
        return ga
    matrix, genes = ga
    return ad.AnnData(matrix, obs=atac.obs.copy(), var=pd.DataFrame(index=list(genes)))


def bmmc_multiome(cfg: Any) -> Integration:
    rna, atac = files.bmmc_multiome(cfg.data_dir, **_fetch(cfg))
    activity = _gene_activity_adata(atac, files.hg38_gene_annotation(cfg.data_dir, **_fetch(cfg)))
    n_hvg = min(int(cfg.n_hvg or rna.n_vars), rna.n_vars)
    labels = label_key_for(cfg, rna, atac)
    prep = prepare_rna_atac(rna, activity, n_hvg=n_hvg, joint_pca=cfg.joint_pca, label_key=labels, **options(cfg))
    return pair(prep, ["rna", "atac"], cfg.order, paired=True)


def pbmc_trimodal(cfg: Any) -> Integration:
    """RNA and ADT from disjoint halves of the PBMC5k cells (so unpaired) plus the CyTOF panel, as a chain."""
    rna, adt = files.pbmc5k_cite(cfg.data_dir, **_fetch(cfg))
    rng = np.random.default_rng(int(options(cfg).get("split_seed", 0)))
    half = rng.permutation(rna.n_obs)
    first, second = np.sort(half[: rna.n_obs // 2]), np.sort(half[rna.n_obs // 2 :])
    mods = [
        Modality("rna", "rna", rna[first].copy()),
        Modality("adt", "protein", adt[second].copy()),
        Modality("cytof", "cytof", files.pbmc_cytof(cfg.data_dir)),
    ]
    labels = label_key_for(cfg, *(m.adata for m in mods))
    chain_cfg = ChainConfig(order=cfg.order, n_hvg=cfg.n_hvg, label_key=labels, joint_pca=cfg.joint_pca)
    return chain(mods, chain_cfg, paired=False)


SHARED_BUILDERS: dict[str, Callable[[Any], Integration]] = {
    "synthetic": synthetic,
    "bmmc_cite": bmmc_cite,
    "pbmc5k_cite": pbmc5k_cite,
    "pbmc_cytof": pbmc_cytof,
    "pbmc_trimodal": pbmc_trimodal,
    "bmmc_multiome": bmmc_multiome,
}
