"""Dataset loaders, one per dataset, returning :class:`anndata.AnnData` objects.

* :mod:`~scmodal_jax.data.loaders.shared` -- small real files of the shared data folder beside the project
  (:func:`get_data_dir`);
* :mod:`~scmodal_jax.data.loaders.paper` -- the public datasets of the scMODAL paper, downloaded on first use
  by :func:`scmodal_jax.data.download.fetch`;
* :mod:`~scmodal_jax.data.loaders.releases` -- the original releases behind the shared files, fetched and
  prepared in the same layout when the shared folder lacks a file.

:mod:`scmodal_jax.data.registry` indexes both families by name (:func:`~scmodal_jax.data.registry.load_dataset`).
"""

from __future__ import annotations

from . import paper, shared
from .paper import *  # noqa: F403
from .shared import *  # noqa: F403

# the two families' public names, each listed once, in its own module
__all__ = [*shared.__all__, *paper.__all__]
