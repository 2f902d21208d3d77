"""Flax NNX networks of scMODAL: per-dataset encoders and decoders, one discriminator per consecutive pair.

Shapes follow the original: E_i = Dense(p_i->h) -> ReLU -> Dense(h->q); G_i = Dense(q->h) -> ReLU -> Dense(h->p_i);
D = Dense(q->h) -> ReLU -> Dense(h->h) -> ReLU -> Dense(h->1), logits clamped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

INITS = ("normal", "lecun", "he")
# The networks' matmul precision (`Hyperparameters.matmul_precision`), named as jax.default_matmul_precision
# names its levels. Accelerators default to fewer bits than float32 for float32 matmuls (TF32 on recent NVIDIA
# GPUs, one bfloat16 pass on TPU); "float32" pins full precision so results do not depend on the platform.
MATMUL_PRECISIONS = {
    "float32": lax.Precision.HIGHEST,
    "tf32": lax.Precision.HIGH,
    "bfloat16": lax.Precision.DEFAULT,
}


_BUCKETED_MAX = 1 << 22


def power_of_two_at_least(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1): the size classes that let programs compiled for one size
    serve every size in its class (the initialiser's draws, the training loop's step buffer)."""
    return 1 << max(n - 1, 0).bit_length()


def bucketed_normal(stddev: float):
    """`jax.nn.initializers.normal(stddev)`, value for value, with its sampler compiled once per power-of-two size.

    The plain initialiser compiles its sampler for every new parameter shape: about 0.2 s each, a few seconds
    before a new model's first step. Threefry's counter-based bits depend only on the key and the flat position
    (with `jax_threefry_partitionable`, JAX's default), so a draw of the next power-of-two length, cut, reshaped
    and scaled on the host (one float32 multiply, as the plain initialiser's), holds the same values. Without
    that flag, or above `_BUCKETED_MAX` values (where a draw of up to twice the size costs more memory than a
    compilation costs time), the plain initialiser is used.
    """
    plain = jax.nn.initializers.normal(stddev=stddev)

    def init(key: jax.Array, shape: Sequence[int], dtype: jnp.dtype | None = None) -> jax.Array:
        dtype = jnp.dtype(jnp.float32 if dtype is None else dtype)
        n = math.prod(shape)
        if n > _BUCKETED_MAX or not jax.config.jax_threefry_partitionable or not jnp.issubdtype(dtype, jnp.floating):
            return plain(key, shape, dtype)
        draw = np.asarray(jax.random.normal(key, (power_of_two_at_least(n),), dtype))
        return jax.device_put(draw[:n].reshape(shape) * np.asarray(stddev, dtype))  # jnp.asarray compiles per shape

    return init


def _initializers(init: str, init_std: float):
    """(kernel_init, bias_init) for an init choice. 'normal' is the original's N(0, std^2) on weights and biases."""
    if init == "normal":
        normal = bucketed_normal(init_std)
        return normal, normal
    if init == "lecun":
        return jax.nn.initializers.lecun_normal(), jax.nn.initializers.zeros
    if init == "he":
        return jax.nn.initializers.he_normal(), jax.nn.initializers.zeros
    raise ValueError(f"unknown init {init!r}; choose one of {INITS}")


class MLP(nnx.Module):
    """Dense layers with ReLU between them (none after the last)."""

    def __init__(self, sizes: Sequence[int], *, init: str, init_std: float, precision: str = "float32", rngs: nnx.Rngs):
        kernel_init, bias_init = _initializers(init, init_std)
        if precision not in MATMUL_PRECISIONS:
            raise ValueError(f"unknown matmul precision {precision!r}; choose one of {tuple(MATMUL_PRECISIONS)}")
        kw = dict(kernel_init=kernel_init, bias_init=bias_init, precision=MATMUL_PRECISIONS[precision], rngs=rngs)
        self.layers = nnx.List([nnx.Linear(a, b, **kw) for a, b in zip(sizes[:-1], sizes[1:], strict=True)])

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
        precision: str = "float32",
        rngs: nnx.Rngs,
    ):
        kw = dict(init=init, init_std=init_std, precision=precision, rngs=rngs)
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
        precision: str = "float32",
        rngs: nnx.Rngs,
    ):
        self.logit_clamp = logit_clamp
        kw = dict(init=init, init_std=init_std, precision=precision, rngs=rngs)
        self.nets = nnx.List([MLP([n_latent, hidden, hidden, 1], **kw) for _ in range(n_pairs)])

    def __call__(self, z: jax.Array, pair: int) -> jax.Array:
        logits = self.nets[pair](z)[..., 0]
        return jnp.clip(logits, -self.logit_clamp, self.logit_clamp)
