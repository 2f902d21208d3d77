"""Experiment data builders on the shared real files: the inputs every experiment trains on."""

import numpy as np
import pytest
from conftest import shared_file
from omegaconf import OmegaConf

from scmodal_jax.cli.config import DataConfig
from scmodal_jax.data.builders import build


def _build(**kw):
    return build(OmegaConf.structured(DataConfig(**kw)))


def _check(integration):
    prep = integration.prepared
    for x in prep.datasets:
        assert x.dtype == np.float32 and np.isfinite(x).all()
    for (left, right), x_left, x_right in zip(prep.link_matrices(), prep.datasets[:-1], prep.datasets[1:], strict=True):
        assert left.shape[0] == x_left.shape[0] and right.shape[0] == x_right.shape[0]
        assert left.shape[1] == right.shape[1] > 0
    return prep


def test_synthetic_default():
    prep = _check(_build())
    assert [x.shape for x in prep.datasets] == [(2000, 200), (2000, 40)]


def test_pbmc5k_cite_and_reversed_order():
    shared_file("pbmc5k_cite_4000g_29adt_labeled.h5ad")
    forward = _build(name="pbmc5k_cite")
    prep = _check(forward)
    assert forward.paired and forward.order == ["rna", "protein"]
    assert prep.links[0].n_features == 28 and prep.datasets[0].shape[1] == 3028
    assert {("CD14", "CD14"), ("CD3D", "CD3"), ("CD3G", "CD3")} <= set(prep.links[0].names)  # (gene, protein)
    backward = _build(name="pbmc5k_cite", order=["protein", "rna"])
    assert backward.modalities == ["protein", "rna"]
    np.testing.assert_array_equal(backward.prepared.datasets[0], prep.datasets[1])
    (left, right), (l2, r2) = prep.link_matrices()[0], backward.prepared.link_matrices()[0]
    np.testing.assert_array_equal(l2, right)
    np.testing.assert_array_equal(r2, left)
    with pytest.raises(ValueError, match="permutation"):
        _build(name="pbmc5k_cite", order=["rna", "atac"])


def test_pbmc_trimodal_chain_is_unpaired_and_linked_both_ways():
    shared_file("pbmc5k_cite_4000g_29adt_labeled.h5ad")
    shared_file("cytof_pbmc_mario_4606c_30markers.h5ad")
    integration = _build(name="pbmc_trimodal", n_hvg=500)
    prep = _check(integration)
    assert integration.modalities == ["rna", "adt", "cytof"] and not integration.paired
    rna_cells = set(prep.obs[0].index)
    assert rna_cells.isdisjoint(prep.obs[1].index)  # disjoint halves of the PBMC5k cells
    assert [lb.n_features for lb in prep.links] == [28, 17]
    # Every feature once per dataset, even the ADT markers linked on both sides.
    for names in prep.feature_names:
        assert len(names) == len(set(names))


def test_bmmc_multiome_gene_activity_and_joint_pca():
    shared_file("bmmc_multiome_starter_500c_atac600peaks.h5ad")
    prep = _check(_build(name="bmmc_multiome", joint_pca=10))
    assert prep.links[0].explicit and prep.links[0].left_matrix.shape == (500, 10)


def test_unknown_builder_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown data.name='nope'.*bmmc_cite"):
        _build(name="nope")


def test_chain_models_map_raw_counts_like_the_recipe():
    shared_file("pbmc5k_cite_4000g_29adt_labeled.h5ad")
    shared_file("cytof_pbmc_mario_4606c_30markers.h5ad")
    import scmodal_jax as scm
    from scmodal_jax.analysis.mapping import preprocess
    from scmodal_jax.data.loaders import shared as datasets

    prep = _build(name="pbmc_trimodal", n_hvg=200).prepared
    assert [s[0]["transform"] for s in prep.info["normalization"]] == ["normalize_total+log1p"] * 2 + ["arcsinh"]
    model = scm.SCMODAL(steps=2, hidden=16, disc_hidden=16, batch_size=32, link_smoothing=0.0, progress=False).fit(prep)
    rna, _ = datasets.pbmc5k_cite()
    rna_half = rna[prep.obs[0].index]
    # Library sizes come from the whole input matrix, as when the recipe ran.
    mapped = preprocess(model, rna_half, "rna", input="counts")
    np.testing.assert_allclose(mapped, prep.datasets[0], atol=2e-5)
    cytof = datasets.pbmc_cytof()
    np.testing.assert_allclose(preprocess(model, cytof, "cytof", input="counts"), prep.datasets[2], atol=2e-5)


def test_reversed_pair_keeps_per_dataset_info_in_step():
    shared_file("cytof_pbmc_mario_4606c_30markers.h5ad")
    forward = _build(name="pbmc_cytof").prepared
    backward = _build(name="pbmc_cytof", order=["adt", "cytof"]).prepared
    assert backward.info["transforms"] == forward.info["transforms"][::-1]


def test_options_are_read_one_way_for_every_builder():
    from types import SimpleNamespace

    from scmodal_jax.data.builders import _common

    cfg = OmegaConf.structured(DataConfig(options={"pairs": [["CD3E", "CD3"]], "max_value": 5.0}))
    opts = _common.options(cfg)
    assert opts == {"pairs": [["CD3E", "CD3"]], "max_value": 5.0} and type(opts["pairs"]) is list
    opts.pop("max_value")  # a plain copy: the config keeps its keys
    assert "max_value" in cfg.options
    assert _common.options(SimpleNamespace(options=None)) == {} and _common.options(SimpleNamespace()) == {}
    assert _common.options(SimpleNamespace(options={"split_seed": 3})) == {"split_seed": 3}
