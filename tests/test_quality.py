"""The label-free quality score against brute force, on known answers, and as fit reports it."""

import logging

import numpy as np
import pytest

import scmodal_jax as scm
from scmodal_jax.data.synthetic import make_multimodal
from scmodal_jax.metrics.quality import COLLAPSE_THRESHOLD, anchor_contrast, integration_quality, link_consistency


def _brute_consistency(za, zb, la, lb):
    def unit(x):
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.where(n > 0, x / np.maximum(n, 1e-12), 0)

    def one(z1, z2, l1, l2):
        d = ((z1[:, None, :] - z2[None, :, :]) ** 2).sum(-1)
        cos = unit(l1) @ unit(l2).T
        matched = cos[np.arange(len(z1)), d.argmin(1)].mean()
        return (matched - cos.mean()) / (cos.max(1).mean() - cos.mean())

    return (one(za, zb, la, lb) + one(zb, za, lb, la)) / 2


def _brute_contrast(za, zb, la, lb, k):
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    cos = unit(la) @ unit(lb).T
    pairs = np.zeros(cos.shape, bool)
    for a in range(cos.shape[0]):
        for b in range(cos.shape[1]):
            top_a = np.argsort(-cos[a], kind="stable")[:k]
            top_b = np.argsort(-cos[:, b], kind="stable")[:k]
            pairs[a, b] = b in top_a and a in top_b
    d = ((za[:, None, :] - zb[None, :, :]) ** 2).sum(-1)
    return 1 - d[pairs].mean() / d.mean()


@pytest.fixture
def clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)) * 3
    la_lab, lb_lab = rng.integers(0, 4, 60), rng.integers(0, 4, 50)
    la = centres[la_lab] + rng.normal(size=(60, 6)) * 0.3
    lb = centres[lb_lab] + rng.normal(size=(50, 6)) * 0.3
    return la, lb, la_lab, lb_lab


def test_scores_match_brute_force(clusters):
    la, lb, _, _ = clusters
    rng = np.random.default_rng(1)
    za, zb = rng.normal(size=(60, 3)), rng.normal(size=(50, 3))
    np.testing.assert_allclose(link_consistency(za, zb, la, lb), _brute_consistency(za, zb, la, lb), rtol=1e-5)
    np.testing.assert_allclose(anchor_contrast(za, zb, la, lb, k=5), _brute_contrast(za, zb, la, lb, 5), rtol=1e-6)


def test_known_answers(clusters):
    la, lb, la_lab, lb_lab = clusters
    # The linked features themselves: the nearest partner (Euclidean) is nearly the best one (cosine) -> ~1.
    assert 0.99 < link_consistency(la, lb, la, lb) <= 1.0
    # A latent that keeps the clusters but swaps which cluster meets which: far below the collapse threshold.
    centres = np.eye(4) * 5
    swap = np.array([1, 0, 3, 2])
    good = integration_quality([centres[la_lab], centres[lb_lab]], [(la, lb)], k=5)
    swapped = integration_quality([centres[la_lab], centres[swap[lb_lab]]], [(la, lb)], k=5)
    assert good["link_consistency"] > 0.8 and not good["collapsed"]
    assert swapped["link_consistency"] < 0.1 and swapped["collapsed"]
    assert good["anchor_contrast"] > 0.8 > 0.2 > swapped["anchor_contrast"]


def test_fit_reports_quality_and_warns_on_a_collapsed_run(caplog):
    data = make_multimodal(n_cells=300, n_features=(40, 12), n_linked=8, n_clusters=4, seed=1)
    model = scm.SCMODAL(steps=150, batch_size=64, hidden=32, disc_hidden=32, progress=False, steps_per_call=50, seed=0)
    with caplog.at_level(logging.WARNING, logger="scmodal_jax.model"):
        model.fit(data.datasets, scm.first_columns(8))
    q = model.fit_report_["quality"]
    links = [(data.datasets[0][:, :8], data.datasets[1][:, :8])]
    assert q == integration_quality(model.latent_, links, k=model.hp.k_anchor)
    assert q["link_consistency"] > 0.5 and not q["collapsed"]
    assert "collapsed" not in caplog.text


def test_a_collapsed_run_warns(caplog):
    """Training that has not aligned the modalities (3 steps: the encoders are still at their random start) is what
    a collapse looks like to the score: cross-modality neighbours that the links contradict. The fit says so."""
    data = make_multimodal(n_cells=300, n_features=(40, 12), n_linked=8, n_clusters=4, seed=1)
    model = scm.SCMODAL(steps=3, batch_size=64, hidden=32, disc_hidden=32, progress=False, seed=0)
    with caplog.at_level(logging.WARNING, logger="scmodal_jax.model"):
        model.fit(data.datasets, scm.first_columns(8))
    links = [(data.datasets[0][:, :8], data.datasets[1][:, :8])]
    q = integration_quality(model.latent_, links, k=model.hp.k_anchor)  # the independent reading
    assert q["collapsed"] and q["link_consistency_min"] < COLLAPSE_THRESHOLD
    assert model.fit_report_["quality"] == q
    warned = [r for r in caplog.records if "looks collapsed" in r.getMessage()]
    assert len(warned) == 1 and f"{q['link_consistency_min']:.2f}" in warned[0].getMessage()
