"""scmodal_jax.analysis: imputation, relationships, label transfer, mapping, each against numpy references.

The models here are untrained (random weights from `init_state`): the functions under test only compose the
model's encoders/decoders, so a reference built from `model.impute` / `model.transform` plus numpy checks
everything they add. The PBMC5k test at the end trains briefly on real data and skips without it.
"""

import h5py
import numpy as np
import pandas as pd
import pytest
import reference
import scipy.sparse as sp
from conftest import shared_file
from flax import nnx

from scmodal_jax import analysis as A
from scmodal_jax.analysis.imputation import DuplicateAverager
from scmodal_jax.analysis.mapping import NormStep
from scmodal_jax.core.step import init_state
from scmodal_jax.data.io import average_duplicate_columns
from scmodal_jax.data.recipes import prepare_rna_protein
from scmodal_jax.model import SCMODAL

GENES = ["CD14", "CD4", "CD19", "MS4A1", "CD3D", "CD3E", "CD3G", "CD8A", "CD8B", "PTPRC", "LYZ", "GNLY"]
GENES += [f"G{i}" for i in range(28)]
PROTEINS = ["CD14", "CD4", "CD19", "CD20", "CD3", "CD8a", "CD45RA", "CD45RO", "CD34"]


def untrained(n_features, preprocessing=None, link_widths=None, seed=0):
    """An SCMODAL with random weights (predicting works; training is not needed to test the analyses)."""
    model = SCMODAL(n_latent=4, hidden=16, disc_hidden=8, steps=1, batch_size=8, seed=seed, progress=False)
    model._nets, model._state = init_state(model.hp, tuple(n_features))
    model.preprocessing_ = preprocessing
    model.link_widths = link_widths
    return model


@pytest.fixture(scope="module")
def cite():
    """Small CITE-like counts, the rna_protein recipe's Prepared inputs and a model carrying its preprocessing."""
    import anndata as ad

    rng = np.random.default_rng(0)
    n = 150
    state = rng.normal(size=(n, 3))
    rna = rng.poisson(np.exp(0.6 * state @ rng.normal(size=(3, len(GENES))) + 0.5)).astype(np.float32)
    prot = rng.poisson(np.exp(0.5 * state @ rng.normal(size=(3, len(PROTEINS))) + 3)).astype(np.float32)
    cells = [f"c{i}" for i in range(n)]
    rna_ad = ad.AnnData(sp.csr_matrix(rna), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=GENES))
    rna_ad.obs["cell_type"] = pd.Categorical(np.where(state[:, 0] > 0, "A", "B"))
    prot_df = pd.DataFrame(prot, index=cells, columns=PROTEINS)
    prep = prepare_rna_protein(rna_ad, prot_df, n_hvg=15)
    model = untrained([x.shape[1] for x in prep.datasets], prep.record(), (prep.links[0].n_features,))
    return {"rna": rna_ad, "protein": prot_df, "prep": prep, "model": model}


# ---------------------------------------------------------------------------------------------- mapping
def test_preprocess_reproduces_the_recipe_from_raw_counts(cite):
    model, prep = cite["model"], cite["prep"]
    assert prep.feature_names[0].count("PTPRC") == 2 and prep.feature_names[1].count("CD3") == 3
    # features in another order (and sparse/dense, blocks of 17 cells): the recipe's own matrices come back
    rna = cite["rna"][:, np.random.default_rng(1).permutation(len(GENES))].copy()
    Z = A.preprocess(model, rna, "rna", block_size=17)
    np.testing.assert_allclose(Z, prep.datasets[0], atol=2e-5)
    prot = cite["protein"][PROTEINS[::-1]]
    np.testing.assert_allclose(A.preprocess(model, prot, "protein", block_size=1000), prep.datasets[1], atol=2e-5)


