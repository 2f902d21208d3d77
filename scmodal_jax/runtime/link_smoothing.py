"""Linked features smoothed over each dataset's own neighbours, before anchors are searched on them.

A cell's linked features are a weak, noisy view of it: a gene's RNA counts drop out where its protein is
plainly there, a 16-marker panel blurs cell types apart. Its neighbours on *all* of its own dataset's
features are mostly the same kind of cell, so averaging the linked features over them keeps the signal and
cuts the noise (MaxFuse's "fuzzy smoothing", Chen et al., Nat. Biotechnol. 2023):

    L_smooth = (1 - w) * L + w * mean over the k nearest neighbours (in dataset i) of L

The neighbours come from the first `n_pcs` principal components of each dataset (randomized SVD, read in row
blocks, so sparse and backed data are never densified whole), exact Euclidean kNN in blocks on the device.
Only the anchor search sees the smoothed links; the quality score keeps the raw ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._rows import column_mean_var, iter_dense_blocks

__all__ = ["principal_components", "neighbour_graph", "smooth_over_graph", "smooth_links"]

log = logging.getLogger("scmodal_jax")

_HIGHEST = jax.lax.Precision.HIGHEST
_BLOCK = 2048


def principal_components(source: Any, n_pcs: int, seed: int = 0, power_iterations: int = 2) -> np.ndarray:
    """Scores (cells x min(n_pcs, features)) of the centred data on its leading principal axes.

    Randomized range finder with power iterations (Halko et al. 2011), two passes over the rows per
    iteration. With no more features than `n_pcs`, the centred data itself (the same distances)."""
    n, p = source.shape
    mean = column_mean_var(source, ddof=0)[0].astype(np.float32)
    if p <= n_pcs:
        out = np.empty((n, p), np.float32)
        for start, block in iter_dense_blocks(source):
            out[start : start + len(block)] = block - mean
        return out
    width = min(n_pcs + 10, p, n)
    omega = np.random.default_rng(seed).standard_normal((p, width)).astype(np.float32)

    def times(right: np.ndarray) -> np.ndarray:  # (X - mean) @ right, n x width
        out = np.empty((n, right.shape[1]), np.float32)
        for start, block in iter_dense_blocks(source):
            out[start : start + len(block)] = block @ right
        return out - mean @ right

    def transposed_times(left: np.ndarray) -> np.ndarray:  # (X - mean).T @ left, p x width
        acc = np.zeros((p, left.shape[1]), np.float64)
        for start, block in iter_dense_blocks(source):
            acc += block.T.astype(np.float64) @ left[start : start + len(block)]
        return (acc - np.outer(mean, left.sum(axis=0))).astype(np.float32)

    q = np.linalg.qr(times(omega))[0]
    for _ in range(power_iterations):
        q = np.linalg.qr(times(np.linalg.qr(transposed_times(q))[0]))[0]
    u, s, _ = np.linalg.svd(transposed_times(q).T, full_matrices=False)  # B = Q^T (X - mean), width x p
    k = min(n_pcs, len(s))
    return (q @ u[:, :k]) * s[:k]


@partial(jax.jit, static_argnames=("k",))
def _block_knn(query: jax.Array, query_ids: jax.Array, ref_chunks: jax.Array, ref_ids: jax.Array, k: int):
    """The k nearest reference rows of each query row (itself excluded), scanning reference chunks."""

    def body(carry, chunk):
        best_d, best_i = carry
        ref, ids = chunk
        d2 = (
            jnp.sum(query * query, axis=1)[:, None]
            + jnp.sum(ref * ref, axis=1)[None, :]
            - 2.0 * jnp.dot(query, ref.T, precision=_HIGHEST)
        )
        d2 = jnp.where((ids[None, :] == query_ids[:, None]) | (ids[None, :] < 0), jnp.inf, d2)
        all_d = jnp.concatenate([best_d, d2], axis=1)
        all_i = jnp.concatenate([best_i, jnp.broadcast_to(ids[None, :], d2.shape)], axis=1)
        neg, pos = jax.lax.top_k(-all_d, k)
        return (-neg, jnp.take_along_axis(all_i, pos, axis=1)), None

    init = (jnp.full((query.shape[0], k), jnp.inf, jnp.float32), jnp.full((query.shape[0], k), -1, jnp.int32))
    (_, best_i), _ = jax.lax.scan(body, init, (ref_chunks, ref_ids))
    return best_i


def neighbour_graph(points: np.ndarray, k: int, block: int = _BLOCK) -> np.ndarray:
    """Indices (n x k) of each row's k nearest other rows (exact, Euclidean), nearest first."""
    points = np.ascontiguousarray(points, np.float32)
    n = points.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"link smoothing needs 1 <= k < number of cells; got k={k} with {n} cells")
    rows = min(block, n)
    n_chunks = -(-n // rows)
    padded = np.zeros((n_chunks * rows, points.shape[1]), np.float32)
    padded[:n] = points
    ids = np.full(n_chunks * rows, -1, np.int32)
    ids[:n] = np.arange(n, dtype=np.int32)
    ref_chunks = jnp.asarray(padded.reshape(n_chunks, rows, -1))
    ref_ids = jnp.asarray(ids.reshape(n_chunks, rows))
    out = np.empty((n, k), np.int64)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        q = jnp.asarray(padded[start : start + rows])
        qid = jnp.asarray(np.where(np.arange(start, start + rows) < n, np.arange(start, start + rows), -2))
        out[start:stop] = np.asarray(_block_knn(q, qid.astype(jnp.int32), ref_chunks, ref_ids, k=k))[: stop - start]
    return out


def smooth_over_graph(values: np.ndarray, neighbours: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * values + weight * (mean of each row's neighbours' values)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"link smoothing weight must be in [0, 1], got {weight}")
    values = np.asarray(values, np.float32)
    if len(neighbours) != len(values):
        raise ValueError(f"{len(values)} rows of linked features but a neighbour graph of {len(neighbours)} cells")
    return ((1.0 - weight) * values + weight * values[neighbours].mean(axis=1)).astype(np.float32)


def smooth_links(
    sources: Sequence[Any],
    links: Sequence[tuple[np.ndarray, np.ndarray]],
    weight: float,
    k: int = 15,
    n_pcs: int = 30,
    seed: int = 0,
    report: Callable[[str], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every pair's (L_i, R_i) smoothed over dataset i's and dataset i+1's own neighbour graphs; each dataset's
    graph is computed once, however many pairs it is in. `weight` 0 returns the links unchanged."""
    if weight == 0.0:
        return [(np.asarray(a), np.asarray(b)) for a, b in links]
    report = report or log.info
    graphs: dict[int, np.ndarray] = {}

    def graph(i: int) -> np.ndarray:
        if i not in graphs:
            n, p = sources[i].shape
            report(f"link smoothing: {k}-NN graph of dataset {i} ({n} cells, {min(n_pcs, p)} PCs of {p} features)")
            graphs[i] = neighbour_graph(principal_components(sources[i], n_pcs, seed=seed + i), min(k, n - 1))
        return graphs[i]

    return [
        (smooth_over_graph(left, graph(i), weight), smooth_over_graph(right, graph(i + 1), weight))
        for i, (left, right) in enumerate(links)
    ]
