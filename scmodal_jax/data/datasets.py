"""Dataset loaders.

Two families of loaders live here:

* **Shared small files** (:func:`bmmc_cite`, :func:`pbmc5k_cite`, :func:`pbmc_cytof`, :func:`pbmc_adt`,
  :func:`bmmc_multiome`, plus the two annotation tables): small real single-cell files kept *beside* the
  project in a shared data folder (never copied into the repository). The folder is found by
  :func:`get_data_dir`.
* **Public datasets of the scMODAL paper** (:func:`hao2021_pbmc_cite`, :func:`stuart2019_bm_cite`,
  :func:`levine2015_bm_cytof`, :func:`teaseq_pbmc`, :func:`mouse_brain_atac`, :func:`mouse_brain_rna`,
  :func:`mouse_brain_multiome`, :func:`tonsil_codex_rna`): files are downloaded on first use by
  :func:`fetch` into a cache folder (:func:`get_cache_dir`) and parsed into :class:`anndata.AnnData`.

Honesty note on the download registry (:data:`REGISTRY`): the URLs were written from the public
accession pages (GEO, 10x Genomics, the MaxFuse data archive, FlowRepository) without network access, so
every entry has ``verified=False`` until someone downloads it and pins its size and sha256. No sha256 or
size is known for any entry yet: they are ``None`` and :func:`fetch` then cannot check integrity (it logs a
warning and records the sha256 it computed next to the file, see :func:`sha256sum`). Pin the values with
``fetch(name, sha256=..., size=...)`` or by editing the registry once they are known.

Every loader returns AnnData objects with cell labels in ``obs['cell_type']`` where the source provides
labels (the raw TEA-seq and GSE128639 files carry none; see each docstring).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from tqdm.auto import tqdm

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
]

log = logging.getLogger(__name__)

DATA_DIR_ENV = "SCMODAL_DATA_DIR"
CACHE_DIR_ENV = "SCMODAL_CACHE_DIR"
_DEFAULT_CACHE = Path("~/.cache/scmodal_jax")
_CHUNK = 1 << 20

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


def _suffixes(paired_obs_suffix: bool | Sequence[str], default: Sequence[str]) -> tuple[str, ...] | None:
    if paired_obs_suffix is False or paired_obs_suffix is None:
        return None
    if paired_obs_suffix is True:
        return tuple(default)
    suffixes = tuple(paired_obs_suffix)
    if len(suffixes) != len(default) or len(set(suffixes)) != len(suffixes):
        raise ValueError(f"paired_obs_suffix needs {len(default)} distinct strings, got {paired_obs_suffix!r}")
    return suffixes


def _apply_suffix(adata: ad.AnnData, suffix: str | None) -> ad.AnnData:
    """Append ``suffix`` to obs_names, keeping the original name in ``obs['barcode']``."""
    if suffix:
        adata.obs["barcode"] = adata.obs_names.to_numpy()
        adata.obs_names = [f"{name}{suffix}" for name in adata.obs_names]
    return adata


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
# Download registry and fetch
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    Attributes:
        url: direct download URL, or None when no direct link is known (manual download only).
        filename: name of the file in the cache.
        dataset: cache sub-folder (one per dataset).
        sha256: expected hex digest, or None when unknown.
        size: expected size in bytes, or None when unknown.
        landing_page: human-readable page describing the data.
        note: provenance / caveats.
        verified: True once the URL, size and sha256 were checked against a real download.
    """

    url: str | None
    filename: str
    dataset: str
    sha256: str | None = None
    size: int | None = None
    landing_page: str | None = None
    note: str = ""
    verified: bool = False


_GEO = "https://ftp.ncbi.nlm.nih.gov/geo"
_HAO = "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE164378"
_STUART = "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE128639"
_TEA = "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE158013"
_TEA_PREFIX = "GSM4949911_X061-AP0C1W1_leukopak_perm-cells_tea_fulldepth"


def _geo_sample(gsm: str, filename: str) -> str:
    return f"{_GEO}/samples/{gsm[:-3]}nnn/{gsm}/suppl/{filename}"


def _hao(gsm: str, sample: str, part: str) -> RemoteFile:
    name = f"{gsm}_{sample}-{part}"
    return RemoteFile(_geo_sample(gsm, name), name, "hao2021_pbmc_cite", landing_page=_HAO)


