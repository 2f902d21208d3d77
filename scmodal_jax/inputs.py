"""Checking and converting user inputs (arrays, sparse matrices, AnnData, link specs) into float32 arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .rows import as_row_source, densify, iter_blocks


@dataclass(frozen=True)
class FirstColumns:
    """Link spec: the first `s` columns of dataset i and of dataset i+1 are the linked features, in order.

    `s` may be one int for every consecutive pair or one int per pair.
    """

    s: int | tuple[int, ...]

    def widths(self, n_pairs: int) -> tuple[int, ...]:
        if isinstance(self.s, int):
            return (self.s,) * n_pairs
        if len(self.s) != n_pairs:
            raise ValueError(f"first_columns got {len(self.s)} widths for {n_pairs} dataset pairs")
        return tuple(self.s)


def first_columns(s: int | Sequence[int]) -> FirstColumns:
    """Links for the common case "the first s columns of both datasets are the linked features"."""
    widths = (s,) if isinstance(s, (int, np.integer)) else tuple(s)
    for w in widths:
        if not isinstance(w, (int, np.integer)) or isinstance(w, bool) or w < 1:
            raise ValueError(f"first_columns needs positive integer widths, got {s!r}")
    return FirstColumns(int(s) if isinstance(s, (int, np.integer)) else tuple(int(w) for w in widths))


def as_matrix(x: Any, name: str) -> np.ndarray:
    """A finite float32 2-D numpy array from a numpy/scipy/pandas/AnnData input, or a ValueError naming `name`."""
    return densify(as_row_source(x, name))


def _leading_columns(source: Any, s: int) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source[:, :s]
    out = np.empty((source.shape[0], s), np.float32)
    for start, block in iter_blocks(source):
        out[start : start + len(block)] = block[:, :s]
    return out


def check_datasets(datasets: Sequence[Any]) -> list[Any]:
    """Validated row sources (dense, CSR or backed; see `scmodal_jax.rows`), one per dataset."""
    if isinstance(datasets, (np.ndarray,)) or sp.issparse(datasets) or not isinstance(datasets, Sequence):
        raise ValueError("datasets must be a list of N >= 2 matrices (one per modality)")
    if len(datasets) < 2:
        raise ValueError(f"scMODAL needs at least 2 datasets, got {len(datasets)}")
    out = []
    for i, x in enumerate(datasets):
        m = as_row_source(x, f"dataset {i}")
        if m.shape[0] < 2:
            raise ValueError(f"dataset {i} has {m.shape[0]} cell(s); at least 2 are needed")
        if m.shape[1] < 1:
            raise ValueError(f"dataset {i} has no features")
        out.append(m)
    return out


def check_links(links: Any, datasets: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Dense link matrices (L_i, R_i) for each consecutive pair, checked against the datasets' cell counts."""
    n_pairs = len(datasets) - 1
    if isinstance(links, FirstColumns):
        out = []
        for i, s in enumerate(links.widths(n_pairs)):
            for j in (i, i + 1):
                if datasets[j].shape[1] < s:
                    raise ValueError(
                        f"first_columns({s}) for pair ({i}, {i + 1}): dataset {j} has only "
                        f"{datasets[j].shape[1]} features"
                    )
            out.append((_leading_columns(datasets[i], s), _leading_columns(datasets[i + 1], s)))
        return out
    if not isinstance(links, Sequence) or isinstance(links, (str, bytes)):
        raise ValueError("links must be a list of (L_i, R_i) pairs or scm.first_columns(s)")
    if len(links) != n_pairs:
        raise ValueError(
            f"{len(datasets)} datasets need {n_pairs} link pair(s) (one per consecutive pair), got {len(links)}"
        )
    out = []
    for i, pair in enumerate(links):
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"links[{i}] must be a pair (L, R), got {type(pair).__name__}")
        left = as_matrix(pair[0], f"links[{i}] left block")
        right = as_matrix(pair[1], f"links[{i}] right block")
        if left.shape[1] != right.shape[1]:
            raise ValueError(
                f"links[{i}]: left block has {left.shape[1]} columns, right block {right.shape[1]}; they must match"
            )
        if left.shape[0] != datasets[i].shape[0]:
            raise ValueError(
                f"links[{i}] left block has {left.shape[0]} rows, dataset {i} has {datasets[i].shape[0]} cells"
            )
        if right.shape[0] != datasets[i + 1].shape[0]:
            raise ValueError(
                f"links[{i}] right block has {right.shape[0]} rows, "
                f"dataset {i + 1} has {datasets[i + 1].shape[0]} cells"
            )
        out.append((left, right))
    return out
