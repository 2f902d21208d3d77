"""Builders for the scMODAL paper's own experiments, on the public data of :mod:`scmodal_jax.data.loaders.paper`.

Every builder reads its files through the paper loaders (downloaded on first use into ``data.cache_dir``,
default ``$SCMODAL_CACHE_DIR`` or ``~/.cache/scmodal_jax``) and follows the preprocessing of the scMODAL
tutorials (github.com/gefeiwang/scMODAL-tutorial) with this project's recipes:

==============  =========================  ==================================================================
builder         data                       inputs
==============  =========================  ==================================================================
citeseq_pbmc    Hao 2021 CITE-seq, P1      RNA + ADT of the same cells (paired), ``prepare_rna_protein``
bmc_cytof       Stuart 2019 ADT + Levine   two antibody panels (unpaired), ``prepare_protein_protein``
                2015 CyTOF (bone marrow)
teaseq          TEA-seq PBMC (GSE158013)   ADT, RNA, ATAC gene activity of the same cells: a chain
mouse_brain     Zeisel 2018 RNA + 10x      RNA + ATAC gene activity (unpaired), ``prepare_rna_atac``
                adult brain scATAC
tonsil          MaxFuse tonsil CODEX +     CODEX + RNA (unpaired), ``prepare_rna_protein``; the paper's
                scRNA-seq                  third modality (tonsil scATAC) has no loader here
==============  =========================  ==================================================================

``data.options``: the keys documented by each builder are its own (loader and builder settings, e.g.
``donor``, ``annotation``); every other key is passed to the recipe as a keyword argument (e.g.
``table``, ``max_value``). ``progress`` (default true) shows download progress bars. The data configs
list each builder's keys, so they are overridden as ``data.options.KEY=...``; a key they do not list is
added with ``+data.options.KEY=...``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anndata as ad
import numpy as np

from ..gene_activity import gene_activity
from ..hvg import select_hvg
from ..links import protein_gene_pairs
from ..loaders import paper
from ..loaders import shared as files
from ..recipes import prepare_protein_protein, prepare_rna_atac, prepare_rna_protein
from ._common import ChainConfig, Integration, Modality, chain, options, pair

__all__ = [
    "PAPER_BUILDERS",
    "citeseq_pbmc",
    "bmc_cytof",
    "teaseq",
    "mouse_brain",
    "tonsil",
]


# ---------------------------------------------------------------------------------------------- helpers
def _loader_kwargs(cfg: Any, opts: dict[str, Any]) -> dict[str, Any]:
    return {"cache_dir": cfg.cache_dir, "progress": bool(opts.pop("progress", True))}


def _no_options_left(name: str, opts: dict[str, Any]) -> None:
    if opts:
        raise ValueError(f"data.options {sorted(opts)} are not used by the {name} builder")


def _top_genes(X: Any, n_top: int | None, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``n_top`` Seurat-v3 HVGs (``exclude`` skipped); all other columns when ``n_top`` is None."""
    exclude = np.zeros(0, np.int64) if exclude is None else np.asarray(exclude, np.int64)
    candidates = np.setdiff1d(np.arange(X.shape[1]), exclude)
    if n_top is None or n_top >= candidates.size:
        return candidates
    return select_hvg(X, n_top_genes=int(n_top), exclude=exclude)


def _n_hvg_atac(cfg: Any, opts: dict[str, Any]) -> int | None:
    value = opts.pop("n_hvg_atac", None)
    return cfg.n_hvg if value is None else int(value)


