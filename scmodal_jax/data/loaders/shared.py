"""Loaders of the small real data files kept in the shared data folder beside the project.

:func:`bmmc_cite`, :func:`pbmc5k_cite`, :func:`pbmc_cytof`, :func:`pbmc_adt`, :func:`bmmc_multiome` and the
two annotation tables (:func:`hg38_gene_annotation`, :func:`protein_gene_conversion`) read small public
single-cell files that sit *beside* the project in a shared data folder (never copied into the repository);
:func:`get_data_dir` finds the folder. The loaders return AnnData objects with cell labels in
``obs['cell_type']``. Their sources and licences are listed in :mod:`scmodal_jax.data.registry`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._obs import apply_paired_suffixes, apply_suffix, clean_obs_index

__all__ = [
    "DATA_DIR_ENV",
    "SHARED_FILES",
    "get_data_dir",
    "shared_data_available",
    "bmmc_cite",
    "pbmc5k_cite",
    "pbmc_cytof",
    "pbmc_adt",
    "bmmc_multiome",
    "hg38_gene_annotation",
    "protein_gene_conversion",
]

DATA_DIR_ENV = "SCMODAL_DATA_DIR"

# ----------------------------------------------------------------------------------------------------------
# Shared data folder
# ----------------------------------------------------------------------------------------------------------

#: File of the shared data folder behind each loader (the multiome loader reads two).
SHARED_FILES = {
    "bmmc_cite": "bmmc_cite_starter_600c_1000g_134adt.h5ad",
    "pbmc5k_cite": "pbmc5k_cite_4000g_29adt_labeled.h5ad",
    "pbmc_cytof": "cytof_pbmc_mario_4606c_30markers.h5ad",
    "pbmc_adt": "cite_adt_pbmc5k_mario_5107c_29adt.h5ad",
    "bmmc_multiome_rna": "bmmc_multiome_starter_500c_rna600g.h5ad",
    "bmmc_multiome_atac": "bmmc_multiome_starter_500c_atac600peaks.h5ad",
    "hg38_genes": "hg38_genes_gencode.tsv.gz",
    "protein_gene_conversion": "maxfuse_protein_gene_conversion.csv",
}


def _default_data_dir() -> Path:
    package = Path(__file__).resolve().parents[2]  # .../scmodal_jax
    return package.parents[1] / "shared" / "data"


def get_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Locate the shared folder of small real data files.

    Resolution order: the explicit ``data_dir`` argument (e.g. a config key ``data_dir``), else the
    ``SCMODAL_DATA_DIR`` environment variable, else ``<project root>/../shared/data`` (computed from the
    installed package: ``Path(scmodal_jax.__file__).parents[2] / "shared" / "data"``).

    Raises:
        FileNotFoundError: the resolved folder does not exist; the message names the path and the
            environment variable.
    """
    if data_dir is not None:
        path, source = Path(data_dir).expanduser(), "the data_dir argument"
    elif os.environ.get(DATA_DIR_ENV):
        path, source = Path(os.environ[DATA_DIR_ENV]).expanduser(), f"${DATA_DIR_ENV}"
    else:
        path, source = _default_data_dir(), "the default location next to the project"
    if not path.is_dir():
        raise FileNotFoundError(
            f"Shared data folder not found: {path} (from {source}). Set the {DATA_DIR_ENV} environment "
            f"variable or pass data_dir= to point at the folder holding the small .h5ad files."
        )
    return path


def shared_data_available(data_dir: str | os.PathLike | None = None) -> bool:
    """Return True when the shared data folder can be found (useful for ``pytest.skipif``)."""
    try:
        get_data_dir(data_dir)
    except FileNotFoundError:
        return False
    return True


def _shared_path(key: str, data_dir: str | os.PathLike | None) -> Path:
    folder = get_data_dir(data_dir)
    path = folder / SHARED_FILES[key]
    if not path.is_file():
        raise FileNotFoundError(f"Expected file {path} is missing from the shared data folder {folder}.")
    return path


def _split_protein(adata: ad.AnnData, key: str = "protein_counts") -> tuple[ad.AnnData, ad.AnnData]:
    """Turn a CITE-seq AnnData (RNA in X, ADT DataFrame in obsm[key]) into (rna, protein)."""
    adata = clean_obs_index(adata)
    df = adata.obsm[key]
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"obsm['{key}'] should be a DataFrame of protein counts, got {type(df).__name__}")
    protein = ad.AnnData(
        X=np.asarray(df.to_numpy(), dtype=np.float32),
        obs=adata.obs.copy(),
        var=pd.DataFrame(index=pd.Index(df.columns.astype(str))),
    )
    protein.obs_names = adata.obs_names
    del adata.obsm[key]
    return adata, protein


