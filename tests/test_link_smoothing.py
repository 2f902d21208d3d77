"""Links smoothed over each dataset's own neighbours (runtime/link_smoothing.py) against plain numpy, and the
witness that training searches its anchors on exactly those smoothed links."""

import numpy as np
import pytest
import scipy.sparse as sp

from scmodal_jax import SCMODAL
from scmodal_jax.core.hparams import Hyperparameters
from scmodal_jax.runtime.link_smoothing import neighbour_graph, principal_components, smooth_links, smooth_over_graph


def low_rank(n=400, p=60, rank=5, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, rank)) * np.array([10, 8, 6, 4, 3])[:rank]
    return (signal @ rng.normal(size=(rank, p)) + 0.1 * rng.normal(size=(n, p)) + 3.0).astype(np.float32)


def brute_force_neighbours(points, k):
    d2 = ((points[:, None, :].astype(np.float64) - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def test_principal_components_match_numpy_svd():
    x = low_rank()
    pcs = principal_components(x, 5, seed=1)
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    # The same scores up to each component's sign, so the same pairwise distances.
    np.testing.assert_allclose(np.abs(pcs), np.abs(u[:, :5] * s[:5]), rtol=1e-3, atol=1e-2 * s[4] / np.sqrt(len(x)))
    # Sparse input gives the same scores as dense (read in row blocks, never densified whole).
    np.testing.assert_allclose(principal_components(sp.csr_matrix(x), 5, seed=1), pcs, rtol=1e-4, atol=1e-3)


def test_principal_components_of_narrow_data_are_the_centred_data():
    x = low_rank(p=12)
    np.testing.assert_allclose(principal_components(x, 30), x - x.mean(axis=0), atol=1e-5)


def test_neighbour_graph_is_exact_knn_without_self():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(300, 7)).astype(np.float32)
    # Blocks smaller than the data: the scan over reference chunks and the padded last block are exercised.
    got = neighbour_graph(points, 6, block=128)
    np.testing.assert_array_equal(got, brute_force_neighbours(points, 6))
    with pytest.raises(ValueError, match="k < number of cells"):
        neighbour_graph(points[:5], 5)


def test_smooth_over_graph_formula():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(50, 3)).astype(np.float32)
    graph = rng.integers(0, 50, size=(50, 4))
    want = np.stack([0.3 * values[i] + 0.7 * values[graph[i]].mean(axis=0) for i in range(50)])
    np.testing.assert_allclose(smooth_over_graph(values, graph, 0.7), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]"):
        smooth_over_graph(values, graph, 1.5)
    with pytest.raises(ValueError, match="neighbour graph of 49 cells"):
        smooth_over_graph(values, graph[:49], 0.5)


def test_smooth_links_uses_each_datasets_own_graph_once():
    xs = [low_rank(n=120 + 10 * i, seed=i) for i in range(3)]
    rng = np.random.default_rng(5)
    links = [(rng.normal(size=(len(xs[i]), 4)), rng.normal(size=(len(xs[i + 1]), 4))) for i in range(2)]
    reports = []
    got = smooth_links(xs, links, 0.6, k=5, n_pcs=5, seed=0, report=reports.append)
    assert len(reports) == 3  # the middle dataset's graph serves both of its pairs
    graphs = [brute_force_neighbours(principal_components(x, 5, seed=i), 5) for i, x in enumerate(xs)]
    for i, (left, right) in enumerate(got):
        np.testing.assert_allclose(left, smooth_over_graph(links[i][0], graphs[i], 0.6), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(right, smooth_over_graph(links[i][1], graphs[i + 1], 0.6), rtol=1e-5, atol=1e-6)
    unchanged = smooth_links(xs, links, 0.0)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(unchanged, links, strict=True))


