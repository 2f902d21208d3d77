"""Loaders of the public datasets used in the scMODAL paper.

:func:`hao2021_pbmc_cite`, :func:`stuart2019_bm_cite`, :func:`levine2015_bm_cytof`, :func:`teaseq_pbmc`,
:func:`mouse_brain_atac`, :func:`mouse_brain_rna`, :func:`mouse_brain_multiome` and :func:`tonsil_codex_rna`
download their files on first use with :func:`~scmodal_jax.data.download.fetch` (file registry and cache in
:mod:`scmodal_jax.data.download`) and parse them with :mod:`scmodal_jax.data.readers`. Every loader returns
AnnData objects with cell labels in ``obs['cell_type']`` where the source provides labels (the raw TEA-seq
and GSE128639 files carry none; see each docstring). Sources and licences: :mod:`scmodal_jax.data.registry`.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from .._obs import apply_paired_suffixes, categorical_labels, unique_names
from ..download import CHUNK_BYTES, REGISTRY, fetch, get_cache_dir
from ..readers import read_10x_h5, read_10x_mtx, read_count_table, read_fcs, read_loom

__all__ = [
    "TONSIL_CODEX_MARKERS",
    "hao2021_pbmc_cite",
    "stuart2019_bm_cite",
    "levine2015_bm_cytof",
    "teaseq_pbmc",
    "mouse_brain_atac",
    "mouse_brain_rna",
    "mouse_brain_multiome",
    "tonsil_codex_rna",
]


def _fetch_all(keys: Iterable[str], cache_dir: str | os.PathLike | None, progress: bool) -> dict[str, Path]:
    return {key: fetch(key, cache_dir=cache_dir, progress=progress) for key in keys}


def hao2021_pbmc_cite(
    donor: str | Sequence[str] | None = None,
    label_key: str = "celltype.l2",
    drop_doublets: bool = True,
    paired_obs_suffix: bool | Sequence[str] = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[ad.AnnData, ad.AnnData]:
    """Hao et al. 2021 PBMC CITE-seq (GEO GSE164378, 3' arm, ~160k cells, 228 antibodies): (RNA, ADT).

    Downloads the two 10x Matrix Market triples (GSM5008737 RNA, GSM5008738 ADT) and the cell metadata.
    The metadata columns (``celltype.l1/l2/l3``, ``donor``, ``time``, ...) are added to ``obs`` and
    ``obs['cell_type']`` is ``label_key``. The scMODAL paper used donor ``"P1"``.

    Args:
        donor: keep only these donors (e.g. ``"P1"``).
        label_key: metadata column copied into ``obs['cell_type']``.
        drop_doublets: drop cells labelled ``"Doublet"``.
        paired_obs_suffix: see :func:`~scmodal_jax.data.loaders.shared.bmmc_cite`.
    """
    paths = _fetch_all([k for k in REGISTRY if k.startswith("hao2021_")], cache_dir, progress)
    rna = read_10x_mtx(paths["hao2021_rna_matrix"], paths["hao2021_rna_features"], paths["hao2021_rna_barcodes"])
    adt = read_10x_mtx(paths["hao2021_adt_matrix"], paths["hao2021_adt_features"], paths["hao2021_adt_barcodes"])
    meta = pd.read_csv(paths["hao2021_metadata"], index_col=0)
    meta.index = meta.index.astype(str)
    cells = rna.obs_names.intersection(adt.obs_names).intersection(meta.index)
    rna, adt, meta = rna[cells].copy(), adt[cells].copy(), meta.loc[cells]
    if label_key not in meta:
        raise KeyError(f"label_key {label_key!r} not in the metadata columns {list(meta.columns)}")
    keep = np.ones(len(cells), dtype=bool)
    if donor is not None:
        keep &= meta["donor"].isin([donor] if isinstance(donor, str) else list(donor)).to_numpy()
    if drop_doublets:
        keep &= (meta[label_key].astype(str) != "Doublet").to_numpy()
    rna, adt, meta = rna[keep].copy(), adt[keep].copy(), meta[keep]
    for adata in (rna, adt):
        adata.obs = meta.copy()
        adata.obs["cell_type"] = categorical_labels(meta[label_key].to_numpy())
    return apply_paired_suffixes((rna, adt), paired_obs_suffix, ("-rna", "-adt"))


def _attach_labels(adata: ad.AnnData, labels: str | os.PathLike | pd.Series | None, column: str | None) -> None:
    if labels is None:
        return
    if not isinstance(labels, pd.Series):
        table = pd.read_csv(labels, sep=None, engine="python", index_col=0)
        labels = table[column] if column else table.iloc[:, 0]
    lookup = {str(name).replace("-", "."): value for name, value in labels.items()}
    adata.obs["cell_type"] = categorical_labels([lookup.get(n.replace("-", ".")) for n in adata.obs_names])


def stuart2019_bm_cite(
    labels: str | os.PathLike | pd.Series | None = None,
    label_column: str | None = None,
    paired_obs_suffix: bool | Sequence[str] = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[ad.AnnData, ad.AnnData]:
    """Stuart et al. 2019 bone-marrow CITE-seq (GEO GSE128639, ~30k cells, 25 antibodies): (RNA, ADT).

    GEO holds only the count tables, not cell-type labels. The labels used in the paper come from the
    Seurat ``bmcite`` object (``celltype.l2``); export them to a CSV/TSV (cell name, label) and pass it as
    ``labels`` (or pass a Series indexed by cell name). Cell names are matched with ``-`` and ``.`` treated
    alike. Without labels ``obs['cell_type']`` is absent.
    """
    paths = _fetch_all(["stuart2019_rna", "stuart2019_adt"], cache_dir, progress)
    rna = read_count_table(paths["stuart2019_rna"], sep="\t")
    adt = read_count_table(paths["stuart2019_adt"], sep="\t")
    cells = rna.obs_names.intersection(adt.obs_names)
    rna, adt = rna[cells].copy(), adt[cells].copy()
    for adata in (rna, adt):
        _attach_labels(adata, labels, label_column)
    return apply_paired_suffixes((rna, adt), paired_obs_suffix, ("-rna", "-adt"))


_LEVINE_META = (
    "Time",
    "Cell_length",
    "DNA1",
    "DNA2",
    "Viability",
    "file_number",
    "event_number",
    "label",
    "individual",
)


def levine2015_bm_cytof(
    path: str | os.PathLike | None = None,
    population_names: str | os.PathLike | None = None,
    drop_unassigned: bool = True,
    arcsinh_cofactor: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> ad.AnnData:
    """Levine et al. 2015 bone-marrow CyTOF, 32 surface markers (``Levine_32dim`` benchmark file).

    No direct download link is known (see the :data:`~scmodal_jax.data.download.REGISTRY` entry
    ``levine2015_32dim``): put ``Levine_32dim.fcs`` (or ``Levine_32dim.txt``) in the cache folder or pass
    ``path``. Non-marker columns (``Time``, ``Cell_length``, DNA, viability, file/event numbers, ``label``,
    ``individual``) go to ``obs``; the 32 markers form ``X``. ``obs['cell_type']`` holds the manual-gating
    population: its name when a ``population_names`` table (``label``, ``population``) is given or cached,
    else the label number.

    Args:
        drop_unassigned: drop the cells without a manual-gating label.
        arcsinh_cofactor: apply ``arcsinh(x / cofactor)`` to the markers (5 is usual for CyTOF); None keeps
            the values as stored (``Levine_32dim.fcs`` is already arcsinh-transformed).
    """
    if path is None:
        path = fetch("levine2015_32dim", cache_dir=cache_dir, progress=progress)
    path = Path(path)
    if path.suffix.lower() == ".fcs":
        adata = read_fcs(path)
    else:
        table = pd.read_csv(path, sep="\t")
        adata = ad.AnnData(X=table.to_numpy(dtype=np.float32), var=pd.DataFrame(index=table.columns.astype(str)))
        adata.obs_names = [str(i) for i in range(adata.n_obs)]
    meta_cols = [c for c in adata.var_names if c in _LEVINE_META]
    obs = pd.DataFrame(adata[:, meta_cols].X, columns=meta_cols, index=adata.obs_names)
    adata = adata[:, [c for c in adata.var_names if c not in _LEVINE_META]].copy()
    adata.obs = obs
    if arcsinh_cofactor is not None:
        adata.X = np.arcsinh(adata.X / arcsinh_cofactor).astype(np.float32)
    if population_names is None:
        cached = get_cache_dir(cache_dir) / REGISTRY["levine2015_population_names"].dataset
        candidate = cached / REGISTRY["levine2015_population_names"].filename
        population_names = candidate if candidate.is_file() else None
    if "label" in obs:
        labels = obs["label"]
        names: dict[float, str] = {}
        if population_names is not None:
            table = pd.read_csv(population_names, sep="\t")
            names = dict(zip(table.iloc[:, 0].astype(float), table.iloc[:, 1].astype(str), strict=False))
        adata.obs["cell_type"] = categorical_labels(
            [None if pd.isna(v) else names.get(float(v), str(int(v))) for v in labels]
        )
        if drop_unassigned:
            adata = adata[labels.notna().to_numpy()].copy()
    return adata


def teaseq_pbmc(
    paired_obs_suffix: bool | Sequence[str] = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[ad.AnnData, ad.AnnData, ad.AnnData]:
    """TEA-seq PBMC (Swanson et al. 2021, GEO GSE158013, well GSM4949911 full depth): (RNA, ATAC, ADT).

    RNA and ATAC peak counts come from the cellranger-arc HDF5 (split on ``feature_types``); ADT counts
    from the antibody count table (its ``total`` column is dropped; barcodes are matched to the HDF5 ones,
    adding the ``-1`` suffix when needed). Only cells present in both files are kept, in the same order.
    The raw files carry no cell-type labels (no ``obs['cell_type']``); the paper's labels came from a
    reference mapping. ``paired_obs_suffix=True`` appends ``-rna``/``-atac``/``-adt``.
    """
    paths = _fetch_all(["teaseq_h5", "teaseq_adt"], cache_dir, progress)
    arc = read_10x_h5(paths["teaseq_h5"])
    table = pd.read_csv(paths["teaseq_adt"], index_col=0)
    table = table.drop(columns=[c for c in table.columns if str(c).lower() == "total"])
    table = table.select_dtypes(include=[np.number])
    table.index = table.index.astype(str)
    if not table.index.isin(arc.obs_names).any():
        table.index = [f"{b}-1" for b in table.index]
    cells = arc.obs_names[arc.obs_names.isin(table.index)]
    arc = arc[cells].copy()
    types = arc.var.get("feature_types", pd.Series("Gene Expression", index=arc.var_names))
    rna = arc[:, (types == "Gene Expression").to_numpy()].copy()
    atac = arc[:, (types == "Peaks").to_numpy()].copy()
    adt = ad.AnnData(
        X=table.loc[cells].to_numpy(dtype=np.float32),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=table.columns.astype(str)),
    )
    return apply_paired_suffixes((rna, atac, adt), paired_obs_suffix, ("-rna", "-atac", "-adt"))


def mouse_brain_atac(cache_dir: str | os.PathLike | None = None, progress: bool = True) -> ad.AnnData:
    """10x scATAC-seq adult mouse brain (fresh, 5k nuclei): peak counts (cells x peaks, no labels).

    This is the ATAC file cited by the scMODAL mouse-brain tutorial; the paper converted it to gene
    activities with Signac before integration (not reproduced here).
    """
    return read_10x_h5(fetch("mouse_brain_atac_5k", cache_dir=cache_dir, progress=progress))


def mouse_brain_rna(
    label_key: str = "TaxonomyRank4", cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> ad.AnnData:
    """Zeisel et al. 2018 adolescent mouse nervous system scRNA-seq (mousebrain.org ``l5_all.loom``).

    Large download (several GB). All 1-D column attributes become obs columns; ``obs['cell_type']`` is
    ``label_key`` (e.g. ``TaxonomyRank4``, ``ClusterName``, ``Class``) when present.
    """
    adata = read_loom(fetch("mouse_brain_rna_zeisel2018", cache_dir=cache_dir, progress=progress))
    if label_key in adata.obs:
        adata.obs["cell_type"] = categorical_labels(adata.obs[label_key].to_numpy())
    return adata


def mouse_brain_multiome(
    paired_obs_suffix: bool | Sequence[str] = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[ad.AnnData, ad.AnnData]:
    """10x Multiome E18 mouse brain (fresh 5k): (RNA counts, ATAC peak counts), paired, no labels."""
    arc = read_10x_h5(fetch("mouse_brain_multiome_e18", cache_dir=cache_dir, progress=progress))
    types = arc.var["feature_types"]
    rna = arc[:, (types == "Gene Expression").to_numpy()].copy()
    atac = arc[:, (types == "Peaks").to_numpy()].copy()
    return apply_paired_suffixes((rna, atac), paired_obs_suffix, ("-rna", "-atac"))


#: The 46 CODEX markers of the MaxFuse tonsil table (the other columns are metadata).
TONSIL_CODEX_MARKERS = (
    "CD38", "CD19", "CD31", "Vimentin", "CD22", "Ki67", "CD8", "CD90", "CD123", "CD15", "CD3", "CD152", "CD21",
    "cytokeratin", "CD2", "CD66", "collagen IV", "CD81", "HLA-DR", "CD57", "CD4", "CD7", "CD278", "podoplanin",
    "CD45RA", "CD34", "CD54", "CD9", "IGM", "CD117", "CD56", "CD279", "CD45", "CD49f", "CD5", "CD16", "CD63",
    "CD11b", "CD1c", "CD40", "CD274", "CD27", "CD104", "CD273", "FAPalpha", "Ecadherin",
)  # fmt: skip

_TONSIL_FILES = ("tonsil_codex.csv", "tonsil_rna_counts.txt", "tonsil_rna_names.csv", "tonsil_rna_meta.csv")


def _extract_tonsil(zip_path: Path) -> dict[str, Path]:
    target = zip_path.parent / "tonsil"
    paths = {name: target / name for name in _TONSIL_FILES}
    if all(p.is_file() for p in paths.values()):
        return paths
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        members = {Path(m).name: m for m in zf.namelist() if "tonsil" in m and Path(m).name in _TONSIL_FILES}
        missing = set(_TONSIL_FILES) - set(members)
        if missing:
            raise FileNotFoundError(f"{zip_path} lacks {sorted(missing)}")
        for name, member in members.items():
            tmp = paths[name].with_name(name + ".part")
            with zf.open(member) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
            os.replace(tmp, paths[name])
    return paths


def tonsil_codex_rna(
    cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> tuple[ad.AnnData, ad.AnnData]:
    """Human tonsil CODEX (Kennedy-Darling et al. 2021, ~178k cells, 46 markers) and tonsil scRNA-seq
    (King et al. 2021, ~10k cells), from the MaxFuse tutorial archive: (codex, rna).

    CODEX: ``X`` = marker intensities, ``obsm['spatial']`` = ``centroid_x, centroid_y``, other table
    columns in ``obs`` and ``obs['cell_type']`` = ``cluster.term``. RNA: counts (CSR), ``obs['cell_type']``
    = ``cluster.info`` of the metadata table. The scMODAL tonsil tutorial additionally used a tonsil
    scATAC-seq set (Zenodo 11355186) that is not covered here.
    """
    paths = _extract_tonsil(fetch("tonsil_maxfuse_zip", cache_dir=cache_dir, progress=progress))
    table = pd.read_csv(paths["tonsil_codex.csv"])
    markers = [m for m in TONSIL_CODEX_MARKERS if m in table.columns]
    if not markers:
        skip = {"centroid_x", "centroid_y", "cluster.term", "cluster.sr"}
        markers = [c for c in table.select_dtypes(include=[np.number]).columns if c not in skip]
    obs = table.drop(columns=markers)
    obs.index = pd.Index([f"codex_{i}" for i in range(len(table))])
    codex = ad.AnnData(X=table[markers].to_numpy(dtype=np.float32), obs=obs, var=pd.DataFrame(index=markers))
    if {"centroid_x", "centroid_y"} <= set(table.columns):
        codex.obsm["spatial"] = table[["centroid_x", "centroid_y"]].to_numpy(dtype=np.float32)
    if "cluster.term" in table:
        codex.obs["cell_type"] = categorical_labels(table["cluster.term"].to_numpy())

    counts = sp.csr_matrix(scipy.io.mmread(paths["tonsil_rna_counts.txt"]), dtype=np.float32)
    names = pd.read_csv(paths["tonsil_rna_names.csv"])
    genes = (names["names"] if "names" in names else names.iloc[:, -1]).astype(str).to_numpy()
    if counts.shape[1] != len(genes) and counts.shape[0] == len(genes):
        counts = counts.T.tocsr()
    meta = pd.read_csv(paths["tonsil_rna_meta.csv"])
    if len(meta.columns) and str(meta.columns[0]).startswith("Unnamed"):  # row names written by R / pandas
        meta = meta.set_index(meta.columns[0])
        meta.index = pd.Index(meta.index.astype(str))
    else:
        meta.index = pd.Index([f"rna_{i}" for i in range(len(meta))])
    meta.index.name = None
    if len(meta) != counts.shape[0]:
        raise ValueError(f"tonsil RNA metadata has {len(meta)} rows for {counts.shape[0]} cells")
    rna = ad.AnnData(X=counts, obs=meta, var=pd.DataFrame(index=unique_names(genes)))
    if "cluster.info" in meta:
        rna.obs["cell_type"] = categorical_labels(meta["cluster.info"].to_numpy())
    return codex, rna