def test_preprocess_rule_matches_numpy(cite):
    """The documented rule, written out in numpy: linked block to target_sum_linked over its own columns, the
    rest to target_sum_rna over all input genes, then z-score with the stored statistics and clip."""
    model, prep = cite["model"], cite["prep"]
    counts = cite["rna"].X.toarray().astype(np.float64)
    names = prep.feature_names[0]
    k = prep.links[0].n_features
    cols = [GENES.index(g) for g in names]
    x = counts[:, cols]
    info = prep.info
    link = np.log1p(x[:, :k] * info["target_sum_linked"] / x[:, :k].sum(1, keepdims=True))
    rest = np.log1p(x[:, k:] * info["target_sum_rna"] / counts.sum(1, keepdims=True))
    sc = model.preprocessing_["scaling"][0]
    ref = np.clip((np.hstack([link, rest]) - sc["mean"]) / np.asarray(sc["std"]), -10, 10)
    np.testing.assert_allclose(A.preprocess(model, cite["rna"], "rna"), ref, atol=2e-5)
    plan = A.normalization_plan(model, "rna")
    assert plan == [
        NormStep(0, k, "normalize_total+log1p", info["target_sum_linked"], "block"),
        NormStep(k, len(names), "normalize_total+log1p", info["target_sum_rna"], "input"),
    ]
    # library_size overrides the all-genes totals; input="normalized" starts after the log1p
    lib = counts.sum(1) * 2
    rest2 = np.log1p(x[:, k:] * info["target_sum_rna"] / lib[:, None])
    ref2 = np.clip((np.hstack([link, rest2]) - sc["mean"]) / np.asarray(sc["std"]), -10, 10)
    np.testing.assert_allclose(A.preprocess(model, cite["rna"], "rna", library_size=lib), ref2, atol=2e-5)
    logged = pd.DataFrame(np.hstack([link, rest]), columns=names).T.groupby(level=0).first().T
    np.testing.assert_allclose(A.preprocess(model, logged, "rna", input="normalized"), ref, atol=2e-5)
    np.testing.assert_array_equal(A.preprocess(model, prep.datasets[0], "rna", input="scaled"), prep.datasets[0])


def test_normalization_plans_of_other_recipes():
    rec = {"modalities": ["atac", "rna"], "feature_names": [["a", "b"], ["x", "y", "z"]], "scaling": [None, None]}
    model = untrained([2, 3], {**rec, "info": {"recipe": "rna_atac", "target_sum_rna": 10.0,
                                               "target_sum_atac": 5.0}})  # fmt: skip
    assert A.normalization_plan(model, "rna") == [NormStep(0, 3, "normalize_total+log1p", 10.0, "input")]
    assert A.normalization_plan(model, "atac") == [NormStep(0, 2, "normalize_total+log1p", 5.0, "input")]
    model.preprocessing_["info"] = {
        "recipe": "protein_protein",
        "transforms": [
            {"transform": "arcsinh", "cofactor": 150.0},
            {"transform": "normalize_total+log1p", "target_sum": 7.0},
        ],
    }
    assert A.normalization_plan(model, 0) == [NormStep(0, 2, "arcsinh", cofactor=150.0)]
    assert A.normalization_plan(model, 1)[0].target_sum == 7.0
    model.preprocessing_["info"] = {"recipe": "generic", "normalize": ["log1p", "counts"]}
    assert A.normalization_plan(model, 0) == [NormStep(0, 2, "log1p")]
    with pytest.raises(ValueError, match="not stored"):
        A.normalization_plan(model, 1)
    override = A.normalization_plan(model, 1, {"transform": "counts", "target_sum": 100})
    assert override == [NormStep(0, 3, "normalize_total+log1p", 100.0, "input")]
    x = np.array([[1.0, 3.0, 0.0], [2.0, 2.0, 4.0]])
    got = A.preprocess(model, x, 1, normalization={"transform": "counts", "target_sum": 100})
    np.testing.assert_allclose(got, np.log1p(x * 100 / x.sum(1, keepdims=True)), rtol=1e-6)
    np.testing.assert_array_equal(x, [[1.0, 3.0, 0.0], [2.0, 2.0, 4.0]])  # the input is not modified
    model.preprocessing_["info"] = {"recipe": "mystery"}
    with pytest.raises(ValueError, match="unknown recipe"):
        A.normalization_plan(model, 0)


