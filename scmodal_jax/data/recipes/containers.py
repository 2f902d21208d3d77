"""What a recipe returns: the scaled datasets, their links and the per-feature scaling (:class:`Prepared`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Scaling", "LinkBlock", "Prepared"]


@dataclass
class Scaling:
    """Per-feature z-scoring of one dataset: ``Z = clip((X - mean) / std, -max_value, max_value)``.

    ``mean``/``std`` are float64 arrays over the dataset's columns (``std`` of a constant feature is 1, so
    that feature becomes 0). ``mean is None`` means the dataset was not scaled.
    """

    mean: np.ndarray | None
    std: np.ndarray | None
    max_value: float | None

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Back to the normalised (pre-scaling) space (clipped values stay clipped)."""
        if self.mean is None or self.std is None:
            return np.asarray(Z)
        return np.asarray(Z) * self.std + self.mean


@dataclass
class LinkBlock:
    """Link between datasets ``pair = (i, j)``.

    Column links: ``left_cols``/``right_cols`` index the linked columns of ``datasets[i]``/``datasets[j]``
    (column ``left_cols[k]`` of ``i`` is linked to ``right_cols[k]`` of ``j``), ``names`` gives the original
    feature names of each pair. Explicit links (e.g. joint PCA): ``left_matrix``/``right_matrix`` are the
    link matrices, ``names`` the component names, and ``components`` the loadings (features x components)
    applied to the linked columns ``left_cols``/``right_cols``.
    """

    pair: tuple[int, int]
    names: list[tuple[str, str]]
    left_cols: np.ndarray | None = None
    right_cols: np.ndarray | None = None
    left_matrix: np.ndarray | None = None
    right_matrix: np.ndarray | None = None
    components: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        """Number of linked features (columns of the link matrices)."""
        if self.left_matrix is not None:
            return int(self.left_matrix.shape[1])
        return len(self.names)

    @property
    def explicit(self) -> bool:
        """True when the link matrices are stored (not columns of the datasets)."""
        return self.left_matrix is not None


@dataclass
class Prepared:
    """Inputs of scMODAL plus what is needed to map results back.

    Attributes:
        datasets: one float32 array (cells x features) per dataset, scaled and clipped.
        modalities: a name per dataset (``"rna"``, ``"protein"``, ``"atac"``, ...).
        feature_names: the original feature name of every column (duplicated when a feature is linked more
            than once, e.g. ``PTPRC`` for ``CD45RA`` and ``CD45RO``).
        links: one :class:`LinkBlock` per consecutive pair ``(i, i + 1)``.
        linked: per dataset, a boolean mask of the columns used by any column link.
        scaling: per dataset, the :class:`Scaling` used (mean/std per column).
        obs: per dataset, the cells' ``obs`` DataFrame (row order of ``datasets``).
        labels: per dataset, ``obs[label_key]`` as an array when a ``label_key`` was given, else ``None``.
        info: recipe details (normalisation targets, dropped constant links, HVG count, ...).
    """

    datasets: list[np.ndarray]
    modalities: list[str]
    feature_names: list[list[str]]
    links: list[LinkBlock]
    linked: list[np.ndarray]
    scaling: list[Scaling]
    obs: list[pd.DataFrame]
    labels: list[np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_datasets(self) -> int:
        return len(self.datasets)

    @property
    def n_linked(self) -> list[int | None]:
        """Per pair, the number of leading linked columns (same in both datasets), or ``None`` when the
        link of that pair is not a leading-column block (explicit matrices, chain middle datasets)."""
        out: list[int | None] = []
        for lb in self.links:
            k = len(lb.names)
            leading = (
                not lb.explicit
                and lb.left_cols is not None
                and lb.right_cols is not None
                and np.array_equal(lb.left_cols, np.arange(k))
                and np.array_equal(lb.right_cols, np.arange(k))
            )
            out.append(k if leading else None)
        return out

    def link_matrices(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(L, R), ...]`` per pair: ``L`` (cells of ``i`` x k) and ``R`` (cells of ``j`` x k), float32."""
        res = []
        for lb in self.links:
            i, j = lb.pair
            if lb.explicit:
                res.append((lb.left_matrix, lb.right_matrix))
            else:
                res.append((self.datasets[i][:, lb.left_cols], self.datasets[j][:, lb.right_cols]))
        return res

    def record(self) -> dict[str, Any]:
        """What the recipe did, in JSON-able form (stored with a model as `preprocessing_`): modality and feature
        names, per-feature scaling, and the JSON-able part of `info`."""
        scaling = []
        for sc in self.scaling:
            if sc is None or sc.mean is None:
                scaling.append(None)
            else:
                scaling.append({"mean": np.asarray(sc.mean).tolist(), "std": np.asarray(sc.std).tolist(),
                                "max_value": sc.max_value})  # fmt: skip
        info = {}
        for key, value in dict(self.info or {}).items():
            try:
                json.dumps(value)
            except TypeError:
                continue
            info[key] = value
        return {
            "modalities": [str(m) for m in self.modalities],
            "feature_names": [[str(f) for f in names] for names in self.feature_names],
            "scaling": scaling,
            "info": info,
        }

    def link_pairs(self) -> list[list[tuple[str, str]]]:
        """Linked feature names per pair (for explicit links: the features the projection was built on)."""
        return [list(lb.names) if not lb.explicit else list(self.info.get("linked_features", [])) for lb in self.links]
