"""Average silhouette width (ASW) of cell-type labels, computed blockwise."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._neighbors import DEFAULT_BLOCK_SIZE, block_rows, center32, chunk_reference, map_blocks, pad_rows, sq_dists
from ._checks import ArrayLike, check_block_size, check_int, check_labels, check_latent_list, encode_labels

__all__ = ["asw"]


@jax.jit
def _label_dist_sum_kernel(
    q: jax.Array, qid: jax.Array, r_chunks: jax.Array, rid_chunks: jax.Array, onehot_chunks: jax.Array
) -> jax.Array:
    """For each query row i and label l: sum of d(q_i, r_j) over reference rows j with label l
    (the query's own row contributes exactly 0)."""
    n_labels = onehot_chunks.shape[-1]

    def body(total, xs):
        r, rid, onehot = xs
        d = jnp.sqrt(sq_dists(q, r))
        d = jnp.where((rid[None, :] == qid[:, None]) | (rid[None, :] < 0), 0.0, d)
        return total + jnp.dot(d, onehot, precision=jax.lax.Precision.HIGHEST), None

    init = jnp.zeros((q.shape[0], n_labels), jnp.float32)
    total, _ = jax.lax.scan(body, init, (r_chunks, rid_chunks, onehot_chunks))
    return total


def _silhouette_samples(x32: np.ndarray, codes: np.ndarray, n_labels: int, block_size: int) -> np.ndarray:
    """Per-cell silhouette (sklearn convention: 0 for cells in singleton clusters)."""
    n = x32.shape[0]
    bq = block_rows(n, block_size)
    r_chunks, rid_chunks = chunk_reference(x32, bq)
    onehot = np.zeros((r_chunks.shape[0] * bq, n_labels), dtype=np.float32)
    onehot[np.arange(n), codes] = 1.0
    onehot_chunks = jnp.asarray(onehot.reshape(r_chunks.shape[0], bq, n_labels))
    ids = np.arange(n, dtype=np.int32)

    def block(start: int, stop: int) -> jax.Array:
        qb = jnp.asarray(pad_rows(x32[start:stop], bq))
        qid = jnp.asarray(pad_rows(ids[start:stop], bq, fill=-2))
        return _label_dist_sum_kernel(qb, qid, r_chunks, rid_chunks, onehot_chunks)

    (sums,) = map_blocks(block, n, bq)
    sums = sums.astype(np.float64)
    counts = np.bincount(codes, minlength=n_labels).astype(np.float64)
    rows = np.arange(n)
    own = counts[codes]
    a = sums[rows, codes] / np.maximum(own - 1.0, 1.0)
    other = sums / np.where(counts > 0, counts, 1.0)[None, :]
    other[rows, codes] = np.inf
    other[:, counts == 0] = np.inf
    b = other.min(axis=1)
    denom = np.maximum(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    return np.where(own > 1, s, 0.0)


def asw(
    latents: Sequence[ArrayLike] | ArrayLike,
    labels: Sequence[ArrayLike] | ArrayLike,
    *,
    rescale: bool = False,
    max_cells: int | None = None,
    seed: int = 0,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Average silhouette width (ASW) of cell-type labels, averaged over datasets.

    For each dataset separately, the silhouette of cell ``i`` is ``(b - a) / max(a, b)`` with
    ``a`` the mean Euclidean distance to the other cells of its own label and ``b`` the smallest
    mean distance to the cells of any other label (cells alone in their label get 0, as in
    scikit-learn).  The per-dataset score is the mean over its cells, identical to
    ``sklearn.metrics.silhouette_score``; the result is the unweighted mean over datasets.

    Args:
        latents: list of (n_i, d) latent arrays, one per dataset (a single 2-D array is accepted
            as one dataset).
        labels: list of (n_i,) cell-type label arrays matching ``latents``.
        rescale: if True return ``(s + 1) / 2`` in [0, 1] (scIB convention); default raw ``s``
            in [-1, 1].
        max_cells: if given, each dataset larger than this is uniformly subsampled (without
            replacement, seeded by ``seed``) to ``max_cells`` cells first.  Default: use all
            cells (exact; cost is O(n^2 d) per dataset, memory stays O(block_size^2)).
        seed: seed for the subsampling.
        block_size: rows per distance block.

    Returns:
        The (optionally rescaled) ASW; higher means better separated cell types.

    Raises:
        ValueError: on malformed input or if a dataset has fewer than 2 distinct labels.
    """
    if isinstance(latents, np.ndarray):
        latents = [latents]
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and len(latents) == 1:
        labels = [labels]
    xs = check_latent_list(latents)
    if isinstance(labels, (np.ndarray, str)) or not isinstance(labels, Sequence) or len(labels) != len(xs):
        raise ValueError("labels must be a list with one label array per latent")
    block_size = check_block_size(block_size)
    if max_cells is not None:
        max_cells = check_int(max_cells, "max_cells", minimum=2)
    rng = np.random.default_rng(seed)
    scores = []
    for i, (x, lab) in enumerate(zip(xs, labels, strict=True)):
        lab = check_labels(lab, x.shape[0], f"labels[{i}]")
        if max_cells is not None and x.shape[0] > max_cells:
            keep = np.sort(rng.choice(x.shape[0], size=max_cells, replace=False))
            x, lab = x[keep], lab[keep]
        classes, (codes,) = encode_labels(lab)
        if len(classes) < 2:
            raise ValueError(f"labels[{i}] needs at least 2 distinct labels for a silhouette")
        if len(classes) > x.shape[0] - 1:
            raise ValueError(f"labels[{i}]: silhouette needs fewer distinct labels than cells")
        (x32,) = center32(x)
        scores.append(_silhouette_samples(x32, codes, len(classes), block_size).mean())
    score = float(np.mean(scores))
    return (score + 1.0) / 2.0 if rescale else score