def test_preprocess_errors(cite):
    model = cite["model"]
    with pytest.raises(ValueError, match="not a modality of this model.*'rna', 'protein'"):
        A.preprocess(model, cite["rna"], "atac")
    with pytest.raises(ValueError, match=r"1 of the model.s 25 features are missing from the rna input: CD14$"):
        A.preprocess(model, cite["rna"][:, 1:].copy(), "rna")
    with pytest.raises(ValueError, match="has 5 columns but the model's rna modality has"):
        A.preprocess(model, np.zeros((3, 5)), "rna")
    with pytest.raises(ValueError, match="not non-negative integers.*input='normalized'"):
        A.preprocess(model, cite["protein"] + 0.5, "protein")
    with pytest.raises(ValueError, match="input must be one of"):
        A.preprocess(model, cite["protein"], "protein", input="raw")
    bare = untrained([3, 2])
    with pytest.raises(ValueError, match="needs the preprocessing stored with the model"):
        A.preprocess(bare, pd.DataFrame(np.ones((2, 3)), columns=list("abc")), 0)
    with pytest.raises(ValueError, match="needs the preprocessing stored"):
        A.impute(bare, np.ones((2, 3)), 0, 1, scale="log1p")


def test_select_features_case_fallback_and_duplicates():
    cols = A.select_features(["CD3", "cd4", "CD3"], ["CD4", "CD3", "x"])
    np.testing.assert_array_equal(cols, [1, 0, 1])
    with pytest.raises(ValueError, match="2 of the model's 2 features are missing.*a, b"):
        A.select_features(["a", "b"], ["c"])


# ---------------------------------------------------------------------------------------------- imputation
def test_duplicate_averager_matches_numpy_and_io():
    rng = np.random.default_rng(0)
    names = ["a", "b", "a", "c", "b", "a"]
    x = rng.normal(size=(5, 6)).astype(np.float32)
    avg = DuplicateAverager(names)
    assert avg.names == ["a", "b", "c"]
    ref = np.stack([x[:, [0, 2, 5]].mean(1), x[:, [1, 4]].mean(1), x[:, 3]], axis=1)
    np.testing.assert_allclose(avg(x), ref, rtol=1e-6)
    np.testing.assert_allclose(avg(x), average_duplicate_columns(x, names).to_numpy(), rtol=1e-6)


def test_impute_against_numpy_reference(cite):
    model, prep = cite["model"], cite["prep"]
    X = prep.datasets[0]
    sc = model.preprocessing_["scaling"][1]
    raw = model.impute(X, source="rna", target="protein").astype(np.float64)
    names = prep.feature_names[1]
    ref_scaled = pd.DataFrame(raw, columns=names).T.groupby(level=0, sort=False).mean().T
    got = A.impute(model, X, "rna", "protein")
    assert list(got.columns) == list(dict.fromkeys(names)) == A.imputed_feature_names(model, "protein")
    np.testing.assert_allclose(got.to_numpy(), ref_scaled.to_numpy(), rtol=1e-5, atol=1e-6)
    log1p = raw * np.asarray(sc["std"]) + np.asarray(sc["mean"])
    ref_log = pd.DataFrame(log1p, columns=names).T.groupby(level=0, sort=False).mean().T
    got_log = A.impute(model, X, "rna", "protein", scale="log1p")
    np.testing.assert_allclose(got_log.to_numpy(), ref_log.to_numpy(), rtol=1e-5, atol=1e-5)
    kept = A.impute(model, X, 1 - 1, 1, average_duplicates=False)
    assert kept.shape == (X.shape[0], len(names))
    # from raw counts with obs names: same values, cells named
    from_counts = A.impute(model, cite["rna"], "rna", "protein", input="counts")
    assert list(from_counts.index) == list(cite["rna"].obs_names)
    np.testing.assert_allclose(from_counts.to_numpy(), got.to_numpy(), atol=1e-4)


