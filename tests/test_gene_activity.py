"""Gene activity from peaks: parsing, annotation readers, sparse overlap vs brute force, real multiome."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import require, shared_file

from scmodal_jax.data.gene_activity import gene_activity, parse_peak_names, peak_gene_overlap, read_gene_annotation

_data = shared_file


def _brute_overlap(peaks: pd.DataFrame, genes: pd.DataFrame, up: int, down: int) -> tuple[np.ndarray, list]:
    names = sorted(set(genes["gene_name"]))
    col = {g: i for i, g in enumerate(names)}
    M = np.zeros((len(peaks), len(names)), dtype=np.float32)
    for pi, (pc, ps, pe) in enumerate(zip(peaks["chrom"], peaks["start"], peaks["end"], strict=True)):
        for g, gc, gs, ge, st in zip(
            genes["gene_name"], genes["chrom"], genes["start"], genes["end"], genes["strand"], strict=True
        ):
            if gc.removeprefix("chr") != pc.removeprefix("chr"):
                continue
            if st == "-":
                rs, re_ = gs - down, ge + up
            else:
                rs, re_ = gs - up, ge + down
            rs = max(rs, 1)
            if ps <= re_ and pe >= rs:
                M[pi, col[g]] = 1.0
    return M, names


def _random_case(rng: np.random.Generator, n_genes: int = 60, n_peaks: int = 300):
    chroms = ["chr1", "chr2", "chrX"]
    gs = rng.integers(1, 200_000, n_genes)
    genes = pd.DataFrame(
        {
            "gene_name": [f"G{i % (n_genes - 5)}" for i in range(n_genes)],  # a few duplicated names
            "chrom": rng.choice(chroms, n_genes),
            "start": gs,
            "end": gs + rng.integers(0, 30_000, n_genes),
            "strand": rng.choice(["+", "-"], n_genes),
        }
    )
    ps = rng.integers(1, 240_000, n_peaks)
    peaks = pd.DataFrame(
        {"chrom": rng.choice(chroms + ["chr3"], n_peaks), "start": ps, "end": ps + rng.integers(0, 2_000, n_peaks)}
    )
    return peaks, genes


def test_parse_peak_names():
    df = parse_peak_names(["chr1-100-200", "chr2:300-400", "chrX_5_10", "chr1-1-1"])
    assert df["chrom"].tolist() == ["chr1", "chr2", "chrX", "chr1"]
    assert df["start"].tolist() == [100, 300, 5, 1] and df["end"].tolist() == [200, 400, 10, 1]
    assert df.index.tolist()[1] == "chr2:300-400"
    with pytest.raises(ValueError, match="not of the form"):
        parse_peak_names(["chr1-100-200", "GENE1"])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("up,down", [(2000, 0), (0, 0), (5000, 1000)])
def test_overlap_matches_brute_force(seed, up, down):
    peaks, genes = _random_case(np.random.default_rng(seed))
    M, names = peak_gene_overlap(peaks, genes, extend_upstream=up, extend_downstream=down)
    ref, ref_names = _brute_overlap(peaks, genes, up, down)
    assert names == ref_names
    assert sp.issparse(M) and M.shape == ref.shape
    np.testing.assert_array_equal(M.toarray(), ref)
    assert M.nnz > 0


def test_strand_aware_extension():
    genes = pd.DataFrame(
        {
            "gene": ["P", "M"],
            "chrom": ["chr1", "chr1"],
            "start": [10_000, 50_000],
            "end": [20_000, 60_000],
            "strand": ["+", "-"],
        }
    )
    peaks = parse_peak_names(
        [
            "chr1-8500-8600",  # 1.5 kb upstream of P's TSS -> P
            "chr1-20100-20200",  # just after P's end (downstream) -> nothing
            "chr1-61000-61200",  # 1 kb upstream of M's TSS (minus strand) -> M
            "chr1-48500-48600",  # after M's 3' end -> nothing
            "chr1-7000-7500",  # 2.5 kb upstream of P -> nothing
            "1-15000-15001",  # inside P, no 'chr' prefix
        ]
    )
    M, names = peak_gene_overlap(peaks, read_gene_annotation(genes))
    assert names == ["M", "P"]
    np.testing.assert_array_equal(M.toarray(), [[0, 1], [0, 0], [1, 0], [0, 0], [0, 0], [0, 1]])


def test_gene_activity_matrix_and_readers(tmp_path):
    rng = np.random.default_rng(3)
    peaks, genes = _random_case(rng, n_genes=40, n_peaks=200)
    names = [f"{c}-{s}-{e}" for c, s, e in zip(peaks["chrom"], peaks["start"], peaks["end"], strict=True)]
    X = sp.random(50, len(peaks), density=0.2, random_state=4, format="csr", dtype=np.float32)
    X.data = np.ceil(X.data * 5)
    ref, ref_names = _brute_overlap(peaks, genes, 2000, 0)
    ga = gene_activity(X, genes, peaks=names, biotypes=None, max_width=None, drop_empty=False)
    assert ga.var_names.tolist() == ref_names and sp.issparse(ga.X)
    np.testing.assert_allclose(ga.X.toarray(), X.toarray() @ ref, rtol=1e-6)
    ga2 = gene_activity(X, genes, peaks=names, biotypes=None, max_width=None)
    assert (ga2.var["n_peaks"] > 0).all() and set(ga2.var_names) <= set(ref_names)

    # the same annotation as GTF, BED and TSV
    gtf = tmp_path / "genes.gtf.gz"
    with gzip.open(gtf, "wt") as fh:
        fh.write("#!comment\n")
        for i, r in genes.iterrows():
            attrs = f'gene_id "ENSG{i}"; gene_type "protein_coding"; gene_name "{r.gene_name}";'
            fh.write(f"{r.chrom}\tHAVANA\tgene\t{r.start}\t{r.end}\t.\t{r.strand}\t.\t{attrs}\n")
            fh.write(f"{r.chrom}\tHAVANA\texon\t{r.start}\t{r.start + 5}\t.\t{r.strand}\t.\t{attrs}\n")
    bed = tmp_path / "genes.bed"
    bed.write_text(
        "".join(f"{r.chrom}\t{r.start - 1}\t{r.end}\t{r.gene_name}\t0\t{r.strand}\n" for r in genes.itertuples())
    )
    tsv = tmp_path / "genes.tsv"
    genes.assign(gene_type="protein_coding").to_csv(tsv, sep="\t", index=False)
    for src in (gtf, bed, tsv):
        ann = read_gene_annotation(src)
        assert len(ann) == len(genes)
        g = gene_activity(X, src, peaks=names, biotypes=None, max_width=None, drop_empty=False)
        np.testing.assert_allclose(g.X.toarray(), ga.X.toarray())
    # biotype filter and max_width
    with pytest.raises(ValueError, match="no gene left"):
        gene_activity(X, gtf, peaks=names, biotypes=("lncRNA",), max_width=None)
    narrow = gene_activity(X, genes, peaks=names, biotypes=None, max_width=10_000, drop_empty=False)
    assert narrow.n_vars < ga.n_vars


def test_gene_activity_errors():
    X = sp.csr_matrix(np.ones((2, 1), np.float32))
    genes = pd.DataFrame({"gene_name": ["A"], "chrom": ["chr1"], "start": [10], "end": [20], "strand": ["+"]})
    with pytest.raises(ValueError, match="peaks= is required"):
        gene_activity(X, genes)
    with pytest.raises(ValueError, match="no gene overlaps"):
        gene_activity(X, genes, peaks=["chr2-10-20"], biotypes=None)
    with pytest.raises(ValueError, match="lacks a 'chrom'"):
        read_gene_annotation(pd.DataFrame({"gene": ["A"], "start": [1], "end": [2]}))


def test_real_multiome_gene_activity():
    ad = require("anndata")
    atac = ad.read_h5ad(_data("bmmc_multiome_starter_500c_atac600peaks.h5ad"))
    rna = ad.read_h5ad(_data("bmmc_multiome_starter_500c_rna600g.h5ad"), backed="r")
    gencode = _data("hg38_genes_gencode.tsv.gz")
    ga = gene_activity(atac, gencode)
    assert ga.n_obs == atac.n_obs and ga.obs_names.equals(atac.obs_names)
    assert sp.issparse(ga.X) and ga.X.dtype == np.float32
    assert 100 < ga.n_vars < 5000 and (ga.var["n_peaks"] > 0).all()
    assert (ga.var["gene_type"] == "protein_coding").all()
    density = ga.X.nnz / np.prod(ga.X.shape)
    assert 0 < density < 0.8
    assert (np.asarray(ga.X.sum(axis=0)).ravel() > 0).sum() > 100
    assert len(set(ga.var_names) & set(rna.var_names)) >= 20
    # every score is the sum of the overlapping peaks (brute force on a subset of genes)
    ann = read_gene_annotation(gencode)
    ann = ann[ann["gene_name"].isin(ga.var_names[:40])]
    peaks = parse_peak_names(atac.var_names)
    ref, ref_names = _brute_overlap(peaks, ann, 2000, 0)
    np.testing.assert_allclose(ga[:, ref_names].X.toarray(), atac.X.toarray() @ ref, rtol=1e-6)
    # backed input gives the same matrix, read in row chunks
    backed = ad.read_h5ad(_data("bmmc_multiome_starter_500c_atac600peaks.h5ad"), backed="r")
    gb = gene_activity(backed, gencode, chunk_size=128)
    assert (gb.X != ga.X).nnz == 0
    # no-'chr' annotation still matches
    ann2 = read_gene_annotation(gencode).assign(chrom=lambda d: d["chrom"].str.removeprefix("chr"))
    g2 = gene_activity(atac, ann2, biotypes=None)
    assert g2.n_vars >= ga.n_vars
