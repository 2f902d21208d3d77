"""GLUE (PyPI `scglue`, Cao & Gao 2022) as an unpaired RNA-vs-ATAC baseline on the `bmmc_multiome` starter files.

Two steps, two interpreters (GLUE needs PyTorch; our metrics need JAX; they live in separate environments):

    # 1. fit, in GLUE's own venv (never /work/main/.venv):
    #    python3 -m venv /work/glue_venv
    #    /work/glue_venv/bin/pip install torch==2.13.0     # the CPU wheel on this machine's disk
    #    /work/glue_venv/bin/pip install scglue==0.4.1     # pybedtools etc. came as wheels
    #    /work/glue_venv/bin/pip install scikit-misc       # needed by scanpy's seurat_v3 HVG flavour
    #    apt-get install -y bedtools                       # the guidance graph calls the bedtools binary
    /work/glue_venv/bin/python scripts/glue_baseline.py --seed 0 --out /tmp/glue_seed0.npz

    # 2. score, in the project venv (reads only the .npz; no scglue/torch import):
    JAX_PLATFORMS=cpu .venv/bin/python scripts/glue_baseline.py --evaluate /tmp/glue_seed0.npz \
        --append experiments/bmmc_multiome/glue_runs.jsonl

The fit step saves the RNA and ATAC latents (cells in file order), obs_names, labels, wall times and versions to
the .npz; the evaluate step checks that both files list the same cells in the same order (it aligns the ATAC
rows on the RNA obs_names otherwise), calls `scmodal_jax.metrics.evaluate([z_rna, z_atac], [labels_rna,
labels_atac], paired=True, seed=0)` and appends one JSON line. The pairing is used only there: GLUE is given
two separate AnnData objects, no `use_obs_names`, no cell types, no batches (the unpaired, unsupervised mode of
the tutorial).

Preparation follows the GLUE RNA + ATAC tutorial (scglue 0.4.1 docs, "Stage 1: data preprocessing" and
"Stage 2: model training"):

* RNA: counts kept in `layers["counts"]`; `sc.pp.highly_variable_genes(flavor="seurat_v3")`;
  `normalize_total`, `log1p`, `scale`; `sc.tl.pca(n_comps=100, svd_solver="auto")`;
  `configure_dataset(rna, "NB", use_highly_variable=True, use_layer="counts", use_rep="X_pca")`.
* ATAC: `scglue.data.lsi(atac, n_components=100, n_iter=15)` on all peaks;
  `configure_dataset(atac, "NB", use_highly_variable=True, use_rep="X_lsi")`.
* Coordinates: genes from `hg38_genes_gencode.tsv.gz` by gene name (converted to 0-based BED as
  `get_gene_annotation` does: chromStart = start - 1; duplicated names resolved with its rule, sort by chrom and
  keep the last); peaks parsed from their `chrN-start-end` names as the tutorial does.
* Guidance graph: `rna_anchored_guidance_graph(rna, atac)` at its defaults (gene body + 2 kb promoter, no
  extension), then the subgraph on highly variable features of both modalities.
* Model: `fit_SCGLUE({"rna": rna, "atac": atac}, guidance_hvf, init_kws={"random_seed": seed})` with every
  other setting at its default (latent_dim 50, h_depth 2, h_dim 256, dropout 0.2, lr 2e-3, batch 128,
  val_split 0.1, automatic epochs / burn-in / patience, balancing weights estimated between pretrain and
  fine-tune); embeddings from `encode_data` (posterior means).

Settings changed from the tutorial, and why:

* `n_top_genes`: the tutorial asks for 2,000 highly variable genes; the file has 600, so all annotated genes are
  highly variable (`n_top_genes = n_genes`), as the brief allows at this size.
* 26 of the 600 genes are dropped because their (older) symbols are absent from the GENCODE table (e.g. H3F3A,
  HIST1H1B, FAM49B, AC/AL clones): GLUE's graph builder cannot place a gene without coordinates (the tutorial
  also drops unannotated genes). 574 genes remain.
* Gene coordinates come from the project's TSV rather than a GTF because no GTF is available; the join mimics
  `scglue.data.get_gene_annotation` exactly (see above).
* PCA and LSI keep 100 components: 500 cells x 574 genes / 600 peaks allow it, so nothing was reduced.
* `torch.set_num_threads(1)` (and OMP/MKL 1 thread) only to keep CPU use modest on a shared 2-core machine; it
  does not change the algorithm.
* Training directory: a temporary directory (removed afterwards) instead of the tutorial's "glue/".

Property of this data set worth knowing when reading the numbers: with GLUE's default guidance graph only ~38
of the 600 peaks lie within a gene body or 2 kb promoter of one of the 574 genes, so `propagate_highly_variable`
marks only those peaks as highly variable; the ATAC decoder reconstructs those peaks while the ATAC encoder
still reads the 100 LSI components of all 600 peaks. `--extend-range` (default 0, GLUE's default) exists for a
sensitivity check but was not used for the recorded runs.

Recorded runs (experiments/bmmc_multiome/glue_runs.jsonl, seeds 0-2, CPU, 1 torch thread, ~8.5 min per fit):
the discriminator mixes the two modalities (mixing metric ~11 of k=300, kBET 0.61-0.80) but cell types are not
matched (FOSCTTM 0.49-0.51, i.e. chance; label transfer 0.09-0.14). Diagnostic, not recorded: a 15-NN
classifier (5-fold CV) on the ATAC LSI of these 600 peaks recovers cell type at only 0.24 (RNA PCA: 0.54;
majority class 0.18), so the ATAC side carries little cell-type signal at this size.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RNA_FILE = "bmmc_multiome_starter_500c_rna600g.h5ad"
ATAC_FILE = "bmmc_multiome_starter_500c_atac600peaks.h5ad"
GENES_FILE = "hg38_genes_gencode.tsv.gz"
METRICS = ("label_transfer_accuracy", "foscttm", "pair_distance", "asw", "mixing_metric", "kbet")


def _annotate_genes(rna, genes_path: Path):
    """Gene coordinates by name, as `scglue.data.get_gene_annotation` joins a GTF (0-based BED starts)."""
    import pandas as pd

    genes = pd.read_csv(genes_path, sep="\t")
    genes = genes.sort_values("chrom", kind="stable").drop_duplicates(subset=["gene_name"], keep="last")
    genes = genes.set_index("gene_name").reindex(rna.var_names)
    rna.var["chrom"] = genes["chrom"].to_numpy()
    rna.var["chromStart"] = (genes["start"] - 1).to_numpy()
    rna.var["chromEnd"] = genes["end"].to_numpy()
    rna.var["strand"] = genes["strand"].to_numpy()
    keep = rna.var["chrom"].notna().to_numpy()
    dropped = rna.var_names[~keep].tolist()
    rna = rna[:, keep].copy()
    rna.var["chromStart"] = rna.var["chromStart"].astype(int)
    rna.var["chromEnd"] = rna.var["chromEnd"].astype(int)
    return rna, dropped


def fit(seed: int, out: Path, data_dir: Path, extend_range: int) -> None:
    """Prepare both files as in GLUE's RNA + ATAC tutorial, fit GLUE, save the two latents (runs in glue_venv)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import tempfile
    from importlib.metadata import version
    from itertools import chain

    import anndata as ad
    import scanpy as sc
    import scglue
    import torch

    torch.set_num_threads(1)
    t_total = time.perf_counter()
    rna = ad.read_h5ad(data_dir / RNA_FILE)
    atac = ad.read_h5ad(data_dir / ATAC_FILE)
    n_genes_file = rna.n_vars

    # RNA (tutorial stage 1)
    rna, dropped = _annotate_genes(rna, data_dir / GENES_FILE)
    rna.layers["counts"] = rna.X.copy()
    sc.pp.highly_variable_genes(rna, n_top_genes=min(2000, rna.n_vars), flavor="seurat_v3")
    sc.pp.normalize_total(rna)
    sc.pp.log1p(rna)
    sc.pp.scale(rna)
    n_pcs = min(100, rna.n_obs - 1, rna.n_vars - 1)
    sc.tl.pca(rna, n_comps=n_pcs, svd_solver="auto")

    # ATAC (tutorial stage 1)
    n_lsi = min(100, atac.n_obs - 1, atac.n_vars - 1)
    scglue.data.lsi(atac, n_components=n_lsi, n_iter=15)
    split = atac.var_names.str.split(r"[:-]")
    atac.var["chrom"] = split.map(lambda x: x[0])
    atac.var["chromStart"] = split.map(lambda x: x[1]).astype(int)
    atac.var["chromEnd"] = split.map(lambda x: x[2]).astype(int)

    guidance = scglue.genomics.rna_anchored_guidance_graph(rna, atac, extend_range=extend_range)
    scglue.graph.check_graph(guidance, [rna, atac])
    n_linked_peaks = int(atac.var["highly_variable"].sum())

    # Stage 2: training
    scglue.models.configure_dataset(rna, "NB", use_highly_variable=True, use_layer="counts", use_rep="X_pca")
    scglue.models.configure_dataset(atac, "NB", use_highly_variable=True, use_rep="X_lsi")
    guidance_hvf = guidance.subgraph(
        chain(rna.var.query("highly_variable").index, atac.var.query("highly_variable").index)
    ).copy()
    with tempfile.TemporaryDirectory(prefix="glue_baseline_") as tmp:
        t_fit = time.perf_counter()
        glue = scglue.models.fit_SCGLUE(
            {"rna": rna, "atac": atac},
            guidance_hvf,
            init_kws={"random_seed": seed},
            fit_kws={"directory": tmp},
        )
        fit_seconds = time.perf_counter() - t_fit
    z_rna = glue.encode_data("rna", rna)
    z_atac = glue.encode_data("atac", atac)
    total_seconds = time.perf_counter() - t_total

    settings = {
        "n_genes_file": n_genes_file,
        "n_genes_used": int(rna.n_vars),
        "genes_dropped_no_coordinates": dropped,
        "n_hvg": int(rna.var["highly_variable"].sum()),
        "n_pcs": n_pcs,
        "n_lsi": n_lsi,
        "extend_range": extend_range,
        "n_peaks": int(atac.n_vars),
        "n_linked_peaks": n_linked_peaks,
        "guidance_edges": int(guidance_hvf.number_of_edges()),
        "torch_threads": torch.get_num_threads(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        z_rna=z_rna.astype(np.float32),
        z_atac=z_atac.astype(np.float32),
        obs_rna=rna.obs_names.to_numpy(dtype=str),
        obs_atac=atac.obs_names.to_numpy(dtype=str),
        labels_rna=rna.obs["cell_type"].astype(str).to_numpy(dtype=str),
        labels_atac=atac.obs["cell_type"].astype(str).to_numpy(dtype=str),
        seed=seed,
        fit_seconds=fit_seconds,
        total_seconds=total_seconds,
        scglue_version=version("scglue"),
        torch_version=torch.__version__,
        settings=json.dumps(settings),
        command=shlex.join([sys.executable, *sys.argv]),
    )
    print(json.dumps({"out": str(out), "fit_seconds": round(fit_seconds, 1), **settings}))


def evaluate_npz(path: Path, append: Path | None) -> dict:
    """Score saved latents with our metrics (runs in the project venv) and optionally append a JSON line."""
    from scmodal_jax.metrics import evaluate

    f = np.load(path, allow_pickle=False)
    z_rna, z_atac = f["z_rna"], f["z_atac"]
    obs_rna, obs_atac = f["obs_rna"], f["obs_atac"]
    lab_rna, lab_atac = f["labels_rna"], f["labels_atac"]
    aligned = bool(np.array_equal(obs_rna, obs_atac))
    if not aligned:  # align ATAC rows on the RNA cell order (pairing is used only for scoring)
        pos = {c: i for i, c in enumerate(obs_atac)}
        if set(pos) != set(obs_rna.tolist()):
            raise ValueError("RNA and ATAC files do not hold the same cells")
        idx = np.array([pos[c] for c in obs_rna])
        z_atac, lab_atac = z_atac[idx], lab_atac[idx]
    metrics = evaluate([z_rna, z_atac], [lab_rna, lab_atac], paired=True, seed=0)
    settings = json.loads(str(f["settings"]))
    row = {
        "method": "glue",
        "scglue_version": str(f["scglue_version"]),
        "torch_version": str(f["torch_version"]),
        "seed": int(f["seed"]),
        "fit_seconds": round(float(f["fit_seconds"]), 2),
        "total_seconds": round(float(f["total_seconds"]), 2),
        "n_cells": int(z_rna.shape[0]),
        "latent_dim": int(z_rna.shape[1]),
        **{k: float(metrics[k]) for k in METRICS},
        "obs_names_identical": aligned,
        "settings": settings,
        "command": str(f["command"]),
        "evaluate_command": shlex.join(["JAX_PLATFORMS=cpu", sys.executable, *sys.argv]),
    }
    if append is not None:
        append.parent.mkdir(parents=True, exist_ok=True)
        with append.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="fit mode: .npz to write (run under /work/glue_venv)")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR)
    p.add_argument("--extend-range", type=int, default=0, help="guidance-graph extension in bp (GLUE default 0)")
    p.add_argument("--evaluate", type=Path, help="evaluate mode: .npz from the fit step (run under .venv)")
    p.add_argument("--append", type=Path, help="evaluate mode: JSONL file to append the row to")
    args = p.parse_args()
    if args.evaluate is not None:
        evaluate_npz(args.evaluate, args.append)
    elif args.out is not None:
        fit(args.seed, args.out, args.data_dir, args.extend_range)
    else:
        p.error("give --out (fit) or --evaluate (score)")


if __name__ == "__main__":
    main()
