"""Seurat-v3 highly variable genes (scmodal_jax.data.hvg): the loess fit against a brute-force reference and
scikit-misc, the normalised variances against the paper's definition, backed input, and the scanpy oracle."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import require, shared_file

from scmodal_jax.data.hvg import highly_variable_genes_seurat_v3, loess_fit, select_hvg

ad = require("anndata")


# ------------------------------------------------------------------------------------------- references


def _loess_brute(x: np.ndarray, y: np.ndarray, span: float = 0.3) -> np.ndarray:
    n = x.size
    q = int(np.floor(n * span))
    out = np.empty(n)
    for i in range(n):
        d = np.abs(x - x[i])
        h = np.sort(d)[q - 1]
        w = np.where(d < h, (1 - (d / h) ** 3) ** 3, 0.0)
        A = np.stack([np.ones(n), x - x[i], (x - x[i]) ** 2], axis=1) * np.sqrt(w)[:, None]
        beta = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)[0]
        out[i] = beta[0]
    return out


def _seurat_v3_dense(X: np.ndarray) -> np.ndarray:
    """Normalised variances written from the paper's definition, on a dense matrix."""
    n = X.shape[0]
    mean = X.mean(axis=0)
    var = X.var(axis=0, ddof=1)
    nc = var > 0
    fit = np.zeros(X.shape[1])
    fit[nc] = _loess_brute(np.log10(mean[nc]), np.log10(var[nc]))
    sd = np.sqrt(10**fit)
    Z = np.minimum((X - mean) / sd, np.sqrt(n))
    out = (Z**2).sum(axis=0) / (n - 1)
    out[~nc] = 0
    return out


def _counts(rng: np.random.Generator, n: int, p: int) -> sp.csr_matrix:
    lam = rng.gamma(0.3, 2.0, size=p) * rng.lognormal(0, 0.5, size=(n, 1))
    return sp.csr_matrix(rng.poisson(lam).astype(np.float32))


# ------------------------------------------------------------------------------------------- tests


def test_loess_matches_brute_force():
    rng = np.random.default_rng(0)
    x = np.sort(rng.normal(size=250))
    x[10:14] = x[10]  # ties
    y = np.sin(2 * x) + rng.normal(scale=0.2, size=x.size)
    np.testing.assert_allclose(loess_fit(x, y, span=0.3), _loess_brute(x, y, 0.3), atol=1e-8)
    perm = rng.permutation(x.size)
    np.testing.assert_allclose(loess_fit(x[perm], y[perm]), _loess_brute(x, y)[perm], atol=1e-8)
    # a small memory block forces several chunks: same values
    np.testing.assert_allclose(loess_fit(x, y, max_block=500), loess_fit(x, y), atol=1e-12)


def test_loess_matches_skmisc_direct():
    loess = require("skmisc.loess").loess
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 3, 600)
    y = 0.5 * x**2 - x + rng.normal(scale=0.3, size=x.size)
    model = loess(x, y, span=0.3, degree=2, surface="direct")
    model.fit()
    np.testing.assert_allclose(loess_fit(x, y), model.outputs.fitted_values, atol=1e-8)


def test_hvg_sparse_dense_and_brute_force():
    rng = np.random.default_rng(2)
    X = _counts(rng, 300, 220)
    keep = np.ones(X.shape[1])
    keep[5] = 0  # a constant gene
    X = sp.csr_matrix(X @ sp.diags(keep.astype(np.float32)))
    X.eliminate_zeros()
    df = highly_variable_genes_seurat_v3(X, n_top_genes=50)
    ref = _seurat_v3_dense(X.toarray().astype(np.float64))
    np.testing.assert_allclose(df["variances_norm"].to_numpy(), ref, rtol=1e-8, atol=1e-12)
    assert df["highly_variable"].sum() == 50 and df.loc[5, "variances_norm"] == 0
    top = set(np.argsort(-ref, kind="stable")[:50])
    assert set(np.flatnonzero(df["highly_variable"])) == top
    dense = highly_variable_genes_seurat_v3(X.toarray(), n_top_genes=50)
    pd.testing.assert_frame_equal(df, dense)
    mean, var = df["means"].to_numpy(), df["variances"].to_numpy()
    np.testing.assert_allclose(var, X.toarray().astype(np.float64).var(axis=0, ddof=1), rtol=1e-9)
    np.testing.assert_allclose(mean, X.toarray().astype(np.float64).mean(axis=0), rtol=1e-12)
    # select_hvg: top genes skipping excluded ones
    sel = select_hvg(X, 20, exclude=[int(np.argmin(df["rank"]))])
    assert sel.size == 20 and int(np.argmin(df["rank"])) not in sel
    assert np.all(np.diff(sel) > 0)


def test_hvg_backed_equals_in_memory(tmp_path):
    rng = np.random.default_rng(3)
    X = _counts(rng, 257, 120)
    path = tmp_path / "x.h5ad"
    ad.AnnData(X=X).write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    a = highly_variable_genes_seurat_v3(backed.X, n_top_genes=30, chunk_size=50)
    b = highly_variable_genes_seurat_v3(X, n_top_genes=30)
    np.testing.assert_allclose(a["variances_norm"], b["variances_norm"], rtol=1e-10)
    backed.file.close()


def test_hvg_vs_scanpy_oracle():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc = require("scanpy")
        require("skmisc")
    rna = ad.read_h5ad(shared_file("pbmc5k_cite_4000g_29adt_labeled.h5ad"))
    n = 2000
    ours = highly_variable_genes_seurat_v3(rna.X, n_top_genes=n, gene_names=rna.var_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.highly_variable_genes(rna, flavor="seurat_v3", n_top_genes=n)
    overlap = len(set(ours.index[ours["highly_variable"]]) & set(rna.var_names[rna.var["highly_variable"]]))
    # skmisc interpolates its loess surface (kd-tree vertices); ours is evaluated exactly: 1996/2000 here
    assert overlap >= 0.99 * n
    np.testing.assert_allclose(ours["means"], rna.var["means"], rtol=1e-5)
    np.testing.assert_allclose(ours["variances"], rna.var["variances"], rtol=1e-4)
    np.testing.assert_allclose(ours["variances_norm"], rna.var["variances_norm"], rtol=0.05)


def test_user_highly_variable_follows_scanpys_convention():
    from scmodal_jax.data.hvg import user_highly_variable

    a = ad.AnnData(np.zeros((3, 4), np.float32))
    assert user_highly_variable(a, None) is None  # no column: the recipe selects its own
    with pytest.raises(KeyError, match="highly_variable"):
        user_highly_variable(a, True)
    a.var["highly_variable"] = [True, False, True, False]
    np.testing.assert_array_equal(user_highly_variable(a, None), [0, 2])
    assert user_highly_variable(a, False) is None
    a.var["highly_variable"] = [False] * 4
    with pytest.raises(ValueError, match="flags no gene"):
        user_highly_variable(a, None)
