"""Label-free quality of an integration: do the latent's cross-modality neighbours respect the linked features?

Labels never enter these scores, so they can judge a run (or choose among seeds) where no annotation exists.

* :func:`link_consistency`: each cell's nearest latent neighbour in the other dataset is compared on the linked
  features (cosine). The mean is placed between two references computed exactly: a random partner (0) and the
  best partner on the linked features themselves (1). A run that matched clusters to the wrong partners
  lands near 0; the linked features alone score about 1 (their Euclidean nearest partner is nearly the most
  cosine-similar one), so the score is a floor to stay above, not a target to maximise.
* :func:`anchor_contrast`: mutual nearest neighbours on the linked features (the anchors) against all pairs:
  ``1 - mean latent distance of anchor pairs / mean latent distance of all pairs``. Anchors pulled together
  score near 1, anchors torn apart near 0 or below.
* :func:`integration_quality`: both, averaged over consecutive dataset pairs, and a ``collapsed`` flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._neighbors import DEFAULT_BLOCK_SIZE, center32, knn, unit_rows
from ._checks import ArrayLike, check_block_size, check_int, check_latent, check_same_dim

__all__ = ["COLLAPSE_THRESHOLD", "link_consistency", "anchor_contrast", "integration_quality"]

#: `link_consistency` below this flags a run as collapsed (calibrated on pbmc_cytof: experiments/quality/).
COLLAPSE_THRESHOLD = 0.35


def _nearest(query: np.ndarray, ref: np.ndarray, block_size: int) -> np.ndarray:
    q, r = center32(query, ref)
    _, idx = knn(q, r, 1, block_size=block_size)
    return np.asarray(idx)[:, 0]


def _one_way(z_from, z_to, links_from, links_to, block_size: int) -> float:
    unit_from, unit_to = unit_rows(links_from), unit_rows(links_to)
    partner = _nearest(z_from, z_to, block_size)
    matched = float(np.mean(np.sum(unit_from * unit_to[partner], axis=1)))
    # The mean cosine over every (from, to) pair is the dot product of the mean unit rows: exact, no sampling.
    random = float(unit_from.mean(axis=0) @ unit_to.mean(axis=0))
    best = _nearest(unit_from, unit_to, block_size)  # on unit rows the nearest is the most cosine-similar
    ceiling = float(np.mean(np.sum(unit_from * unit_to[best], axis=1)))
    if ceiling - random <= 1e-12:
        return float("nan")
    return (matched - random) / (ceiling - random)


def link_consistency(
    latent_a: ArrayLike,
    latent_b: ArrayLike,
    links_a: ArrayLike,
    links_b: ArrayLike,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Linked-feature agreement of latent cross-neighbours, both directions averaged (random 0, links-best 1).

    Args:
        latent_a, latent_b: (n_a, d), (n_b, d) latents of two datasets.
        links_a, links_b: (n_a, s), (n_b, s) their linked features (rows follow the cells).
    """
    za, zb = check_latent(latent_a, "latent_a"), check_latent(latent_b, "latent_b")
    check_same_dim([za, zb], ["latent_a", "latent_b"])
    la, lb = check_latent(links_a, "links_a"), check_latent(links_b, "links_b")
    check_same_dim([la, lb], ["links_a", "links_b"])
    if la.shape[0] != za.shape[0] or lb.shape[0] != zb.shape[0]:
        raise ValueError(
            f"links have {la.shape[0]} / {lb.shape[0]} rows for {za.shape[0]} / {zb.shape[0]} cells; rows must follow "
            "the cells"
        )
    block_size = check_block_size(block_size)
    ab = _one_way(za, zb, la, lb, block_size)
    ba = _one_way(zb, za, lb, la, block_size)
    return float(np.mean([ab, ba]))