#: Registry of downloadable files: name -> :class:`RemoteFile`. No entry is verified (see module docstring).
REGISTRY: dict[str, RemoteFile] = {
    # Hao et al. 2021 (Cell), PBMC CITE-seq, 3' arm: GEO GSE164378, samples GSM5008737 (RNA) / GSM5008738 (ADT).
    "hao2021_rna_matrix": _hao("GSM5008737", "RNA_3P", "matrix.mtx.gz"),
    "hao2021_rna_features": _hao("GSM5008737", "RNA_3P", "features.tsv.gz"),
    "hao2021_rna_barcodes": _hao("GSM5008737", "RNA_3P", "barcodes.tsv.gz"),
    "hao2021_adt_matrix": _hao("GSM5008738", "ADT_3P", "matrix.mtx.gz"),
    "hao2021_adt_features": _hao("GSM5008738", "ADT_3P", "features.tsv.gz"),
    "hao2021_adt_barcodes": _hao("GSM5008738", "ADT_3P", "barcodes.tsv.gz"),
    "hao2021_metadata": RemoteFile(
        f"{_GEO}/series/GSE164nnn/GSE164378/suppl/GSE164378_sc.meta.data_3P.csv.gz",
        "GSE164378_sc.meta.data_3P.csv.gz",
        "hao2021_pbmc_cite",
        landing_page=_HAO,
        note="cell metadata: celltype.l1/l2/l3, donor, time, ...",
    ),
    # Stuart et al. 2019 (Cell), bone-marrow CITE-seq: GEO GSE128639.
    "stuart2019_rna": RemoteFile(
        _geo_sample("GSM3681518", "GSM3681518_MNC_RNA_counts.tsv.gz"),
        "GSM3681518_MNC_RNA_counts.tsv.gz",
        "stuart2019_bm_cite",
        landing_page=_STUART,
        note="dense genes x cells table; no cell-type labels on GEO",
    ),
    "stuart2019_adt": RemoteFile(
        _geo_sample("GSM3681519", "GSM3681519_MNC_ADT_counts.tsv.gz"),
        "GSM3681519_MNC_ADT_counts.tsv.gz",
        "stuart2019_bm_cite",
        landing_page=_STUART,
        note="dense ADT x cells table (25 antibodies)",
    ),
    # Levine et al. 2015 (Cell) 32-marker bone-marrow CyTOF, as prepared by Weber & Robinson 2016.
    "levine2015_32dim": RemoteFile(
        None,
        "Levine_32dim.fcs",
        "levine2015_bm_cytof",
        landing_page="https://flowrepository.org/id/FR-FCM-ZZPH",
        note=(
            "No direct link known: download Levine_32dim.fcs (or Levine_32dim.txt) from FlowRepository "
            "FR-FCM-ZZPH (prepared by https://github.com/lmweber/benchmark-data-Levine-32-dim; original "
            "data on Cytobank experiment 46102)."
        ),
    ),
    "levine2015_population_names": RemoteFile(
        None,
        "population_names_Levine_32dim.txt",
        "levine2015_bm_cytof",
        landing_page="https://flowrepository.org/id/FR-FCM-ZZPH",
        note="optional: tab-separated label -> population table shipped with Levine_32dim.fcs",
    ),
    # Swanson et al. 2021 (eLife) TEA-seq, GEO GSE158013, full-depth well GSM4949911.
    "teaseq_h5": RemoteFile(
        _geo_sample("GSM4949911", f"{_TEA_PREFIX}_cellranger-arc_filtered_feature_bc_matrix.h5"),
        f"{_TEA_PREFIX}_cellranger-arc_filtered_feature_bc_matrix.h5",
        "teaseq_pbmc",
        landing_page=_TEA,
        note="cellranger-arc output: Gene Expression + Peaks",
    ),
    "teaseq_adt": RemoteFile(
        _geo_sample("GSM4949911", f"{_TEA_PREFIX}_adt_counts.csv.gz"),
        f"{_TEA_PREFIX}_adt_counts.csv.gz",
        "teaseq_pbmc",
        landing_page=_TEA,
        note="cells x antibodies (+ 'total') count table",
    ),
    # 10x Genomics mouse brain (the scMODAL mouse-brain tutorial cites the scATAC file below).
    "mouse_brain_atac_5k": RemoteFile(
        "https://cf.10xgenomics.com/samples/cell-atac/1.1.0/atac_v1_adult_brain_fresh_5k/"
        "atac_v1_adult_brain_fresh_5k_filtered_peak_bc_matrix.h5",
        "atac_v1_adult_brain_fresh_5k_filtered_peak_bc_matrix.h5",
        "mouse_brain",
        landing_page="https://www.10xgenomics.com/datasets/fresh-cortex-from-adult-mouse-brain-p-50-1-standard-1-1-0",
        note="10x scATAC v1, adult mouse brain fresh 5k, filtered peak-barcode matrix",
    ),
    "mouse_brain_rna_zeisel2018": RemoteFile(
        "https://storage.googleapis.com/linnarsson-lab-loom/l5_all.loom",
        "l5_all.loom",
        "mouse_brain",
        landing_page="http://mousebrain.org/adolescent/downloads.html",
        note="Zeisel et al. 2018 adolescent mouse nervous system, loom (large: several GB)",
    ),
    "mouse_brain_multiome_e18": RemoteFile(
        "https://cf.10xgenomics.com/samples/cell-arc/2.0.0/e18_mouse_brain_fresh_5k/"
        "e18_mouse_brain_fresh_5k_filtered_feature_bc_matrix.h5",
        "e18_mouse_brain_fresh_5k_filtered_feature_bc_matrix.h5",
        "mouse_brain",
        landing_page="https://www.10xgenomics.com/datasets/fresh-embryonic-e-18-mouse-brain-5-k-1-standard-2-0-0",
        note="10x Multiome (RNA + ATAC), E18 mouse brain fresh 5k",
    ),
    # Tonsil CODEX (Kennedy-Darling et al. 2021) + tonsil scRNA-seq (King et al. 2021), as packaged by MaxFuse.
    "tonsil_maxfuse_zip": RemoteFile(
        "http://stat.wharton.upenn.edu/~zongming/maxfuse/data.zip",
        "maxfuse_data.zip",
        "tonsil_maxfuse",
        landing_page="https://github.com/shuxiaoc/maxfuse",
        note=(
            "MaxFuse tutorial archive; holds tonsil/tonsil_codex.csv, tonsil_rna_counts.txt, "
            "tonsil_rna_names.csv, tonsil_rna_meta.csv (raw sources: Dryad CODEX data, GEO GSE165860)"
        ),
    ),
}


