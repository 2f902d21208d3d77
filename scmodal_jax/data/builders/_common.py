"""What every builder shares (internal API of :mod:`scmodal_jax.data.builders`): the :class:`Integration`
result, modalities and their links, order checks, the two-dataset and chain builders, and the one reader of
``cfg.options``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad

from ..hvg import select_hvg
from ..links import protein_gene_pairs, shared_markers
from ..recipes import LinkBlock, Prepared, fit_joint_pca, prepare_generic

try:  # omegaconf comes with hydra; the builders also take plain objects without it
    from omegaconf import DictConfig, OmegaConf
except ImportError:  # pragma: no cover
    DictConfig = OmegaConf = None

__all__ = [
    "PER_DATASET_INFO",
    "PROTEIN_KINDS",
    "NORMALIZATION",
    "Integration",
    "Modality",
    "ChainConfig",
    "options",
    "check_order",
    "reverse_pair",
    "pair",
    "link_names",
    "chain",
]

# Recipe info entries that hold one item per dataset (they follow the datasets when the order is reversed).
PER_DATASET_INFO = ("transforms", "normalization", "normalize")
# Modality kinds decide how two neighbours in a chain are linked and how each is normalised.
PROTEIN_KINDS = ("protein", "cytof", "codex")
NORMALIZATION = {"rna": "counts", "protein": "counts", "atac": "counts", "cytof": "arcsinh", "codex": "arcsinh"}


@dataclass
class Integration:
    """A builder's result: the recipe's inputs, whether row i of every dataset is the same cell, the order."""

    prepared: Prepared
    paired: bool
    order: list[str]

    @property
    def modalities(self) -> list[str]:
        return self.prepared.modalities


@dataclass
class Modality:
    """One dataset of a chain: its name in ``data.order``, its kind (``rna``, ``atac``, ``protein``, ``cytof``,
    ``codex``) and the data."""

    name: str
    kind: str
    adata: ad.AnnData


@dataclass
class ChainConfig:
    """The fields of a data config that :func:`chain` reads."""

    order: Sequence[str] | None
    n_hvg: int | None
    label_key: str | None
    joint_pca: int | None


def options(cfg: Any) -> dict[str, Any]:
    """``cfg.options`` as a plain, mutable dict (OmegaConf containers converted; {} when absent or None).

    Every builder reads its options through this function and pops the keys it uses itself.
    """
    opts = getattr(cfg, "options", None)
    if opts is None:
        return {}
    if DictConfig is not None and isinstance(opts, DictConfig):
        return dict(OmegaConf.to_container(opts, resolve=True))
    return dict(opts)


def check_order(order: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """``order`` as a list (``available`` when None); it must be a permutation of ``available``."""
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


def pair(prep: Prepared, default: list[str], order: Sequence[str] | None, paired: bool) -> Integration:
    """A two-dataset :class:`Integration` in ``order`` (the recipe ran in ``default`` order)."""
    order = check_order(order, default)
    if order != default:
        prep = reverse_pair(prep)
    return Integration(prep, paired, order)


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

    `cfg` is a data config or a :class:`ChainConfig` (fields `order`, `n_hvg`, `label_key`, `joint_pca`).
    RNA keeps its `n_hvg` most variable genes besides the linked ones, and an RNA<->ATAC (gene activity)
    link uses only the genes among RNA's `n_hvg` most variable; ATAC keeps only its linked genes.
    `cfg.joint_pca` replaces each RNA<->ATAC link by that many joint principal components of the two linked
    blocks, as in TEA-seq.
    """
    by_name = {m.name: m for m in mods}
    order = check_order(cfg.order, [m.name for m in mods])
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
                left_pc, right_pc, loadings = fit_joint_pca(left, right, int(cfg.joint_pca))
                lb.left_matrix, lb.right_matrix, lb.components = left_pc, right_pc, loadings
    return Integration(prep, paired, order)
