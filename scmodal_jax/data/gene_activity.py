"""Gene activity scores from a peak matrix (scATAC-seq), the way Signac's ``GeneActivity`` defines them.

The activity of a gene in a cell is the summed accessibility of the peaks that overlap the gene body
extended ``extend_upstream`` bases (default 2 kb) upstream of the TSS (strand-aware: upstream of ``start``
on ``+``, downstream of ``end`` on ``-``). Signac counts fragments in those regions; from a peak matrix the
closest equivalent sums the peaks overlapping them. Everything stays sparse: a binary peak x gene overlap
matrix ``M`` is built with sorted intervals, and the result is ``X @ M``.

Gene annotations are read from a GTF/GFF file, a BED file, a TSV such as ``hg38_genes_gencode.tsv.gz``
(``gene_name, chrom, start, end, strand, gene_type``, 1-based) or a DataFrame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._rows import iter_row_blocks

__all__ = [
    "parse_peak_names",
    "read_gene_annotation",
    "peak_gene_overlap",
    "gene_activity",
]

_PEAK_RE = re.compile(r"^(?P<chrom>.+?)[:\-_](?P<start>\d+)[\-_](?P<end>\d+)$")


def parse_peak_names(names: Sequence[str]) -> pd.DataFrame:
    """Parse peak names ``chrN-start-end`` / ``chrN:start-end`` / ``chrN_start_end``.

    Returns:
        DataFrame with ``chrom`` (str), ``start``, ``end`` (int64), indexed by the names. Coordinates are
        taken as written (closed intervals, as Signac's ``StringToGRanges``).

    Raises:
        ValueError: listing the first names that do not parse.
    """
    names = [str(n) for n in names]
    chroms, starts, ends, bad = [], [], [], []
    for n in names:
        m = _PEAK_RE.match(n.strip())
        if m is None:
            bad.append(n)
            continue
        chroms.append(m.group("chrom"))
        starts.append(int(m.group("start")))
        ends.append(int(m.group("end")))
    if bad:
        raise ValueError(
            f"{len(bad)} peak name(s) are not of the form chr-start-end or chr:start-end, e.g. {bad[:5]}; "
            "pass peak coordinates explicitly (peaks=DataFrame with chrom, start, end)"
        )
    df = pd.DataFrame(
        {"chrom": chroms, "start": np.asarray(starts, np.int64), "end": np.asarray(ends, np.int64)},
        index=pd.Index(names),
    )
    if (df["end"] < df["start"]).any():
        raise ValueError("some peaks end before they start")
    return df


def _read_gtf(path: Path, feature: str = "gene") -> pd.DataFrame:
    cols = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attributes"]
    gtf = pd.read_csv(path, sep="\t", comment="#", header=None, names=cols, dtype={"chrom": str}, low_memory=False)
    if (gtf["feature"] == feature).any():
        gtf = gtf[gtf["feature"] == feature]
    attrs = gtf["attributes"].astype(str)

    def attr(key: str) -> pd.Series:
        # GTF: key "value";  GFF3: key=value;
        return attrs.str.extract(rf'(?:^|;)\s*{key}[ =]"?([^";]+)"?', expand=False)

    name = attr("gene_name").fillna(attr("Name")).fillna(attr("gene_id"))
    gtype = attr("gene_type").fillna(attr("gene_biotype"))
    df = pd.DataFrame(
        {
            "gene_name": name.values,
            "chrom": gtf["chrom"].values,
            "start": gtf["start"].astype(np.int64).values,
            "end": gtf["end"].astype(np.int64).values,
            "strand": gtf["strand"].values,
            "gene_type": gtype.values,
        }
    ).dropna(subset=["gene_name"])
    # transcripts/exons only: one interval per gene spanning them
    if feature not in set(gtf["feature"]):
        agg = df.groupby(["gene_name", "chrom", "strand"], sort=False).agg(
            start=("start", "min"), end=("end", "max"), gene_type=("gene_type", "first")
        )
        df = agg.reset_index()[["gene_name", "chrom", "start", "end", "strand", "gene_type"]]
    return df.reset_index(drop=True)


def _read_bed(path: Path) -> pd.DataFrame:
    bed = pd.read_csv(path, sep="\t", comment="#", header=None, dtype={0: str})
    if bed.shape[1] < 4:
        raise ValueError("a BED gene annotation needs at least chrom, start, end, name columns")
    strand = bed[5] if bed.shape[1] >= 6 else pd.Series(["+"] * len(bed))
    return pd.DataFrame(
        {
            "gene_name": bed[3].astype(str).values,
            "chrom": bed[0].values,
            "start": bed[1].astype(np.int64).values + 1,  # BED is 0-based half-open
            "end": bed[2].astype(np.int64).values,
            "strand": strand.astype(str).values,
        }
    )


_COLUMN_ALIASES = {
    "gene_name": ("gene_name", "gene", "name", "symbol", "gene_symbol", "gene_id"),
    "chrom": ("chrom", "chr", "chromosome", "seqnames", "seqname", "contig"),
    "start": ("start", "chromstart", "txstart", "gene_start"),
    "end": ("end", "chromend", "txend", "gene_end", "stop"),
    "strand": ("strand",),
    "gene_type": ("gene_type", "gene_biotype", "biotype", "type"),
}


def _standardize_annotation(df: pd.DataFrame) -> pd.DataFrame:
    lower = {str(c).lower(): c for c in df.columns}
    out = {}
    for target, options in _COLUMN_ALIASES.items():
        col = next((lower[o] for o in options if o in lower), None)
        if col is None and target in ("gene_name", "chrom", "start", "end"):
            raise ValueError(
                f"gene annotation lacks a '{target}' column (tried {list(options)}); got {list(df.columns)}"
            )
        if col is not None:
            out[target] = df[col].values
    res = pd.DataFrame(out)
    if "strand" not in res:
        res["strand"] = "+"
    res["gene_name"] = res["gene_name"].astype(str)
    res["chrom"] = res["chrom"].astype(str)
    res["start"] = res["start"].astype(np.int64)
    res["end"] = res["end"].astype(np.int64)
    res["strand"] = res["strand"].astype(str)
    return res


def read_gene_annotation(source: pd.DataFrame | str | PathLike[str]) -> pd.DataFrame:
    """Read a gene annotation into ``gene_name, chrom, start, end, strand[, gene_type]`` (1-based, closed).

    Args:
        source: a DataFrame (columns ``gene``/``gene_name``, ``chrom``, ``start``, ``end``, ``strand``,
            1-based closed coordinates), or a path to a GTF/GFF(.gz) file (``gene`` features, or the span of
            each gene's transcripts/exons), a BED(.gz) file (0-based, converted) or a TSV/CSV(.gz) table
            with a header (e.g. the GENCODE-derived ``hg38_genes_gencode.tsv.gz``).
    """
    if isinstance(source, pd.DataFrame):
        return _standardize_annotation(source)
    path = Path(source)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".gtf", ".gff", ".gff3")):
        return _read_gtf(path)
    if name.endswith(".bed"):
        return _read_bed(path)
    sep = "," if name.endswith(".csv") else "\t"
    return _standardize_annotation(pd.read_csv(path, sep=sep, comment="#", dtype={"chrom": str}))


def _chrom_key(c: str) -> str:
    c = str(c)
    c = c[3:] if c.lower().startswith("chr") else c
    return "M" if c.upper() in ("M", "MT") else c


def _gene_regions(genes: pd.DataFrame, extend_upstream: int, extend_downstream: int) -> tuple[np.ndarray, np.ndarray]:
    start = genes["start"].to_numpy(np.int64)
    end = genes["end"].to_numpy(np.int64)
    minus = genes["strand"].astype(str).to_numpy() == "-"
    rs = np.where(minus, start - extend_downstream, start - extend_upstream)
    re_ = np.where(minus, end + extend_upstream, end + extend_downstream)
    return np.maximum(rs, 1), re_


def peak_gene_overlap(
    peaks: pd.DataFrame,
    genes: pd.DataFrame,
    extend_upstream: int = 2000,
    extend_downstream: int = 0,
) -> tuple[sp.csr_matrix, list[str]]:
    """Binary peak x gene matrix: 1 where a peak overlaps the gene's extended body.

    Args:
        peaks: ``chrom, start, end`` (closed intervals), one row per peak (see :func:`parse_peak_names`).
        genes: standardised annotation (see :func:`read_gene_annotation`). Rows sharing a gene name are
            merged into one column (a peak overlapping any of them counts once).
        extend_upstream, extend_downstream: bases added upstream of the TSS / downstream of the gene end.

    Returns:
        ``(M, gene_names)`` with ``M`` a CSR float32 ``(n_peaks, n_genes)`` matrix.
    """
    gene_names, gene_col = np.unique(genes["gene_name"].astype(str).to_numpy(), return_inverse=True)
    rs, re_ = _gene_regions(genes, extend_upstream, extend_downstream)
    g_chrom = np.array([_chrom_key(c) for c in genes["chrom"]], dtype=object)
    p_chrom = np.array([_chrom_key(c) for c in peaks["chrom"]], dtype=object)
    p_start = peaks["start"].to_numpy(np.int64)
    p_end = peaks["end"].to_numpy(np.int64)

    rows_all, cols_all = [], []
    for chrom in np.unique(p_chrom):
        gi = np.flatnonzero(g_chrom == chrom)
        pi = np.flatnonzero(p_chrom == chrom)
        if gi.size == 0 or pi.size == 0:
            continue
        o = np.argsort(rs[gi], kind="stable")
        gi = gi[o]
        gs, ge = rs[gi], re_[gi]
        max_len = int((ge - gs).max())
        ps, pe = p_start[pi], p_end[pi]
        # candidate genes: start in [peak_start - max_len, peak_end]; then keep gene_end >= peak_start
        lo = np.searchsorted(gs, ps - max_len, side="left")
        hi = np.searchsorted(gs, pe, side="right")
        counts = hi - lo
        if counts.sum() == 0:
            continue
        rep_p = np.repeat(np.arange(pi.size), counts)
        cand = np.repeat(lo - np.cumsum(np.r_[0, counts[:-1]]), counts) + np.arange(counts.sum())
        keep = ge[cand] >= ps[rep_p]
        rows_all.append(pi[rep_p[keep]])
        cols_all.append(gene_col[gi[cand[keep]]])
    rows = np.concatenate(rows_all) if rows_all else np.zeros(0, np.int64)
    cols = np.concatenate(cols_all) if cols_all else np.zeros(0, np.int64)
    M = sp.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, cols)), shape=(len(peaks), gene_names.size), dtype=np.float32
    )
    M.sum_duplicates()
    M.data[:] = 1.0
    return M, [str(g) for g in gene_names]


def gene_activity(
    atac: Any,
    annotation: pd.DataFrame | str | PathLike[str],
    peaks: pd.DataFrame | Sequence[str] | None = None,
    extend_upstream: int = 2000,
    extend_downstream: int = 0,
    biotypes: Sequence[str] | None = ("protein_coding",),
    max_width: int | None = 500_000,
    drop_empty: bool = True,
    chunk_size: int = 10_000,
):
    """Gene activity matrix (cells x genes) from a cells x peaks accessibility matrix.

    Args:
        atac: AnnData (peaks in ``var_names`` unless ``peaks`` is given; backed is fine) or a cells x peaks
            matrix (numpy / scipy sparse, then ``peaks`` is required).
        annotation: gene annotation, see :func:`read_gene_annotation`.
        peaks: peak coordinates (DataFrame ``chrom, start, end``) or peak names; default ``var_names``.
        extend_upstream, extend_downstream: region around the gene body (Signac defaults 2000 / 0).
        biotypes: keep genes of these types when the annotation has ``gene_type`` (Signac keeps protein
            coding genes); ``None`` keeps all.
        max_width: drop genes whose extended region is longer (Signac: 500 kb); ``None`` keeps all.
        drop_empty: drop genes that no peak overlaps.
        chunk_size: rows per block when ``atac`` is backed.

    Returns:
        AnnData with CSR float32 ``X`` (cells x genes), ``obs`` copied from ``atac`` when it is an AnnData,
        ``var`` with ``chrom, start, end, strand, n_peaks``.
    """
    import anndata as ad

    if isinstance(atac, ad.AnnData):
        X = atac.X
        obs = atac.obs.copy()
        peak_source = atac.var_names if peaks is None else peaks
    else:
        X = atac
        obs = pd.DataFrame(index=pd.RangeIndex(X.shape[0]).astype(str))
        if peaks is None:
            raise ValueError("peaks= is required when atac is a matrix")
        peak_source = peaks
    peak_df = peak_source if isinstance(peak_source, pd.DataFrame) else parse_peak_names(list(peak_source))
    if len(peak_df) != X.shape[1]:
        raise ValueError(f"{len(peak_df)} peaks for a matrix with {X.shape[1]} columns")

    genes = read_gene_annotation(annotation)
    if biotypes is not None and "gene_type" in genes and genes["gene_type"].notna().any():
        genes = genes[genes["gene_type"].isin(list(biotypes))]
    if max_width is not None:
        rs, re_ = _gene_regions(genes, extend_upstream, extend_downstream)
        genes = genes[(re_ - rs) <= max_width]
    genes = genes.reset_index(drop=True)
    if len(genes) == 0:
        raise ValueError(
            f"no gene left in the annotation after filtering (biotypes={biotypes}, max_width={max_width}); "
            "pass biotypes=None to keep every gene type"
        )
    M, names = peak_gene_overlap(peak_df, genes, extend_upstream, extend_downstream)
    n_peaks = np.asarray(M.sum(axis=0)).ravel()
    if drop_empty:
        keep = np.flatnonzero(n_peaks > 0)
        M = M[:, keep].tocsr()
        names = [names[i] for i in keep]
        n_peaks = n_peaks[keep]
    if M.shape[1] == 0:
        raise ValueError(
            "no gene overlaps any peak: check that peaks and annotation use the same genome assembly "
            f"(peak chromosomes e.g. {list(pd.unique(peak_df['chrom']))[:5]}, "
            f"annotation chromosomes e.g. {list(pd.unique(genes['chrom']))[:5]})"
        )

    blocks = []
    for _, _, block in iter_row_blocks(X, chunk_size, whole_in_memory=True):
        B = block if sp.issparse(block) else sp.csr_matrix(block)
        blocks.append(sp.csr_matrix(B.astype(np.float32) @ M))
    GA = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]

    first = genes.drop_duplicates("gene_name").set_index("gene_name")
    var = first.loc[names, [c for c in ("chrom", "start", "end", "strand", "gene_type") if c in first]].copy()
    var["n_peaks"] = n_peaks.astype(np.int64)
    var.index = pd.Index(names)
    return ad.AnnData(X=GA.astype(np.float32), obs=obs, var=var)
