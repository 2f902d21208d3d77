"""Tests of scmodal_jax.metrics against brute-force NumPy/SciPy/scikit-learn references.

Small random data with ``block_size=16`` (and sizes that are not multiples of 16) so that every
blockwise kernel runs over several query blocks, several reference chunks and padded rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import chi2
from sklearn.metrics import silhouette_score

from scmodal_jax import metrics as M

BS = 16  # forces several blocks for n ~ 40-70


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------
# Brute-force references
# ----------------------------------------------------------------------------------------------


def bf_knn_vote(src, src_lab, tgt, k):
    d = cdist(tgt, src)
    pred, conf = [], []
    for row in d:
        order = np.argsort(row, kind="stable")[:k]
        labs = list(src_lab[order])
        counts = {lab: labs.count(lab) for lab in labs}
        best = max(counts.values())
        winner = next(lab for lab in labs if counts[lab] == best)  # nearest among tied labels
        pred.append(winner)
        conf.append(best / k)
    return np.array(pred), np.array(conf)


def bf_foscttm(a, b):
    d = cdist(a, b)
    n = len(a)
    fa = [np.sum(np.delete(d[i], i) < d[i, i]) / (n - 1) for i in range(n)]
    fb = [np.sum(np.delete(d[:, i], i) < d[i, i]) / (n - 1) for i in range(n)]
    return (np.mean(fa) + np.mean(fb)) / 2


def bf_pair_distance(a, b):
    d = cdist(a, b)
    return (np.mean(np.diag(d) / d.mean(axis=1)) + np.mean(np.diag(d) / d.mean(axis=0))) / 2


def bf_mixing(latents, k, k_dataset):
    x = np.concatenate(latents)
    batch = np.concatenate([np.full(len(z), i) for i, z in enumerate(latents)])
    d = cdist(x, x)
    scores = []
    for i in range(len(x)):
        others = np.array([j for j in np.argsort(d[i], kind="stable") if j != i])
        nbrs = np.concatenate([[i], others])[:k]  # self first, as RANN::nn2 on the data itself
        pos = []
        for ds in np.unique(batch):
            hits = np.flatnonzero(batch[nbrs] == ds) + 1
            pos.append(hits[k_dataset - 1] if len(hits) >= k_dataset else k)
        scores.append(np.median(pos))
    return np.mean(scores)


def bf_kbet_all_cells(latents, k, alpha):
    x = np.concatenate(latents)
    batch = np.concatenate([np.full(len(z), i) for i, z in enumerate(latents)])
    n, nb = len(x), len(latents)
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    expected = k * np.bincount(batch) / n
    acc = []
    for i in range(n):
        env = np.concatenate([[i], np.argsort(d[i], kind="stable")[: k - 1]])
        obs = np.bincount(batch[env], minlength=nb)
        stat = np.sum((obs - expected) ** 2 / expected)
        acc.append(chi2.sf(stat, nb - 1) >= alpha)
    return np.mean(acc)


# ----------------------------------------------------------------------------------------------
# Label transfer
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 7])
def test_knn_label_transfer_matches_brute_force(k):
    rng = _rng(1)
    src = rng.normal(size=(53, 5))
    tgt = rng.normal(size=(37, 5))
    src_lab = rng.choice(np.array(["B", "T", "NK"]), size=53)
    pred, conf = M.knn_label_transfer(src, src_lab, tgt, k=k, block_size=BS)
    bf_pred, bf_conf = bf_knn_vote(src, src_lab, tgt, k)
    assert pred.dtype.kind == "U"
    np.testing.assert_array_equal(pred, bf_pred)
    np.testing.assert_allclose(conf, bf_conf)


def test_blocks_rounded_to_powers_of_two_give_the_brute_force_answers():
    # at the default block size, data smaller than a block run in one block padded to a power of two (masked rows)
    from scmodal_jax._neighbors import DEFAULT_BLOCK_SIZE, block_rows

    assert [block_rows(n, 2048) for n in (1, 40, 64, 65, 300, 2048, 5000)] == [64, 64, 64, 128, 512, 2048, 2048]
    assert block_rows(300, 16) == 16
    rng = _rng(11)
    src, tgt = rng.normal(size=(53, 5)), rng.normal(size=(70, 5))  # padded to 64 and 128 rows
    src_lab = rng.choice(np.array(["B", "T", "NK"]), size=53)
    pred, conf = M.knn_label_transfer(src, src_lab, tgt, k=7, block_size=DEFAULT_BLOCK_SIZE)
    bf_pred, bf_conf = bf_knn_vote(src, src_lab, tgt, 7)
    np.testing.assert_array_equal(pred, bf_pred)
    np.testing.assert_allclose(conf, bf_conf)
    a = rng.normal(size=(57, 6))
    b = a + 0.7 * rng.normal(size=(57, 6))
    assert M.foscttm(a, b) == pytest.approx(bf_foscttm(a, b), abs=1e-6)
    assert M.pair_distance(a, b) == pytest.approx(bf_pair_distance(a, b), rel=1e-4)
    labels = rng.integers(0, 3, size=57)
    assert M.asw([a], [labels]) == pytest.approx(silhouette_score(a, labels), abs=1e-5)


def test_knn_label_transfer_tie_breaking():
    # target at 0; sources at 1, 2, 3, 4 with labels b, a, a, b: 2-2 tie, nearest voter is "b".
    src = np.array([[1.0], [2.0], [3.0], [4.0]])
    pred, conf = M.knn_label_transfer(src, np.array(["b", "a", "a", "b"]), np.array([[0.0]]), k=4)
    assert pred.tolist() == ["b"] and conf.tolist() == [0.5]
    # equal distances: lower source index wins.
    pred, _ = M.knn_label_transfer(np.array([[1.0], [-1.0]]), np.array([7, 3]), np.array([[0.0]]), k=1)
    assert pred.tolist() == [7]


def test_label_transfer_accuracy():
    rng = _rng(2)
    src = rng.normal(size=(45, 3))
    tgt = rng.normal(size=(41, 3))
    src_lab = rng.integers(0, 4, size=45)
    tgt_lab = rng.integers(0, 4, size=41)
    nn = np.argmin(cdist(tgt, src), axis=1)
    expected = np.mean(src_lab[nn] == tgt_lab)
    assert M.label_transfer_accuracy(src, src_lab, tgt, tgt_lab, block_size=BS) == pytest.approx(expected)
    # well-separated clusters transfer perfectly; labels absent from the source count as wrong
    centers = np.array([[0.0, 0.0, 0.0], [50.0, 0.0, 0.0]])
    s_lab, t_lab = np.repeat([0, 1], 20), np.repeat([0, 1], 15)
    s = centers[s_lab] + rng.normal(size=(40, 3))
    t = centers[t_lab] + rng.normal(size=(30, 3))
    assert M.label_transfer_accuracy(s, s_lab, t, t_lab, block_size=BS) == 1.0
    assert M.label_transfer_accuracy(s, s_lab, t, t_lab + 5, block_size=BS) == 0.0


# ----------------------------------------------------------------------------------------------
# Paired metrics
# ----------------------------------------------------------------------------------------------


def test_foscttm_and_pair_distance_match_brute_force():
    rng = _rng(3)
    a = rng.normal(size=(57, 6)) + 1000.0  # large offset: checks the centring / float32 accuracy
    b = a + 0.7 * rng.normal(size=(57, 6))
    assert M.foscttm(a, b, block_size=BS) == pytest.approx(bf_foscttm(a, b), abs=1e-6)
    assert M.pair_distance(a, b, block_size=BS) == pytest.approx(bf_pair_distance(a, b), rel=1e-4)
    # asymmetric case: the two directions differ
    c = rng.normal(size=(57, 6)) * np.linspace(0.1, 3, 6)
    d = c[:, ::-1] + 0.5 * rng.normal(size=(57, 6))
    assert M.foscttm(c, d, block_size=BS) == pytest.approx(bf_foscttm(c, d), abs=1e-6)
    assert M.pair_distance(c, d, block_size=BS) == pytest.approx(bf_pair_distance(c, d), rel=1e-4)


def test_paired_known_answers():
    rng = _rng(4)
    a = rng.normal(size=(300, 8))
    assert M.foscttm(a, a) == 0.0
    assert M.pair_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = rng.normal(size=(300, 8))  # random pairing
    assert M.foscttm(a, b) == pytest.approx(0.5, abs=0.04)
    assert M.pair_distance(a, b) == pytest.approx(1.0, abs=0.05)
    # swapping rows of a perfect pairing makes those cells' matches the farthest-ish: worse score
    perm = np.arange(300)
    perm[:30] = perm[:30][::-1]
    assert M.foscttm(a, a[perm]) > 0.05


# ----------------------------------------------------------------------------------------------
# Silhouette
# ----------------------------------------------------------------------------------------------


def test_asw_matches_sklearn():
    rng = _rng(5)
    x1 = rng.normal(size=(61, 4))
    l1 = rng.integers(0, 3, size=61)
    x1[l1 == 1] += 2.0
    x2 = rng.normal(size=(40, 4))
    l2 = rng.choice(np.array(["a", "b", "c", "d"]), size=40)
    l2[0] = "singleton_type"  # singleton cluster -> silhouette 0 for that cell, as in sklearn
    s1, s2 = silhouette_score(x1, l1), silhouette_score(x2, l2)
    assert M.asw([x1], [l1], block_size=BS) == pytest.approx(s1, abs=1e-5)
    assert M.asw(x1, l1, block_size=BS) == pytest.approx(s1, abs=1e-5)  # bare array = one dataset
    assert M.asw([x1, x2], [l1, l2], block_size=BS) == pytest.approx((s1 + s2) / 2, abs=1e-5)
    rescaled = M.asw([x1, x2], [l1, l2], rescale=True, block_size=BS)
    assert rescaled == pytest.approx(((s1 + s2) / 2 + 1) / 2, abs=1e-5)
    # subsampling: max_cells >= n is exact; smaller is a seeded uniform subsample
    assert M.asw([x1], [l1], max_cells=61, block_size=BS) == pytest.approx(s1, abs=1e-5)
    keep = np.sort(np.random.default_rng(3).choice(61, size=30, replace=False))
    sub = M.asw([x1], [l1], max_cells=30, seed=3, block_size=BS)
    assert sub == pytest.approx(silhouette_score(x1[keep], l1[keep]), abs=1e-5)


def test_asw_known_answers():
    rng = _rng(6)
    lab = np.repeat([0, 1], 25)
    separated = rng.normal(size=(50, 2)) * 0.01 + lab[:, None] * 100.0
    assert M.asw([separated], [lab]) > 0.99
    assert M.asw([rng.normal(size=(50, 2))], [lab]) == pytest.approx(0.0, abs=0.1)


# ----------------------------------------------------------------------------------------------
# Mixing metric
# ----------------------------------------------------------------------------------------------


def test_mixing_metric_matches_seurat_definition():
    rng = _rng(7)
    x1 = rng.normal(size=(37, 3))
    x2 = rng.normal(size=(29, 3)) + 0.8
    x3 = rng.normal(size=(21, 3)) - 0.5
    for lat, k, kd in [([x1, x2], 30, 5), ([x1, x2, x3], 20, 3)]:
        got = M.mixing_metric(lat, k=k, k_dataset=kd, block_size=BS)
        assert got == pytest.approx(bf_mixing(lat, k, kd), abs=1e-9)


def test_mixing_metric_known_answers_and_subsampling():
    rng = _rng(8)
    a = rng.normal(size=(60, 2))
    far = rng.normal(size=(60, 2)) + 1000.0
    # fully separated: own dataset's 5th neighbour at position 5, other dataset never -> k
    assert M.mixing_metric([a, far], k=40, k_dataset=5) == pytest.approx((5 + 40) / 2)
    mixed = M.mixing_metric([a, rng.normal(size=(60, 2))], k=40, k_dataset=5)
    assert mixed < 15.0
    # subsampling to max_cells is seeded and equals the metric on that subsample
    pooled = np.concatenate([a, far])
    keep = np.sort(np.random.default_rng(11).choice(120, size=50, replace=False))
    sub = [pooled[keep][keep < 60], pooled[keep][keep >= 60]]
    got = M.mixing_metric([a, far], k=20, k_dataset=5, max_cells=50, seed=11, block_size=BS)
    assert got == pytest.approx(bf_mixing(sub, 20, 5))


# ----------------------------------------------------------------------------------------------
# kBET
# ----------------------------------------------------------------------------------------------


def test_kbet_matches_brute_force():
    rng = _rng(9)
    x1 = rng.normal(size=(41, 3))
    x2 = rng.normal(size=(33, 3)) + 0.5
    x3 = rng.normal(size=(25, 3))
    for lat in ([x1, x2], [x1, x2, x3]):
        n = sum(len(z) for z in lat)
        got = M.kbet(lat, k=10, sample_size=n, repetitions=1, block_size=BS)
        assert got == pytest.approx(bf_kbet_all_cells(lat, 10, 0.05))
    # k=None: kBET's floor(mean dataset size / 4) = floor(33 / 4) = 8 for x1, x3
    got = M.kbet([x1, x3], k=None, sample_size=66, repetitions=1, alpha=0.2, block_size=BS)
    assert got == pytest.approx(bf_kbet_all_cells([x1, x3], 8, 0.2))


def test_kbet_known_answers():
    rng = _rng(10)
    a = rng.normal(size=(200, 2))
    assert M.kbet([a, a + 1000.0], k=25) == 0.0
    well_mixed = M.kbet([a, rng.normal(size=(200, 2))], k=25, sample_size=100, repetitions=5)
    assert well_mixed > 0.8


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------


def test_evaluate_combines_metrics():
    rng = _rng(12)
    a = rng.normal(size=(40, 3))
    b = a + 0.1 * rng.normal(size=(40, 3))
    la, lb = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
    out = M.evaluate([a, b], [la, lb], paired=True, block_size=BS)
    assert set(out) == {"mixing_metric", "kbet", "asw", "label_transfer_accuracy", "foscttm", "pair_distance"}
    assert out["foscttm"] == pytest.approx(M.foscttm(a, b, block_size=BS))
    assert out["asw"] == pytest.approx(M.asw([a, b], [la, lb], block_size=BS))
    lta = M.label_transfer_accuracy(a, la, b, lb, block_size=BS)
    assert out["label_transfer_accuracy"] == pytest.approx(lta)
    assert out["mixing_metric"] == pytest.approx(M.mixing_metric([a, b], k=80, block_size=BS))
    assert set(M.evaluate([a, b], block_size=BS)) == {"mixing_metric", "kbet"}


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------

_X = np.zeros((10, 3)) + np.arange(10)[:, None]
_NAN = _X.copy()
_NAN[2, 1] = np.nan
_INF = _X.copy()
_INF[0, 0] = np.inf
_LAB = np.arange(10) % 2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: M.foscttm(_X, _X[:9]), "same number of cells"),
        (lambda: M.foscttm(_X, _X[:, :2]), "same number of features"),
        (lambda: M.foscttm(_NAN, _X), "NaN or infinite"),
        (lambda: M.pair_distance(_X, _INF), "NaN or infinite"),
        (lambda: M.pair_distance(_X[:1], _X[:1]), "at least 2 cells"),
        (lambda: M.foscttm(_X[0], _X[0]), "2-D"),
        (lambda: M.foscttm(np.array([["a", "b"]]), _X[:1, :2]), "numeric"),
        (lambda: M.foscttm(_X, _X, block_size=0), "block_size"),
        (lambda: M.label_transfer_accuracy(_X, _LAB[:9], _X, _LAB), "9 labels"),
        (lambda: M.label_transfer_accuracy(_X, _LAB, _X, _LAB[:8]), "8 labels"),
        (lambda: M.label_transfer_accuracy(_X, _LAB, _X[:, :2], _LAB), "same number of features"),
        (lambda: M.knn_label_transfer(_X, _LAB, _X, k=11), "exceeds"),
        (lambda: M.knn_label_transfer(_X, _LAB, _X, k=0), ">= 1"),
        (lambda: M.knn_label_transfer(_X, _LAB.reshape(5, 2), _X), "1-D"),
        (lambda: M.knn_label_transfer(_X, np.array([0.0] * 9 + [np.nan]), _X), "NaN"),
        (lambda: M.asw([_X], [np.zeros(10)]), "at least 2 distinct"),
        (lambda: M.asw([_X], [np.arange(10)]), "fewer distinct labels than cells"),
        (lambda: M.asw([_X, _X], [_LAB]), "one label array per latent"),
        (lambda: M.asw([_INF], [_LAB]), "NaN or infinite"),
        (lambda: M.asw([np.zeros((0, 3))], [np.zeros(0)]), "at least one cell"),
        (lambda: M.mixing_metric([_X]), "at least 2"),
        (lambda: M.mixing_metric(_X, k=5), "list"),
        (lambda: M.mixing_metric([_X, _X], k=21), "exceeds"),
        (lambda: M.mixing_metric([_X, _X], k=5, k_dataset=6), "k_dataset"),
        (lambda: M.mixing_metric([_X, _X[:, :2]], k=5), "same number of features"),
        (lambda: M.kbet([_X, _NAN], k=5), "NaN or infinite"),
        (lambda: M.kbet([_X, _X], k=21), "exceeds"),
        (lambda: M.kbet([_X, _X], k=5, alpha=1.5), "alpha"),
        (lambda: M.kbet([_X, _X], k=5, sample_size=21), "sample_size"),
        (lambda: M.kbet([_X, _X], k=5, repetitions=0), "repetitions"),
        (lambda: M.kbet([_X, _X], k=2.5), "integer"),
        (lambda: M.evaluate([_X, _X, _X], paired=True), "exactly 2"),
        (lambda: M.evaluate([_X, _X[:9]], paired=True), "same number of cells"),
        (lambda: M.evaluate([_X, _X], [_LAB]), "one label array per latent"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
