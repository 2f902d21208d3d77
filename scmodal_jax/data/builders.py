"""From a data config to the model's inputs: one builder per experiment's data.

A builder takes a `DataConfig`-like object (attributes `name`, `order`, `label_key`, `data_dir`, `cache_dir`,
`n_hvg`, `joint_pca`, `synthetic`, `options`) and returns an `Integration`: the recipe's `Prepared` inputs,
whether the datasets' cells are paired (row i of each dataset is the same cell), and the order used.
Two-modality data go through the dedicated recipes; chains of three or more through `chain`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from . import datasets as ds
from .gene_activity import gene_activity
from .hvg import select_hvg
from .links import protein_gene_pairs, shared_markers
from .recipes import (
    LinkBlock,
    Prepared,
    Scaling,
    _joint_pca,
    prepare_generic,
    prepare_protein_protein,
    prepare_rna_atac,
    prepare_rna_protein,
)
from .synthetic import make_multimodal

# Recipe info entries that hold one item per dataset (they follow the datasets when the order is reversed).
PER_DATASET_INFO = ("transforms", "normalization", "normalize")
# Modality kinds decide how two neighbours in a chain are linked and how each is normalised.
PROTEIN_KINDS = ("protein", "cytof", "codex")
NORMALIZATION = {"rna": "counts", "protein": "counts", "atac": "counts", "cytof": "arcsinh", "codex": "arcsinh"}


@dataclass
class Integration:
    prepared: Prepared
    paired: bool
    order: list[str]

    @property
    def modalities(self) -> list[str]:
        return self.prepared.modalities


@dataclass
class Modality:
    name: str
    kind: str
    adata: ad.AnnData


def _check_order(order: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    if order is None:
        return list(available)
    order = [str(o) for o in order]
    if sorted(order) != sorted(available):
        raise ValueError(f"data.order={order} must be a permutation of the modalities {list(available)}")
    return order


def reverse_pair(prep: Prepared) -> Prepared:
    """The same two-dataset inputs with the datasets swapped (links swapped with them)."""
    if prep.n_datasets != 2:
        raise ValueError("reverse_pair needs exactly two datasets")
    (lb,) = prep.links
    swapped = LinkBlock(
        pair=(0, 1),
        names=[(b, a) for a, b in lb.names],
        left_cols=lb.right_cols,
        right_cols=lb.left_cols,
        left_matrix=lb.right_matrix,
        right_matrix=lb.left_matrix,
        components=lb.components,
    )
    rev = lambda xs: None if xs is None else list(xs)[::-1]  # noqa: E731
    return Prepared(
        datasets=rev(prep.datasets),
        modalities=rev(prep.modalities),
        feature_names=rev(prep.feature_names),
        links=[swapped],
        linked=rev(prep.linked),
        scaling=rev(prep.scaling),
        obs=rev(prep.obs),
        labels=rev(prep.labels),
        info={k: (list(v)[::-1] if k in PER_DATASET_INFO else v) for k, v in prep.info.items()},
    )


def _pair(prep: Prepared, default: list[str], order: Sequence[str] | None, paired: bool) -> Integration:
    order = _check_order(order, default)
    if order != default:
        prep = reverse_pair(prep)
    return Integration(prep, paired, order)


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
    order = _check_order(cfg.order, names)
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
def _rna_protein(rna: ad.AnnData, protein: ad.AnnData, cfg: Any, paired: bool) -> Integration:
    n_hvg = None if cfg.n_hvg is None else min(int(cfg.n_hvg), rna.n_vars)
    prep = prepare_rna_protein(rna, protein, n_hvg=n_hvg, label_key=cfg.label_key, **dict(cfg.options))
    return _pair(prep, ["rna", "protein"], cfg.order, paired)


def bmmc_cite(cfg: Any) -> Integration:
    rna, protein = ds.bmmc_cite(cfg.data_dir)
    return _rna_protein(rna, protein, cfg, paired=True)


def pbmc5k_cite(cfg: Any) -> Integration:
    rna, protein = ds.pbmc5k_cite(cfg.data_dir)
    return _rna_protein(rna, protein, cfg, paired=True)


def pbmc_cytof(cfg: Any) -> Integration:
    cytof = ds.pbmc_cytof(cfg.data_dir)
    adt = ds.pbmc_adt(cfg.data_dir)
    prep = prepare_protein_protein(
        cytof, adt, transform=("arcsinh", "counts"), label_key=cfg.label_key, modalities=("cytof", "adt"),
        **dict(cfg.options),
    )  # fmt: skip
    return _pair(prep, ["cytof", "adt"], cfg.order, paired=False)


def _gene_activity_adata(atac: ad.AnnData, annotation: Any) -> ad.AnnData:
    ga = gene_activity(atac, annotation)
    if isinstance(ga, ad.AnnData):
        return ga
    matrix, genes = ga
    return ad.AnnData(matrix, obs=atac.obs.copy(), var=pd.DataFrame(index=list(genes)))


def bmmc_multiome(cfg: Any) -> Integration:
    rna, atac = ds.bmmc_multiome(cfg.data_dir)
    activity = _gene_activity_adata(atac, ds.hg38_gene_annotation(cfg.data_dir))
    n_hvg = min(int(cfg.n_hvg or rna.n_vars), rna.n_vars)
    prep = prepare_rna_atac(
        rna, activity, n_hvg=n_hvg, joint_pca=cfg.joint_pca, label_key=cfg.label_key, **dict(cfg.options)
    )
    return _pair(prep, ["rna", "atac"], cfg.order, paired=True)


def pbmc_trimodal(cfg: Any) -> Integration:
    """RNA and ADT from disjoint halves of the PBMC5k cells (so unpaired) plus the CyTOF panel, as a chain."""
    rna, adt = ds.pbmc5k_cite(cfg.data_dir)
    rng = np.random.default_rng(int(dict(cfg.options).get("split_seed", 0)))
    half = rng.permutation(rna.n_obs)
    first, second = np.sort(half[: rna.n_obs // 2]), np.sort(half[rna.n_obs // 2 :])
    mods = [
        Modality("rna", "rna", rna[first].copy()),
        Modality("adt", "protein", adt[second].copy()),
        Modality("cytof", "cytof", ds.pbmc_cytof(cfg.data_dir)),
    ]
    return chain(mods, cfg, paired=False)


# ---------------------------------------------------------------------------------------------- chains
def link_names(a: Modality, b: Modality) -> list[tuple[str, str]]:
    """Linked feature names between two neighbouring modalities, by their kinds."""
    names_a, names_b = list(map(str, a.adata.var_names)), list(map(str, b.adata.var_names))
    gene_like = ("rna", "atac")
    if a.kind in PROTEIN_KINDS and b.kind in PROTEIN_KINDS:
        return shared_markers(names_a, names_b)
    if a.kind in PROTEIN_KINDS and b.kind in gene_like:
        return protein_gene_pairs(names_a, names_b)
    if a.kind in gene_like and b.kind in PROTEIN_KINDS:
        return [(g, p) for p, g in protein_gene_pairs(names_b, names_a)]
    if a.kind in gene_like and b.kind in gene_like:
        shared = set(names_b)
        return [(g, g) for g in names_a if g in shared]
    raise ValueError(f"no link rule between a {a.kind!r} and a {b.kind!r} modality")


def chain(mods: Sequence[Modality], cfg: Any, paired: bool) -> Integration:
    """N modalities linked consecutively in `cfg.order` (normalised by kind, z-scored, clipped at 10).

    RNA keeps its `n_hvg` most variable genes besides the linked ones, and an RNA<->ATAC (gene activity)
    link uses only the genes among RNA's `n_hvg` most variable; ATAC keeps only its linked genes.
    `cfg.joint_pca` replaces each RNA<->ATAC link by that many joint principal components of the two linked
    blocks, as in TEA-seq.
    """
    by_name = {m.name: m for m in mods}
    order = _check_order(cfg.order, [m.name for m in mods])
    mods = [by_name[o] for o in order]
    # RNA<->ATAC neighbours share thousands of genes: link only RNA's highly variable ones.
    top_genes: dict[str, set[str]] = {}
    for m in mods:
        if m.kind == "rna" and cfg.n_hvg is not None:
            n_top = min(int(cfg.n_hvg), m.adata.n_vars)
            top_genes[m.name] = {str(m.adata.var_names[i]) for i in select_hvg(m.adata.X, n_top_genes=n_top)}
    links = []
    for a, b in zip(mods[:-1], mods[1:], strict=True):
        pairs = link_names(a, b)
        if {a.kind, b.kind} == {"rna", "atac"}:
            rna_side = 0 if a.kind == "rna" else 1
            keep = top_genes.get((a, b)[rna_side].name)
            pairs = pairs if keep is None else [p for p in pairs if p[rna_side] in keep]
        if not pairs:
            raise ValueError(f"no linked feature between {a.name} ({a.kind}) and {b.name} ({b.kind})")
        links.append(pairs)
    features: list[list[str] | None] = []
    for k, m in enumerate(mods):
        if m.kind == "rna" and cfg.n_hvg is not None:
            linked = {p[1] for p in links[k - 1]} if k > 0 else set()
            linked |= {p[0] for p in links[k]} if k < len(mods) - 1 else set()
            names = [str(v) for v in m.adata.var_names]
            exclude = [i for i, g in enumerate(names) if g in linked]
            n_top = min(int(cfg.n_hvg), m.adata.n_vars - len(exclude))
            features.append([names[i] for i in select_hvg(m.adata.X, n_top_genes=n_top, exclude=exclude)])
        elif m.kind == "atac":
            features.append([])
        else:
            features.append(None)
    prep = prepare_generic(
        [m.adata for m in mods],
        links,
        normalize=[NORMALIZATION[m.kind] for m in mods],
        scale=True,
        features=features,
        label_key=cfg.label_key,
        modalities=order,
    )
    if cfg.joint_pca:
        for p, (a, b) in enumerate(zip(mods[:-1], mods[1:], strict=True)):
            if {a.kind, b.kind} == {"rna", "atac"}:
                lb = prep.links[p]
                left = prep.datasets[p][:, lb.left_cols]
                right = prep.datasets[p + 1][:, lb.right_cols]
                left_pc, right_pc, loadings = _joint_pca(left, right, int(cfg.joint_pca))
                lb.left_matrix, lb.right_matrix, lb.components = left_pc, right_pc, loadings
    return Integration(prep, paired, order)


SHARED_BUILDERS: dict[str, Callable[[Any], Integration]] = {
    "synthetic": synthetic,
    "bmmc_cite": bmmc_cite,
    "pbmc5k_cite": pbmc5k_cite,
    "pbmc_cytof": pbmc_cytof,
    "pbmc_trimodal": pbmc_trimodal,
    "bmmc_multiome": bmmc_multiome,
}


def builders() -> dict[str, Callable[[Any], Integration]]:
    """Every builder by name: the shared-file ones here and the paper datasets' (downloaded) ones."""
    from .paper_builders import PAPER_BUILDERS  # imported late: it builds on this module

    return {**SHARED_BUILDERS, **PAPER_BUILDERS}


def build(cfg: Any) -> Integration:
    """Build the integration inputs named by `cfg.name`."""
    known = builders()
    if cfg.name not in known:
        raise ValueError(f"unknown data.name={cfg.name!r}; known: {sorted(known)}")
    return known[cfg.name](cfg)
