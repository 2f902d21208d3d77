"""Preprocessing recipes: from AnnData objects to scMODAL inputs (feature matrices + links).

Every recipe returns a :class:`Prepared`: one dense float32 matrix per dataset (cells x features), the
links between consecutive datasets (which columns are linked, or explicit link matrices), and the metadata
needed to map results back (feature names, per-feature mean/std of the scaler, ``obs``, labels).

Recipes:

* :func:`prepare_rna_protein` -- RNA vs an antibody panel (CITE-seq ADT, CODEX, CyTOF), linked through the
  protein -> gene table of :mod:`scmodal_jax.data.links`;
* :func:`prepare_protein_protein` -- two antibody panels (e.g. CITE-seq ADT vs CyTOF);
* :func:`prepare_rna_atac` -- RNA vs ATAC gene activity (:mod:`scmodal_jax.data.gene_activity`), linked by
  shared highly variable genes, optionally through a joint PCA;
* :func:`prepare_generic` -- N >= 2 datasets chained by user-given name pairs.

Matrices may be numpy arrays, scipy sparse matrices or backed AnnData matrices: library sizes, HVG
selection and normalisation run on sparse row blocks, and only the selected features are densified.
"""

from __future__ import annotations

from .containers import LinkBlock, Prepared, Scaling
from .generic import Normalization as Normalization
from .generic import prepare_generic
from .matrix import Matrix as Matrix
from .matrix import Transform as Transform
from .matrix import _joint_pca as _joint_pca
from .matrix import check_counts, standardize
from .protein_protein import prepare_protein_protein
from .rna_atac import prepare_rna_atac
from .rna_protein import prepare_rna_protein

__all__ = [
    "Scaling",
    "LinkBlock",
    "Prepared",
    "standardize",
    "check_counts",
    "prepare_rna_protein",
    "prepare_protein_protein",
    "prepare_rna_atac",
    "prepare_generic",
]
