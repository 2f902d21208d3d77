import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import scmodal_jax as scm
from scmodal_jax.data.synthetic import make_multimodal

SMALL = dict(hidden=32, disc_hidden=32, batch_size=64, k_anchor=10, progress=False)


@pytest.fixture(scope="module")
def toy():
    return make_multimodal(n_cells=(150, 120), n_features=(30, 12), n_linked=6, n_clusters=3, seed=0)


def _model(steps, **kw):
    return scm.SCMODAL(steps=steps, **{"seed": 3, "steps_per_call": 10, **SMALL, **kw})


def test_fit_outputs_and_determinism(toy):
    a = _model(30).fit(toy.datasets, scm.first_columns(toy.n_linked))
    b = _model(30).fit(toy.datasets, scm.first_columns(toy.n_linked))
    assert [z.shape for z in a.latent_] == [(150, 20), (120, 20)]
    for za, zb in zip(a.latent_, b.latent_, strict=True):
        assert np.isfinite(za).all()
        np.testing.assert_array_equal(za, zb)
    assert list(a.history_["step"]) == list(range(1, 31))
    np.testing.assert_allclose(a.transform(toy.datasets[1], modality=1), a.latent_[1], rtol=1e-6)
    imputed = a.impute(toy.datasets[0][:7], source=0, target=1)
    assert imputed.shape == (7, 12) and np.isfinite(imputed).all()
    c = _model(30, seed=4).fit(toy.datasets, scm.first_columns(toy.n_linked))
    assert not np.allclose(c.latent_[0], a.latent_[0])


def test_inputs_as_sparse_anndata_and_explicit_links(toy):
    x0, x1 = toy.datasets
    links = [(x0[:, :6], x1[:, :6])]
    dense = _model(10).fit([x0, x1], links)
    other = _model(10).fit([ad.AnnData(sp.csr_matrix(x0)), sp.csr_matrix(x1)], scm.first_columns(6))
    np.testing.assert_array_equal(dense.latent_[0], other.latent_[0])


def test_save_load_and_resume_equal_uninterrupted_run(toy, tmp_path):
    links = scm.first_columns(toy.n_linked)
    full = _model(40).fit(toy.datasets, links)

    half = _model(20).fit(toy.datasets, links)
    half.save(tmp_path / "ckpt")
    loaded = scm.SCMODAL.load(tmp_path / "ckpt", progress=False)
    assert loaded.step == 20
    np.testing.assert_array_equal(loaded.transform(toy.datasets[0], 0), half.latent_[0])
    np.testing.assert_array_equal(
        loaded.impute(toy.datasets[1], source=1, target=0), half.impute(toy.datasets[1], source=1, target=0)
    )

    resumed = _model(40).fit(toy.datasets, links, resume_from=tmp_path / "ckpt")
    assert resumed.step == 40
    assert list(resumed.history_["step"]) == list(range(1, 41))
    np.testing.assert_allclose(resumed.history_["loss_total"], full.history_["loss_total"], rtol=1e-5)
    for zr, zf in zip(resumed.latent_, full.latent_, strict=True):
        np.testing.assert_allclose(zr, zf, rtol=1e-5, atol=1e-5)


def test_periodic_checkpoints_resume(toy, tmp_path):
    links = scm.first_columns(toy.n_linked)
    full = _model(30, checkpoint_dir=tmp_path / "run", checkpoint_every=20).fit(toy.datasets, links)
    assert scm.SCMODAL.load(tmp_path / "run").step == 20  # the periodic checkpoint, not the end of the run
    # as if the run had died after step 20: resuming from that checkpoint ends where the whole run ended
    resumed = _model(30).fit(toy.datasets, links, resume_from=tmp_path / "run")
    assert list(resumed.history_["step"]) == list(range(1, 31))
    np.testing.assert_allclose(resumed.history_["loss_total"], full.history_["loss_total"], rtol=1e-5)
    for zr, zf in zip(resumed.latent_, full.latent_, strict=True):
        np.testing.assert_allclose(zr, zf, rtol=1e-5, atol=1e-5)


def test_resume_refuses_changed_hyperparameters(toy, tmp_path):
    links = scm.first_columns(toy.n_linked)
    _model(10).fit(toy.datasets, links).save(tmp_path / "c")
    with pytest.raises(ValueError, match="lambda_geo"):
        _model(20, lambda_geo=1.0).fit(toy.datasets, links, resume_from=tmp_path / "c")


