"""Writers of tiny stand-ins for the scMODAL paper's public data files.

Each ``write_*`` function writes small files in the layout of the real downloads exactly where
:func:`scmodal_jax.data.download.fetch` keeps them (``<cache_dir>/<dataset>/<filename>`` of the registry
entry), so the paper loaders and builders read them as if they had been downloaded. The cells come from a
few clusters, each with its own marker genes / proteins / peaks, and the names link across modalities
(genes ``CD3E``, ``MS4A1``, ... and proteins ``CD3``, ``CD20``, ...). The file writers of
``tests/files.py`` (10x HDF5, Matrix Market triples, FCS) are reused.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from files import write_10x_h5, write_fcs, write_mtx_triple

from scmodal_jax.data.download import REGISTRY

# ------------------------------------------------------------------------------------------------------
# Shared pieces
# ------------------------------------------------------------------------------------------------------


def cache_path(cache_dir: Path, key: str) -> Path:
    """Where ``fetch(key, cache_dir)`` keeps the registry file ``key`` (parent folder created)."""
    entry = REGISTRY[key]
    path = Path(cache_dir) / entry.dataset / entry.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def cluster_labels(n_cells: int, clusters: list[str], seed: int = 0) -> np.ndarray:
    """Balanced cluster labels in a shuffled order."""
    labels = np.array([clusters[i % len(clusters)] for i in range(n_cells)], dtype=object)
    return labels[np.random.default_rng(seed).permutation(n_cells)]


def cluster_counts(
    labels: np.ndarray,
    features: list[str],
    markers: dict[str, list[str]],
    seed: int = 0,
    base: float = 0.6,
    high: float = 8.0,
) -> np.ndarray:
    """Poisson counts (cells x features): rate ``high`` for a cluster's marker features, else ``base``."""
    rng = np.random.default_rng(seed)
    rate = np.full((len(labels), len(features)), base)
    index = {f: j for j, f in enumerate(features)}
    for cluster, feats in markers.items():
        rows = labels == cluster
        for f in feats:
            if f in index:
                rate[rows, index[f]] = high
    rate *= rng.uniform(0.5, 1.5, size=(len(labels), 1))  # library size differences
    return rng.poisson(rate).astype(np.float32)


