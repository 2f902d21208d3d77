"""MaxFuse (PyPI `maxfuse` 0.0.2) as a baseline on a recipe's `Prepared` inputs, at its tutorial settings.

    pip install maxfuse==0.0.2      # adds igraph, leidenalg, texttable; numpy/scipy/pandas/anndata unchanged

MaxFuse gets exactly what scMODAL gets: the linked blocks `prepared.link_matrices()` as its shared arrays and
the full prepared (scaled, clipped) datasets as its active arrays. The settings are those of the MaxFuse
CITE-seq PBMC tutorial (`docs/citeseq_pbmc_evaluate.ipynb`: batches of at most 5,000 cells, matching ratio 3,
metacells of 2; graphs on 30 PCs, 15 neighbours, Leiden resolution 2; initial pivots on 25/20 PCs of the shared
arrays with smoothing weight 0.7; 3 refinement iterations with 30/30 PCs and 20 CCA components; 30% of the
pivots filtered) and the embedding evaluated is its first 15 CCA dimensions, as in the tutorial. Component
counts are capped at (number of features - 1) for panels narrower than the tutorial's (CyTOF vs ADT).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MaxFuseSettings:
    max_outward_size: int = 5000
    matching_ratio: int = 3
    metacell_size: int = 2
    n_neighbors: int = 15
    graph_svd: int = 30
    resolution: float = 2.0
    resolution_tol: float = 0.1
    init_wt: float = 0.7
    init_svd1: int = 25
    init_svd2: int = 20
    refine_wt: float = 0.7
    refine_svd: int = 30
    cca_components: int = 20
    n_iters: int = 3
    filter_prop: float = 0.3
    n_dims: int = 15

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TUTORIAL = MaxFuseSettings()


def _cap(k: int, x: np.ndarray) -> int:
    return int(max(1, min(k, x.shape[1] - 1, x.shape[0] - 1)))


def _drop_static(*arrays: np.ndarray) -> list[np.ndarray]:
    """Columns constant in a dataset carry nothing and break MaxFuse's scaling; shared arrays drop them jointly."""
    keep = np.all([a.std(axis=0) > 1e-5 for a in arrays], axis=0)
    return [np.ascontiguousarray(a[:, keep], dtype=np.float64) for a in arrays]


def _scipy_compat() -> None:
    """scanpy 1.11's neighbour code (called by MaxFuse's graph construction on more than 4,096 cells) calls
    `getnnz(axis=1)` on a scipy `csr_array`, which scipy >= 1.15 removed from sparse arrays; give it back."""
    import scipy.sparse as sp

    for cls in (sp.csr_array, sp.csc_array, sp.coo_array):
        if not hasattr(cls, "getnnz"):
            cls.getnnz = lambda self, axis=None: self._getnnz(axis=axis)  # noqa: B023


def maxfuse_latents(
    prepared: Any, seed: int = 0, settings: MaxFuseSettings = TUTORIAL, verbose: bool = False
) -> list[np.ndarray]:
    """The two datasets' MaxFuse CCA embeddings (first `settings.n_dims` dimensions), rows in dataset order."""
    try:
        import maxfuse as mf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("MaxFuse is not installed: pip install maxfuse==0.0.2") from exc
    if prepared.n_datasets != 2:
        raise ValueError("MaxFuse integrates exactly two datasets")
    _scipy_compat()
    ((left, right),) = prepared.link_matrices()
    shared1, shared2 = _drop_static(np.asarray(left), np.asarray(right))
    (active1,) = _drop_static(np.asarray(prepared.datasets[0]))
    (active2,) = _drop_static(np.asarray(prepared.datasets[1]))
    s = settings
    np.random.seed(seed)  # noqa: NPY002 - MaxFuse draws from numpy's global generator in places
    fusor = mf.model.Fusor(shared_arr1=shared1, shared_arr2=shared2, active_arr1=active1, active_arr2=active2)
    fusor.split_into_batches(
        max_outward_size=s.max_outward_size, matching_ratio=s.matching_ratio, metacell_size=s.metacell_size,
        seed=seed, verbose=verbose,
    )  # fmt: skip
    fusor.construct_graphs(
        n_neighbors1=s.n_neighbors, n_neighbors2=s.n_neighbors,
        svd_components1=_cap(s.graph_svd, active1), svd_components2=_cap(s.graph_svd, active2),
        resolution1=s.resolution, resolution2=s.resolution, resolution_tol=s.resolution_tol,
        leiden_seed=seed, verbose=verbose,
    )  # fmt: skip
    fusor.find_initial_pivots(
        wt1=s.init_wt, wt2=s.init_wt,
        svd_components1=_cap(s.init_svd1, shared1), svd_components2=_cap(s.init_svd2, shared2),
        verbose=verbose,
    )  # fmt: skip
    svd1, svd2 = _cap(s.refine_svd, active1), _cap(s.refine_svd, active2)
    fusor.refine_pivots(
        wt1=s.refine_wt, wt2=s.refine_wt, svd_components1=svd1, svd_components2=svd2,
        cca_components=min(s.cca_components, svd1, svd2), n_iters=s.n_iters, randomized_svd=False, svd_runs=1,
        verbose=verbose,
    )  # fmt: skip
    fusor.filter_bad_matches(target="pivot", filter_prop=s.filter_prop, verbose=verbose)
    emb1, emb2 = fusor.get_embedding(active_arr1=fusor.active_arr1, active_arr2=fusor.active_arr2)
    n_dims = min(s.n_dims, emb1.shape[1])
    return [np.asarray(emb1[:, :n_dims], np.float32), np.asarray(emb2[:, :n_dims], np.float32)]


if __name__ == "__main__":  # pragma: no cover - manual check
    import argparse
    import time

    from scmodal_jax.cli.config import DataConfig
    from scmodal_jax.data.builders import build
    from scmodal_jax.metrics import evaluate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", default="pbmc5k_cite")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    integ = build(DataConfig(name=args.dataset, data_dir=args.data_dir))
    t = time.perf_counter()
    latents = maxfuse_latents(integ.prepared, seed=args.seed, verbose=True)
    print(f"MaxFuse {time.perf_counter() - t:.1f}s")
    print(evaluate(latents, integ.prepared.labels, paired=integ.paired, seed=0))