def test_degenerate_but_valid_inputs_stay_finite():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(80, 10)).astype(np.float32)
    x1 = rng.normal(size=(70, 8)).astype(np.float32)
    x0[:, 0] = 1.0  # zero-variance link column
    x0[:20, :4] = 0.0  # cells whose link features are all zero
    x1[:, :4] = 0.0  # no usable link at all: no MNN pair in any batch
    model = _model(10).fit([x0, x1], scm.first_columns(4))
    assert all(np.isfinite(z).all() for z in model.latent_)
    assert (model.history_["mnn_pairs"] == 0).all()
    assert (model.history_["loss_anchor"] == 0).all()


def _bad(datasets, links, match):
    with pytest.raises(ValueError, match=match):
        _model(1).fit(datasets, links)


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 5)).astype(np.float32)
    b = rng.normal(size=(15, 4)).astype(np.float32)
    c = rng.normal(size=(10, 3)).astype(np.float32)
    _bad([a], scm.first_columns(2), "at least 2 datasets")
    _bad([a, b, c], [(a[:, :2], b[:, :2])], "need 2 link pair")
    _bad([a, b], [(a[:, :2], b[:, :3])], "columns")
    _bad([a, b], [(a[:5, :2], b[:, :2])], "left block has 5 rows, dataset 0 has 20")
    _bad([a, b], [(a[:, :2], b[:3, :2])], "right block has 3 rows")
    nan = a.copy()
    nan[3, 1] = np.nan
    _bad([nan, b], scm.first_columns(2), "dataset 0: 1 non-finite value.*NaN.*row 3, column 1")
    inf = b.copy()
    inf[0, 0] = np.inf
    _bad([a, b], [(a[:, :2], inf[:, :2])], "right block.*inf")
    _bad([a[:1], b], scm.first_columns(2), "1 cell")
    _bad([np.array([["x", "y"], ["z", "w"]]), b], scm.first_columns(1), "non-numeric")
    _bad([a, b], scm.first_columns(5), "only 4 features")
    _bad([a, b], scm.first_columns([2, 2]), "2 widths for 1")
    with pytest.raises(ValueError, match="modality 1 was trained on 4"):
        _model(1).fit([a, b], scm.first_columns(2)).transform(a, modality=1)


def test_unknown_hyperparameter_and_unfitted_model():
    with pytest.raises(TypeError, match="lambda_typo"):
        scm.SCMODAL(lambda_typo=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        scm.SCMODAL(batch_size=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        scm.SCMODAL().transform(np.zeros((2, 2)))


def test_fit_from_prepared_inputs_records_preprocessing(tmp_path):
    from scmodal_jax.data.recipes import LinkBlock, Prepared, Scaling

    rng = np.random.default_rng(5)
    x0 = rng.normal(size=(60, 6)).astype(np.float32)
    x1 = rng.normal(size=(50, 4)).astype(np.float32)
    prep = Prepared(
        datasets=[x0, x1],
        modalities=["rna", "protein"],
        feature_names=[[f"g{i}" for i in range(6)], ["CD3", "CD4", "p2", "p3"]],
        links=[LinkBlock(pair=(0, 1), names=[("g0", "CD3"), ("g1", "CD4")], left_cols=np.arange(2),
                         right_cols=np.arange(2))],
        linked=[np.arange(6) < 2, np.arange(4) < 2],
        scaling=[Scaling(np.arange(6.0), np.ones(6), 10.0), Scaling(None, None, None)],
        obs=[None, None],
        info={"recipe": "test", "not_json": np.zeros(2)},
    )  # fmt: skip
    model = _model(10).fit(prep)
    np.testing.assert_array_equal(model.transform(x1, modality="protein"), model.latent_[1])
    np.testing.assert_array_equal(model.impute(x0, "rna", "protein"), model.impute(x0, 0, 1))
    with pytest.raises(ValueError, match="'atac' is not a modality"):
        model.transform(x0, modality="atac")
    model.save(tmp_path / "m")
    loaded = scm.SCMODAL.load(tmp_path / "m")
    assert loaded.modalities == ["rna", "protein"]
    assert loaded.preprocessing_["feature_names"][1] == ["CD3", "CD4", "p2", "p3"]
    assert loaded.preprocessing_["scaling"][0]["mean"] == list(np.arange(6.0))
    assert loaded.preprocessing_["scaling"][1] is None
    assert loaded.preprocessing_["info"] == {"recipe": "test"}
