"""The scverse-facing paths of SCMODAL (scmodal_jax.anndata_api): MuData / dict / list of AnnData in, layer=,
recipes by name, links by feature name, the raw-count warning, results written back into the user's objects,
to_anndata from what the model stored, and the one label-transfer function.

Each path is compared with the matrix path it must equal (the same seed and inputs give identical latents), or
with the recipe run by hand plus `model.transform` / `model.impute` on the recipe's own matrices.
Fits are tiny (networks of 32 units, <= 10 steps; steps=0 where only the inputs matter).
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import require

import scmodal_jax as scm
from scmodal_jax.data.io import average_duplicate_columns
from scmodal_jax.data.links import protein_gene_pairs
from scmodal_jax.data.name_links import resolve_name_links
from scmodal_jax.data.recipes import prepare_generic, prepare_rna_protein
from scmodal_jax.data.synthetic import make_multimodal
from scmodal_jax.metrics import knn_label_transfer

mudata = require("mudata")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:mudata")  # mudata 0.3's notice about update()

SMALL = dict(hidden=32, disc_hidden=32, batch_size=32, k_anchor=5, progress=False, steps_per_call=5, seed=3)
GENES = ["CD14", "CD4", "CD19", "MS4A1", "CD3D", "CD3E", "CD3G", "CD8A", "PTPRC", "LYZ"] + [f"G{i}" for i in range(30)]
PROTEINS = ["CD14", "CD4", "CD19", "CD20", "CD3", "CD8a", "CD45RA", "CD45RO"]


def _model(steps: int) -> scm.SCMODAL:
    return scm.SCMODAL(steps=steps, **SMALL)


@pytest.fixture(scope="module")
def toy():
    """Scaled synthetic data as matrices and as AnnData (features named; the first 4 of each are linked)."""
    d = make_multimodal(n_cells=(90, 70), n_features=(16, 9), n_linked=4, n_clusters=3, seed=0)
    names = [[f"g{j}" for j in range(16)], [f"p{j}" for j in range(9)]]
    adatas = [
        ad.AnnData(x, obs=pd.DataFrame({"cell_type": lab}, index=[f"{m}{i}" for i in range(len(x))]),
                   var=pd.DataFrame(index=n))
        for x, lab, n, m in zip(d.datasets, d.labels, names, "ab", strict=True)
    ]  # fmt: skip
    pairs = [(f"g{j}", f"p{j}") for j in range(4)]
    reference = _model(10).fit(d.datasets, scm.first_columns(4))
    return {"data": d, "adatas": adatas, "pairs": pairs, "reference": reference}


def _counts(seed: int = 0):
    """CITE-like raw counts: RNA (genes, sparse) and protein (markers), unpaired, counts in layers['counts']."""
    rng = np.random.default_rng(seed)
    state = rng.normal(size=(160, 3))
    rna = rng.poisson(np.exp(0.6 * state[:90] @ rng.normal(size=(3, len(GENES))) + 0.5)).astype(np.float32)
    prot = rng.poisson(np.exp(0.5 * state[90:] @ rng.normal(size=(3, len(PROTEINS))) + 3)).astype(np.float32)
    r = ad.AnnData(sp.csr_matrix(rna), obs=pd.DataFrame(index=[f"r{i}" for i in range(90)]),
                   var=pd.DataFrame(index=GENES))  # fmt: skip
    p = ad.AnnData(prot, obs=pd.DataFrame(index=[f"p{i}" for i in range(70)]), var=pd.DataFrame(index=PROTEINS))
    r.obs["cell_type"] = np.where(state[:90, 0] > 0, "A", "B")
    p.obs["cell_type"] = np.where(state[90:, 0] > 0, "A", "B")
    for a in (r, p):
        a.layers["counts"] = a.X.copy()
        a.X = a.X * 0.5  # .X holds something else: the tests must read the layer
    return r, p


@pytest.fixture(scope="module")
def cite():
    """A model fitted through recipe='rna_protein' on raw counts (untrained: steps=0, only its inputs matter)
    and the recipe run by hand on the same counts."""
    r, p = _counts()
    model = _model(0).fit({"rna": r, "protein": p}, "protein_gene", layer="counts", recipe="rna_protein",
                          recipe_kwargs={"n_hvg": 12})  # fmt: skip
    plain = [ad.AnnData(a.layers["counts"], obs=a.obs, var=a.var) for a in (r, p)]
    prep = prepare_rna_protein(plain[0], plain[1], n_hvg=12)
    return {"rna": r, "protein": p, "model": model, "prep": prep}


# ---------------------------------------------------------------------------------------------- inputs
def test_mudata_with_links_by_name_equals_the_matrix_path(toy):
    a, b = toy["adatas"]
    model = _model(10).fit(mudata.MuData({"rna": a, "adt": b}), [toy["pairs"]])
    assert model.modalities == ["rna", "adt"] and model.preprocessing_["feature_names"][1] == list(b.var_names)
    for z, ref in zip(model.latent_, toy["reference"].latent_, strict=True):
        np.testing.assert_array_equal(z, ref)
    # the links matter: other names give another model
    other = _model(10).fit(mudata.MuData({"rna": a, "adt": b}), [[(f"g{j}", f"p{j + 4}") for j in range(4)]])
    assert not np.allclose(other.latent_[0], model.latent_[0])


def test_dict_with_layer_and_dataframe_links_equals_the_matrix_path(toy):
    a, b = (x.copy() for x in toy["adatas"])
    for x in (a, b):
        x.layers["scaled"] = x.X.copy()
        x.X = np.zeros_like(x.X)
    table = pd.DataFrame(toy["pairs"], columns=["rna_feature", "adt_feature"])
    model = _model(10).fit({"rna": a, "adt": b}, table, layer="scaled")
    np.testing.assert_array_equal(model.latent_[1], toy["reference"].latent_[1])
    assert model.preprocessing_["info"]["layer"] == "scaled"
    with pytest.raises(KeyError, match=r"layer 'counts' not found in dataset 0 \(rna\)"):
        _model(0).fit({"rna": a, "adt": b}, table, layer="counts")
    with pytest.raises(ValueError, match="layer='scaled' needs AnnData"):
        _model(0).fit(toy["data"].datasets, scm.first_columns(4), layer="scaled")


def test_modalities_order_a_mudata(toy):
    a, b = toy["adatas"]
    model = _model(0).fit(mudata.MuData({"rna": a, "adt": b}), [[(y, x) for x, y in toy["pairs"]]],
                          modalities=["adt", "rna"])  # fmt: skip
    assert model.modalities == ["adt", "rna"] and [z.shape[0] for z in model.latent_] == [70, 90]
    with pytest.raises(ValueError, match=r"modalities \['atac'\] not found"):
        _model(0).fit(mudata.MuData({"rna": a, "adt": b}), [toy["pairs"]], modalities=["rna", "atac"])


def test_unknown_link_names_are_listed(toy):
    a, b = toy["adatas"]
    bad = [*toy["pairs"], ("g1", "CD999"), ("nope", "p2")]
    with pytest.raises(ValueError, match=r"1 not in dataset 0 \(rna\) \(16 features\): \['nope'\]; "
                                         r"1 not in dataset 1 \(adt\) \(9 features\): \['CD999'\]"):  # fmt: skip
        _model(0).fit({"rna": a, "adt": b}, bad)
    with pytest.raises(ValueError, match="need AnnData"):
        _model(0).fit(toy["data"].datasets, toy["pairs"])
    with pytest.raises(ValueError, match="3 datasets need a list of 2 tables"):
        resolve_name_links(toy["pairs"], [["g0"], ["p0"], ["q0"]], ["a", "b", "c"])


def test_builtin_link_tables_resolve_by_name():
    genes, proteins = GENES, PROTEINS
    expected = [(g, p) for p, g in protein_gene_pairs(proteins, genes)]
    assert resolve_name_links("protein_gene", [genes, proteins], ["rna", "adt"]) == [expected]
    # the dataset with more features is the RNA, whichever side it is on
    assert resolve_name_links("protein_gene", [proteins, genes], ["adt", "rna"]) == [[(p, g) for g, p in expected]]
    assert ("CD3E", "CD3") in expected and ("PTPRC", "CD45RO") in expected
    shared = resolve_name_links("shared_markers", [["CD3", "PD-1", "CD4"], ["cd4", "PD.1", "CD19"]], ["x", "y"])
    assert shared == [[("PD-1", "PD.1"), ("CD4", "cd4")]] or shared == [[("CD4", "cd4"), ("PD-1", "PD.1")]]
    with pytest.raises(ValueError, match="not a built-in link table"):
        resolve_name_links("protein_genes", [genes, proteins], ["rna", "adt"])


def test_raw_counts_without_recipe_warn_and_scaled_data_do_not(toy):
    r, p = _counts()
    with pytest.warns(UserWarning, match=r"dataset 0 \(rna\) looks like raw counts .* Pass recipe=") as rec:
        _model(0).fit({"rna": r, "protein": p}, [[("CD4", "CD4")]], layer="counts")
    assert rec[0].filename == __file__  # points at the user's fit() call
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _model(0).fit(toy["adatas"], [toy["pairs"]])


# ---------------------------------------------------------------------------------------------- recipes
def test_recipe_by_name_runs_the_recipe(cite):
    model, prep = cite["model"], cite["prep"]
    assert model.modalities == ["rna", "protein"]
    assert model.preprocessing_["feature_names"] == prep.feature_names
    assert model.preprocessing_["info"]["recipe"] == "rna_protein" and model.preprocessing_["info"]["layer"] == "counts"
    for i, x in enumerate(prep.datasets):  # the model was fed the recipe's own matrices
        np.testing.assert_allclose(model.latent_[i], model.transform(x, modality=i), rtol=1e-6)
    same = _model(0).fit({"rna": cite["rna"], "protein": cite["protein"]}, recipe=prep)
    np.testing.assert_array_equal(same.latent_[0], model.latent_[0])
    with pytest.raises(ValueError, match="a Prepared carries its own links"):
        _model(0).fit(prep, "protein_gene")


def test_generic_recipe_chains_three_datasets_by_name():
    r, p = _counts()
    third = ad.AnnData(p.layers["counts"][:50] + 1, obs=pd.DataFrame(index=[f"q{i}" for i in range(50)]),
                       var=pd.DataFrame(index=[f"m_{n}" for n in PROTEINS]))  # fmt: skip
    r.X, p.X = r.layers["counts"], p.layers["counts"]
    tables = [[("CD4", "CD4"), ("CD14", "CD14"), ("CD19", "CD19")], [(n, f"m_{n}") for n in PROTEINS[:5]]]
    model = _model(0).fit([r, p, third], tables, recipe="generic", modalities=["rna", "adt", "cytof"])
    prep = prepare_generic([r, p, third], tables, normalize="counts", scale=True, modalities=["rna", "adt", "cytof"])
    assert model.modalities == ["rna", "adt", "cytof"] and model.link_widths == (3, 5)
    for i, x in enumerate(prep.datasets):
        np.testing.assert_allclose(model.latent_[i], model.transform(x, modality=i), rtol=1e-6)
    with pytest.raises(ValueError, match="3 datasets need 2 link tables"):
        _model(0).fit([r, p, third], tables[:1], recipe="generic")


def test_recipe_errors(cite):
    data = {"rna": cite["rna"], "protein": cite["protein"]}
    with pytest.raises(ValueError, match="unknown recipe 'rna_prot'"):
        _model(0).fit(data, recipe="rna_prot")
    with pytest.raises(ValueError, match="rna_atac.*drop links="):
        _model(0).fit(data, [[("CD4", "CD4")]], recipe="rna_atac")
    with pytest.raises(ValueError, match="recipe_kwargs= are options of a recipe given by name"):
        _model(0).fit(data, [[("CD4", "CD4")]], recipe_kwargs={"n_hvg": 5})
    with pytest.raises(ValueError, match=r"1 not in dataset 1 \(protein\)"):
        _model(0).fit(data, [[("CD4", "CD4x")]], recipe="rna_protein", layer="counts")


# ---------------------------------------------------------------------------------------------- results
def test_add_results_writes_into_the_users_objects(cite):
    model, prep = cite["model"], cite["prep"]
    r, p = cite["rna"].copy(), cite["protein"].copy()
    returned = model.add_results([r, p], impute=True)
    assert returned[0] is r and returned[1] is p
    np.testing.assert_array_equal(r.obsm["X_scmodal"], model.latent_[0])  # the fitted cells: latent_ itself
    # imputation: the recipe's matrices through model.impute, the z-score undone, duplicate names averaged
    mean, std = prep.scaling[1].mean, prep.scaling[1].std
    expected = average_duplicate_columns(model.impute(prep.datasets[0], 0, 1) * std + mean, prep.feature_names[1])
    got = r.obsm["imputed_protein"]
    assert list(got.columns) == list(expected.columns) and list(got.index) == list(r.obs_names)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-4, atol=1e-4)
    assert "imputed_rna" in p.obsm and "imputed_rna" not in r.obsm


def test_add_results_encodes_new_cells_from_their_counts(cite):
    model, prep = cite["model"], cite["prep"]
    rows = np.arange(10, 40)
    new = cite["rna"][rows].copy()
    new.obs_names = [f"new{i}" for i in rows]  # not the fitted cells: encoded from layers['counts']
    mdata = mudata.MuData({"rna": new})
    out = model.add_results(mdata, impute=["protein"])
    assert out is mdata
    np.testing.assert_allclose(new.obsm["X_scmodal"], model.transform(prep.datasets[0][rows], 0), atol=1e-4)
    assert list(new.obsm["imputed_protein"].columns)[:2] == prep.feature_names[1][:2]
    with pytest.raises(ValueError, match=r"impute=\['adt'\] are not modalities"):
        model.add_results({"rna": new}, impute=["adt"])


def test_to_anndata_uses_what_the_model_stored(cite):
    model, prep = cite["model"], cite["prep"]
    combined, (r, p) = scm.to_anndata(model, [cite["rna"], cite["protein"]])
    assert list(combined.obs["modality"].cat.categories) == ["rna", "protein"]
    expected = average_duplicate_columns(model.impute(prep.datasets[1], 1, 0), prep.feature_names[0])
    np.testing.assert_allclose(p.obsm["imputed_rna"].to_numpy(), expected.to_numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(r.obsm["X_scmodal"], model.latent_[0])
    assert "X_scmodal" not in cite["rna"].obsm  # to_anndata works on copies
    _, (r2, _) = scm.to_anndata(model, [cite["rna"], cite["protein"]], modality_names=["RNA", "ADT"])
    assert set(r2.obsm) == {"X_scmodal", "imputed_ADT"}


# ---------------------------------------------------------------------------------------------- label transfer
def test_transfer_labels_between_objects_and_in_a_mudata(toy):
    a, b = (x.copy() for x in toy["adatas"])
    toy["reference"].add_results([a, b])
    truth_b = b.obs["cell_type"].to_numpy()
    pred, conf = knn_label_transfer(a.obsm["X_scmodal"], a.obs["cell_type"].to_numpy(), b.obsm["X_scmodal"], k=7)
    out, summary = scm.transfer_labels(a, "cell_type", query=b, k=7)
    assert out is b
    np.testing.assert_array_equal(b.obs["predicted_cell_type"].astype(str), pred)
    np.testing.assert_allclose(b.obs["predicted_cell_type_confidence"], conf)
    assert summary["query"]["accuracy"] == pytest.approx(np.mean(pred == truth_b))
    mdata = mudata.MuData({"rna": a.copy(), "adt": b.copy()})
    _, msummary = scm.transfer_labels(mdata, "cell_type", "rna", k=7, copy=True)
    assert msummary["adt"] == summary["query"]
    arrays = scm.transfer_labels(a.obsm["X_scmodal"], a.obs["cell_type"].to_numpy(), query=b.obsm["X_scmodal"], k=7)
    np.testing.assert_array_equal(arrays[0], pred)
    with pytest.raises(ValueError, match="source= must name the labelled modality"):
        scm.transfer_labels(mdata, "cell_type", "atac")
    with pytest.raises(ValueError, match="pass source="):
        scm.transfer_labels(a, "cell_type")
