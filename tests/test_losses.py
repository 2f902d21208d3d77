import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

from scmodal_jax.core import losses


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_squared_distances_gram_matches_direct(rng):
    a = rng.normal(size=(17, 9)).astype(np.float32)
    b = rng.normal(size=(11, 9)).astype(np.float32)
    np.testing.assert_allclose(losses.squared_distances(a, b), ref.sq_dists(a, b), rtol=1e-4, atol=1e-4)
    assert float(jnp.min(losses.squared_distances(a, a))) >= 0.0


def test_gaussian_kernel_matches_direct_form(rng):
    x = rng.normal(size=(25, 40)).astype(np.float32)
    np.testing.assert_allclose(losses.gaussian_kernel(x), ref.kernel(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("clamp", [0.975, 0.5])
def test_geometric_loss(rng, clamp):
    x = rng.normal(size=(30, 15)).astype(np.float32)
    z = rng.normal(size=(30, 4)).astype(np.float32)
    got = losses.geometric_loss(losses.gaussian_kernel(x), z, clamp)
    np.testing.assert_allclose(got, ref.geometric_loss(x, z, clamp), rtol=1e-5)


def test_geometric_loss_clamps_at_perfect_agreement():
    x = np.eye(6, dtype=np.float32) * 3
    # z = x gives identical kernels (same dimension), so cos = 1 and the clamp decides the value.
    assert float(losses.geometric_loss(losses.gaussian_kernel(x), x, 0.975)) == pytest.approx(-0.975)


@pytest.mark.parametrize("k", [1, 3, 8, 40])
def test_mnn_matches_brute_force(rng, k):
    left = rng.normal(size=(23, 5)).astype(np.float32)
    right = rng.normal(size=(19, 5)).astype(np.float32)
    got = np.asarray(losses.mnn_matrix(left, right, k))
    want = ref.mnn(left, right, k)
    np.testing.assert_array_equal(got, want)
    if k >= 19:
        assert got.sum() > 0


def test_mnn_zero_rows_and_constant_columns(rng):
    left = rng.normal(size=(12, 4)).astype(np.float32)
    right = rng.normal(size=(10, 4)).astype(np.float32)
    left[[2, 5]] = 0.0  # cells with all link features zero (sparse RNA)
    right[:, 1] = 3.0  # a link column with zero variance
    got = np.asarray(losses.mnn_matrix(left, right, 3))
    assert np.isfinite(got).all()
    assert got[[2, 5]].sum() == 0
    np.testing.assert_array_equal(got, ref.mnn(left, right, 3))


def test_mnn_is_symmetric_under_swap(rng):
    left = rng.normal(size=(15, 6)).astype(np.float32)
    right = rng.normal(size=(15, 6)).astype(np.float32)
    np.testing.assert_array_equal(losses.mnn_matrix(left, right, 4), losses.mnn_matrix(right, left, 4).T)


def test_anchor_loss(rng):
    za = rng.normal(size=(14, 5)).astype(np.float32)
    zb = rng.normal(size=(9, 5)).astype(np.float32)
    s = (rng.random((14, 9)) < 0.2).astype(np.float32)
    np.testing.assert_allclose(losses.anchor_loss(za, zb, s), ref.anchor_loss(za, zb, s), rtol=1e-5)


def test_anchor_loss_without_pairs_is_zero_not_nan(rng):
    za = rng.normal(size=(5, 3)).astype(np.float32)
    val = losses.anchor_loss(za, za, np.zeros((5, 5), np.float32))
    assert float(val) == 0.0


def test_discriminator_loss(rng):
    first = rng.normal(scale=3, size=20).astype(np.float32)
    second = rng.normal(scale=3, size=20).astype(np.float32)
    np.testing.assert_allclose(losses.discriminator_loss(first, second), ref.disc_loss(first, second), rtol=1e-5)
    # Saturated logits at the clamp stay finite.
    big = np.full(4, 50.0, np.float32)
    assert np.isfinite(float(losses.discriminator_loss(-big, big)))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_discriminator_loss_with_label_smoothing(rng, smoothing):
    a, b = rng.normal(size=50) * 3, rng.normal(size=50) * 3
    got = float(losses.discriminator_loss(jnp.asarray(a), jnp.asarray(b), smoothing))
    want = ref.disc_loss_smoothed(a, b, smoothing)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    if smoothing == 0.0:
        assert got == float(losses.discriminator_loss(jnp.asarray(a), jnp.asarray(b)))


def test_gradient_penalty_matches_hand_written_backward(rng):
    layers = [(rng.normal(size=(4, 9)), rng.normal(size=9)), (rng.normal(size=(9, 9)), rng.normal(size=9)),
              (rng.normal(size=(9, 1)), rng.normal(size=1))]  # fmt: skip
    z = rng.normal(size=(30, 4))
    for clamp in (None, 3.0):  # with clamp 3 some logits are clamped: their rows have zero gradient

        def fn(x, clamp=clamp):
            out = ref.mlp_jax(layers, x)[:, 0]
            return out if clamp is None else jnp.clip(out, -clamp, clamp)

        got = float(losses.gradient_penalty(fn, jnp.asarray(z, jnp.float32)))
        want = ref.gradient_penalty(layers, z, clamp)
        np.testing.assert_allclose(got, want, rtol=1e-4)
    assert np.abs(ref.mlp(layers, z)).max() > 3.0  # the clamp case is exercised


def test_penalty_engagement_is_a_clipped_ramp_below_the_threshold():
    equilibrium = 2.0 * np.log(2.0)
    pair_loss = np.array([0.0, 0.1, 0.5 * 0.4 * equilibrium, 0.4 * equilibrium, 1.0, 5.0], np.float32)
    got = np.asarray(losses.penalty_engagement(jnp.asarray(pair_loss), 0.4))
    want = np.clip(1.0 - pair_loss / (0.4 * equilibrium), 0.0, 1.0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[[0, 2, 3, 5]], [1.0, 0.5, 0.0, 0.0], atol=1e-6)


def test_refined_pairs_match_brute_force(rng):
    imp_r, x_r = rng.normal(size=(20, 6)), rng.normal(size=(25, 6))
    x_l, imp_l = rng.normal(size=(20, 8)), rng.normal(size=(25, 8))
    link_l, link_r = rng.normal(size=(20, 3)), rng.normal(size=(25, 3))
    args = [jnp.asarray(a, jnp.float32) for a in (imp_r, x_r, x_l, imp_l, link_l, link_r)]
    got = np.asarray(losses.refined_pairs(*args, 4, 10))
    want = ref.refined_pairs(imp_r, x_r, x_l, imp_l, link_l, link_r, 4, 10)
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < ref.mnn(imp_r, x_r, 4).sum() + ref.mnn(x_l, imp_l, 4).sum()  # the filter removed pairs
