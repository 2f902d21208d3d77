"""Obs and feature naming helpers shared by the readers and the loaders (internal API of the data layer).

Suffixes that keep the obs_names of paired modalities distinct, unique feature names, categorical cell-type
labels and a clean string obs index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import pandas as pd

__all__ = [
    "paired_suffixes",
    "apply_suffix",
    "apply_paired_suffixes",
    "unique_names",
    "categorical_labels",
    "clean_obs_index",
]


def paired_suffixes(paired_obs_suffix: bool | Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...] | None:
    """The obs_name suffixes of paired modalities: None when ``paired_obs_suffix`` is False or None, ``default``
    when True, else the given strings (as many as ``default``, all distinct)."""
    if paired_obs_suffix is False or paired_obs_suffix is None:
        return None
    if paired_obs_suffix is True:
        return tuple(default)
    suffixes = tuple(paired_obs_suffix)
    if len(suffixes) != len(default) or len(set(suffixes)) != len(suffixes):
        raise ValueError(f"paired_obs_suffix needs {len(default)} distinct strings, got {paired_obs_suffix!r}")
    return suffixes


def apply_suffix(adata: ad.AnnData, suffix: str | None) -> ad.AnnData:
    """Append ``suffix`` to obs_names, keeping the original name in ``obs['barcode']``."""
    if suffix:
        adata.obs["barcode"] = adata.obs_names.to_numpy()
        adata.obs_names = [f"{name}{suffix}" for name in adata.obs_names]
    return adata


def apply_paired_suffixes(
    adatas: Sequence[ad.AnnData], paired_obs_suffix: bool | Sequence[str] | None, default: Sequence[str]
) -> tuple[ad.AnnData, ...]:
    """:func:`apply_suffix` to each of the paired ``adatas`` with the suffixes of :func:`paired_suffixes`."""
    suffixes = paired_suffixes(paired_obs_suffix, default) or (None,) * len(default)
    return tuple(apply_suffix(adata, suffix) for adata, suffix in zip(adatas, suffixes, strict=True))


def unique_names(names: Any) -> pd.Index:
    """String index with repeated names suffixed ``-1``, ``-2``, ... (as ``var_names_make_unique``)."""
    index = pd.Index([str(n) for n in names], dtype=object)
    return ad.utils.make_index_unique(index) if not index.is_unique else index


def categorical_labels(values: Any) -> pd.Categorical:
    """Cell-type labels as a categorical of the values (missing values stay missing)."""
    series = pd.Series(values)
    return pd.Categorical(series.where(series.notna(), None).astype(object))


def clean_obs_index(adata: ad.AnnData) -> ad.AnnData:
    """String obs_names without an index name (in place; returns ``adata``)."""
    adata.obs.index.name = None
    adata.obs_names = adata.obs_names.astype(str)
    return adata
