"""`python -m scmodal_jax.analyze` on a tiny finished run (synthetic data, 20 steps), against the Python API."""

import json
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from scmodal_jax import analysis as A
from scmodal_jax.cli import config as config_module
from scmodal_jax.cli.analyze import load_run, main
from scmodal_jax.cli.train import run

CONF = Path(__file__).resolve().parents[1] / "conf"
FAST = [
    "train.steps=20", "train.steps_per_call=10", "train.batch_size=64", "train.k_anchor=10", "model.hidden=32",
    "model.disc_hidden=32", "eval.umap=false", "logger=none", "train.progress=false", "data.synthetic.n_cells=200",
    "data.synthetic.n_features=[30,12]", "data.synthetic.n_linked=6",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    config_module.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=FAST)
    path = tmp_path_factory.mktemp("run")
    run(cfg, path)
    return path


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_from_the_command_line():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, "-m", "scmodal_jax.analyze", "--help"], capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    for sub in ("impute", "relationships", "transfer-labels", "map"):
        assert sub in res.stdout


@pytest.mark.parametrize("sub", ["impute", "relationships", "transfer-labels", "map"])
def test_subcommand_help(capsys, sub):
    with pytest.raises(SystemExit) as exc:
        main([sub, "--help"])
    assert exc.value.code == 0
    assert "run_dir" in capsys.readouterr().out


def test_impute_run_cells_and_new_cells(run_dir, tmp_path, capsys):
    r = load_run(run_dir)
    X, obs = r.cells("mod0")
    code, out, err = cli(capsys, "impute", run_dir, "--source", "mod0", "--target", "mod1", "--out",
                         tmp_path / "imp.h5ad", "--block-size", "64")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["n_cells"] == 200
    back = ad.read_h5ad(tmp_path / "imp.h5ad")
    ref = A.impute(r.model, X, "mod0", "mod1", scale="log1p")
    assert list(back.var_names) == list(ref.columns) and list(back.obs_names) == list(obs.index)
    assert "cell_type" in back.obs
    np.testing.assert_array_equal(back.X, ref.to_numpy())
    # new cells from an .h5ad with the features in another order (synthetic data: no normalisation)
    names = A.model_feature_names(r.model, "mod0")
    order = np.random.default_rng(0).permutation(len(names))
    new = ad.AnnData(X[:50, order], var=pd.DataFrame(index=[names[j] for j in order]))
    new.obs_names = [f"new{i}" for i in range(50)]
    new.write_h5ad(tmp_path / "new.h5ad")
    args = ["--input", tmp_path / "new.h5ad", "--input-kind", "scaled", "--out", tmp_path / "new_imp.csv"]
    code, out, err = cli(capsys, "impute", run_dir, "--source", "mod0", "--target", "mod1", *args)
    assert code == 0, err
    csv = pd.read_csv(tmp_path / "new_imp.csv", index_col=0)
    assert list(csv.index) == list(new.obs_names)
    np.testing.assert_allclose(csv.to_numpy(), ref.to_numpy()[:50], rtol=1e-5, atol=1e-6)


def test_relationships(run_dir, tmp_path, capsys):
    r = load_run(run_dir)
    args = ["--features-b", "link0,mod1_f7", "--permutations", "9", "--top", "5", "--out", tmp_path / "rel.csv"]
    code, out, err = cli(capsys, "relationships", run_dir, "--measured", "mod1", "--imputed", "mod0", *args)
    assert code == 0, err
    df = pd.read_csv(tmp_path / "rel.csv")
    assert list(df.columns) == ["feature_a", "feature_b", "r", "n_cells", "p_value"]
    assert sorted(df["feature_b"].unique()) == ["link0", "mod1_f7"] and len(df) == 10
    X, _ = r.cells("mod1")
    ref = A.infer_relationships(r.model, X, "mod1", "mod0", features_b=["link0", "mod1_f7"], n_permutations=9, top=5)
    np.testing.assert_allclose(df["r"], ref["r"], rtol=1e-6)
    np.testing.assert_allclose(df["p_value"], ref["p_value"])