def test_streamed_imputation_is_identical_to_unbatched(cite, tmp_path):
    model, prep = cite["model"], cite["prep"]
    X = prep.datasets[0]
    whole = A.impute(model, X, "rna", "protein", scale="log1p", block_size=len(X)).to_numpy()
    blocks = list(A.iter_impute(model, X, "rna", "protein", scale="log1p", block_size=7))
    assert [b[0] for b in blocks] == list(range(0, len(X), 7)) and blocks[-1][1] == len(X)
    np.testing.assert_array_equal(np.concatenate([b[2] for b in blocks]), whole)
    # a preallocated memmap / h5 dataset / sparse or backed input, filled block by block
    mm = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=whole.shape)
    A.impute(model, sp.csr_matrix(X), "rna", "protein", scale="log1p", block_size=11, out=mm)
    np.testing.assert_array_equal(np.asarray(mm), whole)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["x"] = X
    with h5py.File(tmp_path / "in.h5", "r") as f:
        streamed = A.impute(model, f["x"], "rna", "protein", scale="log1p", block_size=13)
    np.testing.assert_array_equal(streamed.to_numpy(), whole)
    # against the model's own unbatched call (different compiled batch shape: float rounding only)
    ref = model.impute(X, "rna", "protein")
    np.testing.assert_allclose(A.impute(model, X, "rna", "protein", average_duplicates=False).to_numpy(), ref,
                               rtol=1e-5, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("suffix", [".h5ad", ".h5", ".npy", ".csv.gz"])
def test_write_imputed_formats(cite, tmp_path, suffix):
    import anndata as ad

    model, prep = cite["model"], cite["prep"]
    X = prep.datasets[1]
    ref = A.impute(model, X, "protein", "rna", scale="log1p")
    path = A.write_imputed(tmp_path / f"imp{suffix}", model, X, "protein", "rna", scale="log1p", block_size=40,
                           obs=prep.obs[1])  # fmt: skip
    if suffix == ".h5ad":
        back = ad.read_h5ad(path)
        values, cols, rows = back.X, list(back.var_names), list(back.obs_names)
        assert back.uns["scmodal_imputation"]["target"] == "rna"
    elif suffix == ".h5":
        with h5py.File(path) as f:
            values, cols = f["values"][:], [c.decode() for c in f["feature_names"][:]]
            rows = [c.decode() for c in f["obs_names"][:]]
    elif suffix == ".npy":
        values = np.load(path)
        cols = (tmp_path / "imp.npy.features.txt").read_text().split()
        rows = (tmp_path / "imp.npy.obs.txt").read_text().split()
    else:
        df = pd.read_csv(path, index_col=0)
        values, cols, rows = df.to_numpy(), list(df.columns), list(df.index)
    assert cols == list(ref.columns) and rows == list(prep.obs[1].index)
    np.testing.assert_allclose(values, ref.to_numpy(), rtol=1e-6, atol=1e-6)


def test_imputation_composes_any_pair_of_three_modalities():
    rng = np.random.default_rng(0)
    rec = {"modalities": ["a", "b", "c"], "feature_names": [list("pqrs"), list("xyz"), ["u", "v", "u"]],
           "scaling": [None, None, {"mean": [1.0, 2.0, 3.0], "std": [2.0, 1.0, 0.5], "max_value": 10.0}],
           "info": {"recipe": "synthetic"}}  # fmt: skip
    model = untrained([4, 3, 3], rec, (2, 2))
    x = rng.normal(size=(9, 4)).astype(np.float32)
    z = model.transform(x, modality="a")
    for target, names in (("c", ["u", "v"]), ("b", list("xyz")), ("a", list("pqrs"))):
        got = A.impute(model, x, "a", target, scale="log1p")
        raw = model.impute(x, "a", target).astype(np.float64)
        if target == "c":
            raw = raw * np.array([2.0, 1.0, 0.5]) + np.array([1.0, 2.0, 3.0])
            raw = np.stack([raw[:, [0, 2]].mean(1), raw[:, 1]], axis=1)
        assert list(got.columns) == names
        np.testing.assert_allclose(got.to_numpy(), raw, rtol=1e-5, atol=1e-5)
    # composed through the latent: G_c(E_a(x)), against the two networks' weights run by a numpy MLP
    gen = nnx.to_pure_dict(model._state["gen"])
    enc_a, dec_c = (
        [(np.asarray(layer["kernel"]), np.asarray(layer["bias"])) for _, layer in sorted(net["layers"].items())]
        for net in (gen["encoders"][0], gen["decoders"][2])
    )
    np.testing.assert_allclose(z, reference.mlp(enc_a, x), rtol=1e-4, atol=1e-5)
    expected = reference.mlp(dec_c, reference.mlp(enc_a, x))
    np.testing.assert_allclose(model.impute(x, "a", "c"), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(model.impute(x, "a", "c"), model.impute(x, 0, 2))  # names = indices
    with pytest.raises(ValueError, match="target='d' is not a modality"):
        A.impute(model, x, "a", "d")
    with pytest.raises(ValueError, match="scale must be one of"):
        A.impute(model, x, "a", "b", scale="counts")
    with pytest.raises(ValueError, match="has 3 columns but the model's a modality has 4"):
        A.impute(model, x[:, :3], "a", "b")
    with pytest.raises(ValueError, match="out has shape"):
        A.impute(model, x, "a", "b", out=np.zeros((9, 2)))


# ---------------------------------------------------------------------------------------------- relationships
def _corr(a, b):
    return np.corrcoef(np.hstack([a, b]).T)[: a.shape[1], a.shape[1] :]


def test_correlations_all_pairs_match_numpy_with_permutation_pvalues():
    rng = np.random.default_rng(0)
    n, pa, pb, n_perm = 60, 5, 4, 30
    a = rng.normal(size=(n, pa)) + 3
    b = rng.normal(size=(n, pb)) - 2
    b[:, 0] += 2 * a[:, 1]
    stream = ((s, min(s + 16, n), a[s : s + 16]) for s in range(0, n, 16))
    df = A.feature_correlations(stream, sp.csr_matrix(b), list("abcde"), list("wxyz"), n_permutations=n_perm,
                                seed=3)  # fmt: skip
    assert len(df) == pa * pb and (df["n_cells"] == n).all()
    assert (df.iloc[0]["feature_a"], df.iloc[0]["feature_b"]) == ("b", "w")  # sorted by |r|
    r = _corr(a, b)
    perm_rng = np.random.default_rng(3)
    null = np.stack([_corr(a, b[perm_rng.permutation(n)]) for _ in range(n_perm)])
    p = (1 + (np.abs(null) >= np.abs(r)[None] - 1e-12).sum(0)) / (1 + n_perm)
    for row in df.itertuples():
        i, j = "abcde".index(row.feature_a), "wxyz".index(row.feature_b)
        assert row.r == pytest.approx(r[i, j], abs=1e-10)
        assert row.p_value == pytest.approx(p[i, j])
    emp = A.feature_correlations(a, b, pvalue="empirical", n_permutations=n_perm, seed=3, block_size=7)
    pool = np.abs(null).ravel()
    for row in emp.itertuples():
        i, j = int(row.feature_a[1:]), int(row.feature_b[1:])
        assert row.p_value == pytest.approx((1 + (pool >= abs(r[i, j]) - 1e-12).sum()) / (1 + pool.size))
    none = A.feature_correlations(a, b, pvalue=None)
    assert none["p_value"].isna().all()


def test_correlations_constant_feature_and_bad_input():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 2))
    a[:, 1] = 4.0
    df = A.feature_correlations(a, rng.normal(size=(20, 2)), n_permutations=5)
    assert df.loc[df.feature_a == "a1", ["r", "p_value"]].isna().all().all()
    with pytest.raises(ValueError, match="a has 10 cells but b has 20"):
        A.feature_correlations(a[:10], a)
    with pytest.raises(ValueError, match="pvalue must be one of"):
        A.feature_correlations(a, a, pvalue="t")
    with pytest.raises(ValueError, match="pairs name unknown features"):
        A.feature_correlations(a, a, pairs=[("a0", "zz")])


