"""The model's inputs: N datasets and their links checked in one pass, handed over as row sources.

`training_inputs` is the one entry: it accepts what `SCMODAL.fit` accepts (matrices, AnnData, a recipe's
`Prepared`), validates every dataset once (a backed dataset is read once, its linked columns taken on the
same pass), checks the links against the datasets' cell counts, and returns `TrainingInputs`: the row
sources (dense, CSR or backed; see `scmodal_jax._rows`) and dense link matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._rows import as_row_source, dense_nbytes, densify, is_backed

__all__ = ["FirstColumns", "TrainingInputs", "first_columns", "training_inputs", "as_matrix"]


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


@dataclass(frozen=True)
class TrainingInputs:
    """Validated inputs: one row source per dataset and the dense (L_i, R_i) link matrices of each pair."""

    sources: list[Any]
    links: list[tuple[np.ndarray, np.ndarray]]
    preprocessing: Any = None  # the recipe's `Prepared`, when the data came from one

    @property
    def n_features(self) -> tuple[int, ...]:
        return tuple(int(x.shape[1]) for x in self.sources)

    @property
    def link_widths(self) -> tuple[int, ...]:
        return tuple(int(left.shape[1]) for left, _ in self.links)

    @property
    def dense_nbytes(self) -> int:
        """Bytes of the data once dense on the device (sources and links)."""
        return sum(dense_nbytes(x) for x in self.sources) + sum(a.nbytes + b.nbytes for a, b in self.links)

    def dense(self) -> tuple[tuple[np.ndarray, ...], tuple[tuple[np.ndarray, np.ndarray], ...]]:
        """Every source densified (float32), with the links: what device-resident training places."""
        return tuple(densify(x) for x in self.sources), tuple(self.links)


def as_matrix(x: Any, name: str) -> np.ndarray:
    """A finite float32 2-D numpy array from a numpy/scipy/pandas/AnnData input, or a ValueError naming `name`."""
    return densify(as_row_source(x, name))


def _check_structure(datasets: Any) -> None:
    if isinstance(datasets, (np.ndarray,)) or sp.issparse(datasets) or not isinstance(datasets, Sequence):
        raise ValueError("datasets must be a list of N >= 2 matrices (one per modality)")
    if len(datasets) < 2:
        raise ValueError(f"scMODAL needs at least 2 datasets, got {len(datasets)}")


def _first_column_widths(links: FirstColumns, datasets: Sequence[Any]) -> list[int]:
    """Per dataset, how many leading columns the first-columns links read from it (0 = none).

    Widths a dataset cannot provide are clipped here; `training_inputs` reports them after validation.
    """
    n_pairs = len(datasets) - 1
    need = [0] * len(datasets)
    widths = (links.s,) * n_pairs if isinstance(links.s, int) else links.s
    if len(widths) != n_pairs:
        return need  # `FirstColumns.widths` raises the error once the datasets are validated
    for i, s in enumerate(widths):
        for j in (i, i + 1):
            need[j] = max(need[j], s)
    return need


def _leading(source: Any, width: int) -> np.ndarray:
    """The first `width` columns of an in-memory source as a dense float32 array."""
    if isinstance(source, np.ndarray):
        return source[:, :width]
    return source[:, :width].toarray().astype(np.float32, copy=False)


def _source(x: Any, name: str, lead: int) -> tuple[Any, np.ndarray | None]:
    """Validate one dataset; with `lead` > 0 also return its first `lead` columns (backed data: same read)."""
    collected: list[np.ndarray] = []
    on_block = (lambda block: collected.append(block[:, :lead])) if lead else None
    source = as_row_source(x, name, on_block=on_block)
    if not lead:
        return source, None
    if is_backed(source):
        return source, (np.concatenate(collected) if collected else np.zeros((0, lead), np.float32))
    return source, _leading(source, lead)


def _check_sizes(source: Any, i: int) -> None:
    if source.shape[0] < 2:
        raise ValueError(f"dataset {i} has {source.shape[0]} cell(s); at least 2 are needed")
    if source.shape[1] < 1:
        raise ValueError(f"dataset {i} has no features")


def _explicit_links(links: Any, sources: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    n_pairs = len(sources) - 1
    if not isinstance(links, Sequence) or isinstance(links, (str, bytes)):
        raise ValueError("links must be a list of (L_i, R_i) pairs or scm.first_columns(s)")
    if len(links) != n_pairs:
        raise ValueError(
            f"{len(sources)} datasets need {n_pairs} link pair(s) (one per consecutive pair), got {len(links)}"
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
        if left.shape[0] != sources[i].shape[0]:
            raise ValueError(
                f"links[{i}] left block has {left.shape[0]} rows, dataset {i} has {sources[i].shape[0]} cells"
            )
        if right.shape[0] != sources[i + 1].shape[0]:
            raise ValueError(
                f"links[{i}] right block has {right.shape[0]} rows, dataset {i + 1} has {sources[i + 1].shape[0]} cells"
            )
        out.append((left, right))
    return out


def training_inputs(datasets: Sequence[Any] | Any, links: Any = None) -> TrainingInputs:
    """Validated `TrainingInputs` from N >= 2 datasets and their links.

    `datasets`: matrices (numpy, scipy sparse, pandas, AnnData incl. backed) or a recipe's `Prepared`
    (whose link matrices are used when `links` is None). `links`: N-1 pairs (L_i, R_i) whose rows follow the
    cells of dataset i and i+1, or `first_columns(s)`. Errors name the dataset or link and the problem.
    """
    prepared = None
    if hasattr(datasets, "link_matrices") and hasattr(datasets, "datasets"):
        prepared = datasets
        links = prepared.link_matrices() if links is None else links
        datasets = prepared.datasets
    if links is None:
        raise ValueError("links are required: a list of (L_i, R_i) pairs or scm.first_columns(s)")
    _check_structure(datasets)
    lead = _first_column_widths(links, datasets) if isinstance(links, FirstColumns) else [0] * len(datasets)
    sources, leading = [], []
    for i, x in enumerate(datasets):
        source, first = _source(x, f"dataset {i}", lead[i])
        _check_sizes(source, i)
        sources.append(source)
        leading.append(first)
    if isinstance(links, FirstColumns):
        widths = links.widths(len(sources) - 1)
        for i, s in enumerate(widths):
            for j in (i, i + 1):
                if sources[j].shape[1] < s:
                    raise ValueError(
                        f"first_columns({s}) for pair ({i}, {i + 1}): dataset {j} has only "
                        f"{sources[j].shape[1]} features"
                    )
        link_mats = [(leading[i][:, :s], leading[i + 1][:, :s]) for i, s in enumerate(widths)]
    else:
        link_mats = _explicit_links(links, sources)
    return TrainingInputs(sources, link_mats, prepared)