def test_transfer_labels(run_dir, tmp_path, capsys):
    code, out, err = cli(capsys, "transfer-labels", run_dir, "--from", "mod0", "--k", "5", "--out",
                         tmp_path / "labelled.h5ad")  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["mod1"]["n_cells"] == 200 and 0 <= summary["mod1"]["accuracy"] <= 1
    back = ad.read_h5ad(tmp_path / "labelled.h5ad")
    integrated = ad.read_h5ad(run_dir / "integrated.h5ad")
    src = (integrated.obs["modality"] == "mod0").to_numpy()
    pred, conf = A.transfer_labels(integrated.obsm["X_scmodal"][src], integrated.obs["cell_type"].to_numpy()[src],
                                   query=integrated.obsm["X_scmodal"][~src], k=5)  # fmt: skip
    np.testing.assert_array_equal(back.obs["predicted_cell_type"].astype(str).to_numpy()[~src], pred)
    np.testing.assert_allclose(back.obs["predicted_cell_type_confidence"].to_numpy()[~src], conf)
    assert back.obs["predicted_cell_type"][src].isna().all()


def test_map_new_cells(run_dir, tmp_path, capsys):
    r = load_run(run_dir)
    X, obs = r.cells("mod1")
    names = A.model_feature_names(r.model, "mod1")
    new = ad.AnnData(X[:40], obs=obs.iloc[:40].copy(), var=pd.DataFrame(index=names))
    new.write_h5ad(tmp_path / "new.h5ad")
    code, out, err = cli(capsys, "map", run_dir, "--modality", "mod1", "--input", tmp_path / "new.h5ad",
                         "--reference-modality", "mod0", "--k", "5", "--out", tmp_path / "mapped.h5ad")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["label_key"] == "cell_type"
    mapped = ad.read_h5ad(tmp_path / "mapped.h5ad")
    integrated = ad.read_h5ad(run_dir / "integrated.h5ad")
    latent = integrated.obsm["X_scmodal"][(integrated.obs["modality"] == "mod1").to_numpy()][:40]
    np.testing.assert_allclose(mapped.obsm["X_scmodal"], latent, atol=1e-5)
    assert list(mapped.obs_names) == list(obs.index[:40])
    assert mapped.obs["predicted_cell_type"].notna().all()
    assert mapped.obs["predicted_cell_type_confidence"].between(0, 1).all()


def test_clear_errors(run_dir, tmp_path, capsys):
    code, _, err = cli(capsys, "impute", run_dir, "--source", "rna", "--target", "mod1", "--out", tmp_path / "x.h5ad")
    assert code == 2 and "--source='rna' is not a modality of this model" in err and "mod0" in err
    bad = ad.AnnData(np.zeros((5, 3), np.float32), var=pd.DataFrame(index=["link0", "x", "y"]))
    bad.write_h5ad(tmp_path / "bad.h5ad")
    code, _, err = cli(capsys, "map", run_dir, "--modality", "mod1", "--input", tmp_path / "bad.h5ad", "--out",
                       tmp_path / "m.h5ad")  # fmt: skip
    assert code == 2 and "features are missing from the mod1 input: link1, link2" in err
    code, _, err = cli(capsys, "transfer-labels", tmp_path, "--from", "mod0", "--out", tmp_path / "l.h5ad")
    assert code == 2 and "not a finished run directory" in err
    code, _, err = cli(capsys, "impute", run_dir, "--source", "mod0", "--target", "mod1", "--out", tmp_path / "x.txt")
    assert code == 2 and "unknown output format" in err


# ----------------------------------------------------------------------------------------------------------
# A run built with a real recipe (citeseq_pbmc on its stand-in: raw counts -> normalize_total + log1p, HVGs,
# z-score and clip): `map` and `impute --input` replay that preprocessing on raw counts, so they must give what
# the model gives on the recipe's own output for the same cells.
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    import standins

    from scmodal_jax.data.loaders import paper

    root = tmp_path_factory.mktemp("recipe_run")
    standins.write_hao2021(root / "cache")
    # 20 HVGs of the stand-in's 58 genes: some genes are not model features
    overrides = ["+experiment=citeseq_pbmc", f"data.cache_dir={root / 'cache'}", "data.n_hvg=20", *FAST[:9]]
    config_module.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run(cfg, root / "run")
    rna, adt = paper.hao2021_pbmc_cite(donor="P1", cache_dir=root / "cache", progress=False)
    return root / "run", {"rna": rna, "adt": adt}