def test_window_pairs_and_windowed_correlations_match_brute_force():
    rng = np.random.default_rng(2)
    genes = pd.DataFrame({"gene_name": [f"g{i}" for i in range(40)],
                          "chrom": rng.choice(["chr1", "chr2"], 40), "start": rng.integers(0, 200_000, 40),
                          "strand": rng.choice(["+", "-"], 40)})  # fmt: skip
    genes["end"] = genes["start"] + rng.integers(100, 30_000, 40)
    peak_start = rng.integers(0, 200_000, 80)
    peaks = [f"{c}-{s}-{s + 500}" for c, s in zip(rng.choice(["chr1", "chr2", "chr3"], 80), peak_start, strict=True)]
    names_a = list(genes["gene_name"]) + ["unplaced"]
    ia, ib, dist = A.window_pairs(names_a, peaks, genes, peaks, window=10_000)
    tss = np.where(genes["strand"] == "-", genes["end"], genes["start"]).astype(float)
    chrom_p = [p.split("-")[0] for p in peaks]
    centre = np.array([int(p.split("-")[1]) + 250 for p in peaks], float)
    brute = [(i, j, abs(centre[j] - tss[i])) for i in range(40) for j in range(80)
             if genes["chrom"][i] == chrom_p[j] and abs(centre[j] - tss[i]) <= 10_000]  # fmt: skip
    assert len(brute) > 5
    assert list(zip(ia.tolist(), ib.tolist(), dist.tolist(), strict=True)) == brute
    # correlations restricted to the window = the all-pairs table filtered by the brute-force pairs
    n = 50
    a, b = rng.normal(size=(n, 41)), rng.normal(size=(n, 80))
    df = A.feature_correlations(a, b, names_a, peaks, coords_a=genes, coords_b=peaks, pvalue=None)
    r = _corr(a, b)
    got = {(row.feature_a, row.feature_b): (row.r, row.distance) for row in df.itertuples()}
    assert got.keys() == {(names_a[i], peaks[j]) for i, j, _ in brute}
    for i, j, d in brute:
        assert got[(names_a[i], peaks[j])] == pytest.approx((r[i, j], d))
    wide = A.feature_correlations(a, b, names_a, peaks, coords_a=genes, coords_b=peaks, window=50_000, pvalue=None)
    assert len(wide) > len(df)


