"""Metrics of paired data (row ``i`` of both latents is the same cell): FOSCTTM and pair distance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._neighbors import DEFAULT_BLOCK_SIZE, block_rows, center32, chunk_reference, map_blocks, pad_rows, sq_dists
from ._checks import ArrayLike, check_block_size, check_latent, check_same_dim

__all__ = ["foscttm", "pair_distance"]


@jax.jit
def _foscttm_kernel(
    q: jax.Array, qid: jax.Array, q_match: jax.Array, r_chunks: jax.Array, rid_chunks: jax.Array
) -> jax.Array:
    """For each query row i: number of reference rows j != i with d(q_i, r_j) < d(q_i, r_i)."""
    diag = jnp.sum((q - q_match) ** 2, axis=1)

    def body(count, xs):
        r, rid = xs
        d2 = sq_dists(q, r)
        closer = (d2 < diag[:, None]) & (rid[None, :] >= 0) & (rid[None, :] != qid[:, None])
        return count + jnp.sum(closer, axis=1, dtype=jnp.int32), None

    count, _ = jax.lax.scan(body, jnp.zeros(q.shape[0], jnp.int32), (r_chunks, rid_chunks))
    return count


@jax.jit
def _pair_distance_kernel(
    q: jax.Array, q_match: jax.Array, r_chunks: jax.Array, rid_chunks: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """For each query row i: (d(q_i, r_i), sum_j d(q_i, r_j)) with Euclidean distances."""
    diag = jnp.sqrt(jnp.sum((q - q_match) ** 2, axis=1))

    def body(total, xs):
        r, rid = xs
        d = jnp.sqrt(sq_dists(q, r))
        return total + jnp.sum(jnp.where(rid[None, :] >= 0, d, 0.0), axis=1), None

    total, _ = jax.lax.scan(body, jnp.zeros(q.shape[0], jnp.float32), (r_chunks, rid_chunks))
    return diag, total


def _check_paired(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = check_latent(a, "a")
    b = check_latent(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired data must have the same number of cells, got {a.shape[0]} and {b.shape[0]}")
    check_same_dim([a, b], ["a", "b"])
    if a.shape[0] < 2:
        raise ValueError("paired metrics need at least 2 cells")
    return a, b


def _foscttm_one_direction(q: np.ndarray, r: np.ndarray, block_size: int) -> np.ndarray:
    n = q.shape[0]
    bq = block_rows(n, block_size)
    r_chunks, rid_chunks = chunk_reference(r, bq)
    ids = np.arange(n, dtype=np.int32)

    def block(start: int, stop: int) -> jax.Array:
        qb = jnp.asarray(pad_rows(q[start:stop], bq))
        mb = jnp.asarray(pad_rows(r[start:stop], bq))
        qid = jnp.asarray(pad_rows(ids[start:stop], bq, fill=-2))
        return _foscttm_kernel(qb, qid, mb, r_chunks, rid_chunks)

    (counts,) = map_blocks(block, n, bq)
    return counts.astype(np.float64) / (n - 1)


def foscttm(a: ArrayLike, b: ArrayLike, *, block_size: int = DEFAULT_BLOCK_SIZE) -> float:
    """FOSCTTM: Fraction Of Samples Closer Than the True Match, for paired data.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are the same cell measured in two modalities.  For
    each ``i`` we count the cells ``j != i`` with ``d(a_i, b_j) < d(a_i, b_i)`` (strictly closer;
    exact ties are not counted) and divide by ``n - 1``, the number of candidates other than the
    true match (as in SCOT, Demetci et al. 2022).  This is averaged over ``i``, repeated with the
    roles of ``a`` and ``b`` swapped, and the two directions are averaged.  Perfect pairing gives
    0, a random embedding about 0.5; lower is better.

    Args:
        a: (n, d) latent coordinates of modality 1.
        b: (n, d) latent coordinates of modality 2, row-paired with ``a``.
        block_size: rows per distance block.

    Returns:
        FOSCTTM in [0, 1].
    """
    a, b = _check_paired(a, b)
    block_size = check_block_size(block_size)
    a32, b32 = center32(a, b)
    fa = _foscttm_one_direction(a32, b32, block_size)
    fb = _foscttm_one_direction(b32, a32, block_size)
    return float((fa.mean() + fb.mean()) / 2.0)


def _pair_distance_one_direction(q: np.ndarray, r: np.ndarray, block_size: int) -> np.ndarray:
    n = q.shape[0]
    bq = block_rows(n, block_size)
    r_chunks, rid_chunks = chunk_reference(r, bq)

    def block(start: int, stop: int) -> tuple[jax.Array, jax.Array]:
        qb = jnp.asarray(pad_rows(q[start:stop], bq))
        mb = jnp.asarray(pad_rows(r[start:stop], bq))
        return _pair_distance_kernel(qb, mb, r_chunks, rid_chunks)

    diag, total = (x.astype(np.float64) for x in map_blocks(block, n, bq))
    mean = total / n
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean > 0, diag / np.where(mean > 0, mean, 1.0), 1.0)
    return ratio


def pair_distance(a: ArrayLike, b: ArrayLike, *, block_size: int = DEFAULT_BLOCK_SIZE) -> float:
    """Normalised distance between true pairs, for paired data.

    For each ``i``: ``d(a_i, b_i) / mean_j d(a_i, b_j)`` where the mean runs over all ``n``
    cells ``j`` of ``b`` (the true match included).  Averaged over ``i``, repeated with ``a`` and
    ``b`` swapped, and the two directions averaged.  0 means every cell coincides with its
    partner; about 1 means the partner is no closer than a random cell.  Lower is better.
    If every ``b_j`` coincides with ``a_i`` (mean distance 0) that cell's ratio is defined as 1.

    Args:
        a: (n, d) latent coordinates of modality 1.
        b: (n, d) latent coordinates of modality 2, row-paired with ``a``.
        block_size: rows per distance block.

    Returns:
        The mean normalised pair distance (>= 0).
    """
    a, b = _check_paired(a, b)
    block_size = check_block_size(block_size)
    a32, b32 = center32(a, b)
    ra = _pair_distance_one_direction(a32, b32, block_size)
    rb = _pair_distance_one_direction(b32, a32, block_size)
    return float((ra.mean() + rb.mean()) / 2.0)
