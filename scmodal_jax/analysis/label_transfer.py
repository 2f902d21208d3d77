"""Label transfer in the shared latent: k-NN majority vote from a labelled modality to the others."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.io import LATENT_KEY
from ..metrics import knn_label_transfer

__all__ = ["knn_transfer", "transfer_labels"]


def _missing(labels: np.ndarray) -> np.ndarray:
    return pd.isna(pd.Series(labels, dtype=object)).to_numpy()


def knn_transfer(
    source_latent: Any, source_labels: Any, target_latent: Any, k: int = 15
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of target cells by a majority vote of their ``k`` nearest labelled source cells (Euclidean, latent).

    Source cells with a missing label (None/NaN) are ignored. ``k`` is capped at the number of labelled cells.
    Ties go to the label whose nearest voter is closest (see ``scmodal_jax.metrics.knn_label_transfer``).

    Returns:
        ``(predicted, confidence)``: the winning label and the fraction of the ``k`` votes it got.
    """
    labels = np.asarray(source_labels)
    src = np.asarray(source_latent)
    if labels.ndim != 1 or src.ndim != 2 or labels.shape[0] != src.shape[0]:
        raise ValueError(f"source_labels {labels.shape} must be one label per source cell of {src.shape}")
    keep = ~_missing(labels)
    if not keep.any():
        raise ValueError("no source cell has a label")
    labels = labels[keep]
    if labels.dtype == object:
        labels = labels.astype(str)
    tgt = np.asarray(target_latent)
    if tgt.ndim != 2 or tgt.shape[0] == 0:
        return np.asarray([], dtype=labels.dtype), np.zeros(0)
    k = int(min(k, int(keep.sum())))
    return knn_label_transfer(src[keep], labels, tgt, k=k)


def transfer_labels(
    adata: Any,
    key: str,
    source: str | Sequence[str],
    targets: str | Sequence[str] | None = None,
    *,
    k: int = 15,
    modality_key: str = "modality",
    latent_key: str = LATENT_KEY,
    copy: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Transfer ``obs[key]`` from the cells of modality ``source`` to the cells of ``targets`` (default: all
    other modalities) of an integrated AnnData (e.g. a run's ``integrated.h5ad``).

    Writes ``obs['predicted_<key>']`` (categorical) and ``obs['predicted_<key>_confidence']`` (fraction of the
    ``k`` votes for the winner) for the target cells; other cells get NaN.

    Returns:
        ``(adata, summary)``: the (copied when ``copy``) AnnData and, per target modality, the number of cells,
        the mean confidence and, where the target cells carry their own ``obs[key]``, the accuracy.

    Raises:
        ValueError: unknown modality, missing obs/obsm keys, no labelled source cell.
    """
    if copy:
        adata = adata.copy()
    if latent_key not in adata.obsm:
        raise ValueError(f"adata has no obsm[{latent_key!r}] (the shared latent); keys: {list(adata.obsm.keys())}")
    for col in (key, modality_key):
        if col not in adata.obs.columns:
            raise ValueError(f"obs[{col!r}] not found; obs columns: {list(adata.obs.columns)}")
    mods = adata.obs[modality_key].astype(str).to_numpy()
    present = list(dict.fromkeys(mods))
    sources = [source] if isinstance(source, str) else list(source)
    if targets is None:
        targets = [m for m in present if m not in sources]
    targets = [targets] if isinstance(targets, str) else list(targets)
    unknown = [m for m in sources + targets if m not in present]
    if unknown:
        raise ValueError(f"modalities {unknown} not found in obs[{modality_key!r}]; available: {present}")
    if not targets:
        raise ValueError("no target modality to transfer labels to")
    latent = np.asarray(adata.obsm[latent_key])
    labels = adata.obs[key].to_numpy()
    src = np.isin(mods, sources)
    tgt = np.isin(mods, targets)
    pred, conf = knn_transfer(latent[src], labels[src], latent[tgt], k=k)

    pred_col = np.full(adata.n_obs, None, dtype=object)
    pred_col[tgt] = pred
    conf_col = np.full(adata.n_obs, np.nan)
    conf_col[tgt] = conf
    adata.obs[f"predicted_{key}"] = pd.Categorical(pred_col, categories=list(dict.fromkeys(np.asarray(pred).tolist())))
    adata.obs[f"predicted_{key}_confidence"] = conf_col

    summary: dict[str, Any] = {"key": key, "source": sources, "k": int(k)}
    truth = pd.Series(labels, dtype=object)
    for m in targets:
        sel = mods == m
        entry: dict[str, Any] = {"n_cells": int(sel.sum()), "mean_confidence": float(np.mean(conf_col[sel]))}
        known = sel & truth.notna().to_numpy()
        if known.any():
            entry["accuracy"] = float(np.mean(truth[known].astype(str).to_numpy() == pred_col[known].astype(str)))
        summary[m] = entry
    return adata, summary
