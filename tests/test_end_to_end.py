"""End to end with a known answer: synthetic cells (clusters and pairing known, links weak) and real CITE-seq cells
(RNA vs protein treated as unpaired, linked by the proteins' gene names)."""

import anndata as ad
import numpy as np
from conftest import shared_file

import scmodal_jax as scm
from scmodal_jax.data.links import protein_gene_pairs
from scmodal_jax.data.synthetic import make_multimodal
from scmodal_jax.metrics import foscttm, label_transfer_accuracy

# Measured with the settings below on data seeds 0-4 x model seeds 0-2 (15 runs): the latent beat the linked features
# by 0.075-0.226 in label transfer (here 0.173) and reached FOSCTTM 0.176-0.220 where the linked features give
# 0.266-0.298 (here 0.180 vs 0.285). With the paper's anchor weight 1.0 the latent fell below the linked features
# in 4 of 9 of these runs (data seeds 0-2).
MARGIN, MAX_FOSCTTM = 0.05, 0.25


def test_synthetic_latent_beats_the_weak_links_by_a_margin():
    # Linked features noisy enough (link_noise=2) that they alone transfer labels at 0.72; the private features
    # hold the clusters, which only an integration that aligns them can use.
    data = make_multimodal(n_cells=600, n_features=(30, 12), n_linked=6, n_clusters=4, link_noise=2.0, paired=True,
                           seed=0)  # fmt: skip
    model = scm.SCMODAL(steps=500, steps_per_call=100, batch_size=256, hidden=128, disc_hidden=128, k_anchor=20,
                        lambda_anchor=5.0, progress=False, seed=0)  # fmt: skip
    model.fit(data.datasets, scm.first_columns(data.n_linked))
    (x0, x1), (l0, l1), k = data.datasets, data.labels, data.n_linked
    z0, z1 = model.latent_
    latent_acc = label_transfer_accuracy(z0, l0, z1, l1)
    linked_acc = label_transfer_accuracy(x0[:, :k], l0, x1[:, :k], l1)
    latent_fos, linked_fos = foscttm(z0, z1), foscttm(x0[:, :k], x1[:, :k])
    print(f"label transfer {latent_acc:.3f} (linked {linked_acc:.3f}), FOSCTTM {latent_fos:.3f} ({linked_fos:.3f})")
    assert latent_acc >= linked_acc + MARGIN
    assert latent_fos < min(MAX_FOSCTTM, linked_fos)


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
