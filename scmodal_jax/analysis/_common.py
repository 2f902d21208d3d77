"""Helpers shared by the analyses (internal API of the package): the input matrix of an AnnData, DataFrame or
matrix, the ``block_size`` check, and what a saved model stores about its inputs (feature count, scaling)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["check_block_size", "matrix_and_names", "n_features", "stored_scaling"]


def check_block_size(block_size: Any) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    return int(block_size)


def matrix_and_names(data: Any, layer: str | None, feature_names: Sequence[str] | None):
    """(matrix, names or None, obs_names or None) of an AnnData, a DataFrame or a matrix."""
    if hasattr(data, "var_names") and hasattr(data, "obs_names"):  # AnnData
        if layer is not None:
            if layer not in data.layers:
                raise KeyError(f"layer {layer!r} not found; available layers: {list(data.layers.keys())}")
            X = data.layers[layer]
        else:
            X = data.X
        if X is None:
            raise ValueError("the AnnData object has no X")
        names = [str(v) for v in data.var_names] if feature_names is None else list(feature_names)
        return X, names, [str(o) for o in data.obs_names]
    if isinstance(data, pd.DataFrame):
        names = [str(c) for c in data.columns] if feature_names is None else list(feature_names)
        return data.to_numpy(), names, [str(o) for o in data.index]
    X = data if sp.issparse(data) or hasattr(data, "shape") else np.asarray(data)
    if len(X.shape) != 2:
        raise ValueError(f"expected a 2-D matrix (cells x features), got shape {X.shape}")
    return X, None if feature_names is None else [str(f) for f in feature_names], None


def n_features(model: Any, i: int) -> int:
    """Number of input columns of the model's dataset ``i``."""
    nets = getattr(model, "_nets", None)
    if nets is not None:
        return int(nets.n_features[i])
    return len(model.preprocessing_["feature_names"][i])


def stored_scaling(model: Any, i: int) -> tuple[np.ndarray, np.ndarray, float | None] | None:
    """``(mean, std, max_value)`` (float64) of the z-score stored for dataset ``i``; None when it was not scaled."""
    rec = getattr(model, "preprocessing_", None) or {}
    scalings = rec.get("scaling") or []
    if i >= len(scalings) or scalings[i] is None or scalings[i].get("mean") is None:
        return None
    sc = scalings[i]
    mv = sc.get("max_value")
    return np.asarray(sc["mean"], np.float64), np.asarray(sc["std"], np.float64), None if mv is None else float(mv)
