"""Dataset loaders and the dataset index.

Two families of loaders are reachable from here:

* **Shared small files** (:func:`bmmc_cite`, :func:`pbmc5k_cite`, :func:`pbmc_cytof`, :func:`pbmc_adt`,
  :func:`bmmc_multiome`, plus the two annotation tables), defined in this module: small real single-cell
  files kept *beside* the project in a shared data folder (never copied into the repository). The folder is
  found by :func:`get_data_dir`.
* **Public datasets of the scMODAL paper** (:func:`hao2021_pbmc_cite`, :func:`stuart2019_bm_cite`,
  :func:`levine2015_bm_cytof`, :func:`teaseq_pbmc`, :func:`mouse_brain_atac`, :func:`mouse_brain_rna`,
  :func:`mouse_brain_multiome`, :func:`tonsil_codex_rna`), defined in :mod:`scmodal_jax.data.paper`: files
  are downloaded on first use by :func:`fetch` into a cache folder (:func:`get_cache_dir`) and parsed into
  :class:`anndata.AnnData`.

The download registry and :func:`fetch` live in :mod:`scmodal_jax.data.download` (see its docstring for the
state of the registry: no entry is verified yet), the file parsers (:func:`read_10x_h5`, :func:`read_10x_mtx`,
:func:`read_count_table`, :func:`read_fcs`, :func:`read_loom`) in :mod:`scmodal_jax.data.readers`. Their
public names are re-exported here, so ``from scmodal_jax.data.datasets import fetch, REGISTRY, teaseq_pbmc``
keeps working. :data:`DATASETS` / :func:`load_dataset` index the loaders of both families by name.

Every loader returns AnnData objects with cell labels in ``obs['cell_type']`` where the source provides
labels (the raw TEA-seq and GSE128639 files carry none; see each docstring).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .download import (
    CACHE_DIR_ENV,
    REGISTRY,
    ChecksumError,
    DownloadError,
    RemoteFile,
    fetch,
    get_cache_dir,
    sha256sum,
)
from .paper import (
    TONSIL_CODEX_MARKERS,
    hao2021_pbmc_cite,
    levine2015_bm_cytof,
    mouse_brain_atac,
    mouse_brain_multiome,
    mouse_brain_rna,
    stuart2019_bm_cite,
    teaseq_pbmc,
    tonsil_codex_rna,
)
from .readers import _apply_suffix, _suffixes, read_10x_h5, read_10x_mtx, read_count_table, read_fcs, read_loom

__all__ = [
    "DATA_DIR_ENV",
    "CACHE_DIR_ENV",
    "REGISTRY",
    "DATASETS",
    "RemoteFile",
    "DownloadError",
    "ChecksumError",
    "get_data_dir",
    "shared_data_available",
    "get_cache_dir",
    "fetch",
    "sha256sum",
    "list_datasets",
    "load_dataset",
    # shared small files
    "bmmc_cite",
    "pbmc5k_cite",
    "pbmc_cytof",
    "pbmc_adt",
    "bmmc_multiome",
    "hg38_gene_annotation",
    "protein_gene_conversion",
    # parsers
    "read_10x_h5",
    "read_10x_mtx",
    "read_count_table",
    "read_fcs",
    "read_loom",
    # paper datasets
    "hao2021_pbmc_cite",
    "stuart2019_bm_cite",
    "levine2015_bm_cytof",
    "teaseq_pbmc",
    "mouse_brain_atac",
    "mouse_brain_rna",
    "mouse_brain_multiome",
    "tonsil_codex_rna",
    "TONSIL_CODEX_MARKERS",
]

DATA_DIR_ENV = "SCMODAL_DATA_DIR"

# ----------------------------------------------------------------------------------------------------------
# Shared data folder
# ----------------------------------------------------------------------------------------------------------

_SHARED_FILES = {
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
    import scmodal_jax

    return Path(scmodal_jax.__file__).resolve().parents[2] / "shared" / "data"


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
    path = folder / _SHARED_FILES[key]
    if not path.is_file():
        raise FileNotFoundError(f"Expected file {path} is missing from the shared data folder {folder}.")
    return path


def _clean_obs_index(adata: ad.AnnData) -> ad.AnnData:
    adata.obs.index.name = None
    adata.obs_names = adata.obs_names.astype(str)
    return adata


def _split_protein(adata: ad.AnnData, key: str = "protein_counts") -> tuple[ad.AnnData, ad.AnnData]:
    """Turn a CITE-seq AnnData (RNA in X, ADT DataFrame in obsm[key]) into (rna, protein)."""
    adata = _clean_obs_index(adata)
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
    suffixes = _suffixes(paired_obs_suffix, ("-rna", "-adt")) or (None, None)
    return _apply_suffix(rna, suffixes[0]), _apply_suffix(protein, suffixes[1])


def pbmc5k_cite(
    data_dir: str | os.PathLike | None = None, paired_obs_suffix: bool | Sequence[str] = False
) -> tuple[ad.AnnData, ad.AnnData]:
    """10x Genomics 5k PBMC CITE-seq (3,920 labelled cells): (RNA counts, ADT counts).

    RNA: 4,000 genes (counts); protein: 29 ADT counts from ``obsm['protein_counts']``; ``obs['cell_type']``
    has 7 types. ``paired_obs_suffix`` works as in :func:`bmmc_cite`.
    """
    rna, protein = _split_protein(ad.read_h5ad(_shared_path("pbmc5k_cite", data_dir)))
    suffixes = _suffixes(paired_obs_suffix, ("-rna", "-adt")) or (None, None)
    return _apply_suffix(rna, suffixes[0]), _apply_suffix(protein, suffixes[1])


def pbmc_cytof(data_dir: str | os.PathLike | None = None, obs_suffix: str | None = None) -> ad.AnnData:
    """PBMC mass cytometry (4,606 cells x 30 markers, ``obs['cell_type']``).

    The subset was chosen by an earlier matching study and is biased toward cells that match the ADT file
    (:func:`pbmc_adt`; 16 shared markers). ``obs_suffix`` is appended to obs_names when given (original name
    kept in ``obs['barcode']``).
    """
    return _apply_suffix(_clean_obs_index(ad.read_h5ad(_shared_path("pbmc_cytof", data_dir))), obs_suffix)


def pbmc_adt(data_dir: str | os.PathLike | None = None, obs_suffix: str | None = None) -> ad.AnnData:
    """10x 5k PBMC ADT counts (5,107 cells x 29 proteins, ``obs['cell_type']``); unpaired with
    :func:`pbmc_cytof`. ``obs_suffix`` as in :func:`pbmc_cytof`.
    """
    return _apply_suffix(_clean_obs_index(ad.read_h5ad(_shared_path("pbmc_adt", data_dir))), obs_suffix)


def bmmc_multiome(
    data_dir: str | os.PathLike | None = None, paired_obs_suffix: bool | Sequence[str] = False
) -> tuple[ad.AnnData, ad.AnnData]:
    """NeurIPS 2021 bone-marrow multiome starter subset (500 cells): (RNA counts, ATAC peak counts).

    600 genes and 600 peaks named ``chrN-start-end`` (hg38), ``obs['cell_type']`` (21 types). The cells are
    paired; ``paired_obs_suffix=True`` appends ``"-rna"``/``"-atac"`` (see :func:`bmmc_cite`).
    """
    rna = _clean_obs_index(ad.read_h5ad(_shared_path("bmmc_multiome_rna", data_dir)))
    atac = _clean_obs_index(ad.read_h5ad(_shared_path("bmmc_multiome_atac", data_dir)))
    suffixes = _suffixes(paired_obs_suffix, ("-rna", "-atac")) or (None, None)
    return _apply_suffix(rna, suffixes[0]), _apply_suffix(atac, suffixes[1])


def hg38_gene_annotation(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """GENCODE hg38 gene table: ``gene_name, chrom, start, end`` (1-based), ``strand, gene_type``."""
    return pd.read_csv(_shared_path("hg38_genes", data_dir), sep="\t")


def protein_gene_conversion(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Protein-to-gene table (``Protein name``, ``RNA name``; ``A/B`` = several genes, ``Ignore`` = skip)."""
    return pd.read_csv(_shared_path("protein_gene_conversion", data_dir))


# ----------------------------------------------------------------------------------------------------------
# Dataset index
# ----------------------------------------------------------------------------------------------------------

#: name -> loader, for :func:`load_dataset`.
DATASETS: dict[str, Callable[..., Any]] = {
    "bmmc_cite": bmmc_cite,
    "pbmc5k_cite": pbmc5k_cite,
    "pbmc_cytof": pbmc_cytof,
    "pbmc_adt": pbmc_adt,
    "bmmc_multiome": bmmc_multiome,
    "hao2021_pbmc_cite": hao2021_pbmc_cite,
    "stuart2019_bm_cite": stuart2019_bm_cite,
    "levine2015_bm_cytof": levine2015_bm_cytof,
    "teaseq_pbmc": teaseq_pbmc,
    "mouse_brain_atac": mouse_brain_atac,
    "mouse_brain_rna": mouse_brain_rna,
    "mouse_brain_multiome": mouse_brain_multiome,
    "tonsil_codex_rna": tonsil_codex_rna,
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(DATASETS)


def load_dataset(name: str, **kwargs: Any) -> Any:
    """Call the loader registered under ``name`` (see :data:`DATASETS`) with ``kwargs``."""
    if name not in DATASETS:
        raise KeyError(f"Unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)