def test_training_searches_anchors_on_the_smoothed_links():
    rng = np.random.default_rng(6)
    x0, x1 = low_rank(n=300, p=30, seed=7), low_rank(n=280, p=20, seed=8)
    links = [(x0[:, :6] + rng.normal(size=(300, 6)), x1[:, :6] + rng.normal(size=(280, 6)))]
    opts = dict(steps=6, batch_size=64, seed=2, progress=False, log_every=1, hidden=32, disc_hidden=32, k_anchor=5)
    opts["steps_per_call"] = 3
    smoothed = smooth_links([x0, x1], links, 0.7, k=8, seed=2)
    fixed = dict(link_smoothing_k=8, link_smoothing_auto=False)
    by_option = SCMODAL(link_smoothing=0.7, **fixed, **opts).fit([x0, x1], links)
    by_hand = SCMODAL(link_smoothing=0.0, **opts).fit([x0, x1], smoothed)
    raw = SCMODAL(link_smoothing=0.0, **opts).fit([x0, x1], links)
    cols = ["loss_anchor", "loss_gan", "loss_d"]
    np.testing.assert_allclose(by_option.history_[cols].to_numpy(), by_hand.history_[cols].to_numpy(), rtol=1e-6)
    assert not np.allclose(by_option.history_["loss_anchor"], raw.history_["loss_anchor"])
    # The quality score is computed on the raw links in both cases.
    assert by_option.fit_report_["link_smoothing"] == [0.7] and raw.fit_report_["link_smoothing"] == [0.0]
    # With the weight chosen by held-out agreement, training uses the links smoothed at the chosen weight.
    details: dict = {}
    smooth_links([x0, x1], links, 0.7, k=8, seed=2, auto=True, details=details)
    auto = SCMODAL(link_smoothing=0.7, link_smoothing_k=8, **opts).fit([x0, x1], links)
    assert auto.fit_report_["link_smoothing"] == details["weights"]
    assert auto.fit_report_["link_smoothing_scores"] == details["scores"]
    at_chosen = smooth_links([x0, x1], links, details["weights"][0], k=8, seed=2)
    chosen = SCMODAL(link_smoothing=0.0, **opts).fit([x0, x1], at_chosen)
    np.testing.assert_allclose(auto.history_[cols].to_numpy(), chosen.history_[cols].to_numpy(), rtol=1e-6)


def test_link_smoothing_validation():
    with pytest.raises(ValueError, match=r"link_smoothing must be in \[0, 1\]"):
        Hyperparameters(link_smoothing=1.2)
    with pytest.raises(ValueError, match="link_smoothing_k must be a positive integer"):
        Hyperparameters(link_smoothing_k=0)
    with pytest.raises(ValueError, match="link_smoothing_auto must be True or False"):
        Hyperparameters(link_smoothing_auto="yes")


