"""Input validation shared by the metrics: latents, labels, integer knobs (internal API of the package)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ArrayLike = Any


def check_latent(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a finite 2-D float64 array with at least one row and column."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (cells x features), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one cell and one feature, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_labels(labels: ArrayLike, n: int, name: str) -> np.ndarray:
    """Return ``labels`` as a 1-D array of length ``n``."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} labels but the matching latent has {n} cells")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite labels")
    if arr.dtype == object and any(v is None or (isinstance(v, float) and v != v) for v in arr):
        raise ValueError(f"{name} contains missing (None/NaN) labels")
    return arr


def encode_labels(*label_arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Jointly integer-encode several label arrays; returns (classes, codes per array)."""
    pooled = np.concatenate([np.asarray(a) for a in label_arrays])
    try:
        classes, inverse = np.unique(pooled, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"labels must be mutually comparable (e.g. all strings or all ints): {exc}") from exc
    inverse = inverse.reshape(-1)
    codes, start = [], 0
    for a in label_arrays:
        codes.append(inverse[start : start + len(a)].astype(np.int32))
        start += len(a)
    return classes, codes


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_same_dim(arrays: Sequence[np.ndarray], names: Sequence[str]) -> None:
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1:
        desc = ", ".join(f"{n}: {a.shape[1]}" for a, n in zip(arrays, names, strict=True))
        raise ValueError(f"all latents must have the same number of features, got {desc}")


def check_latent_list(latents: Any, name: str = "latents", min_len: int = 1) -> list[np.ndarray]:
    if isinstance(latents, np.ndarray) or not isinstance(latents, Sequence) or isinstance(latents, str):
        raise ValueError(f"{name} must be a list of 2-D arrays (one per dataset)")
    if len(latents) < min_len:
        raise ValueError(f"{name} must contain at least {min_len} dataset(s), got {len(latents)}")
    arrs = [check_latent(x, f"{name}[{i}]") for i, x in enumerate(latents)]
    check_same_dim(arrs, [f"{name}[{i}]" for i in range(len(arrs))])
    return arrs


def check_block_size(block_size: int) -> int:
    return check_int(block_size, "block_size", minimum=1)
