"""Preprocessing recipes: from AnnData objects to scMODAL inputs (feature matrices + links).

Every recipe returns a :class:`Prepared`: one dense float32 matrix per dataset (cells x features), the
links between consecutive datasets (which columns are linked, or explicit link matrices), and the metadata
needed to map results back (feature names, per-feature mean/std of the scaler, ``obs``, labels).

Recipes:

* :func:`prepare_rna_protein` -- RNA vs an antibody panel (CITE-seq ADT, CODEX, CyTOF), linked through the
  protein -> gene table of :mod:`scmodal_jax.data.links`;
* :func:`prepare_protein_protein` -- two antibody panels (e.g. CITE-seq ADT vs CyTOF);
* :func:`prepare_rna_atac` -- RNA vs ATAC gene activity (:mod:`scmodal_jax.data.gene_activity`), linked by
  shared highly variable genes, optionally through a joint PCA;
* :func:`prepare_generic` -- N >= 2 datasets chained by user-given name pairs.

Matrices may be numpy arrays, scipy sparse matrices or backed AnnData matrices: library sizes, HVG
selection and normalisation run on sparse row blocks, and only the selected features are densified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .hvg import column_mean_var, iter_row_chunks, select_hvg
from .links import ProteinGeneTable, protein_gene_pairs, shared_markers

__all__ = [
    "Scaling",
    "LinkBlock",
    "Prepared",
    "standardize",
    "check_counts",
    "prepare_rna_protein",
    "prepare_protein_protein",
    "prepare_rna_atac",
    "prepare_generic",
]

Matrix = Any  # np.ndarray | scipy sparse | backed AnnData matrix
Transform = Literal["auto", "counts", "arcsinh", "none"]


# ----------------------------------------------------------------------------------------------------------
# containers
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Scaling:
    """Per-feature z-scoring of one dataset: ``Z = clip((X - mean) / std, -max_value, max_value)``.

    ``mean``/``std`` are float64 arrays over the dataset's columns (``std`` of a constant feature is 1, so
    that feature becomes 0). ``mean is None`` means the dataset was not scaled.
    """

    mean: np.ndarray | None
    std: np.ndarray | None
    max_value: float | None

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Back to the normalised (pre-scaling) space (clipped values stay clipped)."""
        if self.mean is None or self.std is None:
            return np.asarray(Z)
        return np.asarray(Z) * self.std + self.mean


@dataclass
class LinkBlock:
    """Link between datasets ``pair = (i, j)``.

    Column links: ``left_cols``/``right_cols`` index the linked columns of ``datasets[i]``/``datasets[j]``
    (column ``left_cols[k]`` of ``i`` is linked to ``right_cols[k]`` of ``j``), ``names`` gives the original
    feature names of each pair. Explicit links (e.g. joint PCA): ``left_matrix``/``right_matrix`` are the
    link matrices, ``names`` the component names, and ``components`` the loadings (features x components)
    applied to the linked columns ``left_cols``/``right_cols``.
    """

    pair: tuple[int, int]
    names: list[tuple[str, str]]
    left_cols: np.ndarray | None = None
    right_cols: np.ndarray | None = None
    left_matrix: np.ndarray | None = None
    right_matrix: np.ndarray | None = None
    components: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        """Number of linked features (columns of the link matrices)."""
        if self.left_matrix is not None:
            return int(self.left_matrix.shape[1])
        return len(self.names)

    @property
    def explicit(self) -> bool:
        """True when the link matrices are stored (not columns of the datasets)."""
        return self.left_matrix is not None