def test_anchor_link_rows_fall_linearly_from_smoothed_to_raw():
    from scmodal_jax.core.step import anchor_link_rows
    from scmodal_jax.runtime.link_smoothing import smoothed_then_raw

    rng = np.random.default_rng(9)
    smoothed = [(rng.normal(size=(16, 5)), rng.normal(size=(16, 5)))]
    raw = [(rng.normal(size=(16, 5)), rng.normal(size=(16, 5)))]
    packed = [tuple(np.asarray(b) for b in pair) for pair in smoothed_then_raw(smoothed, raw)]
    hp = Hyperparameters(link_smoothing=0.7, link_smoothing_until=40)
    for step, keep in [(0, 1.0), (10, 0.75), (30, 0.25), (40, 0.0), (90, 0.0)]:
        ((left, right),) = anchor_link_rows(packed, np.int32(step), hp)
        np.testing.assert_allclose(left, raw[0][0] + keep * (smoothed[0][0] - raw[0][0]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(right, raw[0][1] + keep * (smoothed[0][1] - raw[0][1]), rtol=1e-5, atol=1e-6)
    # A constant weight (until = 0) leaves the rows as they are.
    assert anchor_link_rows(packed, np.int32(5), Hyperparameters(link_smoothing=0.7)) is packed


def test_update_step_searches_anchors_on_the_links_of_its_step():
    import jax.numpy as jnp

    from scmodal_jax.core.step import init_state, update_step
    from scmodal_jax.runtime.link_smoothing import smoothed_then_raw

    rng = np.random.default_rng(10)
    xs = (rng.normal(size=(48, 12)).astype(np.float32), rng.normal(size=(48, 9)).astype(np.float32))
    smoothed = [(rng.normal(size=(48, 4)).astype(np.float32), rng.normal(size=(48, 4)).astype(np.float32))]
    raw = [(rng.normal(size=(48, 4)).astype(np.float32), rng.normal(size=(48, 4)).astype(np.float32))]
    small = dict(hidden=16, disc_hidden=16, k_anchor=5, batch_size=48, link_smoothing=0.7)
    hp_decay = Hyperparameters(link_smoothing_until=100, **small)
    hp_fixed = Hyperparameters(**small)  # no decay: the step takes the rows as given
    nets, state = init_state(hp_decay, (12, 9))
    fixed_nets, _ = init_state(hp_fixed, (12, 9))
    state = {**state, "step": jnp.asarray(60, state["step"].dtype)}  # 40% of the smoothing left
    mixed = [
        tuple(r + 0.4 * (s - r) for s, r in zip(sp_, rp, strict=True)) for sp_, rp in zip(smoothed, raw, strict=True)
    ]
    _, by_schedule = update_step(nets, state, (xs, tuple(smoothed_then_raw(smoothed, raw))))
    _, by_hand = update_step(fixed_nets, state, (xs, tuple(mixed)))
    _, all_smoothed = update_step(fixed_nets, state, (xs, tuple(smoothed)))
    for name, value in by_hand.items():
        np.testing.assert_allclose(by_schedule[name], value, rtol=2e-5, atol=1e-6, err_msg=name)
    assert not np.isclose(by_schedule["loss_anchor"], all_smoothed["loss_anchor"], rtol=1e-3)


def test_training_lets_the_smoothing_fade():
    rng = np.random.default_rng(6)
    x0, x1 = low_rank(n=300, p=30, seed=7), low_rank(n=280, p=20, seed=8)
    links = [(x0[:, :6] + rng.normal(size=(300, 6)), x1[:, :6] + rng.normal(size=(280, 6)))]
    opts = dict(steps=6, batch_size=64, seed=2, progress=False, log_every=1, hidden=32, disc_hidden=32, k_anchor=5)
    opts.update(steps_per_call=3, link_smoothing=0.7, link_smoothing_k=8)
    constant = SCMODAL(**opts).fit([x0, x1], links).history_["loss_anchor"].to_numpy()
    barely = SCMODAL(link_smoothing_until=10**9, **opts).fit([x0, x1], links).history_["loss_anchor"].to_numpy()
    fading = SCMODAL(link_smoothing_until=2, **opts).fit([x0, x1], links).history_["loss_anchor"].to_numpy()
    np.testing.assert_allclose(barely, constant, rtol=1e-5)  # the packed links reach the step intact
    assert fading[0] == pytest.approx(constant[0], rel=1e-6)  # step 0: the full smoothing
    assert not np.allclose(fading[2:], constant[2:], rtol=1e-3)  # from step 2: the raw links


def brute_force_agreement(left, right, raw_left, raw_right):
    scores = []
    for j in range(left.shape[1]):
        seen = [c for c in range(left.shape[1]) if c != j]
        for q, r, rq, rr in ((left, right, raw_left, raw_right), (right, left, raw_right, raw_left)):
            qn = q[:, seen] / np.linalg.norm(q[:, seen], axis=1, keepdims=True)
            rn = r[:, seen] / np.linalg.norm(r[:, seen], axis=1, keepdims=True)
            partner = np.argmax(qn.astype(np.float64) @ rn.T, axis=1)
            scores.append(np.corrcoef(rq[:, j], rr[partner, j])[0, 1])
    return float(np.mean(scores))


def test_heldout_link_agreement_matches_brute_force():
    from scmodal_jax.runtime.link_smoothing import heldout_link_agreement

    rng = np.random.default_rng(11)
    raw_left, raw_right = rng.normal(size=(70, 5)), rng.normal(size=(60, 5))
    left, right = raw_left + 0.3 * rng.normal(size=(70, 5)), raw_right + 0.3 * rng.normal(size=(60, 5))
    ours = heldout_link_agreement(left, right, raw_left, raw_right)
    assert ours == pytest.approx(brute_force_agreement(left, right, raw_left, raw_right), abs=1e-5)
    assert np.isnan(heldout_link_agreement(left[:, :1], right[:, :1], raw_left[:, :1], raw_right[:, :1]))
    # Every cell matched to one hub: its partners share one value of each held-out link, which agrees with
    # nothing (0), where a correlation would be undefined.
    hub_right = np.tile(right[:1], (60, 1))
    assert heldout_link_agreement(left, hub_right, raw_left, np.tile(raw_right[:1], (60, 1))) == 0.0


@pytest.mark.parametrize("block", [512, 16])  # one block; three, the last one part padding
def test_heldout_partners_match_numpy_argmax_with_ties_and_empty_rows(block):
    """Both directions of every held-out link against numpy's argmax of the cosine (first index among ties, also
    between blocks of left rows); a row with nothing on the other links has cosine 0 with every row."""
    from scmodal_jax.runtime.link_smoothing import _heldout_partners

    rng = np.random.default_rng(3)
    left, right = rng.normal(size=(40, 4)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)
    right[7] = right[3]  # a tie: every left row prefers 3 over 7 (ties go to the lower index)
    left[37] = left[2]  # a tie across blocks of 16: every right row prefers 2 over 37
    left[5] = [2.0, 0.0, 0.0, 0.0]  # nothing but link 0: with link 0 held out, cosine 0 everywhere
    of_left, of_right = (np.asarray(p) for p in _heldout_partners(left, right, block=block))
    assert of_left.shape == (4, 40) and of_right.shape == (4, 30)
    for j in range(4):
        seen = np.arange(4) != j
        a, b = left[:, seen].astype(np.float64), right[:, seen].astype(np.float64)
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        cos = a @ b.T
        np.testing.assert_array_equal(of_left[j], np.argmax(cos, axis=1))
        np.testing.assert_array_equal(of_right[j], np.argmax(cos, axis=0))
    assert 3 in of_left and 7 not in of_left  # rows tied with 3 go to 3
    assert 2 in of_right and 37 not in of_right  # and rows tied with 2 to 2, whichever block held the other
    assert of_left[0, 5] == 0  # the empty row: all cosines 0, the first index


def clustered(n, clusters, profile, link_noise, graph_knows, seed):
    """Cells of `clusters` types: links = the type's profile + noise; features carry the type (graph_knows)
    or are noise unrelated to it."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, clusters, n)
    links = profile[kind] + link_noise * rng.normal(size=(n, profile.shape[1]))
    centres = 4.0 * np.random.default_rng(99).normal(size=(clusters, 40))
    features = (centres[kind] if graph_knows else 0.0) + rng.normal(size=(n, 40))
    return features.astype(np.float32), links.astype(np.float32)


@pytest.mark.parametrize("graph_knows", [True, False])
def test_auto_smoothing_is_kept_only_where_each_datasets_graph_knows_the_links(graph_knows):
    profile = 2.0 * np.random.default_rng(5).normal(size=(6, 8))
    x0, l0 = clustered(400, 6, profile, 2.5, graph_knows, seed=1)
    x1, l1 = clustered(380, 6, profile, 2.5, graph_knows, seed=2)
    details: dict = {}
    smoothed = smooth_links([x0, x1], [(l0, l1)], 0.7, k=10, seed=0, auto=True, details=details)
    (weight,) = details["weights"]
    if graph_knows:  # neighbours are the same type: averaging them removes the link noise
        assert weight >= 0.5
        assert details["scores"][0][weight] > details["scores"][0][0.0] + 0.05
    else:  # neighbours are random cells: averaging mixes the types' profiles, so at most a light touch is kept
        assert weight <= 0.3
        assert details["scores"][0][0.7] < details["scores"][0][0.0] - 0.05
    expected = smooth_links([x0, x1], [(l0, l1)], weight, k=10, seed=0) if weight else [(l0, l1)]
    np.testing.assert_allclose(smoothed[0][0], expected[0][0], rtol=1e-6)


def test_auto_smoothing_of_a_single_link_is_off():
    x0, l0 = clustered(200, 4, np.ones((4, 1)) * np.arange(4)[:, None], 0.5, True, seed=3)
    x1, l1 = clustered(210, 4, np.ones((4, 1)) * np.arange(4)[:, None], 0.5, True, seed=4)
    details: dict = {}
    out = smooth_links([x0, x1], [(l0, l1)], 0.7, k=5, auto=True, details=details, report=lambda m: None)
    assert details["weights"] == [0.0] and np.array_equal(out[0][0], l0)
