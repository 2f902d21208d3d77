"""Two more label-free signals along the stored convergence runs, beside label transfer: do they fall where label
transfer falls (the BMMC cross-batch set) and rise where it rises?

    python scripts/neighbourhood_signals.py bmmc_cite_cross_batch:2 pbmc_cytof:2 [--store /work/convergence_store]

For each run (dataset:seed) whose latents scripts/convergence.py kept in --store, on the stopping signal's fixed
subsample (`runtime.stopping.subsample_rows`: up to 1,000 cells per dataset) and k = 15:

* `within`: each dataset's own structure kept: the mean overlap of a cell's k nearest neighbours in the latent
  and in the first 30 principal components of its input;
* `cross_links`: the mean overlap of a cell's k nearest latent neighbours in the next dataset with its k nearest
  neighbours there on the linked features (unit rows, centred).

It prints their Spearman correlation with label transfer over the 40 evaluations and a few rows of the curves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from scmodal_jax._neighbors import unit_rows

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
CURVES = ROOT / "experiments" / "convergence" / "curves.jsonl"


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]


def _cross(q: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    return NearestNeighbors(n_neighbors=k).fit(r).kneighbors(q, return_distance=False)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


def _unit_centred(x: np.ndarray) -> np.ndarray:
    x = unit_rows(x)
    return x - x.mean(axis=0)


def main(argv: list[str] | None = None) -> None:
    from bench_accuracy import build_integration

    from scmodal_jax.runtime.stopping import STOP_SUBSAMPLE_SEED, subsample_rows

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="dataset:seed")
    parser.add_argument("--store", default="/work/convergence_store")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("-k", type=int, default=15)
    args = parser.parse_args(argv)
    curves = {(r["dataset"], r["seed"]): r for r in map(json.loads, CURVES.read_text().splitlines())}
    for run in args.runs:
        dataset, seed = run.rsplit(":", 1)
        record = curves[(dataset, int(seed))]
        prepared = build_integration(dataset, args.data_dir).prepared
        xs = [np.asarray(x.toarray() if hasattr(x, "toarray") else x, np.float64) for x in prepared.datasets]
        rows = subsample_rows([len(x) for x in xs], 1000, STOP_SUBSAMPLE_SEED)
        own = [_neighbours(PCA(min(30, x.shape[1] - 1), random_state=0).fit_transform(x[r]), args.k)
               for x, r in zip(xs, rows, strict=True)]  # fmt: skip
        left, right = prepared.link_matrices()[0]
        on_links = _cross(_unit_centred(np.asarray(left)[rows[0]]), _unit_centred(np.asarray(right)[rows[1]]), args.k)
        series = []
        for e in record["evals"]:
            path = Path(args.store) / f"{dataset}_s{seed}_{record['steps']}" / f"latent_{e['step']:06d}.npz"
            with np.load(path) as z:
                zs = [z[f"arr_{i}"][r] for i, r in enumerate(rows)]
            centre = np.concatenate(zs).mean(axis=0)
            within = np.mean([_overlap(_neighbours(z, args.k), o) for z, o in zip(zs, own, strict=True)])
            cross = _overlap(_cross(zs[0] - centre, zs[1] - centre, args.k), on_links)
            series.append((e["step"], e["label_transfer_accuracy"], within, cross, e["quality_link_consistency"]))
        a = np.array(series)
        rho = [spearmanr(a[:, 1], a[:, j])[0] for j in (2, 3, 4)]
        print(f"== {run}: Spearman with label transfer over the steps: within {rho[0]:+.2f}, cross_links "
              f"{rho[1]:+.2f}, link consistency {rho[2]:+.2f}")  # fmt: skip
        for row in a[[0, 1, 3, 7, 11, 19, 27, 39]]:
            step, lt, within, cross, lc = row
            print(f"  step {step:5.0f}  label transfer {lt:.3f}  within {within:.3f}  cross_links {cross:.3f}  "
                  f"link consistency {lc:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
