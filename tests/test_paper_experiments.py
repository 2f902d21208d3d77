"""The scMODAL paper's experiments (conf/experiment/{citeseq_pbmc,bmc_cytof,teaseq,mouse_brain,tonsil}.yaml):
they compose with the paper's settings, and each runs end to end (`scmodal_jax.cli.train.run`) on tiny stand-ins
of its public files written where the download cache keeps them (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import standins
from hydra import compose, initialize_config_dir

from scmodal_jax.cli import config as config_module
from scmodal_jax.cli.train import run
from scmodal_jax.data import builders
from scmodal_jax.data.builders import paper as paper_builders
from scmodal_jax.data.links import protein_gene_pairs, shared_markers
from scmodal_jax.data.loaders import shared as shared_loaders
from scmodal_jax.metrics import foscttm, label_transfer_accuracy

CONF = Path(__file__).resolve().parents[1] / "conf"
PAPER = ["citeseq_pbmc", "bmc_cytof", "teaseq", "mouse_brain", "tonsil"]
TINY = [
    "train.steps=20", "train.steps_per_call=10", "train.batch_size=32", "model.hidden=16", "model.disc_hidden=16",
    "eval.umap=false", "logger=none", "train.progress=false",
]  # fmt: skip
# Enough training for the latent to show the stand-ins' clusters (about 2 s of steps once compiled). Anchor weight 5,
# which experiments/pbmc_cytof found reliable: with the paper's 1.0, one seed in three collapsed on these 80-cell
# stand-ins (citeseq_pbmc seeds 0-2: label transfer 0.89 / 0.98 / 0.35), with 5 none did (>= 0.99, FOSCTTM <= 0.19).
TRAINED = [
    "train.steps=300", "train.steps_per_call=100", "train.batch_size=64", "train.k_anchor=10", "model.hidden=64",
    "model.disc_hidden=64", "model.lambda_anchor=5", "eval.umap=false", "logger=none", "train.progress=false",
]  # fmt: skip
# The stand-ins' clusters are linked through their markers, so the linked features alone already transfer labels
# perfectly: the latent must keep that (a collapsed run scores about 0.3). FOSCTTM: random pairing gives 0.5, and
# about 1/6 is the best a latent can reach on cells that differ only by cluster (3 clusters). Measured at today's
# defaults with TRAINED, seeds 0 / 1 / 2 (python scripts/test_margins.py --only paper): label transfer 1.000 on
# citeseq_pbmc and bmc_cytof, 1.000 / 0.988 / 0.988 on tonsil; FOSCTTM citeseq_pbmc 0.172 / 0.156 / 0.163, teaseq
# ADT-RNA 0.158 / 0.156 / 0.164 and RNA-ATAC 0.178 / 0.170 / 0.181. Bounds: a loss of at most 0.03 (the worst
# seed lost 0.012), FOSCTTM below 0.22 (the worst 0.181).
MAX_LOSS_VS_LINKED, MAX_FOSCTTM = 0.03, 0.22


def _compose(overrides):
    config_module.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


# ------------------------------------------------------------------------------------------------------
# Configs: the paper's settings
# ------------------------------------------------------------------------------------------------------

SETTINGS = {  # experiment: (steps, n_hvg, joint_pca, k_anchor, lambda_anchor, lambda_gan, order, label_key)
    "citeseq_pbmc": (10_000, 3000, None, 30, 1.0, 1.0, ["rna", "adt"], "cell_type"),
    "bmc_cytof": (10_000, None, None, 30, 1.0, 1.0, ["adt", "cytof"], None),
    "teaseq": (20_000, 1000, 30, 30, 1.0, 1.0, ["adt", "rna", "atac"], None),
    "mouse_brain": (10_000, 1000, None, 5, 1.0, 1.0, ["rna", "atac"], None),
    "tonsil": (10_000, 1000, None, 30, 5.0, 0.5, ["codex", "rna"], "cell_type"),
}


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_composes_with_the_paper_settings(name):
    cfg = _compose([f"+experiment={name}"])
    config_module.validate(cfg)
    assert cfg.experiment_name == name and cfg.data.name == name
    assert builders.BUILDERS[name] is paper_builders.PAPER_BUILDERS[name]
    steps, n_hvg, joint_pca, k, lam_anchor, lam_gan, order, label_key = SETTINGS[name]
    got = (cfg.train.steps, cfg.data.n_hvg, cfg.data.joint_pca, cfg.train.k_anchor, cfg.model.lambda_anchor,
           cfg.model.lambda_gan, list(cfg.data.order), cfg.data.label_key)  # fmt: skip
    assert got == (steps, n_hvg, joint_pca, k, lam_anchor, lam_gan, order, label_key)
    # the rest is the original scMODAL's defaults
    assert (cfg.model.lambda_ae, cfg.model.lambda_la, cfg.model.lambda_geo) == (10.0, 10.0, 10.0)
    assert (cfg.train.batch_size, cfg.model.n_latent, cfg.model.hidden) == (500, 20, 512)


def test_protein_gene_pairs_read_hao_clone_suffixes():
    genes = ["CD3E", "CD3D", "CD4", "PECAM1", "ITGAM", "PDCD1", "MS4A1"]
    pairs = protein_gene_pairs(["CD3-1", "CD4-2", "CD11b-1", "PD-1", "CD20", "IgG1-ctrl"], genes)
    got = {p: sorted(g for q, g in pairs if q == p) for p, _ in pairs}
    assert got["CD3-1"] == ["CD3D", "CD3E"] and got["CD4-2"] == ["CD4"] and got["CD11b-1"] == ["ITGAM"]
    assert got["CD20"] == ["MS4A1"] and "PECAM1" not in {g for _, g in pairs} and "IgG1-ctrl" not in got
    assert got["PD-1"] == ["PDCD1"]
    assert shared_markers(["CD3-1", "CD4-2", "CD31"], ["CD3", "CD4", "PECAM-1"]) == [
        ("CD3-1", "CD3"),
        ("CD4-2", "CD4"),
        ("CD31", "PECAM-1"),
    ]


# ------------------------------------------------------------------------------------------------------
# End to end on stand-ins
# ------------------------------------------------------------------------------------------------------


def _run(name, tmp_path, extra=(), overrides=TRAINED):
    run_dir = tmp_path / "run"
    cfg = _compose([f"+experiment={name}", *overrides, f"data.cache_dir={tmp_path / 'cache'}",
                    f"hydra.run.dir={run_dir}", *extra])  # fmt: skip
    summary = run(cfg, run_dir)
    for out in ("config.yaml", "metrics.json", "integrated.h5ad", "loss_history.csv", "checkpoint/model.json"):
        assert (run_dir / out).exists(), out
    assert summary["final_step"] == cfg.train.steps
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["mixing_metric"]) and np.isfinite(metrics["kbet"])
    integrated = ad.read_h5ad(run_dir / "integrated.h5ad")
    latent = integrated.obsm["X_scmodal"]
    assert latent.shape[1] == 20 and np.isfinite(latent).all()
    assert list(integrated.obs["modality"].cat.categories) == SETTINGS[name][6]
    return integrated, metrics


def _latents(integrated):
    modality = integrated.obs["modality"]
    return [integrated.obsm["X_scmodal"][(modality == m).to_numpy()] for m in modality.cat.categories]


def _linked_label_transfer(name, tmp_path, extra=(), rename=None):
    """1-NN label transfer on the linked features alone (the first link block), the baseline of the latent."""
    cfg = _compose([f"+experiment={name}", f"data.cache_dir={tmp_path / 'cache'}", *extra])
    prep = builders.build(cfg.data).prepared
    left, right = prep.link_matrices()[0]
    labels = [np.array([(rename or {}).get(str(v), str(v)) for v in x]) for x in prep.labels]
    return label_transfer_accuracy(left, labels[0], right, labels[1])


def test_citeseq_pbmc_end_to_end(tmp_path):
    l2 = standins.write_hao2021(tmp_path / "cache")
    integrated, metrics = _run("citeseq_pbmc", tmp_path)
    n = int((l2 != "Doublet").sum()) - 6  # donor P1 only, doublet dropped
    assert integrated.n_obs == 2 * n
    linked = _linked_label_transfer("citeseq_pbmc", tmp_path)
    assert linked == 1.0 and metrics["label_transfer_accuracy"] >= linked - MAX_LOSS_VS_LINKED
    assert metrics["foscttm"] < MAX_FOSCTTM
    assert "Doublet" not in set(integrated.obs["cell_type"])
    integ = builders.build(_compose(["+experiment=citeseq_pbmc", f"data.cache_dir={tmp_path / 'cache'}"]).data)
    links = integ.prepared.links[0].names  # (gene, protein)
    assert integ.paired and ("CD3E", "CD3-1") in links and ("CD4", "CD4-2") in links and ("MS4A1", "CD20") in links
    assert "PECAM1" not in {g for g, _ in links}


def test_bmc_cytof_end_to_end_with_cite_labels(tmp_path):
    labels_csv = standins.write_stuart2019(tmp_path / "cache")
    standins.write_levine2015(tmp_path / "cache")
    extra = [f"data.options.labels={labels_csv}", "data.label_key=cell_type"]
    integrated, metrics = _run("bmc_cytof", tmp_path, extra)
    assert integrated.n_obs == 80 + 100 - 8  # unassigned CyTOF cells dropped
    assert set(integrated.obs["cell_type"].dropna()) >= {"T", "B", "Mono", "T_cells", "Monocytes"}
    # The CITE-seq labels and the CyTOF gating name the same populations differently, so the run's own score
    # compares unequal strings; on the shared names the latent must transfer as well as the linked markers.
    assert metrics["label_transfer_accuracy"] == 0.0
    rename = {"T_cells": "T", "B_cells": "B", "Monocytes": "Mono"}
    linked = _linked_label_transfer("bmc_cytof", tmp_path, extra, rename)
    adt, cytof = _latents(integrated)
    labels = [integrated.obs["cell_type"][(integrated.obs["modality"] == m).to_numpy()].astype(str).replace(rename)
              for m in ("adt", "cytof")]  # fmt: skip
    latent = label_transfer_accuracy(adt, labels[0].to_numpy(), cytof, labels[1].to_numpy())
    assert linked == 1.0 and latent >= linked - MAX_LOSS_VS_LINKED


def test_bmc_cytof_builder_links_and_normalises_as_the_paper(tmp_path):
    standins.write_stuart2019(tmp_path / "cache")
    standins.write_levine2015(tmp_path / "cache")
    cfg = _compose(["+experiment=bmc_cytof", f"data.cache_dir={tmp_path / 'cache'}"])
    integ = builders.build(cfg.data)
    assert not integ.paired and integ.order == ["adt", "cytof"]
    (lb,) = integ.prepared.links
    assert {a for a, _ in lb.names} >= {"CD3", "CD4", "CD8a", "CD19", "CD14", "HLA.DR"}
    assert integ.prepared.info["transforms"][1]["transform"] == "none"  # CyTOF kept as stored (arcsinh)
    reversed_ = builders.build(_compose(["+experiment=bmc_cytof", f"data.cache_dir={tmp_path / 'cache'}",
                                         "data.order=[cytof,adt]"]).data)  # fmt: skip
    assert reversed_.modalities == ["cytof", "adt"]


def test_teaseq_end_to_end_three_modality_chain(tmp_path):
    annotation = tmp_path / "genes.tsv"
    standins.write_teaseq(tmp_path / "cache", annotation)
    integrated, _ = _run("teaseq", tmp_path, [f"data.options.annotation={annotation}", "data.n_hvg=25"])
    assert integrated.n_obs == 3 * 79  # one ADT barcode missing
    adt, rna, atac = _latents(integrated)  # the same 79 cells, in the same order, in each modality
    assert foscttm(adt, rna) < MAX_FOSCTTM and foscttm(rna, atac) < MAX_FOSCTTM


def test_teaseq_builder_default_annotation_and_joint_pca(tmp_path, monkeypatch):
    annotation = standins.write_teaseq(tmp_path / "cache", tmp_path / "genes.tsv")
    seen = []
    monkeypatch.setattr(
        shared_loaders, "hg38_gene_annotation", lambda d, cache_dir: seen.append((d, cache_dir)) or annotation
    )
    cfg = _compose(["+experiment=teaseq", f"data.cache_dir={tmp_path / 'cache'}", "data.data_dir=/some/shared",
                    "data.n_hvg=25", "data.options.n_hvg_atac=30"])  # fmt: skip
    integ = builders.build(cfg.data)
    assert seen == [("/some/shared", str(tmp_path / "cache"))]  # the shared table, else its release in the cache
    assert integ.paired and integ.order == ["adt", "rna", "atac"]
    prep = integ.prepared
    adt_rna, rna_atac = prep.links
    assert {g for _, g in adt_rna.names} >= {"CD3E", "CD4", "MS4A1", "CD14"} and not adt_rna.explicit
    assert rna_atac.explicit and rna_atac.left_matrix.shape[0] == 79
    assert rna_atac.left_matrix.shape[1] == min(30, len(rna_atac.names))
    n_linked_rna = len({g for _, g in adt_rna.names})
    assert len(set(prep.feature_names[1])) <= n_linked_rna + 25 and len(set(prep.feature_names[2])) <= 30


def test_mouse_brain_end_to_end_and_required_annotation(tmp_path):
    annotation = tmp_path / "mm10_genes.tsv"
    standins.write_mouse_brain(tmp_path / "cache", annotation)
    with pytest.raises(ValueError, match="data.options.annotation"):
        builders.build(_compose(["+experiment=mouse_brain", f"data.cache_dir={tmp_path / 'cache'}"]).data)
    # No quality bound: the ATAC file has no labels, and its gene activities are too weak on 70 cells (the linked
    # features alone transfer the RNA labels at 0.67, the latent at 0.50-0.70 over seeds 0-2).
    extra = [f"data.options.annotation={annotation}", "data.n_hvg=20"]
    integrated, _ = _run("mouse_brain", tmp_path, extra, overrides=TINY)
    assert integrated.n_obs == 90 + 70


def test_tonsil_end_to_end(tmp_path):
    standins.write_tonsil(tmp_path / "cache")
    integrated, metrics = _run("tonsil", tmp_path, ["data.n_hvg=15"])
    assert integrated.n_obs == 100 + 80
    linked = _linked_label_transfer("tonsil", tmp_path, ["data.n_hvg=15"])
    assert linked == 1.0 and metrics["label_transfer_accuracy"] >= linked - MAX_LOSS_VS_LINKED
    cfg = _compose(["+experiment=tonsil", f"data.cache_dir={tmp_path / 'cache'}", "data.n_hvg=15"])
    prep = builders.build(cfg.data).prepared
    codex = prep.feature_names[0]
    assert "CD45" in codex and "Vimentin" in codex and "Ki67" in codex and len(codex) == len(prep.links[0].names)
    assert prep.info["protein_transform"] == "none"  # already-normalised CODEX values kept
    assert isinstance(prep.obs[0], pd.DataFrame) and "centroid_x" in prep.obs[0]