# ---------------------------------------------------------------------------------------------- builders
def citeseq_pbmc(cfg: Any) -> Integration:
    """Hao et al. 2021 PBMC CITE-seq (GEO GSE164378, 3' arm), donor P1 as in the paper: RNA vs ADT.

    The cells are the same in both modalities (``paired=True``; the model itself treats them as unpaired,
    the pairing is used by the evaluation). Linked pairs: the protein -> gene table, which reads Hao's clone
    suffixes (``CD4-1``, ``CD4-2``) as clones of the base marker; RNA keeps the
    ``data.n_hvg`` (paper: 3000) most variable unlinked genes.

    Options: ``donor`` (default ``"P1"``; null = all donors), ``celltype`` (metadata column used as
    ``obs['cell_type']``, default ``"celltype.l2"``), ``drop_doublets`` (default true); other keys go to
    :func:`~scmodal_jax.data.recipes.prepare_rna_protein` (e.g. ``pairs``, ``table``).
    """
    opts = options(cfg)
    load = _loader_kwargs(cfg, opts)
    rna, adt = paper.hao2021_pbmc_cite(
        donor=opts.pop("donor", "P1"),
        label_key=opts.pop("celltype", "celltype.l2"),
        drop_doublets=bool(opts.pop("drop_doublets", True)),
        **load,
    )
    prep = prepare_rna_protein(rna, adt, n_hvg=cfg.n_hvg, label_key=cfg.label_key, modalities=("rna", "adt"), **opts)
    return pair(prep, ["rna", "adt"], cfg.order, paired=True)


def bmc_cytof(cfg: Any) -> Integration:
    """Bone-marrow CITE-seq ADT (Stuart et al. 2019, GSE128639, 25 antibodies) vs the Levine et al. 2015
    32-marker bone-marrow CyTOF panel: two antibody panels of different cells (unpaired).

    As in the paper, the ADT counts are normalised (``normalize_total`` + ``log1p``) to the median per-cell
    total of the CyTOF panel read as ``log1p`` values (``median(sum(expm1(cytof)))``), the CyTOF values
    (already arcsinh-transformed in ``Levine_32dim.fcs``) are kept as they are, and both panels are
    z-scored; the shared markers are the links.

    ``Levine_32dim.fcs`` has no direct download link: put it in ``<cache_dir>/levine2015_bm_cytof/`` or set
    ``options.cytof_path``. GEO has no cell-type labels for the CITE-seq cells: ``data.label_key`` is null
    unless ``options.labels`` (a CSV/TSV of cell -> label, e.g. the Seurat ``bmcite`` ``celltype.l2``) is
    given, then set ``data.label_key=cell_type``.

    Options: ``labels``, ``label_column`` (CITE-seq labels, see
    :func:`~scmodal_jax.data.loaders.paper.stuart2019_bm_cite`), ``cytof_path``, ``population_names``,
    ``arcsinh_cofactor``, ``drop_unassigned`` (see :func:`~scmodal_jax.data.loaders.paper.levine2015_bm_cytof`);
    other keys go to :func:`~scmodal_jax.data.recipes.prepare_protein_protein` (e.g. ``transform``,
    ``target_sum``, ``pairs``).
    """
    opts = options(cfg)
    load = _loader_kwargs(cfg, opts)
    _, adt = paper.stuart2019_bm_cite(labels=opts.pop("labels", None), label_column=opts.pop("label_column", None),
                                      **load)  # fmt: skip
    cytof = paper.levine2015_bm_cytof(
        path=opts.pop("cytof_path", None),
        population_names=opts.pop("population_names", None),
        drop_unassigned=bool(opts.pop("drop_unassigned", True)),
        arcsinh_cofactor=opts.pop("arcsinh_cofactor", None),
        **load,
    )
    transform = tuple(opts.pop("transform", ("counts", "none")))
    if opts.get("target_sum") is None and transform == ("counts", "none"):
        cytof_totals = np.expm1(np.asarray(cytof.X, dtype=np.float64)).sum(axis=1)
        opts["target_sum"] = (float(np.median(cytof_totals)), None)
    elif opts.get("target_sum") is not None:
        opts["target_sum"] = tuple(opts["target_sum"])
    prep = prepare_protein_protein(
        adt, cytof, transform=transform, label_key=cfg.label_key, modalities=("adt", "cytof"), **opts
    )
    return pair(prep, ["adt", "cytof"], cfg.order, paired=False)


