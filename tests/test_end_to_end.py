"""End to end on real CITE-seq cells: RNA vs protein treated as unpaired, linked by the proteins' gene names."""

import anndata as ad
import numpy as np
from conftest import shared_file

import scmodal_jax as scm
from scmodal_jax.data.links import protein_gene_pairs
from scmodal_jax.metrics import label_transfer_accuracy


def _log_normalise(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(1, keepdims=True)
    return np.log1p(counts / np.maximum(totals, 1) * np.median(totals))


def _scale(x: np.ndarray) -> np.ndarray:
    return np.clip((x - x.mean(0)) / np.maximum(x.std(0), 1e-8), -10, 10).astype(np.float32)


def test_bmmc_cite_latent_beats_linked_features_for_label_transfer():
    adata = ad.read_h5ad(shared_file("bmmc_cite_starter_600c_1000g_134adt.h5ad"))
    protein = adata.obsm["protein_counts"]
    pairs = protein_gene_pairs(list(protein.columns), list(adata.var_names))
    assert ("CD69", "CD69") in pairs and len(pairs) >= 5
    genes, proteins = list(adata.var_names), list(protein.columns)
    rna = _log_normalise(adata.X.toarray().astype(np.float64))
    prot = _log_normalise(protein.to_numpy(np.float64))
    gene_idx = [genes.index(g) for _, g in pairs]
    prot_idx = [proteins.index(p) for p, _ in pairs]
    x_rna = _scale(np.hstack([rna[:, gene_idx], rna]))
    x_prot = _scale(np.hstack([prot[:, prot_idx], prot]))
    s = len(pairs)
    labels = adata.obs["cell_type"].to_numpy()

    model = scm.SCMODAL(steps=300, progress=False, seed=0).fit([x_rna, x_prot], scm.first_columns(s))
    assert all(np.isfinite(z).all() for z in model.latent_)
    latent_acc = label_transfer_accuracy(model.latent_[0], labels, model.latent_[1], labels)
    linked_acc = label_transfer_accuracy(x_rna[:, :s], labels, x_prot[:, :s], labels)
    print(f"1-NN label transfer RNA -> protein: latent {latent_acc:.3f}, linked features {linked_acc:.3f}")
    assert latent_acc > linked_acc
