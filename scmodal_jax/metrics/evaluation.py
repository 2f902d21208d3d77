"""Convenience: every metric that applies to a set of latents, in one dict."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._neighbors import DEFAULT_BLOCK_SIZE
from ._checks import ArrayLike, check_latent_list
from .label_transfer import label_transfer_accuracy
from .mixing import kbet, mixing_metric
from .pairing import foscttm, pair_distance
from .silhouette import asw

__all__ = ["evaluate"]


def evaluate(
    latents: Sequence[ArrayLike],
    labels: Sequence[ArrayLike] | None = None,
    paired: bool = False,
    *,
    seed: int = 0,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, float]:
    """Compute every metric that applies to the given latents.

    Always: ``mixing_metric`` (k reduced to the pooled cell count when needed) and ``kbet``
    (k reduced likewise) for two or more datasets.  With ``labels``: ``asw`` (raw) and, for
    two or more datasets, ``label_transfer_accuracy`` from ``latents[0]`` (the reference) to
    every other dataset (key ``label_transfer_accuracy`` for two datasets, suffixed ``_1``,
    ``_2``, ... otherwise).  With ``paired=True`` (exactly two equally sized datasets):
    ``foscttm`` and ``pair_distance``.

    Args:
        latents: list of (n_i, d) latent arrays.
        labels: optional list of (n_i,) cell-type label arrays.
        paired: whether row i of ``latents[0]`` and ``latents[1]`` are the same cell.
        seed: seed for the sampling-based metrics.
        block_size: rows per distance block.

    Returns:
        Dict mapping metric name to value.
    """
    xs = check_latent_list(latents)
    if paired and (len(xs) != 2 or xs[0].shape[0] != xs[1].shape[0]):
        raise ValueError(
            f"paired=True needs exactly 2 datasets with the same number of cells, got sizes {[x.shape[0] for x in xs]}"
        )
    if labels is not None and (
        not isinstance(labels, Sequence) or isinstance(labels, (str, np.ndarray)) or len(labels) != len(xs)
    ):
        raise ValueError("labels must be a list with one label array per latent")
    out: dict[str, float] = {}
    n_total = sum(x.shape[0] for x in xs)
    if len(xs) >= 2:
        n_mix = min(n_total, 10000)
        k_mix = min(300, n_mix)
        out["mixing_metric"] = mixing_metric(xs, k=k_mix, k_dataset=min(5, k_mix), seed=seed, block_size=block_size)
        out["kbet"] = kbet(xs, k=min(25, n_total), seed=seed, block_size=block_size)
    if labels is not None:
        out["asw"] = asw(xs, labels, seed=seed, block_size=block_size)
        for i in range(1, len(xs)):
            key = "label_transfer_accuracy" if len(xs) == 2 else f"label_transfer_accuracy_{i}"
            out[key] = label_transfer_accuracy(xs[0], labels[0], xs[i], labels[i], block_size=block_size)
    if paired:
        out["foscttm"] = foscttm(xs[0], xs[1], block_size=block_size)
        out["pair_distance"] = pair_distance(xs[0], xs[1], block_size=block_size)
    return out
