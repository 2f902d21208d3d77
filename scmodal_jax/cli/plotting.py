"""UMAP figures of an integrated latent, coloured by modality and by label."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def umap_neighbours(latent: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean neighbours of every cell, itself first at distance 0, as umap-learn's search returns them:
    (indices, distances), each (n, n_neighbors)."""
    from .._neighbors import DEFAULT_BLOCK_SIZE, center32, knn

    (centred,) = center32(np.asarray(latent, dtype=np.float32))
    n = len(centred)
    sq, index = knn(centred, centred, n_neighbors, DEFAULT_BLOCK_SIZE, query_ids=np.arange(n), self_mode="first")
    return index, np.sqrt(np.maximum(sq, 0.0))


def umap_embedding(latent: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-d UMAP of `latent` on its exact nearest neighbours (`umap_neighbours`).

    Given the neighbours, umap-learn skips its own search, whose numba compilation took about 7 of a CLI run's
    20 s of UMAP on 1,200 cells (its search is exact below 4,096 cells too)."""
    import umap  # imported here: numba start-up costs seconds

    latent = np.asarray(latent, dtype=np.float32)
    n_neighbors = int(min(15, max(2, len(latent) - 1)))
    index, distances = umap_neighbours(latent, n_neighbors)
    with warnings.catch_warnings():  # no search index: only `transform` of new cells is unavailable, never used
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        reducer = umap.UMAP(n_neighbors=n_neighbors, random_state=seed, n_jobs=1, precomputed_knn=(index, distances))
        return reducer.fit_transform(latent)


def _scatter(ax, xy: np.ndarray, values: np.ndarray, title: str) -> None:
    categories = list(dict.fromkeys(values.tolist()))
    cmap = __import__("matplotlib").colormaps["tab20"]
    for k, cat in enumerate(categories):
        sel = values == cat
        ax.scatter(xy[sel, 0], xy[sel, 1], s=2, color=cmap(k % 20), label=str(cat), rasterized=True)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(categories) <= 25:
        ax.legend(markerscale=4, fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)


def umap_plots(
    latent: np.ndarray,
    colourings: dict[str, np.ndarray],
    out_dir: Path,
    max_cells: int = 20_000,
    seed: int = 0,
) -> dict[str, Path]:
    """One PNG per colouring (`umap_<name>.png`) of a UMAP of `latent`, subsampled to `max_cells`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(latent), size=min(max_cells, len(latent)), replace=False))
    xy = umap_embedding(latent[keep], seed)
    paths = {}
    for name, values in colourings.items():
        fig, ax = plt.subplots(figsize=(6, 5))
        _scatter(ax, xy, np.asarray(values).astype(str)[keep], f"scMODAL latent by {name}")
        fig.tight_layout()
        path = Path(out_dir) / f"umap_{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths[f"umap_{name}"] = path
    return paths