def _raw_input(raw, path, order_seed=0, drop=()):
    """The raw counts of the run's cells as an .h5ad, features shuffled (and `drop` removed)."""
    keep = [g for g in raw.var_names if g not in drop]
    order = np.random.default_rng(order_seed).permutation(len(keep))
    new = raw[:, [keep[j] for j in order]].copy()
    new.obs["total_counts"] = np.asarray(raw.X.sum(axis=1)).ravel()  # library size over the full panel
    new.write_h5ad(path)
    return new


def test_map_raw_counts_with_shuffled_features_equals_the_recipe(recipe_run, tmp_path, capsys):
    run_dir, raw = recipe_run
    r = load_run(run_dir)
    assert r.model.preprocessing_["info"]["recipe"] == "rna_protein"
    X, obs = r.cells("rna")  # the recipe's output for the run's RNA cells
    assert list(obs.index) == list(raw["rna"].obs_names)
    expected = r.model.transform(X, modality="rna")
    _raw_input(raw["rna"], tmp_path / "rna.h5ad")
    code, out, err = cli(capsys, "map", run_dir, "--modality", "rna", "--input", tmp_path / "rna.h5ad", "--out",
                         tmp_path / "mapped.h5ad")  # fmt: skip
    assert code == 0, err
    mapped = ad.read_h5ad(tmp_path / "mapped.h5ad")
    assert list(mapped.obs_names) == list(obs.index)
    np.testing.assert_allclose(mapped.obsm["X_scmodal"], expected, rtol=1e-4, atol=1e-4)
    # and the same latent is what the run wrote for these cells
    integrated = ad.read_h5ad(run_dir / "integrated.h5ad")
    np.testing.assert_allclose(integrated.obsm["X_scmodal"][(integrated.obs["modality"] == "rna").to_numpy()],
                               expected, rtol=1e-5, atol=1e-5)  # fmt: skip
    assert mapped.obs["predicted_cell_type"].notna().all()


def test_map_raw_counts_with_missing_features(recipe_run, tmp_path, capsys):
    run_dir, raw = recipe_run
    r = load_run(run_dir)
    model_genes = set(A.model_feature_names(r.model, "rna"))
    unused = [g for g in raw["rna"].var_names if g not in model_genes]
    assert unused, "the stand-in must have genes the model does not use"
    # genes the model does not use may be absent, given the cells' library sizes over the full panel
    _raw_input(raw["rna"], tmp_path / "panel.h5ad", order_seed=1, drop=unused)
    args = ["--modality", "rna", "--input", tmp_path / "panel.h5ad", "--no-labels", "--out", tmp_path / "m.h5ad"]
    code, _, err = cli(capsys, "map", run_dir, *args, "--library-size-key", "total_counts")
    assert code == 0, err
    X, _ = r.cells("rna")
    np.testing.assert_allclose(ad.read_h5ad(tmp_path / "m.h5ad").obsm["X_scmodal"], r.model.transform(X, "rna"),
                               rtol=1e-4, atol=1e-4)  # fmt: skip
    # a gene the model uses may not: the error names it
    _raw_input(raw["rna"], tmp_path / "missing.h5ad", drop=["CD3E", "LYZ"])
    code, _, err = cli(capsys, "map", run_dir, "--modality", "rna", "--input", tmp_path / "missing.h5ad", "--out",
                       tmp_path / "x.h5ad")  # fmt: skip
    assert code == 2 and "missing from the rna input: CD3E, LYZ" in err


def test_impute_raw_counts_with_shuffled_features_equals_the_api_on_the_recipe(recipe_run, tmp_path, capsys):
    run_dir, raw = recipe_run
    r = load_run(run_dir)
    for source, target in (("rna", "adt"), ("adt", "rna")):
        X, obs = r.cells(source)
        ref = A.impute(r.model, X, source, target, scale="log1p")  # the API on the recipe's output
        _raw_input(raw[source], tmp_path / f"{source}.h5ad", order_seed=2)
        args = ["--source", source, "--target", target, "--input", tmp_path / f"{source}.h5ad"]
        code, _, err = cli(capsys, "impute", run_dir, *args, "--out", tmp_path / f"{source}.csv")
        assert code == 0, err
        got = pd.read_csv(tmp_path / f"{source}.csv", index_col=0)
        assert list(got.columns) == list(ref.columns) and list(got.index) == list(obs.index)
        np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-4, atol=1e-4)