def test_genomic_coordinates():
    c = A.genomic_coordinates(["chr1-100-300", "chrX:10-20", "chr2_5_7"])
    assert c.loc["chr1-100-300"].tolist() == ["chr1", 200.0] and c.loc["chrX:10-20", "position"] == 15
    with pytest.raises(ValueError, match="cannot parse genomic regions"):
        A.genomic_coordinates(["HLA-DRA"])
    assert A.genomic_coordinates(["HLA-DRA", "chr1-1-3"], errors="ignore").index.tolist() == ["chr1-1-3"]
    t = pd.DataFrame({"name": ["a", "b", "a"], "chrom": "chr1", "start": [10, 10, 99], "end": [20, 20, 99],
                      "strand": ["+", "-", "+"]})  # fmt: skip
    assert A.genomic_coordinates(t)["position"].tolist() == [10.0, 20.0]


def test_infer_relationships_equals_correlations_of_imputed_vs_measured(cite):
    model, prep = cite["model"], cite["prep"]
    X = prep.datasets[1]
    df = A.infer_relationships(model, X, "protein", "rna", features_b=["CD3", "CD14"], n_permutations=10,
                               block_size=64)  # fmt: skip
    imputed = A.impute(model, X, "protein", "rna")
    measured = DuplicateAverager(prep.feature_names[1])(X)
    names_b = A.imputed_feature_names(model, "protein")
    cols = [names_b.index("CD3"), names_b.index("CD14")]
    ref = A.feature_correlations(imputed.to_numpy(), measured[:, cols], list(imputed.columns), ["CD3", "CD14"],
                                 n_permutations=10)  # fmt: skip
    pd.testing.assert_frame_equal(df, ref, atol=1e-6)
    top = A.infer_relationships(model, X, "protein", "rna", features_b=["CD14"], top=3, pvalue=None)
    assert len(top) == 3 and top["r"].abs().is_monotonic_decreasing
    with pytest.raises(ValueError, match="features_b of protein not found"):
        A.infer_relationships(model, X, "protein", "rna", features_b=["nope"])


