"""Data layer: loaders and their registry, preprocessing recipes, builders, feature links, synthetic data,
AnnData output.

One path from files to the model's inputs: :mod:`~scmodal_jax.data.loaders` read a dataset (indexed by name
in :mod:`~scmodal_jax.data.registry`), :mod:`~scmodal_jax.data.recipes` turn AnnData objects into scaled,
linked matrices, and :mod:`~scmodal_jax.data.builders` do both for an experiment's data config.
"""

from .builders import Integration, build
from .download import fetch
from .gene_activity import gene_activity
from .hvg import highly_variable_genes_seurat_v3
from .io import read_h5ad, read_h5mu, to_anndata, to_mudata, write_h5ad, write_h5mu
from .links import protein_gene_pairs, protein_gene_table, shared_markers
from .loaders import bmmc_cite, bmmc_multiome, get_data_dir, pbmc5k_cite, pbmc_adt, pbmc_cytof
from .recipes import Prepared, prepare_generic, prepare_protein_protein, prepare_rna_atac, prepare_rna_protein
from .registry import dataset_info, list_datasets, load_dataset
from .synthetic import make_multimodal

__all__ = [
    "Integration", "Prepared", "bmmc_cite", "bmmc_multiome", "build", "dataset_info", "fetch", "gene_activity",
    "get_data_dir", "highly_variable_genes_seurat_v3", "list_datasets", "load_dataset", "make_multimodal",
    "pbmc5k_cite", "pbmc_adt", "pbmc_cytof", "prepare_generic", "prepare_protein_protein", "prepare_rna_atac",
    "prepare_rna_protein", "protein_gene_pairs", "protein_gene_table", "read_h5ad", "read_h5mu", "shared_markers",
    "to_anndata", "to_mudata", "write_h5ad", "write_h5mu",
]  # fmt: skip
