"""Blockwise Euclidean distances and exact k-nearest neighbours, as jitted JAX kernels.

Query cells are processed in row blocks of ``block_size`` rows and the reference cells are streamed in
chunks of ``block_size`` rows, so no ``n x n`` matrix is ever materialised.  The one copy of the kernel: the
metrics (label transfer, mixing, quality; FOSCTTM, pair distance and silhouette keep their own kernels next to
them on the helpers here) and the training's link smoothing (`runtime/link_smoothing.py`) all call it
(internal API of the package).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

#: Default number of rows per query block and per reference chunk.  A block of distances is
#: ``block_size x block_size`` float32 values (16 MiB for 2048).
DEFAULT_BLOCK_SIZE = 2048


def block_rows(n: int, block_size: int) -> int:
    """Rows per query block / reference chunk for ``n`` rows: ``n`` rounded up to a power of two (at least 64),
    at most ``block_size``. The kernels compile once per block shape; rounding lets data sets of similar size share
    one program instead of compiling one per exact size (padding rows are masked, so results are unchanged)."""
    return min(block_size, max(64, 1 << max(n - 1, 0).bit_length()))


def center32(*arrays: np.ndarray) -> list[np.ndarray]:
    """Subtract the pooled mean (in float64) and cast to float32; distances are unchanged."""
    mean = np.concatenate(arrays, axis=0).mean(axis=0)
    return [np.ascontiguousarray(a - mean, dtype=np.float32) for a in arrays]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero): Euclidean neighbours of these are cosine ones."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x / np.maximum(norms, 1e-12), 0.0)


def chunk_reference(ref: np.ndarray, chunk: int) -> tuple[jax.Array, jax.Array]:
    """Pad ``ref`` (n, d) to whole chunks; returns (n_chunks, chunk, d) data and (n_chunks, chunk)
    global indices, with -1 marking padding rows."""
    n, d = ref.shape
    n_chunks = -(-n // chunk)
    padded = np.zeros((n_chunks * chunk, d), dtype=np.float32)
    padded[:n] = ref
    idx = np.full(n_chunks * chunk, -1, dtype=np.int32)
    idx[:n] = np.arange(n, dtype=np.int32)
    return jnp.asarray(padded.reshape(n_chunks, chunk, d)), jnp.asarray(idx.reshape(n_chunks, chunk))


def _query_blocks(n: int, block: int):
    """Yield (start, stop) of consecutive query blocks."""
    for start in range(0, n, block):
        yield start, min(start + block, n)


def map_blocks(fn, n: int, block: int) -> tuple[np.ndarray, ...]:
    """Run ``fn(start, stop)`` (returning a device array or tuple of them, padded to ``block``
    rows) for every query block and concatenate the valid rows on the host.  All blocks are
    dispatched before any result is fetched, so JAX's asynchronous dispatch keeps the device busy.
    """
    pending = []
    for start, stop in _query_blocks(n, block):
        out = fn(start, stop)
        pending.append((stop - start, out if isinstance(out, tuple) else (out,)))
    columns = zip(*[[np.asarray(x)[:m] for x in outs] for m, outs in pending], strict=True)
    return tuple(np.concatenate(col, axis=0) for col in columns)


def pad_rows(x: np.ndarray, rows: int, fill: float | int = 0) -> np.ndarray:
    """Pad the first axis of ``x`` to ``rows`` rows with ``fill``."""
    if x.shape[0] == rows:
        return x
    pad = np.full((rows - x.shape[0],) + x.shape[1:], fill, dtype=x.dtype)
    return np.concatenate([x, pad], axis=0)


def sq_dists(q: jax.Array, r: jax.Array) -> jax.Array:
    """Squared Euclidean distances between rows of q (B, d) and r (C, d), clamped at 0."""
    qq = jnp.sum(q * q, axis=1)
    rr = jnp.sum(r * r, axis=1)
    d2 = qq[:, None] + rr[None, :] - 2.0 * jnp.dot(q, r.T, precision=jax.lax.Precision.HIGHEST)
    return jnp.maximum(d2, 0.0)


@partial(jax.jit, static_argnames=("k",))
def _knn_kernel(
    q: jax.Array, qid: jax.Array, r_chunks: jax.Array, rid_chunks: jax.Array, self_value: jax.Array, k: int
) -> tuple[jax.Array, jax.Array]:
    """k nearest reference rows for each query row, streaming over reference chunks.

    ``qid`` holds each query row's index in the reference set (or -2 if it has none); the
    reference row with that index gets squared distance ``self_value`` (``inf`` excludes it,
    ``-1`` forces it to be the first neighbour).  Returns squared distances and indices sorted
    by (distance, index).
    """
    b = q.shape[0]

    def body(carry, xs):
        best_d, best_i = carry
        r, rid = xs
        d2 = sq_dists(q, r)
        d2 = jnp.where(rid[None, :] == qid[:, None], self_value, d2)
        d2 = jnp.where(rid[None, :] < 0, jnp.inf, d2)
        all_d = jnp.concatenate([best_d, d2], axis=1)
        all_i = jnp.concatenate([best_i, jnp.broadcast_to(rid[None, :], d2.shape)], axis=1)
        # top_k is stable (lower position first among ties); previous best entries come first
        # and have lower indices, so ties resolve to the lower reference index.
        neg, pos = jax.lax.top_k(-all_d, k)
        return (-neg, jnp.take_along_axis(all_i, pos, axis=1)), None

    init = (jnp.full((b, k), jnp.inf, dtype=jnp.float32), jnp.full((b, k), -1, dtype=jnp.int32))
    (best_d, best_i), _ = jax.lax.scan(body, init, (r_chunks, rid_chunks))
    return best_d, best_i


def knn(
    query: np.ndarray,
    ref: np.ndarray,
    k: int,
    block_size: int,
    query_ids: np.ndarray | None = None,
    self_mode: str = "exclude",
) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise exact kNN; query/ref already centred float32.  Returns (sq_dists, indices)."""
    nq, nr = query.shape[0], ref.shape[0]
    bq, cr = block_rows(nq, block_size), block_rows(nr, block_size)
    r_chunks, rid_chunks = chunk_reference(ref, cr)
    self_value = jnp.float32(np.inf if self_mode == "exclude" else -1.0)
    if query_ids is None:
        query_ids = np.full(nq, -2, dtype=np.int32)
    query_ids = query_ids.astype(np.int32)

    def block(start: int, stop: int) -> tuple[jax.Array, jax.Array]:
        qb = jnp.asarray(pad_rows(query[start:stop], bq))
        qid = jnp.asarray(pad_rows(query_ids[start:stop], bq, fill=-2))
        return _knn_kernel(qb, qid, r_chunks, rid_chunks, self_value, k=k)

    out_d, out_i = map_blocks(block, nq, bq)
    return out_d, out_i.astype(np.int64)