def _annotation(cfg: Any, opts: dict[str, Any]) -> Any:
    annotation = opts.pop("annotation", None)
    if annotation is not None:
        return annotation
    # the shared folder's table, else its PyPI release fetched into the run's download cache
    return files.hg38_gene_annotation(cfg.data_dir, cache_dir=getattr(cfg, "cache_dir", None))


def teaseq(cfg: Any) -> Integration:
    """TEA-seq PBMC (Swanson et al. 2021, GSE158013): ADT, RNA and ATAC gene activity of the same cells,
    chained ADT - RNA - ATAC (order ``data.order``) as in the paper.

    Features as in the paper's tutorial: ADT all antibodies; RNA the genes linked to the ADT panel plus the
    ``data.n_hvg`` (paper: 1000) most variable other genes; ATAC the ``options.n_hvg_atac`` (null:
    ``data.n_hvg``) most variable gene-activity genes, of which those also in the RNA features link RNA and
    ATAC, through ``data.joint_pca`` (paper: 30) joint principal components. Gene activity: peaks summed
    over gene body + 2 kb upstream (:func:`~scmodal_jax.data.gene_activity.gene_activity`) with the hg38
    annotation of the shared data folder, or ``options.annotation`` (GTF/BED/TSV path).

    The raw files carry no cell-type labels: ``data.label_key`` is null.

    Options: ``annotation``, ``n_hvg_atac``, ``gene_activity`` (a dict of
    :func:`~scmodal_jax.data.gene_activity.gene_activity` keyword arguments).
    """
    opts = options(cfg)
    load = _loader_kwargs(cfg, opts)
    annotation = _annotation(cfg, opts)
    n_hvg_atac = _n_hvg_atac(cfg, opts)
    ga_kwargs = dict(opts.pop("gene_activity", None) or {})
    _no_options_left("teaseq", opts)
    rna, atac, adt = paper.teaseq_pbmc(**load)
    activity = _activity(atac, annotation, ga_kwargs)
    genes = [str(g) for g in rna.var_names]
    linked = {g for _, g in protein_gene_pairs([str(p) for p in adt.var_names], genes)}
    linked_idx = np.asarray([i for i, g in enumerate(genes) if g in linked], np.int64)
    rna_cols = np.union1d(linked_idx, _top_genes(rna.X, cfg.n_hvg, exclude=linked_idx))
    atac_cols = _top_genes(activity.X, n_hvg_atac)
    mods = [
        Modality("adt", "protein", adt),
        Modality("rna", "rna", rna[:, rna_cols].copy()),
        Modality("atac", "atac", activity[:, atac_cols].copy()),
    ]
    # The HVGs are chosen above, as in the paper: the chain keeps every remaining RNA gene.
    view = ChainConfig(order=cfg.order, n_hvg=None, label_key=cfg.label_key, joint_pca=cfg.joint_pca)
    return chain(mods, view, paired=True)


def _activity(atac: ad.AnnData, annotation: Any, kwargs: dict[str, Any]) -> ad.AnnData:
    return gene_activity(atac, annotation, **kwargs)


