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

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._neighbors import center32, knn
from .._rows import column_mean_var, iter_dense_blocks
from ..core.losses import MATMUL_PRECISION, cosine_unit_rows

__all__ = [
    "principal_components",
    "neighbour_graph",
    "smooth_over_graph",
    "heldout_link_agreement",
    "smooth_links",
    "smoothed_then_raw",
]

log = logging.getLogger("scmodal_jax")

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


def neighbour_graph(points: np.ndarray, k: int, block: int = _BLOCK) -> np.ndarray:
    """Indices (n x k) of each row's k nearest other rows (exact, Euclidean), nearest first."""
    points = np.ascontiguousarray(points, np.float32)
    n = points.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"link smoothing needs 1 <= k < number of cells; got k={k} with {n} cells")
    # centring leaves the distances unchanged and keeps float32 sums of squares from cancelling
    (points,) = center32(points)
    return knn(points, points, k, block, query_ids=np.arange(n), self_mode="exclude")[1]


def smooth_over_graph(values: np.ndarray, neighbours: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * values + weight * (mean of each row's neighbours' values)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"link smoothing weight must be in [0, 1], got {weight}")
    values = np.asarray(values, np.float32)
    if len(neighbours) != len(values):
        raise ValueError(f"{len(values)} rows of linked features but a neighbour graph of {len(neighbours)} cells")
    return ((1.0 - weight) * values + weight * values[neighbours].mean(axis=1)).astype(np.float32)


def _first_max(x: jax.Array, axis: int) -> jax.Array:
    """argmax along `axis`, ties to the lower index; a max and a min pass, which XLA on CPU vectorises (its
    argmax, one two-operand reduction, runs several times slower here)."""
    top = jnp.max(x, axis=axis, keepdims=True)
    position = jax.lax.broadcasted_iota(jnp.int32, x.shape, axis)
    return jnp.min(jnp.where(x == top, position, x.shape[axis]), axis=axis)


#: Left rows per block of the held-out search: a (block x n_right) slice of the similarities stays in cache while
#: both argmaxes read it (the whole matrix, 61 MB at 3,920 cells, made the search memory-bound: 1.75x slower).
_PARTNER_BLOCK = 512