# ---------------------------------------------------------------------------------------------- label transfer
def test_transfer_labels_on_arrays_matches_brute_force():
    rng = np.random.default_rng(0)
    src, tgt = rng.normal(size=(80, 3)), rng.normal(size=(30, 3))
    labels = rng.choice(["x", "y", "z"], 80).astype(object)
    labels[:5] = None  # unlabelled reference cells are ignored
    pred, conf = A.transfer_labels(src, labels, query=tgt, k=7)
    keep = np.arange(5, 80)
    d = ((tgt[:, None] - src[None, keep]) ** 2).sum(-1)
    nn = labels[keep][np.argsort(d, axis=1)[:, :7]]
    for row, p, c in zip(nn, pred, conf, strict=True):
        values, counts = np.unique(row, return_counts=True)
        best = values[counts == counts.max()]
        winner = next(v for v in row if v in best)  # ties: the label of the nearest voter
        assert p == winner and c == pytest.approx(counts.max() / 7)


def test_transfer_labels_writes_obs():
    import anndata as ad

    rng = np.random.default_rng(1)
    z = np.vstack([rng.normal(size=(40, 2)) + [4 * (i % 2), 0] for i in range(2)])
    truth = np.array(["L", "R"] * 20 + ["L", "R"] * 20)
    z = np.vstack([np.where(truth[:40, None] == "L", -3, 3) + rng.normal(size=(40, 2)) * 0.3,
                   np.where(truth[40:, None] == "L", -3, 3) + rng.normal(size=(40, 2)) * 0.3])  # fmt: skip
    obs = pd.DataFrame(
        {"modality": ["rna"] * 40 + ["adt"] * 40, "cell_type": truth}, index=[f"c{i}" for i in range(80)]
    )
    adata = ad.AnnData(np.zeros((80, 0), np.float32), obs=obs)
    adata.obsm["X_scmodal"] = z
    out, summary = A.transfer_labels(adata, "cell_type", "rna", k=5, copy=True)
    assert "predicted_cell_type" not in adata.obs
    pred = out.obs["predicted_cell_type"]
    assert pred[:40].isna().all() and (pred[40:].astype(str).to_numpy() == truth[40:]).all()
    conf = out.obs["predicted_cell_type_confidence"].to_numpy()
    assert np.isnan(conf[:40]).all() and (conf[40:] == 1).all()
    assert summary["adt"] == {"n_cells": 40, "mean_confidence": 1.0, "accuracy": 1.0}
    ref_pred, ref_conf = A.transfer_labels(z[:40], truth[:40], query=z[40:], k=5)
    np.testing.assert_array_equal(pred[40:].astype(str), ref_pred)
    with pytest.raises(ValueError, match=r"modalities \['atac'\] not found"):
        A.transfer_labels(adata, "cell_type", "atac")
    with pytest.raises(ValueError, match=r"obs\['label'\] not found"):
        A.transfer_labels(adata, "label", "rna")


