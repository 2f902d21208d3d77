"""Label transfer in the shared latent: a k-NN majority vote from labelled cells to the others.

:func:`transfer_labels` is the one function for it, whatever holds the latents (one integrated AnnData,
per-modality AnnData objects or a MuData after ``SCMODAL.add_results``, or arrays). The score of a
transfer against known labels is a metric: ``scmodal_jax.metrics.label_transfer_accuracy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.io import LATENT_KEY
from ..metrics import knn_label_transfer

__all__ = ["transfer_labels"]


def _missing(labels: np.ndarray) -> np.ndarray:
    return pd.isna(pd.Series(labels, dtype=object)).to_numpy()


def _vote(source_latent: Any, source_labels: Any, target_latent: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, confidence) of target cells from their ``k`` nearest labelled source cells."""
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


def _is_mudata(x: Any) -> bool:
    return isinstance(getattr(x, "mod", None), Mapping)


def _latent_and_labels(adata: Any, key: str | None, latent_key: str, what: str) -> tuple[np.ndarray, Any]:
    if latent_key not in adata.obsm:
        raise ValueError(f"{what} has no obsm[{latent_key!r}] (the shared latent); keys: {list(adata.obsm.keys())}")
    if key is not None and key not in adata.obs.columns:
        raise ValueError(f"obs[{key!r}] not found in {what}; obs columns: {list(adata.obs.columns)}")
    return np.asarray(adata.obsm[latent_key]), None if key is None else adata.obs[key].to_numpy()


def _entry(pred: np.ndarray, conf: np.ndarray, truth: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"n_cells": len(pred), "mean_confidence": float(np.mean(conf)) if len(conf) else np.nan}
    if truth is not None:
        known = pd.Series(truth, dtype=object).notna().to_numpy()
        if known.any():
            entry["accuracy"] = float(np.mean(np.asarray(truth)[known].astype(str) == pred[known].astype(str)))
    return entry


def _write_into(target: Any, key: str, pred: np.ndarray, conf: np.ndarray) -> None:
    target.obs[f"predicted_{key}"] = pd.Categorical(pred, categories=list(dict.fromkeys(np.asarray(pred).tolist())))
    target.obs[f"predicted_{key}_confidence"] = conf


def _to_objects(reference: Any, key: str, queries: dict[str, Any], k: int, latent_key: str, what: str):
    """Vote from `reference` into each query object (AnnData with the latent); the summary per query."""
    ref_latent, ref_labels = _latent_and_labels(reference, key, latent_key, what)
    summary: dict[str, Any] = {"key": key, "k": int(k)}
    for name, target in queries.items():
        latent, _ = _latent_and_labels(target, None, latent_key, name)
        pred, conf = _vote(ref_latent, ref_labels, latent, k)
        _write_into(target, key, pred, conf)
        summary[name] = _entry(pred, conf, target.obs[key].to_numpy() if key in target.obs.columns else None)
    return summary


def transfer_labels(
    adata: Any,
    key: Any,
    source: str | Sequence[str] | None = None,
    targets: str | Sequence[str] | None = None,
    *,
    query: Any = None,
    k: int = 15,
    modality_key: str = "modality",
    latent_key: str = LATENT_KEY,
    copy: bool = False,
) -> tuple[Any, Any]:
    """Label cells by a majority vote of their ``k`` nearest labelled cells in the shared latent (Euclidean).

    One function for every place the latents live:

    * **one integrated AnnData** (a run's ``integrated.h5ad``, ``to_anndata``'s combined object):
      ``transfer_labels(adata, key, source, targets)`` votes from the cells of modality ``source`` (a name of
      ``obs[modality_key]``, or several) to those of ``targets`` (default: the other modalities);
    * **per-modality objects** (after ``model.add_results``): ``transfer_labels(rna, key, query=protein)``
      (``query``: an AnnData or a list of them), or a MuData: ``transfer_labels(mdata, key, "rna")`` votes from
      ``mdata.mod["rna"]`` to the other modalities (or ``targets``);
    * **arrays**: ``transfer_labels(reference_latent, labels, query=query_latent)`` returns
      ``(predicted, confidence)``.

    Objects get ``obs['predicted_<key>']`` (categorical) and ``obs['predicted_<key>_confidence']`` (fraction of
    the ``k`` votes for the winner); in the integrated form only target cells (others get NaN). Reference
    cells with a missing label (None/NaN) are ignored, ``k`` is capped at the number of labelled cells, and
    ties go to the label whose nearest voter is closest (``scmodal_jax.metrics.knn_label_transfer``).

    Returns:
        ``(predicted, confidence)`` for arrays; otherwise ``(written, summary)``: the object(s) written into
        (copies when ``copy``) and, per target (modality name, ``"query"`` or ``"query_<i>"``), the number of
        cells, the mean confidence and, where the targets carry their own ``obs[key]``, the accuracy.

    Raises:
        ValueError: unknown modality, missing obs/obsm keys, no labelled source cell, no query or source.
    """
    if not hasattr(adata, "obs"):  # arrays
        if query is None:
            raise ValueError("with a latent array as reference, pass query= (the latent of the cells to label)")
        return _vote(adata, key, query, k)
    if _is_mudata(adata):
        if copy:
            adata = adata.copy()
        mods = dict(adata.mod)
        if not isinstance(source, str) or source not in mods:
            raise ValueError(f"source= must name the labelled modality of the MuData, one of {list(mods)}")
        names = [m for m in mods if m != source] if targets is None else [targets] if isinstance(targets, str) \
            else list(targets)  # fmt: skip
        unknown = [m for m in names if m not in mods]
        if unknown or not names:
            raise ValueError(f"targets {unknown or names} are not other modalities of the MuData {list(mods)}")
        summary = _to_objects(mods[source], key, {m: mods[m] for m in names}, k, latent_key, source)
        return adata, {**summary, "source": [source]}
    if query is not None:
        single = not isinstance(query, (list, tuple))
        queries = [query] if single else list(query)
        if copy:
            queries = [q.copy() for q in queries]
        named = {"query": queries[0]} if single else {f"query_{i}": q for i, q in enumerate(queries)}
        summary = _to_objects(adata, key, named, k, latent_key, "the reference")
        return (queries[0] if single else queries), summary
    if source is None:
        raise ValueError("pass source= (the labelled modality of an integrated AnnData) or query= (cells to label)")
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
    pred, conf = _vote(latent[src], labels[src], latent[tgt], k)

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