@functools.partial(jax.jit, static_argnames="block")
def _heldout_partners(left: jax.Array, right: jax.Array, block: int = _PARTNER_BLOCK) -> tuple[jax.Array, jax.Array]:
    """For each link j: every left row's most cosine-similar right row, and every right row's most similar left
    row, on all links but j. Returns two index arrays, (L, n_left) and (L, n_right); ties go to the lower index.

    Links are taken one at a time (`lax.map`); for each, the left rows are scanned in blocks of `block` rows,
    each block's similarities serving its rows' argmax and a running (max, first index) per right row, so at most
    one block's similarities are alive. A row with no signal on the other links has cosine 0 with every row."""
    n_left, n_links = left.shape
    n_right = right.shape[0]
    block = min(block, n_left)
    n_blocks = -(-n_left // block)
    starts = jnp.arange(n_blocks) * block

    def one(j: jax.Array) -> tuple[jax.Array, jax.Array]:
        seen = (jnp.arange(n_links) != j).astype(left.dtype)
        unit_left, unit_right = cosine_unit_rows(left * seen)[0], cosine_unit_rows(right * seen)[0]  # as the anchors'
        blocks = jnp.pad(unit_left, ((0, n_blocks * block - n_left), (0, 0))).reshape(n_blocks, block, n_links)

        def scan_block(carry, xs):
            best, best_row = carry
            rows, start = xs
            cos = jnp.matmul(rows, unit_right.T, precision=MATMUL_PRECISION)  # the anchor search's cosine
            cos_real = jnp.where((start + jnp.arange(block) < n_left)[:, None], cos, -jnp.inf)  # padding never wins
            top = jnp.max(cos_real, axis=0)
            better = top > best  # strictly: an equal value in a later block keeps the lower row
            best_row = jnp.where(better, _first_max(cos_real, 0) + start, best_row)
            return (jnp.maximum(top, best), best_row), _first_max(cos, 1)

        init = (jnp.full(n_right, -jnp.inf, unit_left.dtype), jnp.zeros(n_right, jnp.int32))
        (_, partner_of_right), partner_of_left = jax.lax.scan(scan_block, init, (blocks, starts))
        return partner_of_left.reshape(-1)[:n_left], partner_of_right

    return jax.lax.map(one, jnp.arange(n_links))


def heldout_link_agreement(
    left: np.ndarray,
    right: np.ndarray,
    raw_left: np.ndarray,
    raw_right: np.ndarray,
    max_cells: int = 4000,
    seed: int = 0,
) -> float:
    """How well matching on the links finds partners that agree on a link it did not see (label-free).

    For each link j, every cell of either side is matched to its most similar cell of the other side (cosine, as
    the anchor search) on the other links of `left` / `right`; the score is the correlation of the *raw* link j
    (`raw_left`, `raw_right`) across the matched pairs, averaged over links and both directions. At most
    `max_cells` cells a side (a seeded subsample; memory max_cells^2 floats). Needs at least two links (NaN
    otherwise)."""
    n_links = left.shape[1]
    if n_links < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    rows = [
        np.sort(rng.choice(n, max_cells, replace=False)) if n > max_cells else np.arange(n)
        for n in (left.shape[0], right.shape[0])
    ]
    left, raw_left = np.asarray(left, np.float32)[rows[0]], np.asarray(raw_left, np.float32)[rows[0]]
    right, raw_right = np.asarray(right, np.float32)[rows[1]], np.asarray(raw_right, np.float32)[rows[1]]
    partners_of_left, partners_of_right = (np.asarray(p) for p in _heldout_partners(left, right))
    scores = []
    for j in range(n_links):
        for raw_query, raw_ref, partner in ((raw_left, raw_right, partners_of_left[j]),
                                            (raw_right, raw_left, partners_of_right[j])):  # fmt: skip
            x, y = raw_query[:, j].astype(np.float64), raw_ref[partner, j].astype(np.float64)
            spread = 1e-6 * max(float(raw_ref[:, j].std()), 1e-12)
            if x.std() <= 1e-6 * max(float(np.abs(x).max()), 1e-12):
                continue  # link j is constant on this side: it tells nothing about any matching
            # partners that all share one value of link j (e.g. one hub matched by everyone) agree with nothing
            scores.append(float(np.corrcoef(x, y)[0, 1]) if y.std() > spread else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def smooth_links(
    sources: Sequence[Any],
    links: Sequence[tuple[np.ndarray, np.ndarray]],
    weight: float,
    k: int = 15,
    n_pcs: int = 30,
    seed: int = 0,
    report: Callable[[str], None] | None = None,
    auto: bool = False,
    details: dict[str, Any] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every pair's (L_i, R_i) smoothed over dataset i's and dataset i+1's own neighbour graphs; each dataset's
    graph is computed once, however many pairs it is in. `weight` 0 returns the links unchanged.

    `auto`: each pair's weight is chosen among 0, 0.1, ..., `weight` by `heldout_link_agreement` (the smallest
    of the best; 0 for a pair with a single link), so the smoothing is kept only where it makes the links find
    partners that agree on the links they were not matched on. `details` (a dict) receives the chosen
    `weights` and the `scores` of each pair's candidates."""
    if weight == 0.0:
        if details is not None:
            details.update(weights=[0.0] * len(links), scores=[])
        return [(np.asarray(a), np.asarray(b)) for a, b in links]
    report = report or log.info
    graphs: dict[int, np.ndarray] = {}

    def graph(i: int) -> np.ndarray:
        if i not in graphs:
            n, p = sources[i].shape
            report(f"link smoothing: {k}-NN graph of dataset {i} ({n} cells, {min(n_pcs, p)} PCs of {p} features)")
            graphs[i] = neighbour_graph(principal_components(sources[i], n_pcs, seed=seed + i), min(k, n - 1))
        return graphs[i]

    def smoothed(i: int, w: float) -> tuple[np.ndarray, np.ndarray]:
        left, right = links[i]
        return smooth_over_graph(left, graph(i), w), smooth_over_graph(right, graph(i + 1), w)

    weights, all_scores = [], []
    for i, (left, right) in enumerate(links):
        if not auto:
            weights.append(weight)
            continue
        candidates = [round(float(w), 10) for w in np.arange(0.0, weight + 1e-9, 0.1)]
        if float(weight) not in candidates:
            candidates.append(float(weight))
        if left.shape[1] < 2:
            weights.append(0.0)
            all_scores.append({})
            report(f"link smoothing: pair {i} has a single link, nothing to hold out; weight 0")
            continue
        scores = {w: heldout_link_agreement(*smoothed(i, w), left, right, seed=seed) for w in candidates}
        best = max(scores.values())
        chosen = min(w for w, v in scores.items() if v == best)
        weights.append(chosen)
        all_scores.append(scores)
        shown = ", ".join(f"{w:g}: {v:.3f}" for w, v in scores.items())
        report(f"link smoothing: pair {i} weight {chosen:g} (held-out link agreement {shown})")
    if details is not None:
        details.update(weights=weights, scores=all_scores)
    return [
        smoothed(i, w) if w > 0 else (np.asarray(links[i][0]), np.asarray(links[i][1])) for i, w in enumerate(weights)
    ]


def smoothed_then_raw(
    smoothed: Sequence[tuple[np.ndarray, np.ndarray]], raw: Sequence[tuple[np.ndarray, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each link block with its smoothed columns first and its raw ones after: what the step reads when the
    smoothing weight changes during training (`core.step.anchor_link_rows` takes them apart again)."""
    return [
        (np.hstack([sl, rl]).astype(np.float32), np.hstack([sr, rr]).astype(np.float32))
        for (sl, sr), (rl, rr) in zip(smoothed, raw, strict=True)
    ]