def test_map_cells_encodes_and_transfers_labels(cite):
    import anndata as ad

    model, prep = cite["model"], cite["prep"]
    obs = pd.DataFrame({"cell_type": cite["rna"].obs["cell_type"].to_numpy(), "modality": "rna"},
                       index=[f"r{i}" for i in range(150)])  # fmt: skip
    ref = ad.AnnData(np.zeros((150, 0), np.float32), obs=obs)
    ref.obsm["X_scmodal"] = model.transform(prep.datasets[0], "rna")
    new = cite["rna"][:30].copy()
    mapped = A.map_cells(model, new, "rna", reference=ref, label_key="cell_type", k=5, block_size=8)
    expected = model.transform(prep.datasets[0][:30], "rna")
    np.testing.assert_allclose(mapped.obsm["X_scmodal"], expected, atol=1e-4)
    assert list(mapped.obs_names) == list(new.obs_names) and (mapped.obs["modality"] == "rna").all()
    pred, conf = A.transfer_labels(
        ref.obsm["X_scmodal"], ref.obs["cell_type"].to_numpy(), query=mapped.obsm["X_scmodal"], k=5
    )
    np.testing.assert_array_equal(mapped.obs["predicted_cell_type"].astype(str), pred)
    np.testing.assert_allclose(mapped.obs["predicted_cell_type_confidence"], conf)
    with pytest.raises(ValueError, match="label_key needs reference"):
        A.map_cells(model, new, "rna", label_key="cell_type")
    with pytest.raises(ValueError, match="reference_modality"):
        A.map_cells(model, new, "rna", reference=ref, label_key="cell_type", reference_modality="adt")


# ---------------------------------------------------------------------------------------------- real data
def test_pbmc5k_cd14_gene_ranks_top_for_cd14_protein():
    """Paired PBMC5k CITE-seq, briefly trained (small network, 400 steps): for the measured CD14 protein, the
    imputed CD14 gene is among the 10 most correlated of the 528 imputed genes, and first of the linked genes."""
    shared_file("pbmc5k_cite_4000g_29adt_labeled.h5ad")
    from scmodal_jax.data.loaders import shared as ds

    rna, protein = ds.pbmc5k_cite()
    prep = prepare_rna_protein(rna, protein, n_hvg=500, label_key="cell_type")
    model = SCMODAL(n_latent=10, hidden=64, disc_hidden=64, steps=400, steps_per_call=100, batch_size=256,
                    progress=False, disc_gp_auto=False, link_smoothing=0.0).fit(prep)  # fmt: skip
    # mapping the raw counts again reproduces the recipe's inputs (sparse RNA, 4,000 genes -> 528 model genes)
    np.testing.assert_allclose(A.preprocess(model, rna, "rna", block_size=1000), prep.datasets[0], atol=1e-4)
    np.testing.assert_allclose(A.preprocess(model, protein, "protein"), prep.datasets[1], atol=1e-4)
    df = A.infer_relationships(model, prep.datasets[1], "protein", "rna", features_b=["CD14"], n_permutations=20)
    ranked = df.sort_values("r", ascending=False).reset_index(drop=True)
    assert len(ranked) == len(A.imputed_feature_names(model, "rna")) > 500
    rank = int(ranked.index[ranked["feature_a"] == "CD14"][0])
    assert rank < 10, ranked.head(15)
    assert ranked.loc[rank, "p_value"] == pytest.approx(1 / 21)  # no permutation comes close
    linked = {gene for gene, _ in prep.links[0].names}
    assert ranked.loc[ranked["feature_a"].isin(linked), "feature_a"].iloc[0] == "CD14"
