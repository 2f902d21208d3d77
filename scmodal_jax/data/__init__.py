"""Data layer: loaders, preprocessing recipes, feature links, synthetic data, AnnData output."""

from .builders import Integration, build
from .datasets import bmmc_cite, bmmc_multiome, fetch, get_data_dir, pbmc5k_cite, pbmc_adt, pbmc_cytof
from .gene_activity import gene_activity
from .hvg import highly_variable_genes_seurat_v3
from .io import read_h5ad, read_h5mu, to_anndata, to_mudata, write_h5ad, write_h5mu
from .links import protein_gene_pairs, protein_gene_table, shared_markers
from .recipes import Prepared, prepare_generic, prepare_protein_protein, prepare_rna_atac, prepare_rna_protein
from .synthetic import make_multimodal

__all__ = [
    "Integration", "Prepared", "bmmc_cite", "bmmc_multiome", "build", "fetch", "gene_activity", "get_data_dir",
    "highly_variable_genes_seurat_v3", "make_multimodal", "pbmc5k_cite", "pbmc_adt", "pbmc_cytof",
    "prepare_generic", "prepare_protein_protein", "prepare_rna_atac", "prepare_rna_protein", "protein_gene_pairs",
    "protein_gene_table", "read_h5ad", "read_h5mu", "shared_markers", "to_anndata", "to_mudata", "write_h5ad",
    "write_h5mu",
]  # fmt: skip
