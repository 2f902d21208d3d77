"""From a data config to the model's inputs: one builder per experiment's data.

A builder takes a `DataConfig`-like object (attributes `name`, `order`, `label_key`, `data_dir`, `cache_dir`,
`n_hvg`, `joint_pca`, `synthetic`, `options`) and returns an :class:`Integration`: the recipe's `Prepared`
inputs, whether the datasets' cells are paired (row i of each dataset is the same cell), and the order used.
Two-modality data go through the dedicated recipes; chains of three or more through
:func:`~scmodal_jax.data.builders._common.chain`.

* :mod:`~scmodal_jax.data.builders.shared` -- synthetic data and the small files of the shared data folder;
* :mod:`~scmodal_jax.data.builders.paper` -- the scMODAL paper's experiments on downloaded public data.

:data:`BUILDERS` holds every builder by name; :func:`build` runs the one ``cfg.name`` names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._common import Integration, Modality, reverse_pair
from .paper import PAPER_BUILDERS
from .shared import SHARED_BUILDERS

__all__ = ["BUILDERS", "Integration", "Modality", "build", "reverse_pair"]

#: Every builder by name: the shared-file ones and the paper datasets' (downloaded) ones.
BUILDERS: dict[str, Callable[[Any], Integration]] = {**SHARED_BUILDERS, **PAPER_BUILDERS}


def build(cfg: Any) -> Integration:
    """Build the integration inputs named by `cfg.name`."""
    if cfg.name not in BUILDERS:
        raise ValueError(f"unknown data.name={cfg.name!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[cfg.name](cfg)