def bmmc_cite(
    data_dir: str | os.PathLike | None = None, paired_obs_suffix: bool | Sequence[str] = False
) -> tuple[ad.AnnData, ad.AnnData]:
    """NeurIPS 2021 bone-marrow CITE-seq starter subset (600 cells): (RNA counts, ADT counts).

    RNA: 1,000 genes (raw counts, CSR float32) with ``var['gene_ids']``; protein: 134 ADT counts built from
    the file's ``obsm['protein_counts']``. Both carry ``obs['cell_type']`` (41 types) and ``obs['batch']``.

    Args:
        data_dir: shared data folder (see :func:`get_data_dir`).
        paired_obs_suffix: the two modalities are paired, so by default they share obs_names (pairing by
            name). ``True`` appends ``"-rna"``/``"-adt"`` (or pass your own two suffixes) so obs_names stay
            distinct when the objects are concatenated; the original name is then kept in ``obs['barcode']``.
    """
    rna, protein = _split_protein(ad.read_h5ad(_shared_path("bmmc_cite", data_dir)))
    return apply_paired_suffixes((rna, protein), paired_obs_suffix, ("-rna", "-adt"))


def pbmc5k_cite(
    data_dir: str | os.PathLike | None = None, paired_obs_suffix: bool | Sequence[str] = False
) -> tuple[ad.AnnData, ad.AnnData]:
    """10x Genomics 5k PBMC CITE-seq (3,920 labelled cells): (RNA counts, ADT counts).

    RNA: 4,000 genes (counts); protein: 29 ADT counts from ``obsm['protein_counts']``; ``obs['cell_type']``
    has 7 types. ``paired_obs_suffix`` works as in :func:`bmmc_cite`.
    """
    rna, protein = _split_protein(ad.read_h5ad(_shared_path("pbmc5k_cite", data_dir)))
    return apply_paired_suffixes((rna, protein), paired_obs_suffix, ("-rna", "-adt"))


def pbmc_cytof(data_dir: str | os.PathLike | None = None, obs_suffix: str | None = None) -> ad.AnnData:
    """PBMC mass cytometry (4,606 cells x 30 markers, ``obs['cell_type']``).

    The subset was chosen by an earlier matching study and is biased toward cells that match the ADT file
    (:func:`pbmc_adt`; 16 shared markers). ``obs_suffix`` is appended to obs_names when given (original name
    kept in ``obs['barcode']``).
    """
    return apply_suffix(clean_obs_index(ad.read_h5ad(_shared_path("pbmc_cytof", data_dir))), obs_suffix)


def pbmc_adt(data_dir: str | os.PathLike | None = None, obs_suffix: str | None = None) -> ad.AnnData:
    """10x 5k PBMC ADT counts (5,107 cells x 29 proteins, ``obs['cell_type']``); unpaired with
    :func:`pbmc_cytof`. ``obs_suffix`` as in :func:`pbmc_cytof`.
    """
    return apply_suffix(clean_obs_index(ad.read_h5ad(_shared_path("pbmc_adt", data_dir))), obs_suffix)


def bmmc_multiome(
    data_dir: str | os.PathLike | None = None, paired_obs_suffix: bool | Sequence[str] = False
) -> tuple[ad.AnnData, ad.AnnData]:
    """NeurIPS 2021 bone-marrow multiome starter subset (500 cells): (RNA counts, ATAC peak counts).

    600 genes and 600 peaks named ``chrN-start-end`` (hg38), ``obs['cell_type']`` (21 types). The cells are
    paired; ``paired_obs_suffix=True`` appends ``"-rna"``/``"-atac"`` (see :func:`bmmc_cite`).
    """
    rna = clean_obs_index(ad.read_h5ad(_shared_path("bmmc_multiome_rna", data_dir)))
    atac = clean_obs_index(ad.read_h5ad(_shared_path("bmmc_multiome_atac", data_dir)))
    return apply_paired_suffixes((rna, atac), paired_obs_suffix, ("-rna", "-atac"))


def hg38_gene_annotation(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """GENCODE hg38 gene table: ``gene_name, chrom, start, end`` (1-based), ``strand, gene_type``."""
    return pd.read_csv(_shared_path("hg38_genes", data_dir), sep="\t")


def protein_gene_conversion(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Protein-to-gene table (``Protein name``, ``RNA name``; ``A/B`` = several genes, ``Ignore`` = skip)."""
    return pd.read_csv(_shared_path("protein_gene_conversion", data_dir))