@dataclass
class Prepared:
    """Inputs of scMODAL plus what is needed to map results back.

    Attributes:
        datasets: one float32 array (cells x features) per dataset, scaled and clipped.
        modalities: a name per dataset (``"rna"``, ``"protein"``, ``"atac"``, ...).
        feature_names: the original feature name of every column (duplicated when a feature is linked more
            than once, e.g. ``PTPRC`` for ``CD45RA`` and ``CD45RO``).
        links: one :class:`LinkBlock` per consecutive pair ``(i, i + 1)``.
        linked: per dataset, a boolean mask of the columns used by any column link.
        scaling: per dataset, the :class:`Scaling` used (mean/std per column).
        obs: per dataset, the cells' ``obs`` DataFrame (row order of ``datasets``).
        labels: per dataset, ``obs[label_key]`` as an array when a ``label_key`` was given, else ``None``.
        info: recipe details (normalisation targets, dropped constant links, HVG count, ...).
    """

    datasets: list[np.ndarray]
    modalities: list[str]
    feature_names: list[list[str]]
    links: list[LinkBlock]
    linked: list[np.ndarray]
    scaling: list[Scaling]
    obs: list[pd.DataFrame]
    labels: list[np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_datasets(self) -> int:
        return len(self.datasets)

    @property
    def n_linked(self) -> list[int | None]:
        """Per pair, the number of leading linked columns (same in both datasets), or ``None`` when the
        link of that pair is not a leading-column block (explicit matrices, chain middle datasets)."""
        out: list[int | None] = []
        for lb in self.links:
            k = len(lb.names)
            leading = (
                not lb.explicit
                and lb.left_cols is not None
                and lb.right_cols is not None
                and np.array_equal(lb.left_cols, np.arange(k))
                and np.array_equal(lb.right_cols, np.arange(k))
            )
            out.append(k if leading else None)
        return out

    def link_matrices(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(L, R), ...]`` per pair: ``L`` (cells of ``i`` x k) and ``R`` (cells of ``j`` x k), float32."""
        res = []
        for lb in self.links:
            i, j = lb.pair
            if lb.explicit:
                res.append((lb.left_matrix, lb.right_matrix))
            else:
                res.append((self.datasets[i][:, lb.left_cols], self.datasets[j][:, lb.right_cols]))
        return res

    def link_pairs(self) -> list[list[tuple[str, str]]]:
        """Linked feature names per pair (for explicit links: the features the projection was built on)."""
        return [list(lb.names) if not lb.explicit else list(self.info.get("linked_features", [])) for lb in self.links]


# ----------------------------------------------------------------------------------------------------------
# matrix helpers (sparse / backed aware)
# ----------------------------------------------------------------------------------------------------------


def _matrix(adata: Any, layer: str | None) -> Matrix:
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise KeyError(f"layer '{layer}' not found; available layers: {list(adata.layers.keys())}")
    return adata.layers[layer]


def _sample_values(X: Matrix, max_rows: int = 20_000) -> np.ndarray:
    """Stored values of (the first rows of) ``X``, for cheap sanity checks."""
    if sp.issparse(X):
        X = sp.csr_matrix(X) if not sp.isspmatrix_csr(X) else X
        return np.asarray(X.data)
    if isinstance(X, np.ndarray):
        return X.ravel()
    block = X[: min(max_rows, X.shape[0])]
    return np.asarray(block.data if sp.issparse(block) else block).ravel()


def check_counts(X: Matrix, what: str = "X", hint: str = "") -> None:
    """Raise ``ValueError`` unless ``X`` looks like raw counts (finite, non-negative integers).

    In-memory matrices are checked whole (the stored values of a sparse matrix); backed matrices on their
    first 20,000 rows.
    """
    v = _sample_values(X)
    if v.size == 0:
        return
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} contains NaN or infinite values; raw counts are expected.{hint}")
    if v.min() < 0:
        raise ValueError(
            f"{what} has negative values (min {v.min():.3g}): it looks scaled or log-transformed, but this "
            f"recipe expects raw counts.{hint}"
        )
    frac = np.abs(v - np.round(v))
    if frac.max() > 1e-3:
        example = v[np.argmax(frac)]
        raise ValueError(
            f"{what} has non-integer values (e.g. {example:.4g}): it looks normalised or transformed, but "
            f"this recipe expects raw counts.{hint}"
        )


def _detect_kind(X: Matrix) -> Literal["counts", "intensity", "transformed"]:
    """Guess what an antibody matrix holds: integer counts, raw intensities (CyTOF/CODEX), or values
    that were already transformed (arcsinh/log/scaled)."""
    v = _sample_values(X)
    if v.size == 0:
        return "counts"
    if v.min() >= 0 and np.all(np.abs(v - np.round(v)) <= 1e-3):
        return "counts"
    if np.quantile(v, 0.999) > 50:
        return "intensity"
    return "transformed"


def _take_columns(X: Matrix, cols: np.ndarray, chunk_size: int = 10_000) -> sp.csr_matrix | np.ndarray:
    """Columns ``cols`` (duplicates allowed) of ``X``; sparse stays sparse (CSR), float64."""
    cols = np.asarray(cols, dtype=np.int64)
    if isinstance(X, np.ndarray):
        return X[:, cols].astype(np.float64)
    if sp.issparse(X):
        return sp.csr_matrix(sp.csr_matrix(X)[:, cols], dtype=np.float64)
    blocks = [blk[:, cols] for _, _, blk in iter_row_chunks(X, chunk_size)]
    if all(sp.issparse(b) for b in blocks):
        return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float64)
    return np.vstack([b.toarray() if sp.issparse(b) else b for b in blocks]).astype(np.float64)


def _row_sums(X: Matrix, chunk_size: int = 10_000) -> np.ndarray:
    out = np.zeros(X.shape[0], dtype=np.float64)
    for a, b, blk in iter_row_chunks(X, chunk_size):
        out[a:b] = np.asarray(blk.sum(axis=1), dtype=np.float64).ravel()
    return out


def _scale_rows(B: sp.csr_matrix | np.ndarray, factor: np.ndarray) -> sp.csr_matrix | np.ndarray:
    if sp.issparse(B):
        B = sp.csr_matrix(B, dtype=np.float64, copy=True)
        B.data *= np.repeat(factor, np.diff(B.indptr))
        return B
    return np.asarray(B, dtype=np.float64) * factor[:, None]


def _apply_elementwise(B: sp.csr_matrix | np.ndarray, fn: Callable[[np.ndarray], np.ndarray]):
    """Apply a zero-preserving elementwise function (log1p, arcsinh) without densifying."""
    if sp.issparse(B):
        B = sp.csr_matrix(B, dtype=np.float64, copy=True)
        B.data = fn(B.data)
        return B
    return fn(np.asarray(B, dtype=np.float64))


def _normalize_log1p(
    B: sp.csr_matrix | np.ndarray, totals: np.ndarray, target_sum: float
) -> sp.csr_matrix | np.ndarray:
    """normalize_total (each cell to ``target_sum`` given its ``totals``) then log1p; empty cells stay 0."""
    factor = np.divide(target_sum, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    return _apply_elementwise(_scale_rows(B, factor), np.log1p)


def _dense(B: sp.csr_matrix | np.ndarray) -> np.ndarray:
    return B.toarray() if sp.issparse(B) else np.asarray(B)


def _hstack(blocks: Sequence[sp.csr_matrix | np.ndarray], n: int) -> sp.csr_matrix | np.ndarray:
    blocks = [b for b in blocks if b.shape[1] > 0]
    if not blocks:
        return np.zeros((n, 0))
    if all(sp.issparse(b) for b in blocks):
        return sp.hstack(blocks, format="csr")
    return np.hstack([_dense(b) for b in blocks])


def standardize(
    X: sp.spmatrix | np.ndarray, max_value: float | None = 10.0, ddof: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score every column of ``X`` and clip at ``+-max_value`` (as ``scanpy.pp.scale``).

    Mean and standard deviation (``ddof=1``) are computed on the sparse matrix; the result is dense.
    Constant columns get ``std = 1`` and become 0 (no NaN).

    Returns:
        ``(Z float32, mean float64, std float64)``; with ``max_value=None`` ``Z`` is not clipped.
    """
    mean, var = column_mean_var(X, ddof=ddof)
    std = np.sqrt(var)
    std[std == 0] = 1.0
    Z = (_dense(X).astype(np.float64) - mean) / std
    if max_value is not None:
        np.clip(Z, -max_value, max_value, out=Z)
    return Z.astype(np.float32), mean, std


def _nonconstant(B: sp.csr_matrix | np.ndarray) -> np.ndarray:
    _, var = column_mean_var(B, ddof=0)
    return var > 1e-12


def _labels(adatas_obs: Sequence[pd.DataFrame], label_key: str | None, names: Sequence[str]):
    if label_key is None:
        return None
    out = []
    for obs, name in zip(adatas_obs, names, strict=True):
        if label_key not in obs.columns:
            raise KeyError(
                f"label_key '{label_key}' is not a column of the {name} dataset's obs; available columns: "
                f"{list(obs.columns)}"
            )
        out.append(obs[label_key].to_numpy())
    return out


def _protein_input(protein: Any, rna: Any, protein_key: str) -> tuple[Matrix, list[str], pd.DataFrame]:
    """(matrix, marker names, obs) of the protein dataset: an AnnData, a DataFrame, or ``None`` to use
    ``rna.obsm[protein_key]`` (CITE-seq)."""
    import anndata as ad

    if protein is None:
        if protein_key not in rna.obsm:
            raise KeyError(
                f"protein=None but rna.obsm has no '{protein_key}'; available obsm keys: {list(rna.obsm.keys())}"
            )
        protein = rna.obsm[protein_key]
        if isinstance(protein, pd.DataFrame):
            return protein.to_numpy(dtype=np.float64), [str(c) for c in protein.columns], rna.obs.copy()
        raise TypeError(f"rna.obsm['{protein_key}'] must be a DataFrame with marker names as columns")
    if isinstance(protein, pd.DataFrame):
        obs = pd.DataFrame(index=protein.index.astype(str))
        return protein.to_numpy(dtype=np.float64), [str(c) for c in protein.columns], obs
    if isinstance(protein, ad.AnnData):
        return protein.X, [str(v) for v in protein.var_names], protein.obs.copy()
    raise TypeError("protein must be an AnnData, a DataFrame (cells x markers) or None")


def _transform_panel(
    X: Matrix, kind: str, target_sum: float | None, cofactor: float
) -> tuple[sp.csr_matrix | np.ndarray, dict[str, Any]]:
    """Normalise a whole antibody panel (all columns) according to ``kind``."""
    B = _take_columns(X, np.arange(X.shape[1]))
    if kind == "counts":
        totals = _row_sums(B)
        tgt = float(np.median(totals)) if target_sum is None else float(target_sum)
        return _normalize_log1p(B, totals, tgt), {"transform": "normalize_total+log1p", "target_sum": tgt}
    if kind == "arcsinh":
        return _apply_elementwise(B, lambda v: np.arcsinh(v / cofactor)), {
            "transform": "arcsinh",
            "cofactor": cofactor,
        }
    return B, {"transform": "none"}


def _resolve_kind(X: Matrix, transform: Transform, what: str) -> str:
    if transform == "auto":
        kind = _detect_kind(X)
        return {"counts": "counts", "intensity": "arcsinh", "transformed": "none"}[kind]
    if transform == "counts":
        check_counts(X, what, " Use transform='arcsinh' for intensities or 'none' for processed values.")
    if transform not in ("counts", "arcsinh", "none"):
        raise ValueError(f"transform must be 'auto', 'counts', 'arcsinh' or 'none', got {transform!r}")
    return transform


def _finish(
    blocks: list[sp.csr_matrix | np.ndarray], scale: bool, max_value: float | None
) -> tuple[np.ndarray, Scaling]:
    n = blocks[0].shape[0]
    B = _hstack(blocks, n)
    if scale:
        Z, mean, std = standardize(B, max_value=max_value)
        return Z, Scaling(mean, std, max_value)
    return _dense(B).astype(np.float32), Scaling(None, None, None)


def _index_of(names: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
    exact: dict[str, int] = {}
    upper: dict[str, int] = {}
    for i, n in enumerate(names):
        exact.setdefault(str(n), i)
        upper.setdefault(str(n).upper(), i)
    return exact, upper


# ----------------------------------------------------------------------------------------------------------
# recipes
# ----------------------------------------------------------------------------------------------------------


def prepare_rna_protein(
    rna: Any,
    protein: Any = None,
    table: ProteinGeneTable | pd.DataFrame | str | PathLike[str] | None = None,
    n_hvg: int | None = 3000,
    pairs: Sequence[tuple[str, str]] | None = None,
    protein_key: str = "protein_counts",
    layer: str | None = None,
    protein_transform: Transform = "auto",
    cofactor: float = 5.0,
    min_target_sum: float = 20.0,
    drop_constant_links: bool = True,
    max_value: float | None = 10.0,
    label_key: str | None = None,
    modalities: tuple[str, str] = ("rna", "protein"),
) -> Prepared:
    """RNA vs antibody panel (CITE-seq ADT, CODEX, CyTOF), linked through the protein -> gene table.

    Follows the scMODAL tutorials:

    * linked pairs (protein, gene) from :func:`~scmodal_jax.data.links.protein_gene_pairs` (a protein may
      link several genes and a gene several proteins: one column per pair on both sides);
    * linked RNA block and linked protein block: ``normalize_total`` with ``target_sum = max(median linked
      RNA counts per cell, min_target_sum)`` (each cell divided by its total over the block), then
      ``log1p``; pairs with a constant side are dropped (``drop_constant_links``);
    * unlinked RNA: the ``n_hvg`` Seurat-v3 HVGs (on counts, linked genes excluded; ``None`` keeps all
      unlinked genes), unlinked protein: all markers; both ``normalize_total`` to the median library size
      (totals over all features of the dataset) + ``log1p``;
    * each dataset z-scored per feature and clipped at ``max_value``; linked columns first, in pair order.

    Non-count panels: ``protein_transform="auto"`` treats integer values as counts (as above), raw
    intensities (CyTOF/CODEX, values > 50) with ``arcsinh(x / cofactor)`` and already transformed values as
    they are.

    Args:
        rna: AnnData with raw counts in ``X`` (or ``layer``); in memory, sparse or backed.
        protein: AnnData (markers in ``var_names``), DataFrame (cells x markers), or ``None`` for
            ``rna.obsm[protein_key]`` (CITE-seq).
        table: protein -> gene table (default: the curated table shipped with the package).
        n_hvg: number of unlinked HVGs kept (``None``: all unlinked genes).
        pairs: explicit ``(protein, gene)`` links instead of the table.
        label_key: obs column whose labels are returned in ``Prepared.labels`` (must exist in both).

    Raises:
        ValueError: counts expected but negative/non-integer values found; no protein <-> gene link.
        KeyError: missing ``label_key``, layer or ``protein_key``.
    """
    Xr = _matrix(rna, layer)
    check_counts(Xr, "RNA matrix", " Pass layer='counts' (or the layer holding raw counts).")
    Xp, prot_names, prot_obs = _protein_input(protein, rna, protein_key)
    gene_names = [str(g) for g in rna.var_names]
    labels = _labels([rna.obs, prot_obs], label_key, modalities)
    kind = _resolve_kind(Xp, protein_transform, "protein matrix")

    if pairs is None:
        pairs = protein_gene_pairs(prot_names, gene_names, table=table)
    g_exact, g_upper = _index_of(gene_names)
    p_exact, _ = _index_of(prot_names)
    p_idx, g_idx, names = [], [], []
    missing = []
    for p, g in pairs:
        gi = g_exact.get(str(g), g_upper.get(str(g).upper()))
        pi = p_exact.get(str(p))
        if gi is None or pi is None:
            missing.append((p, g))
            continue
        p_idx.append(pi)
        g_idx.append(gi)
        names.append((gene_names[gi], prot_names[pi]))
    if missing:
        raise ValueError(f"link pairs not found in the data (protein, gene): {missing[:10]}")
    p_idx_a, g_idx_a = np.asarray(p_idx, np.int64), np.asarray(g_idx, np.int64)

    rna_link = _take_columns(Xr, g_idx_a)
    prot_link = _take_columns(Xp, p_idx_a)
    dropped: list[tuple[str, str]] = []
    if drop_constant_links:
        keep = _nonconstant(rna_link) & _nonconstant(prot_link)
        dropped = [names[k] for k in np.flatnonzero(~keep)]
        if not keep.any():
            raise ValueError(f"every linked pair has a constant feature on one side: {names[:10]}")
        if not keep.all():
            g_idx_a, p_idx_a = g_idx_a[keep], p_idx_a[keep]
            names = [names[k] for k in np.flatnonzero(keep)]
            rna_link = rna_link[:, np.flatnonzero(keep)]
            prot_link = prot_link[:, np.flatnonzero(keep)]
    k = len(names)

    # linked blocks
    rna_link_tot = _row_sums(rna_link)
    target_link = max(float(np.median(rna_link_tot)), float(min_target_sum))
    rna_link_n = _normalize_log1p(rna_link, rna_link_tot, target_link)
    if kind == "counts":
        prot_link_n = _normalize_log1p(prot_link, _row_sums(prot_link), target_link)
    elif kind == "arcsinh":
        prot_link_n = _apply_elementwise(prot_link, lambda v: np.arcsinh(v / cofactor))
    else:
        prot_link_n = prot_link

    # unlinked RNA: HVGs on counts
    linked_genes = np.unique(g_idx_a)
    n_unlinked = Xr.shape[1] - linked_genes.size
    if n_hvg is None or n_hvg >= n_unlinked:
        hvg = np.setdiff1d(np.arange(Xr.shape[1]), linked_genes)
    elif n_hvg <= 0:
        hvg = np.zeros(0, np.int64)
    else:
        hvg = select_hvg(Xr, n_top_genes=n_hvg, exclude=linked_genes)
    lib = _row_sums(Xr)
    target_rna = float(np.median(lib))
    rna_rest = _normalize_log1p(_take_columns(Xr, hvg), lib, target_rna)

    # unlinked protein: whole rest of the panel
    rest_p = np.setdiff1d(np.arange(len(prot_names)), np.unique(p_idx_a))
    prest = _take_columns(Xp, rest_p)
    if kind == "counts":
        ptot = _row_sums(Xp)
        target_prot: float | None = float(np.median(ptot))
        prest_n = _normalize_log1p(prest, ptot, target_prot)
    elif kind == "arcsinh":
        target_prot = None
        prest_n = _apply_elementwise(prest, lambda v: np.arcsinh(v / cofactor))
    else:
        target_prot = None
        prest_n = prest

    Zr, sc_r = _finish([rna_link_n, rna_rest], True, max_value)
    Zp, sc_p = _finish([prot_link_n, prest_n], True, max_value)
    feats_r = [gene_names[i] for i in g_idx_a] + [gene_names[i] for i in hvg]
    feats_p = [prot_names[i] for i in p_idx_a] + [prot_names[i] for i in rest_p]
    ar = np.arange(k)
    return Prepared(
        datasets=[Zr, Zp],
        modalities=list(modalities),
        feature_names=[feats_r, feats_p],
        links=[LinkBlock(pair=(0, 1), names=names, left_cols=ar, right_cols=ar.copy())],
        linked=[np.arange(Zr.shape[1]) < k, np.arange(Zp.shape[1]) < k],
        scaling=[sc_r, sc_p],
        obs=[rna.obs.copy(), prot_obs],
        labels=labels,
        info={
            "recipe": "rna_protein",
            "protein_transform": kind,
            "target_sum_linked": target_link,
            "target_sum_rna": target_rna,
            "target_sum_protein": target_prot,
            "n_hvg": int(hvg.size),
            "dropped_links": dropped,
        },
    )


def prepare_protein_protein(
    a: Any,
    b: Any,
    pairs: Sequence[tuple[str, str]] | None = None,
    table: ProteinGeneTable | pd.DataFrame | str | PathLike[str] | None = None,
    transform: tuple[Transform, Transform] = ("auto", "auto"),
    cofactor: float = 5.0,
    target_sum: tuple[float | None, float | None] = (None, None),
    layer: tuple[str | None, str | None] = (None, None),
    drop_constant_links: bool = True,
    max_value: float | None = 10.0,
    label_key: str | None = None,
    modalities: tuple[str, str] = ("protein_a", "protein_b"),
) -> Prepared:
    """Two antibody panels (e.g. CITE-seq ADT counts vs CyTOF intensities).

    Links are the markers of both panels (:func:`~scmodal_jax.data.links.shared_markers`: names matched
    after normalisation and table synonyms). Per panel, ``transform``:

    * ``"counts"`` (ADT): ``normalize_total`` + ``log1p`` with ``target_sum`` = the median per-cell total of
      the *other* panel when that one is raw (counts or intensities), else the panel's own median;
    * ``"arcsinh"`` (raw CyTOF/CODEX intensities): ``arcsinh(x / cofactor)``;
    * ``"none"``: values kept (already transformed);
    * ``"auto"``: integer -> counts, non-integer with values > 50 -> arcsinh, otherwise none.

    Each panel is then z-scored per marker and clipped at ``max_value``; linked markers come first.
    """
    import anndata as ad

    mats, names, obs = [], [], []
    for x, lay in zip((a, b), layer, strict=True):
        if isinstance(x, pd.DataFrame):
            mats.append(x.to_numpy(dtype=np.float64))
            names.append([str(c) for c in x.columns])
            obs.append(pd.DataFrame(index=x.index.astype(str)))
        elif isinstance(x, ad.AnnData):
            mats.append(_matrix(x, lay))
            names.append([str(v) for v in x.var_names])
            obs.append(x.obs.copy())
        else:
            raise TypeError("each panel must be an AnnData or a DataFrame (cells x markers)")
    labels = _labels(obs, label_key, modalities)
    kinds = [_resolve_kind(m, t, f"{mod} matrix") for m, t, mod in zip(mats, transform, modalities, strict=True)]
    raw_totals = [float(np.median(_row_sums(m))) if k != "none" else None for m, k in zip(mats, kinds, strict=True)]

    if pairs is None:
        pairs = shared_markers(names[0], names[1], table=table)
    ia, ib = _index_of(names[0])[0], _index_of(names[1])[0]
    bad = [(x, y) for x, y in pairs if x not in ia or y not in ib]
    if bad:
        raise ValueError(f"link pairs not found in the panels: {bad[:10]}")
    cols_a = np.asarray([ia[x] for x, _ in pairs], np.int64)
    cols_b = np.asarray([ib[y] for _, y in pairs], np.int64)

    normed, infos = [], []
    for i, (m, k) in enumerate(zip(mats, kinds, strict=True)):
        tgt = target_sum[i]
        if tgt is None and k == "counts":
            other = raw_totals[1 - i]
            tgt = other if other is not None else raw_totals[i]
        B, inf = _transform_panel(m, k, tgt, cofactor)
        normed.append(B)
        infos.append(inf)

    link_pairs = [(names[0][x], names[1][y]) for x, y in zip(cols_a, cols_b, strict=True)]
    dropped: list[tuple[str, str]] = []
    if drop_constant_links:
        keep = _nonconstant(normed[0][:, cols_a]) & _nonconstant(normed[1][:, cols_b])
        dropped = [link_pairs[j] for j in np.flatnonzero(~keep)]
        if not keep.any():
            raise ValueError(f"every shared marker is constant in one panel: {link_pairs[:10]}")
        cols_a, cols_b = cols_a[keep], cols_b[keep]
        link_pairs = [link_pairs[j] for j in np.flatnonzero(keep)]
    k = len(link_pairs)
    rest_a = np.setdiff1d(np.arange(len(names[0])), cols_a)
    rest_b = np.setdiff1d(np.arange(len(names[1])), cols_b)
    order_a = np.concatenate([cols_a, rest_a])
    order_b = np.concatenate([cols_b, rest_b])
    Za, sa = _finish([normed[0][:, order_a]], True, max_value)
    Zb, sb = _finish([normed[1][:, order_b]], True, max_value)
    ar = np.arange(k)
    return Prepared(
        datasets=[Za, Zb],
        modalities=list(modalities),
        feature_names=[[names[0][i] for i in order_a], [names[1][i] for i in order_b]],
        links=[LinkBlock(pair=(0, 1), names=link_pairs, left_cols=ar, right_cols=ar.copy())],
        linked=[np.arange(Za.shape[1]) < k, np.arange(Zb.shape[1]) < k],
        scaling=[sa, sb],
        obs=obs,
        labels=labels,
        info={"recipe": "protein_protein", "transforms": infos, "dropped_links": dropped},
    )


def _joint_pca(L: np.ndarray, R: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the row-concatenation ``[L; R]`` -> projections of ``L`` and ``R`` and the loadings."""
    M = np.vstack([L, R]).astype(np.float64)
    mu = M.mean(axis=0)
    _, _, vt = np.linalg.svd(M - mu, full_matrices=False)
    V = vt[:n_components].T
    return ((L - mu) @ V).astype(np.float32), ((R - mu) @ V).astype(np.float32), V


def prepare_rna_atac(
    rna: Any,
    atac_gene_activity: Any,
    n_hvg: int = 3000,
    joint_pca: int | None = 30,
    n_hvg_atac: int = 0,
    layer: str | None = None,
    atac_layer: str | None = None,
    drop_constant_links: bool = True,
    max_value: float | None = 10.0,
    label_key: str | None = None,
    modalities: tuple[str, str] = ("rna", "atac"),
) -> Prepared:
    """RNA vs ATAC gene activity, linked by shared highly variable genes.

    * RNA: the ``n_hvg`` Seurat-v3 HVGs (on counts), ``normalize_total`` to the median library size +
      ``log1p``; genes that also have a gene activity score come first (the links).
    * ATAC: gene activity (e.g. :func:`~scmodal_jax.data.gene_activity.gene_activity`) of the linked genes,
      plus the ``n_hvg_atac`` most variable other gene-activity genes, ``normalize_total`` (median
      library size over all gene-activity genes) + ``log1p``.
    * both z-scored per feature and clipped at ``max_value``.
    * ``joint_pca``: when set, the link matrices are the first ``joint_pca`` principal components of the
      concatenated (cells of both datasets) scaled linked blocks; else the linked leading columns.

    Raises:
        ValueError: raw counts expected; no HVG of the RNA has a gene activity score.
    """
    Xr = _matrix(rna, layer)
    Xa = _matrix(atac_gene_activity, atac_layer)
    check_counts(Xr, "RNA matrix", " Pass layer='counts' (or the layer holding raw counts).")
    va = _sample_values(Xa)
    if va.size and (not np.all(np.isfinite(va)) or va.min() < 0):
        raise ValueError("gene activity matrix has negative or non-finite values; raw gene activity is expected")
    labels = _labels([rna.obs, atac_gene_activity.obs], label_key, modalities)
    gr = [str(g) for g in rna.var_names]
    ga = [str(g) for g in atac_gene_activity.var_names]

    hvg = select_hvg(Xr, n_top_genes=min(n_hvg, Xr.shape[1]))
    a_exact, a_upper = _index_of(ga)
    pairs_r, pairs_a = [], []
    for gi in hvg:
        ai = a_exact.get(gr[gi], a_upper.get(gr[gi].upper()))
        if ai is not None:
            pairs_r.append(gi)
            pairs_a.append(ai)
    if not pairs_r:
        raise ValueError(
            f"none of the {hvg.size} RNA HVGs has a gene activity score (RNA HVGs e.g. "
            f"{[gr[i] for i in hvg[:8]]}, gene activity genes e.g. {ga[:8]}); check gene naming"
        )
    cols_r = np.asarray(pairs_r, np.int64)
    cols_a = np.asarray(pairs_a, np.int64)
    lib_r, lib_a = _row_sums(Xr), _row_sums(Xa)
    tr, ta = float(np.median(lib_r)), float(np.median(lib_a))
    link_r = _normalize_log1p(_take_columns(Xr, cols_r), lib_r, tr)
    link_a = _normalize_log1p(_take_columns(Xa, cols_a), lib_a, ta)
    dropped: list[str] = []
    if drop_constant_links:
        keep = _nonconstant(link_r) & _nonconstant(link_a)
        dropped = [gr[i] for i in cols_r[~keep]]
        if not keep.any():
            raise ValueError("every shared HVG is constant in one modality")
        cols_r, cols_a = cols_r[keep], cols_a[keep]
        link_r, link_a = link_r[:, np.flatnonzero(keep)], link_a[:, np.flatnonzero(keep)]
    k = cols_r.size
    rest_r = np.setdiff1d(hvg, cols_r)
    rest_r_n = _normalize_log1p(_take_columns(Xr, rest_r), lib_r, tr)
    rest_a = np.zeros(0, np.int64)
    if n_hvg_atac > 0:
        rest_a = select_hvg(Xa, n_top_genes=n_hvg_atac, exclude=cols_a)
    rest_a_n = _normalize_log1p(_take_columns(Xa, rest_a), lib_a, ta)

    Zr, sr = _finish([link_r, rest_r_n], True, max_value)
    Za, sa = _finish([link_a, rest_a_n], True, max_value)
    names = [(gr[i], ga[j]) for i, j in zip(cols_r, cols_a, strict=True)]
    ar = np.arange(k)
    if joint_pca:
        nc = int(min(joint_pca, k, Zr.shape[0] + Za.shape[0] - 1))
        L, R, V = _joint_pca(Zr[:, :k], Za[:, :k], nc)
        link = LinkBlock(
            pair=(0, 1),
            names=[(f"PC{c + 1}", f"PC{c + 1}") for c in range(nc)],
            left_cols=ar,
            right_cols=ar.copy(),
            left_matrix=L,
            right_matrix=R,
            components=V,
        )
    else:
        link = LinkBlock(pair=(0, 1), names=names, left_cols=ar, right_cols=ar.copy())
    return Prepared(
        datasets=[Zr, Za],
        modalities=list(modalities),
        feature_names=[
            [gr[i] for i in cols_r] + [gr[i] for i in rest_r],
            [ga[i] for i in cols_a] + [ga[i] for i in rest_a],
        ],
        links=[link],
        linked=[np.arange(Zr.shape[1]) < k, np.arange(Za.shape[1]) < k],
        scaling=[sr, sa],
        obs=[rna.obs.copy(), atac_gene_activity.obs.copy()],
        labels=labels,
        info={
            "recipe": "rna_atac",
            "linked_features": names,
            "target_sum_rna": tr,
            "target_sum_atac": ta,
            "n_hvg": int(hvg.size),
            "joint_pca": int(link.n_features) if joint_pca else None,
            "dropped_links": dropped,
        },
    )


Normalization = Literal["none", "log1p", "counts", "arcsinh"] | Callable[[Any], Any]


def _normalize_generic(X: Matrix, cols: np.ndarray, how: Normalization, cofactor: float) -> Any:
    B = _take_columns(X, cols)
    if callable(how):
        return how(B)
    if how == "none":
        return B
    if how == "log1p":
        return _apply_elementwise(B, np.log1p)
    if how == "arcsinh":
        return _apply_elementwise(B, lambda v: np.arcsinh(v / cofactor))
    if how == "counts":
        lib = _row_sums(X)
        return _normalize_log1p(B, lib, float(np.median(lib)))
    raise ValueError(f"unknown normalisation {how!r}: use 'none', 'log1p', 'counts', 'arcsinh' or a callable")


def prepare_generic(
    adatas: Sequence[Any],
    links_by_name: Sequence[Sequence[tuple[str, str]]],
    normalize: Normalization | Sequence[Normalization] = "none",
    scale: bool = False,
    max_value: float | None = 10.0,
    features: Sequence[Sequence[str] | None] | None = None,
    layer: str | None = None,
    cofactor: float = 5.0,
    label_key: str | None = None,
    modalities: Sequence[str] | None = None,
) -> Prepared:
    """N >= 2 datasets chained by user-given links: ``links_by_name[i]`` pairs features of ``adatas[i]``
    with features of ``adatas[i + 1]``.

    Column order of dataset ``i``: the features linked to ``i - 1`` (pair order), then those linked to
    ``i + 1`` (pair order), each feature once (a feature linked on both sides or to several partners is
    one column that every link uses), then the other features (all, or those listed in ``features[i]``).

    Args:
        normalize: per dataset (or one for all): ``"none"`` (default), ``"log1p"``, ``"counts"``
            (``normalize_total`` to the median library size + ``log1p``; raw counts are checked),
            ``"arcsinh"`` (``arcsinh(x / cofactor)``) or a callable applied to the selected columns.
        scale: z-score every feature and clip at ``max_value``.
        features: per dataset, the unlinked features to keep (``None``: all).

    Raises:
        ValueError: fewer than two datasets, wrong number of link lists, an empty link list, or names
            absent from a dataset (listed).
    """
    n = len(adatas)
    if n < 2:
        raise ValueError("prepare_generic needs at least two datasets")
    if len(links_by_name) != n - 1:
        raise ValueError(f"{n} datasets need {n - 1} link lists (one per consecutive pair), got {len(links_by_name)}")
    modalities = list(modalities) if modalities is not None else [f"dataset{i}" for i in range(n)]
    norms = list(normalize) if isinstance(normalize, (list, tuple)) else [normalize] * n
    feats = list(features) if features is not None else [None] * n
    names = [[str(v) for v in ad_.var_names] for ad_ in adatas]
    idx = [_index_of(nm)[0] for nm in names]
    labels = _labels([ad_.obs for ad_ in adatas], label_key, modalities)

    link_cols: list[tuple[np.ndarray, np.ndarray]] = []
    for i, pl in enumerate(links_by_name):
        if len(pl) == 0:
            raise ValueError(f"no link between dataset {i} ({modalities[i]}) and {i + 1} ({modalities[i + 1]})")
        miss_l = [x for x, _ in pl if x not in idx[i]]
        miss_r = [y for _, y in pl if y not in idx[i + 1]]
        if miss_l or miss_r:
            raise ValueError(
                f"link names between dataset {i} and {i + 1} not found: in {modalities[i]}: {miss_l[:10]}, "
                f"in {modalities[i + 1]}: {miss_r[:10]}"
            )
        link_cols.append(
            (np.asarray([idx[i][x] for x, _ in pl], np.int64), np.asarray([idx[i + 1][y] for _, y in pl], np.int64))
        )

    datasets, fnames, linked_masks, scalings, positions = [], [], [], [], []
    for i, adata in enumerate(adatas):
        X = _matrix(adata, layer)
        if norms[i] == "counts":
            check_counts(X, f"{modalities[i]} matrix", " Use normalize='none' for processed values.")
        prev = link_cols[i - 1][1] if i > 0 else np.zeros(0, np.int64)
        nxt = link_cols[i][0] if i < n - 1 else np.zeros(0, np.int64)
        used = np.union1d(prev, nxt)
        if feats[i] is None:
            rest = np.setdiff1d(np.arange(len(names[i])), used)
        else:
            miss = [f for f in feats[i] if f not in idx[i]]
            if miss:
                raise ValueError(f"features not found in {modalities[i]}: {miss[:10]}")
            rest = np.asarray([idx[i][f] for f in feats[i] if idx[i][f] not in set(used.tolist())], np.int64)
        # A feature linked on both sides (or to several partners) is one column, used by every link.
        linked_cols = np.asarray(list(dict.fromkeys(np.concatenate([prev, nxt]).tolist())), np.int64)
        position = {int(c): k for k, c in enumerate(linked_cols)}
        cols = np.concatenate([linked_cols, rest])
        B = _normalize_generic(X, cols, norms[i], cofactor)
        Z, scl = _finish([B], scale, max_value)
        datasets.append(Z)
        scalings.append(scl)
        fnames.append([names[i][c] for c in cols])
        mask = np.zeros(cols.size, dtype=bool)
        mask[: linked_cols.size] = True
        linked_masks.append(mask)
        positions.append(
            (
                np.asarray([position[int(c)] for c in prev], np.int64),
                np.asarray([position[int(c)] for c in nxt], np.int64),
            )
        )

    links = []
    for i, pl in enumerate(links_by_name):
        links.append(
            LinkBlock(
                pair=(i, i + 1),
                names=[(str(x), str(y)) for x, y in pl],
                left_cols=positions[i][1],
                right_cols=positions[i + 1][0],
            )
        )
    return Prepared(
        datasets=datasets,
        modalities=modalities,
        feature_names=fnames,
        links=links,
        linked=linked_masks,
        scaling=scalings,
        obs=[ad_.obs.copy() for ad_ in adatas],
        labels=labels,
        info={"recipe": "generic", "normalize": [n_ if isinstance(n_, str) else "callable" for n_ in norms]},
    )
