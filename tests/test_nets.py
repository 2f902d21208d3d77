"""Networks: the forward passes against numpy with the same parameters, initialisation, logit clamping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scmodal_jax.core.nets import INITS, MLP, Discriminators, Generators, bucketed_normal


def _numpy_mlp(mlp: MLP, x: np.ndarray) -> np.ndarray:
    h = x.astype(np.float64)
    for i, layer in enumerate(mlp.layers):
        h = h @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...], np.float64)
        if i < len(mlp.layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def test_encoder_decoder_shapes_and_forward_match_numpy():
    gens = Generators((7, 3), n_latent=4, hidden=16, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    z = gens.encode(jnp.asarray(x), 0)
    assert z.shape == (5, 4)
    np.testing.assert_allclose(np.asarray(z), _numpy_mlp(gens.encoders[0], x), rtol=1e-5, atol=1e-5)
    back = gens.decode(z, 1)
    assert back.shape == (5, 3)
    np.testing.assert_allclose(np.asarray(back), _numpy_mlp(gens.decoders[1], np.asarray(z)), rtol=1e-5, atol=1e-5)


def test_discriminator_is_three_layers_and_clamps_logits():
    discs = Discriminators(2, n_latent=4, hidden=8, logit_clamp=0.5, rngs=nnx.Rngs(1))
    assert [layer.kernel[...].shape for layer in discs.nets[1].layers] == [(4, 8), (8, 8), (8, 1)]
    z = 100.0 * np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    raw = _numpy_mlp(discs.nets[1], z)[:, 0]
    out = np.asarray(discs(jnp.asarray(z), 1))
    assert np.abs(raw).max() > 0.5  # the clamp is exercised
    np.testing.assert_allclose(out, np.clip(raw, -0.5, 0.5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("init", INITS)
def test_initialisations(init):
    gens = Generators((300,), n_latent=20, hidden=400, init=init, init_std=0.1, rngs=nnx.Rngs(2))
    first = gens.encoders[0].layers[0]
    kernel, bias = np.asarray(first.kernel[...]), np.asarray(first.bias[...])
    expected_std = {"normal": 0.1, "lecun": np.sqrt(1 / 300), "he": np.sqrt(2 / 300)}[init]
    assert kernel.std() == pytest.approx(expected_std, rel=0.1)
    if init == "normal":  # the original draws biases from the same normal
        assert bias.std() == pytest.approx(0.1, rel=0.2)
    else:
        assert np.all(bias == 0)


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        Generators((3,), init="xavier", rngs=nnx.Rngs(0))


def test_same_seed_same_parameters():
    a = nnx.state(Generators((5, 4), n_latent=3, hidden=8, rngs=nnx.Rngs(3)))
    b = nnx.state(Generators((5, 4), n_latent=3, hidden=8, rngs=nnx.Rngs(3)))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_bucketed_normal_gives_the_plain_initialisers_values_from_one_program_per_size():
    shapes = [(1,), (7,), (37, 20), (40, 19), (20, 1), (300, 512), (3, 5, 7)]
    for seed, std in [(0, 0.1), (5, 0.02)]:
        for shape in shapes:
            key = jax.random.PRNGKey(seed)
            expected = jax.nn.initializers.normal(std)(key, shape)
            got = bucketed_normal(std)(key, shape)
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))  # bit for bit
    # the witness of the saving: a new shape of a size already drawn (740 and 760 values: 1024) compiles nothing
    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        bucketed_normal(0.3)(jax.random.PRNGKey(9), (38, 20))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []
