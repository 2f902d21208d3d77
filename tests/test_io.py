"""Tests for scmodal_jax.data.io (AnnData / MuData export) with a fake model, and with a trained one."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import require

from scmodal_jax.data import io as sio


class FakeModel:
    """Duck-typed stand-in for the fitted model: linear maps between dataset feature spaces."""

    def __init__(self, datasets: list[np.ndarray], q: int = 4, seed: int = 0):
        rng = np.random.default_rng(seed)
        self._enc = [rng.normal(size=(x.shape[1], q)) for x in datasets]
        self._dec = [rng.normal(size=(q, x.shape[1])) for x in datasets]
        self.latent_ = [self.transform(x, modality=i) for i, x in enumerate(datasets)]
        self.calls: list[tuple[int, int]] = []

    @property
    def n_datasets(self) -> int:
        return len(self._enc)

    def transform(self, X, modality: int = 0) -> np.ndarray:
        return np.asarray(X) @ self._enc[modality]

    def impute(self, X, source: int, target: int) -> np.ndarray:
        self.calls.append((source, target))
        return self.transform(X, source) @ self._dec[target]


def _adata(n: int, genes: list[str], obs: dict, names: list[str], seed: int) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.poisson(1.0, size=(n, len(genes))).astype(np.float32))
    return ad.AnnData(X=X, obs=pd.DataFrame(obs, index=names), var=pd.DataFrame(index=genes))


@pytest.fixture
def setup():
    rng = np.random.default_rng(1)
    # RNA: genes; the linked gene CD3E appears twice in the model input (linked to two proteins)
    rna_genes = ["CD3E", "CD4", "MS4A1", "GNLY", "LYZ"]
    rna_input_names = ["CD3E", "CD3E", "CD4", "MS4A1", "GNLY", "LYZ"]
    adt_genes = ["CD3", "CD4", "CD20"]
    names_rna = [f"cell{i}" for i in range(7)]
    names_adt = [f"cell{i}" for i in range(3, 8)]  # cell3..cell6 collide with RNA names
    rna = _adata(7, rna_genes, {"cell_type": pd.Categorical(list("ABABABA")), "batch": ["b1"] * 7}, names_rna, seed=2)
    adt = _adata(5, adt_genes, {"cell_type": pd.Categorical(list("BABAC")), "n_counts": np.arange(5.0)}, names_adt, 3)
    x_rna = rng.normal(size=(7, len(rna_input_names))).astype(np.float32)
    x_adt = rng.normal(size=(5, len(adt_genes))).astype(np.float32)
    model = FakeModel([x_rna, x_adt])
    return {
        "model": model,
        "adatas": [rna, adt],
        "datasets": [x_rna, x_adt],
        "feature_names": [rna_input_names, adt_genes],
    }


def test_combined_and_per_modality(setup):
    combined, mods = sio.to_anndata(
        setup["model"], setup["adatas"], ["RNA", "ADT"], setup["datasets"], setup["feature_names"]
    )
    assert combined.n_obs == 12 and combined.n_vars == 0
    assert combined.obs_names.is_unique
    assert list(combined.obs["modality"].cat.categories) == ["RNA", "ADT"]
    assert (combined.obs["modality"] == "RNA").sum() == 7
    np.testing.assert_allclose(combined.obsm["X_scmodal"], np.vstack(setup["model"].latent_), rtol=1e-6)
    # union of obs columns, missing -> NaN
    assert {"cell_type", "batch", "n_counts", "modality"} <= set(combined.obs.columns)
    assert combined.obs["batch"].iloc[7:].isna().all() and combined.obs["n_counts"].iloc[:7].isna().all()
    assert list(combined.obs["cell_type"].astype(str)) == list("ABABABA") + list("BABAC")
    # per-modality: input obs kept, latent and imputations of the other modality
    rna, adt = mods
    assert list(rna.obs_names) == list(setup["adatas"][0].obs_names)
    assert set(rna.obsm) == {"X_scmodal", "imputed_ADT"} and set(adt.obsm) == {"X_scmodal", "imputed_RNA"}
    assert list(rna.obsm["imputed_ADT"].columns) == ["CD3", "CD4", "CD20"]
    assert list(adt.obsm["imputed_RNA"].columns) == ["CD3E", "CD4", "MS4A1", "GNLY", "LYZ"]
    assert sorted(setup["model"].calls) == [(0, 1), (1, 0)]


def test_duplicate_obs_names_made_unique_without_dropping(setup):
    combined, _ = sio.to_anndata(setup["model"], setup["adatas"], ["RNA", "ADT"], impute=False)
    names = list(combined.obs_names)
    assert len(names) == 12 and len(set(names)) == 12
    assert names[:3] == ["cell0", "cell1", "cell2"]  # not duplicated -> unchanged
    assert names[3] == "cell3-RNA" and names[7] == "cell3-ADT" and names[-1] == "cell7"
    assert list(combined.obs["original_obs_name"]) == [f"cell{i}" for i in range(7)] + [f"cell{i}" for i in range(3, 8)]


def test_duplicates_within_one_modality():
    names = sio.make_obs_names_unique([["a", "a", "b"], ["c"]], ["X", "Y"])
    assert len(set(names)) == 4 and names[2] == "b" and names[3] == "c"


def test_duplicated_features_are_averaged(setup):
    _, (rna, adt) = sio.to_anndata(
        setup["model"], setup["adatas"], ["RNA", "ADT"], setup["datasets"], setup["feature_names"]
    )
    raw = setup["model"].impute(setup["datasets"][1], source=1, target=0)  # ADT cells -> RNA input space
    expected = np.column_stack([raw[:, :2].mean(axis=1), raw[:, 2:]])
    np.testing.assert_allclose(adt.obsm["imputed_RNA"].to_numpy(), expected, rtol=1e-5, atol=1e-6)


def test_average_duplicate_columns_manual():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 6))
    names = ["a", "b", "a", "c", "b", "a"]
    df = sio.average_duplicate_columns(values, names)
    assert list(df.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(df["a"], values[:, [0, 2, 5]].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(df["b"], values[:, [1, 4]].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(df["c"], values[:, 3], rtol=1e-6)


def test_log1p_unscaling(setup):
    rng = np.random.default_rng(5)
    scaling = [
        (rng.normal(size=6), rng.uniform(0.5, 2.0, size=6)),
        (rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)),
    ]
    _, (rna, adt) = sio.to_anndata(
        setup["model"],
        setup["adatas"],
        ["RNA", "ADT"],
        setup["datasets"],
        setup["feature_names"],
        scaling=scaling,
        log1p_scale=True,
    )
    raw = setup["model"].impute(setup["datasets"][0], source=0, target=1)
    mean, std = scaling[1]
    np.testing.assert_allclose(rna.obsm["imputed_ADT"].to_numpy(), raw * std + mean, rtol=1e-5, atol=1e-5)
    raw = setup["model"].impute(setup["datasets"][1], source=1, target=0) * scaling[0][1] + scaling[0][0]
    expected = np.column_stack([raw[:, :2].mean(axis=1), raw[:, 2:]])
    np.testing.assert_allclose(adt.obsm["imputed_RNA"].to_numpy(), expected, rtol=1e-5, atol=1e-5)


def test_combined_latent_in_X(setup):
    combined, _ = sio.to_anndata(setup["model"], setup["adatas"], impute=False, combined_X="latent")
    assert combined.shape == (12, 4) and combined.var_names[0] == "latent_0"
    np.testing.assert_array_equal(combined.X, combined.obsm["X_scmodal"])
    assert list(combined.obs["modality"].cat.categories) == ["modality_0", "modality_1"]


def test_h5ad_round_trip(setup, tmp_path):
    combined, mods = sio.to_anndata(
        setup["model"], setup["adatas"], ["RNA", "ADT"], setup["datasets"], setup["feature_names"]
    )
    back = sio.read_h5ad(sio.write_h5ad(combined, tmp_path / "out" / "combined.h5ad"))
    pd.testing.assert_frame_equal(back.obs, combined.obs)
    assert list(back.obs["modality"].cat.categories) == ["RNA", "ADT"]
    np.testing.assert_array_equal(back.obsm["X_scmodal"], combined.obsm["X_scmodal"])
    assert back.shape == (12, 0)
    for i, m in enumerate(mods):
        b = sio.read_h5ad(sio.write_h5ad(m, tmp_path / f"mod{i}.h5ad"))
        pd.testing.assert_frame_equal(b.obs, m.obs)
        assert set(b.obsm) == set(m.obsm)
        np.testing.assert_array_equal(b.obsm["X_scmodal"], m.obsm["X_scmodal"])
        for key in m.obsm:
            if key.startswith("imputed_"):
                assert isinstance(b.obsm[key], pd.DataFrame)
                pd.testing.assert_frame_equal(b.obsm[key], m.obsm[key])
        np.testing.assert_array_equal(b.X.toarray(), m.X.toarray())


def test_default_feature_names_from_var(setup):
    # ADT input width equals adt.n_vars -> names come from var_names; RNA needs explicit names
    with pytest.raises(ValueError, match="feature_names"):
        sio.to_anndata(setup["model"], setup["adatas"], datasets=setup["datasets"])


def test_bad_inputs(setup):
    model, adatas = setup["model"], setup["adatas"]
    with pytest.raises(ValueError, match="2 datasets"):
        sio.to_anndata(model, adatas[:1], impute=False)
    short = adatas[1][:4].copy()
    with pytest.raises(ValueError, match="cells"):
        sio.to_anndata(model, [adatas[0], short], impute=False)
    with pytest.raises(ValueError, match="distinct"):
        sio.to_anndata(model, adatas, ["A", "A"], impute=False)
    with pytest.raises(ValueError, match="datasets="):
        sio.to_anndata(model, adatas, ["A", "B"])
    with pytest.raises(ValueError, match="scaling"):
        sio.to_anndata(model, adatas, None, setup["datasets"], setup["feature_names"], log1p_scale=True)
    with pytest.raises(ValueError, match="names"):
        sio.to_anndata(model, adatas, None, setup["datasets"], [["a"], ["b"]])
    model.latent_ = None
    with pytest.raises(ValueError, match="fit"):
        sio.to_anndata(model, adatas, impute=False)


def test_h5mu_round_trip(setup, tmp_path):
    mudata = require("mudata")
    _, mods = sio.to_anndata(setup["model"], setup["adatas"], ["RNA", "ADT"], setup["datasets"], setup["feature_names"])
    mdata = sio.to_mudata(mods, ["RNA", "ADT"])
    assert mdata.n_obs == 12  # colliding names made unique: unpaired cells are not merged
    assert mdata.obsm["X_scmodal"].shape == (12, 4)
    back = sio.read_h5mu(sio.write_h5mu(mdata, tmp_path / "out.h5mu"))
    assert isinstance(back, mudata.MuData) and set(back.mod) == {"RNA", "ADT"}
    pd.testing.assert_frame_equal(back.mod["ADT"].obsm["imputed_RNA"], mdata.mod["ADT"].obsm["imputed_RNA"])
    np.testing.assert_allclose(back.obsm["X_scmodal"], mdata.obsm["X_scmodal"])
    # a mapping is accepted directly
    again = sio.read_h5mu(sio.write_h5mu({"RNA": mods[0], "ADT": mods[1]}, tmp_path / "map.h5mu"))
    assert again.n_obs == 12


# ----------------------------------------------------------------------------------------------------------
# A real model: trained a few steps on a recipe's output (the citeseq_pbmc stand-in, raw counts in)
# ----------------------------------------------------------------------------------------------------------


def test_to_anndata_with_a_trained_model_and_imputation(tmp_path):
    import standins

    import scmodal_jax as scm
    from scmodal_jax.data.loaders import paper
    from scmodal_jax.data.recipes import prepare_rna_protein

    standins.write_hao2021(tmp_path)
    rna, adt = paper.hao2021_pbmc_cite(donor="P1", cache_dir=tmp_path, progress=False)
    prep = prepare_rna_protein(rna, adt, n_hvg=20, label_key="cell_type", modalities=("rna", "adt"))
    model = scm.SCMODAL(steps=10, steps_per_call=10, hidden=16, disc_hidden=16, batch_size=32, k_anchor=5,
                        progress=False).fit(prep)  # fmt: skip
    scaling = [(sc.mean, sc.std) for sc in prep.scaling]
    adatas = [ad.AnnData(obs=obs.copy()) for obs in prep.obs]
    combined, (out_rna, out_adt) = sio.to_anndata(model, adatas, prep.modalities, prep.datasets, prep.feature_names,
                                                  scaling=scaling, log1p_scale=True)  # fmt: skip
    np.testing.assert_array_equal(combined.obsm["X_scmodal"], np.vstack(model.latent_))
    np.testing.assert_allclose(out_adt.obsm["X_scmodal"], model.transform(prep.datasets[1], "adt"), rtol=1e-6)
    assert combined.obs["cell_type"].notna().all() and list(combined.obs["modality"].cat.categories) == ["rna", "adt"]
    for out, (i, j) in ((out_rna, (0, 1)), (out_adt, (1, 0))):
        # the reference: G_j(E_i(x)) from the model, z-score undone, linked features repeated in the model
        # input averaged by name (pandas groupby, not the function under test)
        mean, std = scaling[j]
        raw = model.impute(prep.datasets[i], source=i, target=j) * std + mean
        names = prep.feature_names[j]
        assert len(set(names)) < len(names)  # some features repeat (one column per link pair)
        expected = pd.DataFrame(raw, columns=names).T.groupby(level=0, sort=False).mean().T
        got = out.obsm[f"imputed_{prep.modalities[j]}"]
        assert list(got.columns) == list(expected.columns) and list(got.index) == list(prep.obs[i].index)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-5)
    back = sio.read_h5ad(sio.write_h5ad(out_rna, tmp_path / "rna.h5ad"))
    pd.testing.assert_frame_equal(back.obsm["imputed_adt"], out_rna.obsm["imputed_adt"])
