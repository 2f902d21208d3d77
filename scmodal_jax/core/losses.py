"""Pure loss functions of scMODAL on arrays (no networks, no state).

Every function here has a plain-numpy twin in tests/reference.py that it is tested against.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

# Cosine similarity of a row with zero norm is undefined; such rows are treated as "no information".
_NORM_EPS = 1e-12
# The kernel, distance and cosine matmuls run at full float32 on every platform: accelerators otherwise use
# TF32 or bfloat16 passes for float32 matmuls, which moves Gaussian kernels and MNN cosines by up to ~1e-2 and
# can change which pairs are mutual neighbours. Whatever `jax.default_matmul_precision` says, these stay pinned.
MATMUL_PRECISION = lax.Precision.HIGHEST


def squared_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """||a_r - b_c||^2 for every row pair, through the Gram matrix (never an (n, m, p) tensor)."""
    sq_a = jnp.sum(a * a, axis=1)
    sq_b = jnp.sum(b * b, axis=1)
    d = sq_a[:, None] + sq_b[None, :] - 2.0 * jnp.matmul(a, b.T, precision=MATMUL_PRECISION)
    return jnp.maximum(d, 0.0)


def gaussian_kernel(x: jax.Array) -> jax.Array:
    """exp(-||x_a - x_b||^2 / (2 p)) over the rows of x, p = number of columns."""
    return jnp.exp(-squared_distances(x, x) / (2.0 * x.shape[1]))


def geometric_loss(input_kernel: jax.Array, z: jax.Array, clamp: float = 0.975) -> jax.Array:
    """-mean over rows of min(cos(K[r], Kz[r]), clamp) for one dataset; K is the input-space kernel."""
    latent_kernel = gaussian_kernel(z)
    dot = jnp.sum(input_kernel * latent_kernel, axis=1)
    norms = jnp.linalg.norm(input_kernel, axis=1) * jnp.linalg.norm(latent_kernel, axis=1)
    cos = dot / jnp.maximum(norms, _NORM_EPS)
    return -jnp.mean(jnp.minimum(cos, clamp))


def cosine_unit_rows(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rows of a scaled to unit length (a zero row stays zero), and which rows have nonzero norm: the operands of
    `cosine_similarity`, for a caller that takes the product in pieces."""
    norm = jnp.linalg.norm(a, axis=1)
    return a / jnp.maximum(norm, _NORM_EPS)[:, None], norm > _NORM_EPS


def cosine_similarity(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Cosine similarity of every row of a with every row of b, and which rows have nonzero norm."""
    (a_n, valid_a), (b_n, valid_b) = cosine_unit_rows(a), cosine_unit_rows(b)
    return jnp.matmul(a_n, b_n.T, precision=MATMUL_PRECISION), valid_a, valid_b


def mnn_matrix(left: jax.Array, right: jax.Array, k: int) -> jax.Array:
    """Exact mutual-nearest-neighbour indicator S (float32, n_left x n_right) on cosine similarity.

    S[a, b] = 1 iff b is among the k most similar of row a and a among the k most similar of column b.
    Ties go to the lower index (as `lax.top_k` and a stable argsort do). Rows whose link features are all
    zero have no defined cosine and take part in no pair.
    """
    sim, valid_left, valid_right = cosine_similarity(left, right)
    n_left, n_right = sim.shape
    k_row = min(k, n_right)
    k_col = min(k, n_left)
    _, row_top = lax.top_k(sim, k_row)  # (n_left, k): for each a, its k best b
    _, col_top = lax.top_k(sim.T, k_col)  # (n_right, k): for each b, its k best a
    rows = jnp.arange(n_left)[:, None]
    cols = jnp.arange(n_right)[:, None]
    in_row_top = jnp.zeros((n_left, n_right), jnp.bool_).at[rows, row_top].set(True)
    in_col_top = jnp.zeros((n_left, n_right), jnp.bool_).at[col_top, cols].set(True)
    mutual = in_row_top & in_col_top & valid_left[:, None] & valid_right[None, :]
    return mutual.astype(jnp.float32)


def anchor_loss(z_left: jax.Array, z_right: jax.Array, mnn: jax.Array) -> jax.Array:
    """sum(S * d) / sum(S) with d = ||z_a - z_b||^2 / q; 0 when the batch holds no pair."""
    d = squared_distances(z_left, z_right) / z_left.shape[1]
    n_pairs = jnp.sum(mnn)
    return jnp.where(n_pairs > 0, jnp.sum(mnn * d) / jnp.maximum(n_pairs, 1.0), 0.0)


def discriminator_loss(logits_first: jax.Array, logits_second: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """Binary cross-entropy of one discriminator: the pair's first dataset is label 1, the second label 0.

    With `smoothing` s > 0 the targets are 1 - s and s (two-sided label smoothing), so the discriminator is
    never pushed towards infinitely confident logits.
    """
    if smoothing == 0.0:
        return jnp.mean(jax.nn.softplus(-logits_first) + jax.nn.softplus(logits_second))
    first = (1.0 - smoothing) * jax.nn.softplus(-logits_first) + smoothing * jax.nn.softplus(logits_first)
    second = smoothing * jax.nn.softplus(-logits_second) + (1.0 - smoothing) * jax.nn.softplus(logits_second)
    return jnp.mean(first + second)


def gradient_penalty(logits_fn, z: jax.Array) -> jax.Array:
    """Zero-centred gradient penalty: mean over rows of ||d logits / d z||^2 (logits_fn maps rows to logits).

    Penalising the discriminator's input gradient on both datasets' latents keeps it smooth, so it cannot
    separate the modalities with a sharp boundary early and starve the encoders of a useful signal.
    """
    grads = jax.grad(lambda x: jnp.sum(logits_fn(x)))(z)
    return jnp.mean(jnp.sum(grads * grads, axis=1))


#: A discriminator's loss (one pair, both sides) when it cannot tell the datasets apart: 2 log 2.
DISC_EQUILIBRIUM = 2.0 * math.log(2.0)


def penalty_engagement(pair_loss: jax.Array, below: float) -> jax.Array:
    """Scale in [0, 1] of a pair's gradient penalty: 0 while its discriminator loss is at least `below` x the
    equilibrium, rising linearly to 1 as the loss falls to 0 (the discriminator separates the pair perfectly)."""
    threshold = below * DISC_EQUILIBRIUM
    return jnp.clip(1.0 - pair_loss / threshold, 0.0, 1.0)


def refined_pairs(
    imputed_right: jax.Array,
    x_right: jax.Array,
    x_left: jax.Array,
    imputed_left: jax.Array,
    link_left: jax.Array,
    link_right: jax.Array,
    k: int,
    agree_k: int,
) -> jax.Array:
    """Anchor pairs found on every feature, kept where they agree with the linked features (n_left x n_right).

    A pair (a, b) is found when the left cell a, imputed into the right modality (`imputed_right[a]` =
    G_right(E_left(x_a))), and the right cell b are mutual nearest neighbours there, or the other way round
    (`x_left[a]` and `imputed_left[b]` in the left modality). It is kept only when a and b are also mutual
    `agree_k`-nearest neighbours on the linked features: a loose neighbourhood that rejects pairs which
    contradict the links (a cluster matched to the wrong partner) while admitting the many pairs the few
    links alone cannot resolve.
    """
    found = jnp.maximum(mnn_matrix(imputed_right, x_right, k), mnn_matrix(x_left, imputed_left, k))
    return found * mnn_matrix(link_left, link_right, agree_k)


def mean_squared_error(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.mean((a - b) ** 2)
