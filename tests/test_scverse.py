"""A scverse user's second day on real data: a CITE-seq MuData with a layer per modality and the user's own HVGs,
results in `mdata.obsm`, a saved model that is a complete result in a new process, and clear errors where one
object stands for a list.

The PBMC5k MuData (800 of the shared file's cells) has raw RNA counts in `layers["counts"]` (its `.X` holds
log1p values, which the recipe must not read) and protein counts in `.X`. Fits are small (64 units, 20 steps):
these tests witness where the data and results go, not accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import require, shared_file

import scmodal_jax as scm
from scmodal_jax.anndata_api import layer_of
from scmodal_jax.data.links import protein_gene_pairs

mudata = require("mudata")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:mudata")

SMALL = dict(steps=20, hidden=64, disc_hidden=64, batch_size=128, progress=False, seed=0)
N_CELLS = 800


def _pbmc_mudata(path) -> tuple[object, list[str]]:
    """The MuData a user would build, with the user's own 400 HVGs flagged in the RNA's var."""
    cite = ad.read_h5ad(path)
    cite = cite[np.sort(np.random.default_rng(0).choice(cite.n_obs, N_CELLS, replace=False))].copy()
    counts = cite.X.tocsr()
    rna = ad.AnnData(X=np.log1p(counts.toarray()).astype(np.float32), obs=cite.obs.copy(), var=cite.var.copy(),
                     layers={"counts": counts})  # fmt: skip
    # the user's own choice: the 400 genes of highest variance of log counts (not the recipe's Seurat-v3 ranking)
    order = np.argsort(-rna.X.var(axis=0), kind="stable")
    rna.var["highly_variable"] = np.isin(np.arange(rna.n_vars), order[:400])
    proteins = cite.obsm["protein_counts"]
    prot = ad.AnnData(X=proteins.to_numpy(np.float32), obs=cite.obs.copy(),
                      var=pd.DataFrame(index=[str(c) for c in proteins.columns]))  # fmt: skip
    return mudata.MuData({"rna": rna, "prot": prot}), list(rna.var_names[rna.var["highly_variable"].to_numpy()])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    mdata, user_hvgs = _pbmc_mudata(shared_file("pbmc5k_cite_4000g_29adt_labeled.h5ad"))
    model = scm.SCMODAL(**SMALL).fit(mdata, recipe="rna_protein", layer={"rna": "counts", "prot": None})
    model.add_results(mdata, impute=True)
    where = tmp_path_factory.mktemp("scverse")
    mdata.write(where / "pbmc.h5mu")
    model.save(where / "model")
    return {"mdata": mdata, "model": model, "hvgs": user_hvgs, "dir": where}


def test_layers_per_modality_and_the_users_hvgs_are_what_the_recipe_read(fitted):
    model, mdata = fitted["model"], fitted["mdata"]
    info = model.preprocessing_["info"]
    assert info["layer"] == {"rna": "counts", "prot": None}
    assert info["hvg_source"] == "var['highly_variable']"
    genes = model.preprocessing_["feature_names"][0]
    k = model.link_widths[0]  # the linked genes come first
    table = {g for _, g in protein_gene_pairs(list(mdata["prot"].var_names), list(mdata["rna"].var_names))}
    assert set(genes[:k]) <= table
    assert sorted(genes[k:]) == sorted(set(fitted["hvgs"]) - set(genes[:k]))  # exactly the user's other genes
    # the recipe read the counts layer: its library-size target is the median of the raw counts' totals
    totals = np.asarray(mdata["rna"].layers["counts"].sum(axis=1)).ravel()
    assert info["target_sum_rna"] == pytest.approx(float(np.median(totals)))


def test_mudata_obsm_holds_one_row_per_cell_the_mean_of_its_modalities(fitted):
    model, mdata = fitted["model"], fitted["mdata"]
    # independent reference: by cell name, the mean of that cell's rows in the two modalities' own latents
    by_mod = [pd.DataFrame(z, index=names) for z, names in zip(model.latent_, model.obs_names_, strict=True)]
    expected = (by_mod[0].loc[mdata.obs_names] + by_mod[1].loc[mdata.obs_names]) / 2
    np.testing.assert_allclose(mdata.obsm["X_scmodal"], expected.to_numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(mdata["rna"].obsm["X_scmodal"], model.latent_[0])
    imputed = mdata.obsm["imputed_prot"]  # protein imputed from the RNA: only the RNA side contributes
    assert list(imputed.index) == list(mdata.obs_names)
    np.testing.assert_allclose(imputed.loc[mdata["rna"].obs_names].to_numpy(), mdata["rna"].obsm["imputed_prot"],
                               rtol=1e-6)  # fmt: skip


def test_cells_of_one_modality_only_and_cells_of_none():
    """Unpaired modalities (disjoint cells): each MuData row is its own modality's latent; a cell of a modality
    the model does not know gets NaN, as muon leaves the rows a modality lacks."""
    from scmodal_jax.data.synthetic import make_multimodal

    d = make_multimodal(n_cells=(40, 30), n_features=(8, 6), n_linked=3, n_clusters=2, seed=0)
    a = ad.AnnData(d.datasets[0], obs=pd.DataFrame(index=[f"a{i}" for i in range(40)]))
    b = ad.AnnData(d.datasets[1], obs=pd.DataFrame(index=[f"b{i}" for i in range(30)]))
    other = ad.AnnData(np.zeros((5, 2), np.float32), obs=pd.DataFrame(index=[f"c{i}" for i in range(5)]))
    model = scm.SCMODAL(steps=2, hidden=16, disc_hidden=16, batch_size=16, k_anchor=3, progress=False)
    model.fit({"a": a, "b": b}, scm.first_columns(3))
    mdata = mudata.MuData({"a": a, "b": b, "c": other})
    with pytest.raises(ValueError, match="pass modalities="):
        model.add_results(mdata)  # a modality the model does not have: the user names the ones it has
    model.add_results(mdata, modalities=["a", "b"])
    joint = pd.DataFrame(mdata.obsm["X_scmodal"], index=mdata.obs_names)
    np.testing.assert_array_equal(joint.loc[a.obs_names].to_numpy(), model.latent_[0])
    np.testing.assert_array_equal(joint.loc[b.obs_names].to_numpy(), model.latent_[1])
    assert np.isnan(joint.loc[other.obs_names].to_numpy()).all()


def test_a_saved_model_is_a_complete_result_in_a_new_process(fitted):
    """save -> a new Python process -> load -> latent_, add_results on the user's file and to_anndata equal the
    fitting process's own results."""
    where = fitted["dir"]
    script = textwrap.dedent(f"""
        import json, numpy as np, mudata, scmodal_jax as scm
        model = scm.SCMODAL.load({str(where / "model")!r})
        mdata = mudata.read_h5mu({str(where / "pbmc.h5mu")!r})
        for mod in mdata.mod.values():
            mod.obsm.clear()
        mdata.obsm.clear()
        model.add_results(mdata, impute=True)
        combined, _ = scm.to_anndata(model, mdata)
        np.savez({str(where / "reloaded.npz")!r}, rna=mdata["rna"].obsm["X_scmodal"], joint=mdata.obsm["X_scmodal"],
                 imputed=mdata.obsm["imputed_prot"].to_numpy(), combined=combined.obsm["X_scmodal"],
                 latent0=model.latent_[0])
        print(json.dumps({{"names": list(map(str, combined.obs_names[:3])), "quality": model.fit_report_["quality"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    reloaded = np.load(where / "reloaded.npz")
    model, mdata = fitted["model"], fitted["mdata"]
    original, _ = scm.to_anndata(model, mdata)
    np.testing.assert_array_equal(reloaded["latent0"], model.latent_[0])
    np.testing.assert_array_equal(reloaded["rna"], mdata["rna"].obsm["X_scmodal"])
    np.testing.assert_array_equal(reloaded["joint"], mdata.obsm["X_scmodal"])
    np.testing.assert_allclose(reloaded["imputed"], mdata.obsm["imputed_prot"].to_numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(reloaded["combined"], original.obsm["X_scmodal"])
    printed = json.loads(out.stdout.strip().splitlines()[-1])
    assert printed["names"] == list(map(str, original.obs_names[:3]))
    assert printed["quality"]["link_consistency"] == pytest.approx(model.fit_report_["quality"]["link_consistency"])


def test_a_save_without_latent_still_loads_and_says_what_is_missing(fitted, tmp_path):
    model = fitted["model"]
    latent = model.latent_
    try:
        model.latent_ = None  # what a periodic checkpoint or a save from before 0.2 holds
        model.save(tmp_path / "bare")
    finally:
        model.latent_ = latent
    bare = scm.SCMODAL.load(tmp_path / "bare")
    assert bare.latent_ is None
    with pytest.raises(ValueError, match="add_results"):
        scm.to_anndata(bare, fitted["mdata"])
    # add_results encodes the cells from their counts with the stored preprocessing instead
    rna = fitted["mdata"]["rna"].copy()
    bare.add_results({"rna": rna})
    np.testing.assert_allclose(rna.obsm["X_scmodal"], model.latent_[0], rtol=1e-5, atol=1e-5)


def test_one_object_where_one_per_modality_is_expected_is_a_clear_error(fitted):
    model, mdata = fitted["model"], fitted["mdata"]
    with pytest.raises(ValueError, match="one AnnData per"):
        scm.to_anndata(model, mdata["rna"])
    with pytest.raises(ValueError, match="one AnnData per"):
        model.add_results(mdata["rna"])
    with pytest.raises(ValueError, match="one AnnData"):
        scm.SCMODAL(**SMALL).fit(mdata["rna"])
    combined, per = scm.to_anndata(model, {"prot": mdata["prot"], "rna": mdata["rna"]})  # a dict, by name
    assert combined.n_obs == 2 * N_CELLS and [p.n_vars for p in per] == [mdata["rna"].n_vars, mdata["prot"].n_vars]


def test_layer_by_modality_name():
    assert layer_of("counts", None, 1) == "counts"
    assert layer_of({"rna": "counts"}, ["rna", "prot"], 0) == "counts"
    assert layer_of({"rna": "counts"}, ["rna", "prot"], 1) is None  # not named: .X
    with pytest.raises(ValueError, match=r"\['atac'\]"):
        layer_of({"atac": "counts"}, ["rna", "prot"], 0)
    with pytest.raises(ValueError, match="named modalities"):
        layer_of({"rna": "counts"}, None, 0)
