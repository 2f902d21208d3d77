"""Label transfer between latents: k-NN majority vote and 1-NN transfer accuracy."""

from __future__ import annotations

import numpy as np

from .._neighbors import DEFAULT_BLOCK_SIZE, center32, knn
from ._checks import (
    ArrayLike,
    check_block_size,
    check_int,
    check_labels,
    check_latent,
    check_same_dim,
    encode_labels,
)

__all__ = ["knn_label_transfer", "label_transfer_accuracy"]


def knn_label_transfer(
    source_latent: ArrayLike,
    source_labels: ArrayLike,
    target_latent: ArrayLike,
    k: int = 5,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """The k-nearest-neighbour majority vote that :func:`label_transfer_accuracy` scores (numpy in and out).

    To label cells, use ``scmodal_jax.transfer_labels`` (AnnData, MuData or arrays; missing labels ignored).

    Each target cell looks up its ``k`` nearest source cells (Euclidean distance in the shared
    latent space) and takes the most frequent label among them.

    Tie-breaking: if several labels share the highest vote count, the winner is the one whose
    closest voter is nearest to the target cell (i.e. the tied label appearing first in the
    distance-sorted neighbour list).  Equal distances are ordered by source index.

    Args:
        source_latent: (n_source, d) latent coordinates of the labelled cells.
        source_labels: (n_source,) labels (any comparable dtype, e.g. str or int).
        target_latent: (n_target, d) latent coordinates of the cells to label.
        k: number of neighbours voting, ``1 <= k <= n_source``.
        block_size: rows per distance block (memory/speed knob only).

    Returns:
        ``(predicted_labels, confidence)``: an (n_target,) array with the dtype of
        ``source_labels`` and an (n_target,) float64 array holding the fraction of the ``k``
        votes that went to the winning label.

    Raises:
        ValueError: on malformed shapes, non-finite values, label/cell count mismatch or bad ``k``.
    """
    src = check_latent(source_latent, "source_latent")
    tgt = check_latent(target_latent, "target_latent")
    check_same_dim([src, tgt], ["source_latent", "target_latent"])
    src_labels = check_labels(source_labels, src.shape[0], "source_labels")
    k = check_int(k, "k")
    if k > src.shape[0]:
        raise ValueError(f"k={k} exceeds the number of source cells ({src.shape[0]})")
    block_size = check_block_size(block_size)

    classes, (codes,) = encode_labels(src_labels)
    src32, tgt32 = center32(src, tgt)
    _, idx = knn(tgt32, src32, k, block_size)
    nbr = codes[idx]  # (n_target, k)
    pred = np.empty(tgt.shape[0], dtype=np.int64)
    conf = np.empty(tgt.shape[0], dtype=np.float64)
    step = max(1, 2**22 // (k * k))
    for start in range(0, nbr.shape[0], step):
        lab = nbr[start : start + step]
        votes = np.sum(lab[:, :, None] == lab[:, None, :], axis=2)  # votes for the label at position j
        best = np.argmax(votes, axis=1)  # first (= nearest) position among the maxima
        rows = np.arange(lab.shape[0])
        pred[start : start + step] = lab[rows, best]
        conf[start : start + step] = votes[rows, best] / k
    return np.asarray(classes[pred]), conf


def label_transfer_accuracy(
    source_latent: ArrayLike,
    source_labels: ArrayLike,
    target_latent: ArrayLike,
    target_labels: ArrayLike,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Accuracy of 1-nearest-neighbour label transfer from source to target cells.

    Each target cell receives the label of its nearest (Euclidean) source cell; the result is
    the fraction of target cells whose transferred label equals their own label.  Target labels
    absent from the source count as errors.  Equal distances resolve to the lower source index.

    Args:
        source_latent: (n_source, d) latent coordinates of the reference cells.
        source_labels: (n_source,) reference labels.
        target_latent: (n_target, d) latent coordinates of the query cells.
        target_labels: (n_target,) ground-truth labels of the query cells.
        block_size: rows per distance block.

    Returns:
        Accuracy in [0, 1] (higher is better).
    """
    tgt = check_latent(target_latent, "target_latent")
    tgt_labels = check_labels(target_labels, tgt.shape[0], "target_labels")
    pred, _ = knn_label_transfer(source_latent, source_labels, tgt, k=1, block_size=block_size)
    _, (pred_codes, tgt_codes) = encode_labels(pred, tgt_labels)
    return float(np.mean(pred_codes == tgt_codes))
