"""Preprocessing recipes, on synthetic data and the shared real files (HVG selection: tests/test_hvg.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import require, shared_file

from scmodal_jax.data.hvg import select_hvg
from scmodal_jax.data.recipes import (
    Prepared,
    check_counts,
    prepare_generic,
    prepare_protein_protein,
    prepare_rna_atac,
    prepare_rna_protein,
    standardize,
)

ad = require("anndata")

_data = shared_file


_CACHE: dict[str, object] = {}


def _read(name: str):
    if name not in _CACHE:
        _CACHE[name] = ad.read_h5ad(_data(name))
    return _CACHE[name].copy()


# ------------------------------------------------------------------------------------------- references


def _norm_log1p(B: np.ndarray, totals: np.ndarray, target: float) -> np.ndarray:
    f = np.divide(target, totals, out=np.zeros_like(totals, dtype=float), where=totals > 0)
    return np.log1p(B * f[:, None])


def _scale(B: np.ndarray, max_value: float | None = 10.0) -> np.ndarray:
    sd = B.std(axis=0, ddof=1)
    sd[sd == 0] = 1
    Z = (B - B.mean(axis=0)) / sd
    return Z if max_value is None else np.clip(Z, -max_value, max_value)


def _counts(rng: np.random.Generator, n: int, p: int) -> sp.csr_matrix:
    lam = rng.gamma(0.3, 2.0, size=p) * rng.lognormal(0, 0.5, size=(n, 1))
    return sp.csr_matrix(rng.poisson(lam).astype(np.float32))


# ------------------------------------------------------------------------------------------- helpers


def test_standardize_unclipped_moments_and_clip():
    X = sp.random(200, 30, density=0.3, random_state=1, format="csr") * 100
    X = sp.hstack([X, sp.csr_matrix(np.full((200, 1), 3.0))], format="csr")  # a constant column
    Z, mean, std = standardize(X, max_value=None)
    Zd = Z.astype(np.float64)
    np.testing.assert_allclose(Zd[:, :-1].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Zd[:, :-1].std(axis=0, ddof=1), 1, atol=1e-5)
    assert np.all(Z[:, -1] == 0) and not np.isnan(Z).any() and Z.dtype == np.float32
    np.testing.assert_allclose(mean, X.toarray().mean(axis=0))
    Zc, _, _ = standardize(X, max_value=2.0)
    assert Zc.max() <= 2 and Zc.min() >= -2 and (np.abs(Zd) > 2).any()
    np.testing.assert_allclose(Zc, np.clip(Zd, -2, 2), atol=1e-6)
    # dense input gives the same
    Z2, _, _ = standardize(X.toarray(), max_value=None)
    np.testing.assert_allclose(Z2, Z, atol=1e-6)


def test_check_counts():
    check_counts(sp.csr_matrix(np.array([[0, 1], [2, 3]], np.float32)))
    with pytest.raises(ValueError, match="negative"):
        check_counts(np.array([[0, -1.0]]))
    with pytest.raises(ValueError, match="non-integer"):
        check_counts(sp.csr_matrix(np.log1p(np.array([[0, 1.0], [2, 3]]))))
    with pytest.raises(ValueError, match="NaN"):
        check_counts(np.array([[np.nan, 1.0]]))


# ------------------------------------------------------------------------------------------- RNA/protein


def _check_prepared(P: Prepared) -> None:
    assert len(P.datasets) == len(P.feature_names) == len(P.scaling) == len(P.obs) == len(P.linked)
    for Z, names, obs, mask in zip(P.datasets, P.feature_names, P.obs, P.linked, strict=True):
        assert Z.dtype == np.float32 and not np.isnan(Z).any() and np.isfinite(Z).all()
        assert Z.shape == (len(obs), len(names)) and mask.shape == (Z.shape[1],)
    for (L, R), lb in zip(P.link_matrices(), P.links, strict=True):
        i, j = lb.pair
        assert L.shape[0] == P.datasets[i].shape[0] and R.shape[0] == P.datasets[j].shape[0]
        assert L.shape[1] == R.shape[1] == lb.n_features > 0


def test_rna_protein_bmmc_matches_dense_reference():
    rna = _read("bmmc_cite_starter_600c_1000g_134adt.h5ad")
    P = prepare_rna_protein(rna, label_key="cell_type")
    _check_prepared(P)
    names = P.links[0].names
    k = len(names)
    assert P.n_linked == [k] and k >= 5
    assert ("HLA-DRA", "HLA-DR") in names and ("CD69", "CD69") in names and ("ITGAE", "CD103") in names
    assert P.feature_names[0][:k] == [g for g, _ in names] and P.feature_names[1][:k] == [p for _, p in names]
    assert P.datasets[0].shape == (600, 1000) and P.datasets[1].shape == (600, 134)  # all 992 unlinked genes
    assert (P.labels[0] == rna.obs["cell_type"].to_numpy()).all()

    # dense re-implementation of the recipe
    X = rna.X.toarray().astype(np.float64)
    prot = rna.obsm["protein_counts"]
    Pm = prot.to_numpy(np.float64)
    gi = [rna.var_names.get_loc(g) for g, _ in names]
    pi = [prot.columns.get_loc(p) for _, p in names]
    L = X[:, gi]
    target = max(np.median(L.sum(1)), 20)
    assert P.info["target_sum_linked"] == pytest.approx(target)
    rest = [rna.var_names.get_loc(g) for g in P.feature_names[0][k:]]
    lib = X.sum(1)
    B_rna = np.hstack([_norm_log1p(L, L.sum(1), target), _norm_log1p(X[:, rest], lib, np.median(lib))])
    np.testing.assert_allclose(P.datasets[0], _scale(B_rna), atol=2e-5)
    restp = [prot.columns.get_loc(p) for p in P.feature_names[1][k:]]
    ptot = Pm.sum(1)
    B_p = np.hstack(
        [_norm_log1p(Pm[:, pi], Pm[:, pi].sum(1), target), _norm_log1p(Pm[:, restp], ptot, np.median(ptot))]
    )
    np.testing.assert_allclose(P.datasets[1], _scale(B_p), atol=2e-5)
    # the stored scaler maps back to the normalised values (where not clipped)
    back = P.scaling[1].inverse(P.datasets[1])
    unclipped = np.abs(_scale(B_p, None)) < 10
    np.testing.assert_allclose(back[unclipped], B_p[unclipped], atol=1e-4)


def test_rna_protein_pbmc5k_hvg_and_links():
    rna = _read("pbmc5k_cite_4000g_29adt_labeled.h5ad")
    P = prepare_rna_protein(rna, n_hvg=500)
    _check_prepared(P)
    names = P.links[0].names
    k = len(names)
    assert ("CD14", "CD14") in names and ("PDCD1", "PD.1") in names and ("MS4A1", "CD20") in names
    cd3 = [g for g, p in names if p == "CD3"]
    assert set(cd3) == {g for g in ("CD3D", "CD3E", "CD3G") if g in rna.var_names} and len(cd3) >= 2
    assert [g for g, p in names if p == "HLA.DR"][0] == "HLA-DRA"
    linked_genes = {rna.var_names.get_loc(g) for g, _ in names}
    expected = select_hvg(rna.X, 500, exclude=sorted(linked_genes))
    assert P.feature_names[0][k:] == [rna.var_names[i] for i in expected]
    assert P.datasets[0].shape == (3920, k + 500)
    assert P.datasets[1].shape == (3920, k + 29 - len({p for _, p in names}))
    # z-scores before clipping: the inverse of the scaler has the stored mean/std
    Z = P.datasets[0].astype(np.float64)
    inner = np.abs(Z).max(axis=0) < 10
    np.testing.assert_allclose(Z[:, inner].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(Z[:, inner].std(axis=0, ddof=1), 1, atol=1e-4)


def test_rna_protein_backed_and_dataframe_inputs(tmp_path):
    rna = _read("bmmc_cite_starter_600c_1000g_134adt.h5ad")
    ref = prepare_rna_protein(rna, n_hvg=200)
    path = tmp_path / "bmmc.h5ad"
    rna.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    P = prepare_rna_protein(backed, n_hvg=200)
    for a, b in zip(P.datasets, ref.datasets, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert P.feature_names == ref.feature_names
    backed.file.close()
    prot = ad.AnnData(X=rna.obsm["protein_counts"].to_numpy(), obs=rna.obs)
    prot.var_names = list(rna.obsm["protein_counts"].columns)
    P2 = prepare_rna_protein(rna, prot, n_hvg=200)
    P3 = prepare_rna_protein(rna, rna.obsm["protein_counts"], n_hvg=200)
    for a, b, c in zip(P2.datasets, P3.datasets, ref.datasets, strict=True):
        np.testing.assert_allclose(a, c, atol=1e-6)
        np.testing.assert_allclose(b, c, atol=1e-6)
    # explicit pairs override the table; duplicated genes appear once per pair
    P4 = prepare_rna_protein(rna, pairs=[("CD69", "CD69"), ("HLA-DR", "HLA-DRA"), ("HLA-A-B-C", "HLA-DRA")])
    assert P4.feature_names[0][:3] == ["CD69", "HLA-DRA", "HLA-DRA"]
    assert P4.feature_names[1][:3] == ["CD69", "HLA-DR", "HLA-A-B-C"]


def test_rna_protein_errors():
    rna = _read("bmmc_cite_starter_600c_1000g_134adt.h5ad")
    logged = rna.copy()
    logged.X = logged.X.copy()
    logged.X.data = np.log1p(logged.X.data)
    with pytest.raises(ValueError, match="non-integer"):
        prepare_rna_protein(logged)
    neg = rna.copy()
    neg.X = neg.X.copy()
    neg.X.data[0] = -1
    with pytest.raises(ValueError, match="negative"):
        prepare_rna_protein(neg)
    with pytest.raises(KeyError, match="label_key 'celltype'"):
        prepare_rna_protein(rna, label_key="celltype")
    bad = pd.DataFrame(np.ones((rna.n_obs, 2)), index=rna.obs_names, columns=["Foo1", "Bar2"])
    with pytest.raises(ValueError, match="no protein <-> gene link"):
        prepare_rna_protein(rna, bad)
    with pytest.raises(KeyError, match="obsm"):
        prepare_rna_protein(rna, protein_key="adt")
    with pytest.raises(KeyError, match="layer"):
        prepare_rna_protein(rna, layer="counts")


def test_rna_protein_cytof_like_panel_uses_arcsinh():
    rng = np.random.default_rng(5)
    rna = ad.AnnData(X=_counts(rng, 120, 40))
    rna.var_names = ["CD3E", "CD4", "MS4A1"] + [f"G{i}" for i in range(37)]
    inten = pd.DataFrame(rng.gamma(1.0, 80.0, size=(90, 3)), columns=["CD3", "CD4(Nd145)Di", "Foo"])
    P = prepare_rna_protein(rna, inten, n_hvg=10)
    _check_prepared(P)
    assert P.info["protein_transform"] == "arcsinh" and P.n_linked == [2]
    ref = _scale(np.arcsinh(inten.to_numpy()[:, [0, 1, 2]] / 5))
    np.testing.assert_allclose(P.datasets[1], ref, atol=2e-5)


# ------------------------------------------------------------------------------------------- protein/protein


def test_protein_protein_adt_vs_cytof():
    adt = _read("cite_adt_pbmc5k_mario_5107c_29adt.h5ad")
    cytof = _read("cytof_pbmc_mario_4606c_30markers.h5ad")
    P = prepare_protein_protein(adt, cytof, modalities=("adt", "cytof"), label_key="cell_type")
    _check_prepared(P)
    names = P.links[0].names
    assert len(names) == 17 and P.n_linked == [17]
    assert ("CD274", "PD.L1") in names and ("PD.1", "PD.1") in names and ("CD3", "CD3") in names
    assert P.datasets[0].shape == (5107, 29) and P.datasets[1].shape == (4606, 30)
    t_adt, t_cyt = P.info["transforms"]
    assert t_adt["transform"] == "normalize_total+log1p" and t_cyt["transform"] == "arcsinh"
    C = cytof.X.astype(np.float64)
    assert t_adt["target_sum"] == pytest.approx(np.median(C.sum(1)))
    A = adt.X.astype(np.float64)
    oa = [adt.var_names.get_loc(n) for n in P.feature_names[0]]
    ob = [cytof.var_names.get_loc(n) for n in P.feature_names[1]]
    np.testing.assert_allclose(P.datasets[0], _scale(_norm_log1p(A, A.sum(1), np.median(C.sum(1)))[:, oa]), atol=2e-5)
    np.testing.assert_allclose(P.datasets[1], _scale(np.arcsinh(C / 5))[:, ob], atol=2e-5)
    with pytest.raises(ValueError, match="non-integer"):
        prepare_protein_protein(adt, cytof, transform=("auto", "counts"))
    with pytest.raises(ValueError, match="share no marker"):
        prepare_protein_protein(adt[:, ["CD3"]], cytof[:, ["CD19"]])
    with pytest.raises(KeyError, match="label_key"):
        prepare_protein_protein(adt, cytof, label_key="celltype")


# ------------------------------------------------------------------------------------------- RNA/ATAC


def test_rna_atac_multiome():
    from scmodal_jax.data.gene_activity import gene_activity

    rna = _read("bmmc_multiome_starter_500c_rna600g.h5ad")
    atac = _read("bmmc_multiome_starter_500c_atac600peaks.h5ad")
    ga = gene_activity(atac, _data("hg38_genes_gencode.tsv.gz"), biotypes=None)
    P = prepare_rna_atac(rna, ga, n_hvg=400, joint_pca=None, label_key="cell_type")
    _check_prepared(P)
    names = P.links[0].names
    k = len(names)
    assert k >= 10 and P.n_linked == [k] and all(a == b for a, b in names)
    hvg = set(rna.var_names[select_hvg(rna.X, 400)])
    assert {a for a, _ in names} <= hvg and set(P.feature_names[0]) == hvg
    assert P.datasets[0].shape == (500, 400) and P.datasets[1].shape == (500, k)

    Q = prepare_rna_atac(rna, ga, n_hvg=400, joint_pca=8, n_hvg_atac=20)
    _check_prepared(Q)
    lb = Q.links[0]
    assert lb.explicit and Q.n_linked == [None] and lb.n_features == 8
    L, R = Q.link_matrices()[0]
    assert L.shape == (500, 8) and R.shape == (500, 8)
    V = lb.components
    np.testing.assert_allclose(V.T @ V, np.eye(8), atol=1e-8)
    M = np.vstack([Q.datasets[0][:, :k], Q.datasets[1][:, :k]]).astype(np.float64)
    np.testing.assert_allclose(np.vstack([L, R]), (M - M.mean(0)) @ V, atol=1e-4)
    assert Q.datasets[1].shape == (500, k + 20)
    # the variance captured decreases along the components
    assert np.all(np.diff(np.vstack([L, R]).var(axis=0)) <= 1e-6)

    other = ga.copy()
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="gene activity score"):
        prepare_rna_atac(rna, other, n_hvg=100)


# ------------------------------------------------------------------------------------------- generic


def _toy(rng, n, names, prefix="c"):
    a = ad.AnnData(X=rng.poisson(3.0, size=(n, len(names))).astype(np.float32))
    a.var_names = names
    a.obs_names = [f"{prefix}{i}" for i in range(n)]
    a.obs["cell_type"] = rng.choice(["T", "B"], n)
    return a


def test_generic_chain_of_three():
    rng = np.random.default_rng(7)
    A = _toy(rng, 30, ["g1", "g2", "g3", "g4"], "a")
    B = _toy(rng, 40, ["p1", "p2", "p3", "p4", "p5"], "b")
    C = _toy(rng, 25, ["c1", "c2", "c3"], "c")
    B.X = sp.csr_matrix(B.X)
    links = [[("g2", "p1"), ("g1", "p2")], [("p2", "c3"), ("p3", "c1")]]
    P = prepare_generic([A, B, C], links, label_key="cell_type", modalities=["rna", "adt", "cytof"])
    _check_prepared(P)
    assert P.feature_names[0] == ["g2", "g1", "g3", "g4"]
    # p2 is linked on both sides: one column that both links use.
    assert P.feature_names[1] == ["p1", "p2", "p3", "p4", "p5"]
    assert list(P.links[0].right_cols) == [0, 1] and list(P.links[1].left_cols) == [1, 2]
    assert P.feature_names[2] == ["c3", "c1", "c2"]
    assert P.n_linked == [2, None]
    (L0, R0), (L1, R1) = P.link_matrices()
    np.testing.assert_array_equal(L0, A[:, ["g2", "g1"]].X)
    np.testing.assert_array_equal(R0, B[:, ["p1", "p2"]].X.toarray())
    np.testing.assert_array_equal(L1, B[:, ["p2", "p3"]].X.toarray())
    np.testing.assert_array_equal(R1, C[:, ["c3", "c1"]].X)
    assert [m.sum() for m in P.linked] == [2, 3, 2]
    assert P.scaling[0].mean is None and P.labels[2].shape == (25,)

    S = prepare_generic(
        [A, B, C], links, normalize=["counts", "log1p", "arcsinh"], scale=True, features=[None, ["p5"], []]
    )
    _check_prepared(S)
    assert S.feature_names[1] == ["p1", "p2", "p3", "p5"] and S.feature_names[2] == ["c3", "c1"]
    X = A.X.astype(np.float64)[:, [1, 0, 2, 3]]
    lib = A.X.sum(1).astype(np.float64)
    np.testing.assert_allclose(S.datasets[0], _scale(_norm_log1p(X, lib, np.median(lib))), atol=2e-5)
    np.testing.assert_allclose(S.datasets[2], _scale(np.arcsinh(C.X[:, [2, 0]].astype(np.float64) / 5)), atol=2e-5)


def test_generic_errors():
    rng = np.random.default_rng(8)
    A = _toy(rng, 10, ["g1", "g2"])
    B = _toy(rng, 12, ["p1", "p2"])
    with pytest.raises(ValueError, match="at least two"):
        prepare_generic([A], [])
    with pytest.raises(ValueError, match="link lists"):
        prepare_generic([A, B], [])
    with pytest.raises(ValueError, match="no link between dataset 0"):
        prepare_generic([A, B], [[]])
    with pytest.raises(ValueError, match=r"not found: in dataset0: \['gX'\]"):
        prepare_generic([A, B], [[("gX", "p1")]])
    with pytest.raises(KeyError, match="label_key"):
        prepare_generic([A, B], [[("g1", "p1")]], label_key="nope")
    A.X = A.X + 0.5
    with pytest.raises(ValueError, match="non-integer"):
        prepare_generic([A, B], [[("g1", "p1")]], normalize="counts")
