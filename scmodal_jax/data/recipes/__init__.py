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

Helpers: :func:`standardize` (z-score and clip), :func:`check_counts` (raw-count check) and
:func:`fit_joint_pca` (joint PCA of two linked blocks, used by the recipes and the chain builder).

Matrices may be numpy arrays, scipy sparse matrices or backed AnnData matrices: library sizes, HVG
selection and normalisation run on sparse row blocks, and only the selected features are densified.
"""

from __future__ import annotations

from ._matrix import Matrix, Transform, check_counts, fit_joint_pca, standardize
from .containers import LinkBlock, Prepared, Scaling
from .generic import Normalization, prepare_generic
from .protein_protein import prepare_protein_protein
from .rna_atac import prepare_rna_atac
from .rna_protein import prepare_rna_protein

__all__ = [
    "Scaling",
    "LinkBlock",
    "Prepared",
    "Matrix",
    "Transform",
    "Normalization",
    "standardize",
    "check_counts",
    "fit_joint_pca",
    "prepare_rna_protein",
    "prepare_protein_protein",
    "prepare_rna_atac",
    "prepare_generic",
]
