"""The end-to-end tests' accuracy margins, measured over seeds at today's defaults (the numbers their comments give).

    python scripts/test_margins.py [--seeds 0 1 2] [--only synthetic bmmc_cli quickstart paper]

Each block runs what its test runs, with the training seed varied (everything else as in the test), and prints
the measured values beside the test's bound. Shared data from ../shared/data; the paper stand-ins are written to
a temporary folder by tests/standins.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def synthetic(seeds):
    import scmodal_jax as scm
    from scmodal_jax.data.synthetic import make_multimodal
    from scmodal_jax.metrics import foscttm, label_transfer_accuracy

    data = make_multimodal(n_cells=600, n_features=(30, 12), n_linked=6, n_clusters=4, link_noise=2.0, paired=True,
                           seed=0)  # fmt: skip
    (x0, x1), (l0, l1), k = data.datasets, data.labels, data.n_linked
    linked = label_transfer_accuracy(x0[:, :k], l0, x1[:, :k], l1)
    for seed in seeds:
        model = scm.SCMODAL(steps=500, steps_per_call=100, batch_size=256, hidden=128, disc_hidden=128, k_anchor=20,
                            lambda_anchor=5.0, progress=False, seed=seed, disc_gp_auto=False)  # fmt: skip
        model.fit(data.datasets, scm.first_columns(k))
        z0, z1 = model.latent_
        print(
            f"synthetic seed {seed}: label transfer {label_transfer_accuracy(z0, l0, z1, l1):.3f} (links "
            f"{linked:.3f}), FOSCTTM {foscttm(z0, z1):.3f} (links {foscttm(x0[:, :k], x1[:, :k]):.3f})",
            flush=True,
        )


def bmmc_cli(seeds):
    from test_train_cli import _compose

    from scmodal_jax.cli import config as config_module
    from scmodal_jax.data.builders import build
    from scmodal_jax.metrics import foscttm, label_transfer_accuracy
    from scmodal_jax.model import SCMODAL

    cfg = _compose(["+experiment=bmmc_cite", "train.steps=200", f"data.data_dir={ROOT.parent / 'shared' / 'data'}"])
    prep = build(cfg.data).prepared
    (left, right), labels = prep.link_matrices()[0], [np.asarray(x) for x in prep.labels]
    print(f"bmmc links: label transfer {label_transfer_accuracy(left, labels[0], right, labels[1]):.3f}, FOSCTTM "
          f"{foscttm(left, right):.3f}")  # fmt: skip
    for seed in [1234, *seeds]:
        hp = {**config_module.hyperparameters(cfg).to_dict(), "seed": seed}
        z0, z1 = SCMODAL(progress=False, **hp).fit(prep).latent_
        print(f"bmmc 200 steps seed {seed}: label transfer {label_transfer_accuracy(z0, labels[0], z1, labels[1]):.3f}"
              f", FOSCTTM {foscttm(z0, z1):.3f}", flush=True)  # fmt: skip


def quickstart(seeds):
    import mudata as md
    from test_quickstart import N_CELLS, N_GENES

    import scmodal_jax as scm
    from scmodal_jax.data.links import protein_gene_pairs
    from scmodal_jax.data.loaders.shared import pbmc5k_cite

    rna, protein = pbmc5k_cite(ROOT.parent / "shared" / "data")
    cells = np.random.default_rng(0).permutation(rna.n_obs)
    linked = {g for _, g in protein_gene_pairs(protein.var_names, rna.var_names)}
    genes = [g for g in rna.var_names if g in linked] + [g for g in rna.var_names if g not in linked][:N_GENES]
    rna = rna[cells[:N_CELLS], genes].copy()
    protein = protein[cells[N_CELLS : 2 * N_CELLS]].copy()
    truth = protein.obs.pop("cell_type").astype(str).to_numpy()
    for seed in [1234, *seeds]:
        mdata = md.MuData({"rna": rna.copy(), "protein": protein.copy()})
        model = scm.SCMODAL(steps=600, hidden=128, disc_hidden=128, batch_size=256, seed=seed, progress=False)
        model.fit(mdata, recipe="rna_protein")
        model.add_results(mdata)
        scm.transfer_labels(mdata["rna"], "cell_type", query=mdata["protein"])
        accuracy = float(np.mean(mdata["protein"].obs["predicted_cell_type"].astype(str).to_numpy() == truth))
        print(f"quickstart 600 steps seed {seed}: label transfer {accuracy:.3f}", flush=True)


def paper(seeds):
    import standins
    from test_paper_experiments import TRAINED, _compose, _latents, _linked_label_transfer

    from scmodal_jax.cli.train import run
    from scmodal_jax.metrics import foscttm, label_transfer_accuracy

    def one(name, tmp, extra, seed):
        import anndata as ad

        cfg = _compose(
            [f"+experiment={name}", f"data.cache_dir={tmp / 'cache'}", *TRAINED, *extra, f"train.seed={seed}"]
        )
        run_dir = tmp / f"{name}_{seed}"
        metrics = run(cfg, run_dir)
        return ad.read_h5ad(run_dir / "integrated.h5ad"), metrics

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        standins.write_hao2021(tmp / "cache")
        standins.write_stuart2019(tmp / "cache")
        labels_csv = standins.write_stuart2019(tmp / "cache")
        standins.write_levine2015(tmp / "cache")
        annotation = tmp / "genes.tsv"
        standins.write_teaseq(tmp / "cache", annotation)
        standins.write_tonsil(tmp / "cache")
        rename = {"T_cells": "T", "B_cells": "B", "Monocytes": "Mono"}
        for seed in seeds:
            _, m = one("citeseq_pbmc", tmp, [], seed)
            print(
                f"citeseq_pbmc seed {seed}: label transfer {m['label_transfer_accuracy']:.3f}, FOSCTTM "
                f"{m['foscttm']:.3f} (links {_linked_label_transfer('citeseq_pbmc', tmp):.3f})",
                flush=True,
            )
            extra = [f"data.options.labels={labels_csv}", "data.label_key=cell_type"]
            integrated, _ = one("bmc_cytof", tmp, extra, seed)
            adt, cytof = _latents(integrated)
            obs = integrated.obs
            labels = [obs["cell_type"][(obs["modality"] == m).to_numpy()].astype(str).replace(rename).to_numpy()
                      for m in ("adt", "cytof")]  # fmt: skip
            accuracy = label_transfer_accuracy(adt, labels[0], cytof, labels[1])
            print(f"bmc_cytof seed {seed}: label transfer {accuracy:.3f}", flush=True)
            integrated, _ = one("teaseq", tmp, [f"data.options.annotation={annotation}", "data.n_hvg=25"], seed)
            adt, rna, atac = _latents(integrated)
            print(f"teaseq seed {seed}: FOSCTTM adt-rna {foscttm(adt, rna):.3f}, rna-atac {foscttm(rna, atac):.3f}",
                  flush=True)  # fmt: skip
            _, m = one("tonsil", tmp, ["data.n_hvg=15"], seed)
            print(f"tonsil seed {seed}: label transfer {m['label_transfer_accuracy']:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=["synthetic", "bmmc_cli", "quickstart", "paper"])
    args = parser.parse_args()
    for name in args.only:
        globals()[name](args.seeds)


if __name__ == "__main__":
    main()