def _subsample(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= m else np.sort(rng.choice(n, m, replace=False))


def anchor_contrast(
    latent_a: ArrayLike,
    latent_b: ArrayLike,
    links_a: ArrayLike,
    links_b: ArrayLike,
    *,
    k: int = 30,
    max_cells: int = 3000,
    seed: int = 0,
) -> float:
    """``1 - mean d(anchor pairs) / mean d(all pairs)`` in the latent (squared Euclidean), anchors = mutual
    `k`-nearest neighbours on the cosine of the linked features, among at most `max_cells` cells per dataset
    (drawn with `seed`). NaN when no anchor pair exists.
    """
    za, zb = check_latent(latent_a, "latent_a"), check_latent(latent_b, "latent_b")
    la, lb = check_latent(links_a, "links_a"), check_latent(links_b, "links_b")
    k = check_int(k, "k")
    rng = np.random.default_rng(seed)
    ia, ib = _subsample(za.shape[0], max_cells, rng), _subsample(zb.shape[0], max_cells, rng)
    za, zb, la, lb = za[ia].astype(np.float64), zb[ib].astype(np.float64), la[ia], lb[ib]
    sim = unit_rows(la.astype(np.float64)) @ unit_rows(lb.astype(np.float64)).T
    valid = (np.linalg.norm(la, axis=1) > 0)[:, None] & (np.linalg.norm(lb, axis=1) > 0)[None, :]
    k_row, k_col = min(k, sim.shape[1]), min(k, sim.shape[0])
    # Ties go to the lower index, as in the training's MNN search.
    row_top = np.argsort(-sim, axis=1, kind="stable")[:, :k_row]
    col_top = np.argsort(-sim, axis=0, kind="stable")[:k_col, :]
    in_row = np.zeros(sim.shape, bool)
    in_row[np.arange(sim.shape[0])[:, None], row_top] = True
    in_col = np.zeros(sim.shape, bool)
    in_col[col_top, np.arange(sim.shape[1])[None, :]] = True
    pairs = in_row & in_col & valid
    if not pairs.any():
        return float("nan")
    d = (za * za).sum(1)[:, None] + (zb * zb).sum(1)[None, :] - 2.0 * za @ zb.T
    d = np.maximum(d, 0.0)
    return float(1.0 - d[pairs].mean() / d.mean())


def integration_quality(
    latents: Sequence[ArrayLike],
    link_matrices: Sequence[tuple[ArrayLike, ArrayLike]],
    *,
    k: int = 30,
    threshold: float = COLLAPSE_THRESHOLD,
    max_cells: int = 10_000,
    seed: int = 0,
) -> dict[str, float | bool]:
    """Both scores averaged over the consecutive pairs (i, i+1) of a chain, and ``collapsed``:
    `link_consistency` below `threshold` on any pair (a matching that contradicts the links).

    Datasets larger than `max_cells` are scored on that many cells drawn with `seed` (the cost is quadratic)."""
    if len(link_matrices) != len(latents) - 1:
        raise ValueError(f"{len(latents)} latents need {len(latents) - 1} link pairs, got {len(link_matrices)}")
    rng = np.random.default_rng(seed)
    consistency, contrast = [], []
    for p, (left, right) in enumerate(link_matrices):
        za, zb = np.asarray(latents[p]), np.asarray(latents[p + 1])
        ia, ib = _subsample(za.shape[0], max_cells, rng), _subsample(zb.shape[0], max_cells, rng)
        left, right = np.asarray(left)[ia], np.asarray(right)[ib]
        consistency.append(link_consistency(za[ia], zb[ib], left, right))
        contrast.append(anchor_contrast(za[ia], zb[ib], left, right, k=k, seed=seed))
    return {
        "link_consistency": float(np.mean(consistency)),
        "link_consistency_min": float(np.nanmin(consistency)) if not np.all(np.isnan(consistency)) else float("nan"),
        "anchor_contrast": float(np.nanmean(contrast)) if not np.all(np.isnan(contrast)) else float("nan"),
        "collapsed": bool(np.nanmin(consistency) < threshold) if not np.all(np.isnan(consistency)) else False,
    }