def fillers(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def write_annotation(path: Path, genes: list[str], chrom: str = "chr1", spacing: int = 10_000) -> pd.DataFrame:
    """A gene table (``gene_name, chrom, start, end, strand, gene_type``, 1-based) placing gene ``i`` at
    ``chrom:(i + 1) * spacing`` (5 kb long, alternating strands); written as TSV, returned as a frame."""
    table = pd.DataFrame(
        {
            "gene_name": genes,
            "chrom": chrom,
            "start": [(i + 1) * spacing for i in range(len(genes))],
            "end": [(i + 1) * spacing + 5_000 for i in range(len(genes))],
            "strand": ["+" if i % 2 == 0 else "-" for i in range(len(genes))],
            "gene_type": "protein_coding",
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False)
    return table


def peaks_in_genes(annotation: pd.DataFrame, sep: str = "-") -> tuple[list[str], list[str]]:
    """Two peaks inside each gene body: (peak names ``chrom<sep>start-end``, gene of each peak)."""
    names, owners = [], []
    for g, c, s in zip(annotation["gene_name"], annotation["chrom"], annotation["start"], strict=True):
        for off in (500, 3_000):
            names.append(f"{c}{sep}{s + off}-{s + off + 400}")
            owners.append(g)
    return names, owners


# ------------------------------------------------------------------------------------------------------
# Hao et al. 2021 PBMC CITE-seq
# ------------------------------------------------------------------------------------------------------

PBMC_CLUSTERS = ["T", "B", "Mono"]
PBMC_GENE_MARKERS = {
    "T": ["CD3E", "CD3D", "CD3G", "CD4", "CD8A", "IL7R"],
    "B": ["MS4A1", "CD19", "CD79A", "CD22"],
    "Mono": ["CD14", "LYZ", "FCGR3A", "ITGAM", "CD33"],
}
PBMC_GENES = [g for gs in PBMC_GENE_MARKERS.values() for g in gs] + ["PTPRC", "HLA-DRA", "CD38"] + fillers("GENE", 40)
HAO_PROTEIN_MARKERS = {
    "T": ["CD3-1", "CD3-2", "CD4-1", "CD4-2", "CD8", "CD127"],
    "B": ["CD19", "CD20", "CD22"],
    "Mono": ["CD14", "CD16", "CD11b-1", "CD33"],
}
HAO_PROTEINS = [p for ps in HAO_PROTEIN_MARKERS.values() for p in ps] + ["CD45RA", "HLA-DR", "CD38", "IgG1-ctrl"]


def write_hao2021(cache_dir: Path, n_cells: int = 90, seed: int = 0) -> np.ndarray:
    """GSE164378 stand-in: RNA and ADT Matrix Market triples + metadata (donors P1/P2, one doublet).
    Returns the ``celltype.l2`` labels of all cells."""
    cells = [f"L1_AAAC{i:04d}" for i in range(n_cells)]
    labels = cluster_labels(n_cells, PBMC_CLUSTERS, seed)
    rna = cluster_counts(labels, PBMC_GENES, PBMC_GENE_MARKERS, seed + 1)
    adt = cluster_counts(labels, HAO_PROTEINS, HAO_PROTEIN_MARKERS, seed + 2, base=3.0, high=40.0)
    tmp = Path(cache_dir) / "_hao_tmp"
    parts = {
        "rna": write_mtx_triple(tmp, "rna", rna, PBMC_GENES, cells),
        "adt": write_mtx_triple(tmp, "adt", adt, HAO_PROTEINS, cells, n_feature_cols=1),
    }
    for mod, paths in parts.items():
        for part, path in paths.items():
            shutil.move(path, cache_path(cache_dir, f"hao2021_{mod}_{part}"))
    shutil.rmtree(tmp)
    l2 = labels.copy()
    l2[0] = "Doublet"
    meta = pd.DataFrame(
        {"celltype.l1": labels, "celltype.l2": l2, "donor": ["P1"] * (n_cells - 6) + ["P2"] * 6}, index=cells
    )
    meta.to_csv(cache_path(cache_dir, "hao2021_metadata"))
    return l2


# ------------------------------------------------------------------------------------------------------
# Stuart et al. 2019 bone-marrow CITE-seq + Levine et al. 2015 CyTOF
# ------------------------------------------------------------------------------------------------------

BM_CLUSTERS = ["T", "B", "Mono"]
STUART_PROTEIN_MARKERS = {"T": ["CD3", "CD4", "CD8a"], "B": ["CD19", "CD45RA"], "Mono": ["CD14", "CD11c", "CD16"]}
STUART_PROTEINS = [p for ps in STUART_PROTEIN_MARKERS.values() for p in ps] + ["HLA.DR", "CD34", "CD38", "CD57"]
LEVINE_MARKER_MAP = {"T": ["CD3", "CD4", "CD8"], "B": ["CD19", "CD45RA", "CD20"], "Mono": ["CD14", "CD11c", "CD16"]}
LEVINE_MARKERS = [p for ps in LEVINE_MARKER_MAP.values() for p in ps] + ["HLA-DR", "CD34", "CD38", "CD33", "CD123"]
LEVINE_META = ["Time", "Cell_length", "DNA1", "DNA2", "Viability", "file_number", "event_number", "label",
               "individual"]  # fmt: skip


def write_stuart2019(cache_dir: Path, n_cells: int = 80, seed: int = 10) -> Path:
    """GSE128639 stand-in: dense genes x cells RNA and ADT tables (tsv.gz), plus a labels CSV (returned)."""
    cells = [f"a_AAAC{i:04d}.1" for i in range(n_cells)]
    labels = cluster_labels(n_cells, BM_CLUSTERS, seed)
    adt = cluster_counts(labels, STUART_PROTEINS, STUART_PROTEIN_MARKERS, seed + 1, base=3.0, high=40.0)
    rna = cluster_counts(labels, PBMC_GENES, PBMC_GENE_MARKERS, seed + 2)
    pd.DataFrame(rna.T, index=PBMC_GENES, columns=cells).to_csv(cache_path(cache_dir, "stuart2019_rna"), sep="\t")
    pd.DataFrame(adt.T, index=STUART_PROTEINS, columns=cells).to_csv(cache_path(cache_dir, "stuart2019_adt"), sep="\t")
    labels_csv = Path(cache_dir) / "stuart_labels.csv"
    pd.DataFrame({"celltype.l2": labels}, index=[c.replace(".", "-") for c in cells]).to_csv(labels_csv)
    return labels_csv


def write_levine2015(cache_dir: Path, n_cells: int = 100, seed: int = 20) -> None:
    """``Levine_32dim.fcs`` stand-in (arcsinh-transformed markers + metadata channels, some unassigned
    cells) and its population-name table, in the cache folder where the loader looks for them."""
    rng = np.random.default_rng(seed)
    labels = cluster_labels(n_cells, BM_CLUSTERS, seed)
    raw = cluster_counts(labels, LEVINE_MARKERS, LEVINE_MARKER_MAP, seed + 1, base=5.0, high=80.0)
    markers = np.arcsinh((raw + rng.uniform(0, 1, raw.shape)) / 5.0)
    code = np.array([BM_CLUSTERS.index(c) + 1 for c in labels], dtype=np.float64)
    code[rng.choice(n_cells, 8, replace=False)] = np.nan  # not gated
    meta = np.column_stack(
        [np.arange(n_cells), rng.integers(10, 40, n_cells), rng.normal(5, 1, (n_cells, 3)), np.ones(n_cells),
         np.arange(n_cells), code, np.repeat([1, 2], [n_cells // 2, n_cells - n_cells // 2])]
    )  # fmt: skip
    values = np.column_stack([meta[:, :2], markers, meta[:, 2:]]).astype(np.float32)
    names = LEVINE_META[:2] + LEVINE_MARKERS + LEVINE_META[2:]
    write_fcs(cache_path(cache_dir, "levine2015_32dim"), values, names)
    pd.DataFrame({"label": [1, 2, 3], "population": ["T_cells", "B_cells", "Monocytes"]}).to_csv(
        cache_path(cache_dir, "levine2015_population_names"), sep="\t", index=False
    )


# ------------------------------------------------------------------------------------------------------
# TEA-seq PBMC
# ------------------------------------------------------------------------------------------------------

TEA_PROTEIN_MARKERS = {"T": ["CD3", "CD4", "CD8a"], "B": ["CD19", "CD20", "IgD"], "Mono": ["CD14", "CD16", "CD11b"]}
TEA_PROTEINS = [p for ps in TEA_PROTEIN_MARKERS.values() for p in ps] + ["CD45RA", "HLA-DR", "CD38"]


def write_teaseq(cache_dir: Path, annotation_path: Path, n_cells: int = 80, seed: int = 30) -> pd.DataFrame:
    """GSE158013 stand-in: the cellranger-arc HDF5 (Gene Expression + Peaks over the genes of the
    annotation written to ``annotation_path``) and the ADT count table (barcodes without ``-1``, a ``total``
    column, one barcode missing). Returns the annotation."""
    annotation = write_annotation(annotation_path, PBMC_GENES)
    peaks, owners = peaks_in_genes(annotation)
    labels = cluster_labels(n_cells, PBMC_CLUSTERS, seed)
    rna = cluster_counts(labels, PBMC_GENES, PBMC_GENE_MARKERS, seed + 1)
    atac_markers = {
        c: [p for p, g in zip(peaks, owners, strict=True) if g in gs] for c, gs in PBMC_GENE_MARKERS.items()
    }
    atac = cluster_counts(labels, peaks, atac_markers, seed + 2, base=0.3, high=3.0)
    barcodes = [f"AAACGT{i:04d}-1" for i in range(n_cells)]
    write_10x_h5(cache_path(cache_dir, "teaseq_h5"), np.hstack([rna, atac]), PBMC_GENES + peaks, barcodes,
                 ["Gene Expression"] * len(PBMC_GENES) + ["Peaks"] * len(peaks))  # fmt: skip
    adt = cluster_counts(labels, TEA_PROTEINS, TEA_PROTEIN_MARKERS, seed + 3, base=3.0, high=40.0)
    table = pd.DataFrame(adt, columns=TEA_PROTEINS, index=pd.Index([b[:-2] for b in barcodes], name="barcode"))
    table.insert(0, "total", adt.sum(axis=1))
    table.iloc[1:].to_csv(cache_path(cache_dir, "teaseq_adt"))
    return annotation


# ------------------------------------------------------------------------------------------------------
# Mouse brain: Zeisel 2018 loom + 10x scATAC
# ------------------------------------------------------------------------------------------------------

BRAIN_CLUSTERS = ["Neurons", "Oligos", "Astrocytes"]
BRAIN_MARKERS = {
    "Neurons": ["Snap25", "Syt1", "Slc17a7", "Gad1", "Rbfox3"],
    "Oligos": ["Mbp", "Plp1", "Mog", "Olig2"],
    "Astrocytes": ["Aqp4", "Gfap", "Aldh1l1", "Slc1a3"],
}
BRAIN_GENES = [g for gs in BRAIN_MARKERS.values() for g in gs] + fillers("Gm", 30)


def write_mouse_brain(cache_dir: Path, annotation_path: Path, n_rna: int = 90, n_atac: int = 70, seed: int = 40):
    """``l5_all.loom`` stand-in (genes x cells, ``TaxonomyRank4`` labels) and the 10x scATAC peak HDF5
    (peaks ``chrN:start-end`` over the genes of the mm10-like annotation written to ``annotation_path``)."""
    annotation = write_annotation(annotation_path, BRAIN_GENES, chrom="chr2")
    labels = cluster_labels(n_rna, BRAIN_CLUSTERS, seed)
    rna = cluster_counts(labels, BRAIN_GENES, BRAIN_MARKERS, seed + 1)
    with h5py.File(cache_path(cache_dir, "mouse_brain_rna_zeisel2018"), "w") as f:
        f.create_dataset("matrix", data=rna.T)
        f["row_attrs/Gene"] = np.array(BRAIN_GENES, dtype="S")
        f["col_attrs/CellID"] = np.array([f"10X_{i:04d}" for i in range(n_rna)], dtype="S")
        f["col_attrs/TaxonomyRank4"] = np.array(list(labels), dtype="S")
    peaks, owners = peaks_in_genes(annotation, sep=":")
    atac_labels = cluster_labels(n_atac, BRAIN_CLUSTERS, seed + 2)
    markers = {c: [p for p, g in zip(peaks, owners, strict=True) if g in gs] for c, gs in BRAIN_MARKERS.items()}
    atac = cluster_counts(atac_labels, peaks, markers, seed + 3, base=0.3, high=3.0)
    write_10x_h5(cache_path(cache_dir, "mouse_brain_atac_5k"), atac, peaks, [f"ATAC{i:04d}-1" for i in range(n_atac)],
                 ["Peaks"] * len(peaks))  # fmt: skip
    return annotation


# ------------------------------------------------------------------------------------------------------
# Tonsil (MaxFuse archive)
# ------------------------------------------------------------------------------------------------------

TONSIL_CLUSTERS = ["B", "T", "Other"]
TONSIL_CODEX_MARKER_MAP = {"B": ["CD19", "CD21", "CD38", "HLA-DR"], "T": ["CD3", "CD4", "CD8", "CD5"],
                           "Other": ["CD31", "Vimentin", "podoplanin"]}  # fmt: skip
TONSIL_CODEX = [m for ms in TONSIL_CODEX_MARKER_MAP.values() for m in ms] + ["Ki67", "CD45", "CD11b"]
TONSIL_GENE_MARKERS = {"B": ["CD19", "CR2", "CD38", "HLA-DRA", "MS4A1"], "T": ["CD3E", "CD3D", "CD4", "CD8A", "CD5"],
                       "Other": ["PECAM1", "VIM", "PDPN"]}  # fmt: skip
TONSIL_GENES = [g for gs in TONSIL_GENE_MARKERS.values() for g in gs] + ["MKI67", "PTPRC", "ITGAM"] + fillers("T", 30)


def write_tonsil(cache_dir: Path, n_codex: int = 100, n_rna: int = 80, seed: int = 50) -> None:
    """MaxFuse ``data.zip`` stand-in: ``tonsil/tonsil_codex.csv`` (already-normalised marker values,
    centroids, ``cluster.term``), ``tonsil_rna_counts.txt`` (Matrix Market, cells x genes), gene names and
    the RNA metadata (``cluster.info``), under ``data/tonsil/`` as in the archive."""
    rng = np.random.default_rng(seed)
    codex_labels = cluster_labels(n_codex, TONSIL_CLUSTERS, seed)
    raw = cluster_counts(codex_labels, TONSIL_CODEX, TONSIL_CODEX_MARKER_MAP, seed + 1, base=2.0, high=12.0)
    codex = pd.DataFrame(np.log1p(raw + rng.uniform(0, 1, raw.shape)), columns=TONSIL_CODEX)
    codex["centroid_x"], codex["centroid_y"] = rng.uniform(0, 1000, n_codex), rng.uniform(0, 1000, n_codex)
    codex["cluster.term"] = codex_labels
    rna_labels = cluster_labels(n_rna, TONSIL_CLUSTERS, seed + 2)
    counts = cluster_counts(rna_labels, TONSIL_GENES, TONSIL_GENE_MARKERS, seed + 3)
    mtx = io.BytesIO()
    scipy.io.mmwrite(mtx, sp.coo_matrix(counts))
    with zipfile.ZipFile(cache_path(cache_dir, "tonsil_maxfuse_zip"), "w") as zf:
        zf.writestr("data/tonsil/tonsil_codex.csv", codex.to_csv(index=False))
        zf.writestr("data/tonsil/tonsil_rna_counts.txt", mtx.getvalue())
        zf.writestr("data/tonsil/tonsil_rna_names.csv", pd.DataFrame({"names": TONSIL_GENES}).to_csv(index=False))
        zf.writestr("data/tonsil/tonsil_rna_meta.csv", pd.DataFrame({"cluster.info": rna_labels}).to_csv())