class DownloadError(ConnectionError):
    """A file could not be downloaded (offline, unreachable URL, or no direct URL known)."""


class ChecksumError(ValueError):
    """A downloaded or cached file does not have the expected size or sha256."""


def get_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Download cache folder: ``cache_dir`` argument, else ``$SCMODAL_CACHE_DIR``, else ``~/.cache/scmodal_jax``."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_DIR_ENV) or _DEFAULT_CACHE
    return Path(cache_dir).expanduser()


def sha256sum(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _resolve(name_or_url: str, filename: str | None) -> tuple[str, RemoteFile]:
    if name_or_url in REGISTRY:
        entry = REGISTRY[name_or_url]
        return name_or_url, replace(entry, filename=filename) if filename else entry
    if "://" in name_or_url:
        parsed = urllib.parse.urlparse(name_or_url)
        base = filename or Path(urllib.parse.unquote(parsed.path)).name or "download"
        tag = hashlib.sha1(name_or_url.encode()).hexdigest()[:10]
        return name_or_url, RemoteFile(name_or_url, base, f"urls/{tag}")
    raise ValueError(f"{name_or_url!r} is neither a registered file ({', '.join(sorted(REGISTRY))}) nor a URL")


def _manual_hint(entry: RemoteFile, dest: Path) -> str:
    lines = []
    if entry.url:
        lines.append(f"Download it on a machine with internet access, e.g.  curl -L -o '{dest.name}' '{entry.url}'")
    elif entry.landing_page:
        lines.append(f"No direct download link is known; get '{dest.name}' from {entry.landing_page}")
    if entry.note:
        lines.append(f"Note: {entry.note}")
    lines.append(f"and place it at:\n    {dest}")
    lines.append(f"(cache folder: the cache_dir argument or the {CACHE_DIR_ENV} environment variable).")
    return "\n".join(lines)


def _check_cached(dest: Path, sha256: str | None, size: int | None) -> None:
    actual = dest.stat().st_size
    if size is not None and actual != size:
        raise ChecksumError(f"Cached file {dest} has {actual} bytes, expected {size}. Delete it to download it again.")
    if sha256 is None:
        return
    side = _sidecar(dest)
    if side.is_file() and side.stat().st_mtime >= dest.stat().st_mtime:
        recorded = side.read_text().strip()
        if recorded == sha256.lower():
            return
    digest = sha256sum(dest)
    if digest != sha256.lower():
        raise ChecksumError(
            f"Cached file {dest} has sha256 {digest}, expected {sha256}. Delete it to download it again."
        )
    side.write_text(digest + "\n")


def fetch(
    name_or_url: str,
    cache_dir: str | os.PathLike | None = None,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    *,
    filename: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download a registered file (or any URL, ``file://`` included) into the cache and return its path.

    The file lands at ``<cache>/<dataset>/<filename>`` for registry names and at
    ``<cache>/urls/<hash of the URL>/<basename>`` for plain URLs. A file already in the cache is not
    downloaded again (its size, and its sha256 when one is expected, are still checked). Downloads stream
    into ``<file>.part`` with a tqdm progress bar and are renamed into place only after the size and sha256
    checks pass; a failed or interrupted download leaves no ``.part`` file behind. The computed sha256 is
    written next to the file as ``<file>.sha256``.

    Args:
        name_or_url: a key of :data:`REGISTRY` or a URL.
        cache_dir: cache folder (default :func:`get_cache_dir`).
        sha256: expected hex digest; overrides the registry value. None = not checked.
        size: expected size in bytes; overrides the registry value. None = not checked.
        progress: show a tqdm progress bar.
        filename: override the cached file name.
        timeout: socket timeout in seconds.

    Raises:
        DownloadError: the URL cannot be reached (e.g. offline) or no direct URL is known; the message gives
            the URL and the exact path where the file can be placed by hand.
        ChecksumError: size or sha256 mismatch (the bad download is deleted).
    """
    key, entry = _resolve(name_or_url, filename)
    sha256 = sha256 or entry.sha256
    sha256 = sha256.lower() if sha256 else None
    size = size if size is not None else entry.size
    dest = get_cache_dir(cache_dir) / entry.dataset / entry.filename
    if dest.is_file():
        _check_cached(dest, sha256, size)
        return dest
    if entry.url is None:
        raise DownloadError(f"'{key}' is not in the cache.\n" + _manual_hint(entry, dest))
    if sha256 is None and size is None:
        log.warning("No sha256 or size known for %s: the download cannot be verified.", key)

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    written = 0
    try:
        request = urllib.request.Request(entry.url, headers={"User-Agent": "scmodal_jax"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise DownloadError(
                f"Could not download '{key}' from {entry.url}: {reason}.\n"
                "If this machine is offline or the URL moved, fetch the file yourself.\n" + _manual_hint(entry, dest)
            ) from err
        with response, open(part, "wb") as out:
            length = response.headers.get("Content-Length") if response.headers else None
            total = int(length) if length and length.isdigit() else size
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.filename, disable=not progress
            ) as bar:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except OSError as err:
                        raise DownloadError(
                            f"Download of '{key}' from {entry.url} was interrupted: {err}.\n"
                            + _manual_hint(entry, dest)
                        ) from err
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    written += len(block)
                    bar.update(len(block))
        if size is not None and written != size:
            raise ChecksumError(f"Download of '{key}' from {entry.url} has {written} bytes, expected {size}.")
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise ChecksumError(f"Download of '{key}' from {entry.url} has sha256 {actual}, expected {sha256}.")
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _sidecar(dest).write_text(actual + "\n")
    return dest


# ----------------------------------------------------------------------------------------------------------
# Parsers
# ----------------------------------------------------------------------------------------------------------


def _decode(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8").astype(object)
    if arr.dtype.kind == "O":
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr], dtype=object)
    return arr.astype(str).astype(object)


def _unique(names: Any) -> pd.Index:
    """String index with repeated names suffixed ``-1``, ``-2``, ... (as ``var_names_make_unique``)."""
    index = pd.Index([str(n) for n in names], dtype=object)
    return ad.utils.make_index_unique(index) if not index.is_unique else index


def read_10x_h5(path: str | os.PathLike, genome: str | None = None) -> ad.AnnData:
    """Read a 10x Genomics HDF5 matrix (Cell Ranger >= 3 / ARC / ATAC ``matrix`` group, or the legacy
    Cell Ranger 2 per-genome layout) with h5py.

    Returns cells x features CSR float32 counts; ``var`` has ``gene_ids``, ``feature_types`` and ``genome``
    when present. Feature names are made unique (anndata's ``var_names_make_unique``).
    """
    with h5py.File(path, "r") as f:
        if "matrix" in f:
            grp = f["matrix"]
            feats = grp["features"]
            names = _decode(feats["name"][()])
            var = pd.DataFrame({"gene_ids": _decode(feats["id"][()])})
            for col, key in (("feature_types", "feature_type"), ("genome", "genome")):
                if key in feats:
                    var[col] = _decode(feats[key][()])
        else:
            groups = [k for k in f if isinstance(f[k], h5py.Group)]
            if not groups:
                raise ValueError(f"{path} is not a 10x HDF5 matrix (no 'matrix' or genome group)")
            if genome is None and len(groups) > 1:
                raise ValueError(f"{path} holds several genomes {groups}; pass genome=")
            grp = f[genome or groups[0]]
            names = _decode(grp["gene_names"][()])
            var = pd.DataFrame({"gene_ids": _decode(grp["genes"][()]), "genome": genome or groups[0]})
        n_features, n_cells = (int(v) for v in grp["shape"][()])
        # CSC features x cells == CSR cells x features
        X = sp.csr_matrix(
            (grp["data"][()].astype(np.float32), grp["indices"][()], grp["indptr"][()]), shape=(n_cells, n_features)
        )
        barcodes = _decode(grp["barcodes"][()])
    var.index = _unique(names)
    return ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index(barcodes.astype(str))), var=var)


def _open_text(path: str | os.PathLike):
    path = Path(path)
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def read_10x_mtx(matrix: str | os.PathLike, features: str | os.PathLike, barcodes: str | os.PathLike) -> ad.AnnData:
    """Read a 10x Matrix Market triple (``matrix.mtx[.gz]``, ``features.tsv[.gz]``/``genes.tsv``,
    ``barcodes.tsv[.gz]``) into a cells x features AnnData (CSR float32).

    Feature tables with one column (names only), two (id, name) or three+ (id, name, type) are accepted.
    """
    with _open_text(matrix) as fh:
        X = sp.csr_matrix(scipy.io.mmread(fh).T, dtype=np.float32)
    feats = pd.read_csv(features, sep="\t", header=None, dtype=str)
    cells = pd.read_csv(barcodes, sep="\t", header=None, dtype=str).iloc[:, 0].to_numpy()
    if feats.shape[1] == 1:
        var = pd.DataFrame(index=_unique(feats.iloc[:, 0]))
    else:
        var = pd.DataFrame({"gene_ids": feats.iloc[:, 0].to_numpy()}, index=_unique(feats.iloc[:, 1]))
        if feats.shape[1] >= 3:
            var["feature_types"] = feats.iloc[:, 2].to_numpy()
    if X.shape != (len(cells), len(var)):
        raise ValueError(f"matrix shape {X.shape[::-1]} does not match {len(var)} features x {len(cells)} barcodes")
    return ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index(cells)), var=var)


def read_count_table(
    path: str | os.PathLike, sep: str = "\t", features_in_rows: bool = True, chunksize: int = 2000
) -> ad.AnnData:
    """Read a dense text count table (first column = row names, header = column names) into a sparse
    cells x features AnnData, chunk by chunk so large tables (e.g. GSE128639) fit in memory.

    Args:
        features_in_rows: True for features x cells tables (GEO style), False for cells x features.
    """
    blocks, rows = [], []
    for chunk in pd.read_csv(path, sep=sep, index_col=0, chunksize=chunksize):
        blocks.append(sp.csr_matrix(chunk.to_numpy(dtype=np.float32)))
        rows.append(chunk.index.astype(str))
        columns = chunk.columns.astype(str)
    if not blocks:
        raise ValueError(f"{path} holds no rows")
    M = sp.vstack(blocks).tocsr()
    row_names = np.concatenate([np.asarray(r) for r in rows])
    if features_in_rows:
        M, cells, feats = M.T.tocsr(), np.asarray(columns), row_names
    else:
        cells, feats = row_names, np.asarray(columns)
    return ad.AnnData(X=M, obs=pd.DataFrame(index=pd.Index(cells)), var=pd.DataFrame(index=_unique(feats)))


def _parse_fcs_text(raw: bytes) -> dict[str, str]:
    text = raw.decode("latin-1")
    delim = text[0]
    fields, buf, i = [], [], 1
    while i < len(text):
        ch = text[i]
        if ch == delim:
            if i + 1 < len(text) and text[i + 1] == delim:  # escaped delimiter
                buf.append(delim)
                i += 2
                continue
            fields.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    if buf:
        fields.append("".join(buf))
    return {fields[k].strip().upper(): fields[k + 1].strip() for k in range(0, len(fields) - 1, 2)}


def read_fcs(path: str | os.PathLike) -> ad.AnnData:
    """Read a list-mode FCS 2.0/3.0/3.1 file (``$DATATYPE`` F, D or I with equal bit widths).

    Returns events x parameters float32. ``var_names`` are the ``$PnS`` marker names when all are set and
    unique, else the ``$PnN`` channel names; both are kept in ``var['channel']`` / ``var['marker']``. No
    compensation or transformation is applied.
    """
    data = Path(path).read_bytes()
    if not data[:3] == b"FCS":
        raise ValueError(f"{path} is not an FCS file")
    offsets = [int(data[10 + 8 * k : 18 + 8 * k].strip() or 0) for k in range(4)]
    meta = _parse_fcs_text(data[offsets[0] : offsets[1] + 1])
    begin, end = offsets[2], offsets[3]
    if begin == 0 and end == 0:  # large files put the offsets in TEXT
        begin, end = int(meta["$BEGINDATA"]), int(meta["$ENDDATA"])
    n_par, n_tot = int(meta["$PAR"]), int(meta["$TOT"])
    if meta.get("$MODE", "L").upper() != "L":
        raise ValueError(f"{path}: only list-mode ($MODE L) FCS files are supported")
    order = meta.get("$BYTEORD", "1,2,3,4")
    endian = "<" if order.startswith("1") else ">"
    kind = meta["$DATATYPE"].upper()
    if kind == "F":
        dtype = np.dtype(endian + "f4")
    elif kind == "D":
        dtype = np.dtype(endian + "f8")
    elif kind == "I":
        bits = {int(meta[f"$P{k}B"]) for k in range(1, n_par + 1)}
        if len(bits) != 1 or next(iter(bits)) not in (8, 16, 32, 64):
            raise ValueError(f"{path}: integer FCS data with bit widths {sorted(bits)} are not supported")
        dtype = np.dtype(f"{endian}u{next(iter(bits)) // 8}")
    else:
        raise ValueError(f"{path}: $DATATYPE {kind} is not supported")
    values = np.frombuffer(data[begin : end + 1], dtype=dtype, count=n_par * n_tot).reshape(n_tot, n_par)
    channels = [meta.get(f"$P{k}N", f"P{k}") for k in range(1, n_par + 1)]
    markers = [meta.get(f"$P{k}S", "") for k in range(1, n_par + 1)]
    use_markers = all(markers) and len(set(markers)) == n_par
    var = pd.DataFrame({"channel": channels, "marker": markers}, index=pd.Index(markers if use_markers else channels))
    adata = ad.AnnData(X=values.astype(np.float32), var=var)
    adata.obs_names = [str(i) for i in range(n_tot)]
    adata.uns["fcs_meta"] = {k: v for k, v in meta.items() if not k.startswith("$P")}
    return adata


def read_loom(path: str | os.PathLike, cell_block: int = 4096) -> ad.AnnData:
    """Read a loom file (``/matrix`` genes x cells, ``/row_attrs``, ``/col_attrs``) with h5py into a sparse
    cells x genes AnnData, reading ``cell_block`` cells at a time. 1-D column attributes become obs columns
    (``CellID`` is used as obs_names when present), 1-D row attributes become var columns (``Gene`` names).
    """
    with h5py.File(path, "r") as f:
        mat = f["matrix"]
        n_genes, n_cells = mat.shape
        blocks = [sp.csr_matrix(mat[:, s : s + cell_block].T.astype(np.float32)) for s in range(0, n_cells, cell_block)]

        def attrs(group: str, n: int) -> pd.DataFrame:
            out = {}
            for key, ds in f.get(group, {}).items():
                if isinstance(ds, h5py.Dataset) and ds.ndim == 1 and ds.shape[0] == n:
                    vals = ds[()]
                    out[key] = _decode(vals) if vals.dtype.kind in "SOU" else vals
            return pd.DataFrame(out)

        obs, var = attrs("col_attrs", n_cells), attrs("row_attrs", n_genes)
    obs.index = pd.Index(obs.pop("CellID").astype(str)) if "CellID" in obs else pd.Index(map(str, range(n_cells)))
    var.index = _unique(var.pop("Gene")) if "Gene" in var else pd.Index(map(str, range(n_genes)))
    return ad.AnnData(X=sp.vstack(blocks).tocsr() if blocks else sp.csr_matrix((0, n_genes)), obs=obs, var=var)


# ----------------------------------------------------------------------------------------------------------
# Paper datasets
# ----------------------------------------------------------------------------------------------------------


def _fetch_all(keys: Iterable[str], cache_dir: str | os.PathLike | None, progress: bool) -> dict[str, Path]:
    return {key: fetch(key, cache_dir=cache_dir, progress=progress) for key in keys}


def _categorical_labels(values: Any) -> pd.Categorical:
    series = pd.Series(values)
    return pd.Categorical(series.where(series.notna(), None).astype(object))


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
        paired_obs_suffix: see :func:`bmmc_cite`.
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
        adata.obs["cell_type"] = _categorical_labels(meta[label_key].to_numpy())
    suffixes = _suffixes(paired_obs_suffix, ("-rna", "-adt")) or (None, None)
    return _apply_suffix(rna, suffixes[0]), _apply_suffix(adt, suffixes[1])


def _attach_labels(adata: ad.AnnData, labels: str | os.PathLike | pd.Series | None, column: str | None) -> None:
    if labels is None:
        return
    if not isinstance(labels, pd.Series):
        table = pd.read_csv(labels, sep=None, engine="python", index_col=0)
        labels = table[column] if column else table.iloc[:, 0]
    lookup = {str(name).replace("-", "."): value for name, value in labels.items()}
    adata.obs["cell_type"] = _categorical_labels([lookup.get(n.replace("-", ".")) for n in adata.obs_names])


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
    suffixes = _suffixes(paired_obs_suffix, ("-rna", "-adt")) or (None, None)
    return _apply_suffix(rna, suffixes[0]), _apply_suffix(adt, suffixes[1])


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

    No direct download link is known (see :data:`REGISTRY` entry ``levine2015_32dim``): put
    ``Levine_32dim.fcs`` (or ``Levine_32dim.txt``) in the cache folder or pass ``path``. Non-marker columns
    (``Time``, ``Cell_length``, DNA, viability, file/event numbers, ``label``, ``individual``) go to ``obs``;
    the 32 markers form ``X``. ``obs['cell_type']`` holds the manual-gating population: its name when a
    ``population_names`` table (``label``, ``population``) is given or cached, else the label number.

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
        adata.obs["cell_type"] = _categorical_labels(
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
    suffixes = _suffixes(paired_obs_suffix, ("-rna", "-atac", "-adt")) or (None, None, None)
    return _apply_suffix(rna, suffixes[0]), _apply_suffix(atac, suffixes[1]), _apply_suffix(adt, suffixes[2])


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
        adata.obs["cell_type"] = _categorical_labels(adata.obs[label_key].to_numpy())
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
    suffixes = _suffixes(paired_obs_suffix, ("-rna", "-atac")) or (None, None)
    return _apply_suffix(rna, suffixes[0]), _apply_suffix(atac, suffixes[1])


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
                shutil.copyfileobj(src, dst, _CHUNK)
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
        codex.obs["cell_type"] = _categorical_labels(table["cluster.term"].to_numpy())

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
    rna = ad.AnnData(X=counts, obs=meta, var=pd.DataFrame(index=_unique(genes)))
    if "cluster.info" in meta:
        rna.obs["cell_type"] = _categorical_labels(meta["cluster.info"].to_numpy())
    return codex, rna


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
