"""Flax NNX networks of scMODAL: per-dataset encoders and decoders, one discriminator per consecutive pair.

Shapes follow the original: E_i = Dense(p_i->h) -> ReLU -> Dense(h->q); G_i = Dense(q->h) -> ReLU -> Dense(h->p_i);
D = Dense(q->h) -> ReLU -> Dense(h->h) -> ReLU -> Dense(h->1), logits clamped.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

INITS = ("normal", "lecun", "he")


def _initializers(init: str, init_std: float):
    """(kernel_init, bias_init) for an init choice. 'normal' is the original's N(0, std^2) on weights and biases."""
    if init == "normal":
        normal = jax.nn.initializers.normal(stddev=init_std)
        return normal, normal
    if init == "lecun":
        return jax.nn.initializers.lecun_normal(), jax.nn.initializers.zeros
    if init == "he":
        return jax.nn.initializers.he_normal(), jax.nn.initializers.zeros
    raise ValueError(f"unknown init {init!r}; choose one of {INITS}")


class MLP(nnx.Module):
    """Dense layers with ReLU between them (none after the last)."""

    def __init__(self, sizes: Sequence[int], *, init: str, init_std: float, rngs: nnx.Rngs):
        kernel_init, bias_init = _initializers(init, init_std)
        self.layers = nnx.List(
            [
                nnx.Linear(a, b, kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)
                for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


class Generators(nnx.Module):
    """Every encoder E_i and decoder G_i: the parameters the generator optimiser updates."""

    def __init__(
        self,
        n_features: Sequence[int],
        n_latent: int = 20,
        hidden: int = 512,
        *,
        init: str = "normal",
        init_std: float = 0.1,
        rngs: nnx.Rngs,
    ):
        kw = dict(init=init, init_std=init_std, rngs=rngs)
        self.encoders = nnx.List([MLP([p, hidden, n_latent], **kw) for p in n_features])
        self.decoders = nnx.List([MLP([n_latent, hidden, p], **kw) for p in n_features])

    def encode(self, x: jax.Array, i: int) -> jax.Array:
        return self.encoders[i](x)

    def decode(self, z: jax.Array, i: int) -> jax.Array:
        return self.decoders[i](z)


class Discriminators(nnx.Module):
    """D_i for each consecutive dataset pair (i, i+1); logits clamped to [-clamp, clamp]."""

    def __init__(
        self,
        n_pairs: int,
        n_latent: int = 20,
        hidden: int = 512,
        *,
        logit_clamp: float = 50.0,
        init: str = "normal",
        init_std: float = 0.1,
        rngs: nnx.Rngs,
    ):
        self.logit_clamp = logit_clamp
        self.nets = nnx.List(
            [MLP([n_latent, hidden, hidden, 1], init=init, init_std=init_std, rngs=rngs) for _ in range(n_pairs)]
        )

    def __call__(self, z: jax.Array, pair: int) -> jax.Array:
        logits = self.nets[pair](z)[..., 0]
        return jnp.clip(logits, -self.logit_clamp, self.logit_clamp)
