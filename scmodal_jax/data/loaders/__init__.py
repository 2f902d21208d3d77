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

from .paper import (
    TONSIL_CODEX_MARKERS,
    hao2021_pbmc_cite,
    levine2015_bm_cytof,
    mouse_brain_atac,
    mouse_brain_multiome,
    mouse_brain_rna,
    stuart2019_bm_cite,
    teaseq_pbmc,
    tonsil_codex_rna,
)
from .shared import (
    DATA_DIR_ENV,
    SHARED_FILES,
    SHARED_PINS,
    bmmc_cite,
    bmmc_multiome,
    check_pinned,
    get_data_dir,
    hg38_gene_annotation,
    pbmc5k_cite,
    pbmc_adt,
    pbmc_cytof,
    protein_gene_conversion,
    shared_data_available,
)

__all__ = [
    # shared small files
    "DATA_DIR_ENV",
    "SHARED_FILES",
    "SHARED_PINS",
    "check_pinned",
    "get_data_dir",
    "shared_data_available",
    "bmmc_cite",
    "pbmc5k_cite",
    "pbmc_cytof",
    "pbmc_adt",
    "bmmc_multiome",
    "hg38_gene_annotation",
    "protein_gene_conversion",
    # paper datasets
    "hao2021_pbmc_cite",
    "stuart2019_bm_cite",
    "levine2015_bm_cytof",
    "teaseq_pbmc",
    "mouse_brain_atac",
    "mouse_brain_rna",
    "mouse_brain_multiome",
    "tonsil_codex_rna",
    "TONSIL_CODEX_MARKERS",
]
