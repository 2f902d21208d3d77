"""UMAP figures of an integrated latent, coloured by modality and by label."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def umap_embedding(latent: np.ndarray, seed: int = 0) -> np.ndarray:
    import umap  # imported here: numba start-up costs seconds

    n_neighbors = int(min(15, max(2, len(latent) - 1)))
    return umap.UMAP(n_neighbors=n_neighbors, random_state=seed, n_jobs=1).fit_transform(latent)


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