def mouse_brain(cfg: Any) -> Integration:
    """Mouse brain scRNA-seq (Zeisel et al. 2018, mousebrain.org ``l5_all.loom``) vs the 10x adult mouse
    brain scATAC-seq (fresh 5k) as gene activities: unpaired, as in the paper's tutorial.

    Features as in the tutorial: the ``data.n_hvg`` (paper: 1000) most variable RNA genes and the
    ``options.n_hvg_atac`` (null: ``data.n_hvg``) most variable gene-activity genes; the genes in both
    sets are the links (``data.joint_pca`` null: no joint PCA). Gene activity needs an mm10 gene annotation
    (GTF/BED/TSV), which the project does not ship: ``options.annotation`` is required.

    The RNA loom carries labels (``options.rna_label``, default ``TaxonomyRank4``), the ATAC file none:
    ``data.label_key`` is null.

    Options: ``annotation`` (required), ``n_hvg_atac``, ``rna_label``, ``gene_activity`` (dict of
    :func:`~scmodal_jax.data.gene_activity.gene_activity` keyword arguments); other keys go to
    :func:`~scmodal_jax.data.recipes.prepare_rna_atac`.
    """
    opts = options(cfg)
    annotation = opts.pop("annotation", None)
    if annotation is None:
        raise ValueError(
            "the mouse_brain builder needs an mm10 gene annotation for the ATAC gene activities, which the "
            "project does not ship: set data.options.annotation=/path/to/mm10 genes (GTF, e.g. GENCODE vM23 "
            "or the cellranger mm10 genes.gtf, a BED file or a gene_name/chrom/start/end/strand TSV)"
        )
    load = _loader_kwargs(cfg, opts)
    n_hvg_atac = _n_hvg_atac(cfg, opts)
    ga_kwargs = dict(opts.pop("gene_activity", None) or {})
    rna = paper.mouse_brain_rna(label_key=opts.pop("rna_label", "TaxonomyRank4"), **load)
    atac = paper.mouse_brain_atac(**load)
    activity = _activity(atac, annotation, ga_kwargs)
    activity = activity[:, _top_genes(activity.X, n_hvg_atac)].copy()
    n_hvg = rna.n_vars if cfg.n_hvg is None else min(int(cfg.n_hvg), rna.n_vars)
    prep = prepare_rna_atac(
        rna,
        activity,
        n_hvg=n_hvg,
        joint_pca=cfg.joint_pca,
        n_hvg_atac=activity.n_vars,  # every ATAC HVG: the unlinked ones follow the links
        label_key=cfg.label_key,
        modalities=("rna", "atac"),
        **opts,
    )
    return pair(prep, ["rna", "atac"], cfg.order, paired=False)


def tonsil(cfg: Any) -> Integration:
    """Human tonsil CODEX (Kennedy-Darling et al. 2021) and scRNA-seq (King et al. 2021) from the MaxFuse
    archive: CODEX + RNA, unpaired.

    The paper integrates a third modality, tonsil scATAC-seq (Zenodo 11355186), chained CODEX - RNA - ATAC;
    no loader exists for it here, so this builder integrates CODEX and RNA only.

    Features as in the paper's tutorial: CODEX keeps only the markers linked to RNA genes
    (``options.codex_linked_only``, default true); RNA the linked genes plus the ``data.n_hvg`` (paper:
    1000) most variable other genes. The MaxFuse CODEX table is already normalised (non-integer values of
    moderate size), which ``protein_transform='auto'`` keeps as they are (raw intensities, values > 50,
    would get ``arcsinh(x / 5)``). Labels: ``cluster.term`` (CODEX) and ``cluster.info`` (RNA), two
    annotations with different names, so label-transfer scores are only indicative.

    Options: ``codex_linked_only``; other keys go to
    :func:`~scmodal_jax.data.recipes.prepare_rna_protein` (e.g. ``protein_transform``, ``pairs``, ``table``).
    """
    opts = options(cfg)
    load = _loader_kwargs(cfg, opts)
    linked_only = bool(opts.pop("codex_linked_only", True))
    codex, rna = paper.tonsil_codex_rna(**load)
    if opts.get("pairs") is None:
        opts["pairs"] = protein_gene_pairs([str(p) for p in codex.var_names], [str(g) for g in rna.var_names],
                                           table=opts.get("table"))  # fmt: skip
    opts["pairs"] = [tuple(p) for p in opts["pairs"]]
    if linked_only:
        markers = list(dict.fromkeys(p for p, _ in opts["pairs"]))
        codex = codex[:, markers].copy()
    opts.setdefault("protein_transform", "auto")
    prep = prepare_rna_protein(rna, codex, n_hvg=cfg.n_hvg, label_key=cfg.label_key, modalities=("rna", "codex"),
                               **opts)  # fmt: skip
    return pair(prep, ["rna", "codex"], cfg.order, paired=False)


PAPER_BUILDERS: dict[str, Callable[[Any], Integration]] = {
    "citeseq_pbmc": citeseq_pbmc,
    "bmc_cytof": bmc_cytof,
    "teaseq": teaseq,
    "mouse_brain": mouse_brain,
    "tonsil": tonsil,
}
