"""A synthetic multi-modal generator with known ground truth, for the README's default job and fast tests.

Cells of every modality come from the same clusters in a hidden state space. Each modality sees the state
through its own random nonlinear map plus noise. The first `n_linked` features of every modality are noisy,
modality-distorted readouts of one shared linear map of the state: the "weakly linked" features. With
`paired=True` the modalities observe the same hidden cells (row i of each dataset is one cell).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticData:
    datasets: list[np.ndarray]
    """Per modality, an (n_cells, n_features) float32 matrix, z-scored per feature, linked columns first."""
    labels: list[np.ndarray]
    """Per modality, the cluster of each cell (strings 'c0', 'c1', ...)."""
    n_linked: int
    """The first n_linked columns of every dataset are linked to the same columns of the next."""
    hidden_state: list[np.ndarray]
    """Per modality, the hidden state of each cell (the ground truth the latent should recover)."""
    paired: bool


def make_multimodal(
    n_cells: int | Sequence[int] = 1000,
    n_features: Sequence[int] = (200, 40),
    n_linked: int = 15,
    n_clusters: int = 6,
    state_dim: int = 8,
    link_noise: float = 1.0,
    noise: float = 0.5,
    paired: bool = False,
    seed: int = 0,
) -> SyntheticData:
    """Generate N = len(n_features) modalities of clustered cells with weakly linked leading features."""
    n_mod = len(n_features)
    if n_mod < 2:
        raise ValueError("make_multimodal needs at least 2 modalities")
    sizes = [int(n_cells)] * n_mod if np.ndim(n_cells) == 0 else [int(n) for n in n_cells]
    if len(sizes) != n_mod:
        raise ValueError(f"n_cells has {len(sizes)} entries for {n_mod} modalities")
    if paired and len(set(sizes)) != 1:
        raise ValueError("paired data need the same number of cells in every modality")
    if any(n_linked >= p for p in n_features):
        raise ValueError(f"n_linked={n_linked} must be smaller than every modality's n_features {tuple(n_features)}")
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_clusters, state_dim))
    cluster_weights = rng.dirichlet(np.full(n_clusters, 5.0))
    shared_link_map = rng.normal(size=(state_dim, n_linked)) / np.sqrt(state_dim)

    def draw_cells(n):
        cluster = rng.choice(n_clusters, size=n, p=cluster_weights)
        return cluster, centres[cluster] + rng.normal(scale=0.7, size=(n, state_dim))

    shared = draw_cells(sizes[0]) if paired else None
    datasets, labels, states = [], [], []
    for p, n in zip(n_features, sizes, strict=True):
        cluster, state = shared if paired else draw_cells(n)
        n_private = p - n_linked
        w1 = rng.normal(size=(state_dim, 64)) / np.sqrt(state_dim)
        w2 = rng.normal(size=(64, n_private)) / 8.0
        private = np.tanh(state @ w1) @ w2 + noise * rng.normal(size=(n, n_private))
        # Each modality distorts the shared readout (scale, shift, monotone nonlinearity) and adds noise.
        gain = rng.uniform(0.5, 1.5, size=n_linked)
        linked = np.tanh(gain * (state @ shared_link_map)) + link_noise * rng.normal(scale=0.5, size=(n, n_linked))
        x = np.hstack([linked, private])
        x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
        datasets.append(x.astype(np.float32))
        labels.append(np.array([f"c{c}" for c in cluster]))
        states.append(state.astype(np.float32))
    return SyntheticData(datasets, labels, n_linked, states, paired)
