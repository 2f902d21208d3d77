"""Imputation of one modality's features for cells of another, named in the target's own features.

``G_target(E_source(x))`` composes through the shared latent, so any (source, target) pair of a model with
N >= 2 modalities works (``source == target`` gives the autoencoder reconstruction). Results are:

* named by the target's feature names, a name repeated in the model (a linked feature used by several links,
  e.g. ``PTPRC`` for ``CD45RA`` and ``CD45RO``) averaged back into one column (first-appearance order);
* on the model's scaled space (``scale="scaled"``) or back on the recipe's normalised (log1p) scale
  (``scale="log1p"``: ``z * std + mean`` with the stored scaling, per model column, before averaging; a
  dataset that was not z-scored is returned as is);
* computed in row blocks of ``block_size`` cells (results identical bit for bit whatever the block size: the
  model always runs on zero-padded chunks of ``mapping.MODEL_BATCH`` rows): :func:`iter_impute` yields
  blocks, :func:`impute` fills an in-memory array or any preallocated array-like (``np.memmap``, ``h5py``
  dataset), :func:`write_imputed` streams into ``.h5ad``, ``.h5``, ``.npy`` or ``.csv`` files. Memory is
  O(block_size x features) whatever the number of cells.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ._common import check_block_size, matrix_and_names, stored_scaling
from .mapping import DEFAULT_BLOCK_SIZE, fixed_shape_call, iter_preprocess
from .normalization import model_feature_names, require_preprocessing, resolve_modality

__all__ = ["Scale", "DuplicateAverager", "imputed_feature_names", "iter_impute", "impute", "write_imputed"]

Scale = Literal["scaled", "log1p"]
SCALES = ("scaled", "log1p")


class DuplicateAverager:
    """Collapses columns sharing a name into their mean (one column per distinct name, first-appearance order)."""

    def __init__(self, names: Sequence[str]):
        codes, uniques = pd.factorize(pd.Index([str(n) for n in names]))
        self.names = [str(u) for u in uniques]
        self.first = np.asarray([int(np.flatnonzero(codes == c)[0]) for c in range(len(uniques))], np.int64)
        counts = np.bincount(codes, minlength=len(uniques))
        self.groups = [(int(c), np.flatnonzero(codes == c)) for c in np.flatnonzero(counts > 1)]

    @property
    def identity(self) -> bool:
        return not self.groups

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.identity:
            return block
        out = block[:, self.first]
        for c, cols in self.groups:
            out[:, c] = block[:, cols].mean(axis=1)
        return out


def imputed_feature_names(model: Any, target: int | str, average_duplicates: bool = True) -> list[str]:
    """Column names of :func:`impute`'s output for ``target``."""
    names = model_feature_names(model, target)
    return DuplicateAverager(names).names if average_duplicates else names


def iter_impute(
    model: Any,
    X: Any,
    source: int | str,
    target: int | str,
    *,
    scale: Scale = "scaled",
    average_duplicates: bool = True,
    input: str = "scaled",
    block_size: int = DEFAULT_BLOCK_SIZE,
    **options: Any,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, values)``: the imputed ``target`` features (float32, :func:`imputed_feature_names`
    columns) of source cells ``start:stop``.

    Args:
        X: source cells: by default (``input="scaled"``) the model's input matrix of ``source`` (numpy, scipy
            sparse, ``np.memmap``, ``h5py`` dataset, or an AnnData/DataFrame whose features are then selected
            by name); with ``input="counts"``/``"normalized"`` new cells preprocessed as in
            :func:`scmodal_jax.analysis.mapping.preprocess` (``options``: ``layer``, ``library_size``, ...).
        scale: ``"scaled"`` (model space) or ``"log1p"`` (stored z-score undone).
        average_duplicates: average columns sharing a feature name.
    """
    s = resolve_modality(model, source, "source")
    t = resolve_modality(model, target, "target")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    block_size = check_block_size(block_size)
    inverse = None
    if scale == "log1p":
        require_preprocessing(model, "scale='log1p'")
        inverse = stored_scaling(model, t)
    averager = DuplicateAverager(model_feature_names(model, t)) if average_duplicates else None
    for start, stop, z in iter_preprocess(model, X, s, input=input, block_size=block_size, **options):
        y = fixed_shape_call(lambda x, b: model.impute(x, source=s, target=t, batch_size=b), z)
        if inverse is not None:
            mean, std, _ = inverse
            y = (y.astype(np.float64) * std + mean).astype(np.float32)
        if averager is not None:
            y = averager(y)
        yield start, stop, np.ascontiguousarray(y, dtype=np.float32)


def impute(
    model: Any,
    X: Any,
    source: int | str,
    target: int | str,
    *,
    scale: Scale = "scaled",
    average_duplicates: bool = True,
    input: str = "scaled",
    block_size: int = DEFAULT_BLOCK_SIZE,
    out: Any = None,
    **options: Any,
) -> Any:
    """Imputed ``target`` features for the ``source`` cells in ``X`` (see :func:`iter_impute`).

    Returns a DataFrame (cells x target feature names; index = the input's obs names when it has any) when
    ``out`` is None; otherwise fills ``out`` (a preallocated array-like of shape (n_cells, n_features), e.g. an
    ``np.memmap`` or ``h5py`` dataset) block by block and returns it.
    """
    t = resolve_modality(model, target, "target")
    names = imputed_feature_names(model, t, average_duplicates)
    _, _, obs_names = matrix_and_names(X, options.get("layer"), options.get("feature_names"))
    n = int(X.shape[0]) if not hasattr(X, "n_obs") else int(X.n_obs)
    if out is not None and tuple(out.shape) != (n, len(names)):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(n, len(names))}")
    dest = np.empty((n, len(names)), np.float32) if out is None else out
    blocks = iter_impute(
        model, X, source, t, scale=scale, average_duplicates=average_duplicates, input=input,
        block_size=block_size, **options,
    )  # fmt: skip
    for start, stop, y in blocks:
        dest[start:stop] = y
    if out is not None:
        return out
    return pd.DataFrame(dest, columns=pd.Index(names), index=None if obs_names is None else pd.Index(obs_names))


def write_imputed(
    path: str | PathLike[str],
    model: Any,
    X: Any,
    source: int | str,
    target: int | str,
    *,
    obs_names: Sequence[str] | None = None,
    obs: pd.DataFrame | None = None,
    compression: str | None = None,
    scale: Scale = "scaled",
    average_duplicates: bool = True,
    input: str = "scaled",
    block_size: int = DEFAULT_BLOCK_SIZE,
    **options: Any,
) -> Path:
    """Stream the imputed features into a file, ``block_size`` cells at a time (never all in memory).

    Formats by suffix: ``.h5ad`` (AnnData: ``X`` = imputed values, ``var_names`` = target features, ``obs`` =
    ``obs`` or the cells' names, ``uns['scmodal_imputation']``), ``.h5`` (datasets ``values``,
    ``obs_names``, ``feature_names``), ``.npy`` (a float32 array; names in ``<path>.features.txt`` and
    ``<path>.obs.txt``), ``.csv``/``.tsv`` (optionally ``.gz``; first column the cell names).
    """
    path = Path(path)
    s = resolve_modality(model, source, "source")
    t = resolve_modality(model, target, "target")
    names = imputed_feature_names(model, t, average_duplicates)
    _, _, input_obs = matrix_and_names(X, options.get("layer"), options.get("feature_names"))
    n = int(X.shape[0]) if not hasattr(X, "n_obs") else int(X.n_obs)
    if obs is not None:
        obs_names = [str(o) for o in obs.index]
    if obs_names is None:
        obs_names = input_obs or [f"cell{j}" for j in range(n)]
    obs_names = [str(o) for o in obs_names]
    if len(obs_names) != n:
        raise ValueError(f"{len(obs_names)} obs names for {n} cells")
    meta = {
        "source": model.modalities[s], "target": model.modalities[t], "scale": scale,
        "average_duplicates": bool(average_duplicates), "block_size": int(block_size),
    }  # fmt: skip
    blocks = iter_impute(
        model, X, s, t, scale=scale, average_duplicates=average_duplicates, input=input, block_size=block_size,
        **options,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix == ".h5ad":
        _write_h5ad(path, blocks, n, names, obs_names, obs, meta, compression, block_size)
    elif path.suffix == ".h5":
        import h5py

        with h5py.File(path, "w") as f:
            ds = f.create_dataset("values", shape=(n, len(names)), dtype="float32", compression=compression,
                                  chunks=(max(1, min(block_size, n)), max(1, len(names))) if n else None)  # fmt: skip
            for start, stop, y in blocks:
                ds[start:stop] = y
            f.create_dataset("obs_names", data=np.asarray(obs_names, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("feature_names", data=np.asarray(names, dtype=object), dtype=h5py.string_dtype())
            f.attrs["scmodal_imputation"] = json.dumps(meta)
    elif path.suffix == ".npy":
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, len(names)))
        for start, stop, y in blocks:
            mm[start:stop] = y
        mm.flush()
        del mm
        Path(f"{path}.features.txt").write_text("\n".join(names) + "\n")
        Path(f"{path}.obs.txt").write_text("\n".join(obs_names) + "\n")
    elif suffixes.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
        sep = "\t" if ".tsv" in suffixes else ","
        first = True
        for start, stop, y in blocks:
            df = pd.DataFrame(y, columns=pd.Index(names), index=pd.Index(obs_names[start:stop], name="cell"))
            df.to_csv(path, sep=sep, mode="w" if first else "a", header=first,
                      compression="gzip" if suffixes.endswith(".gz") else None)  # fmt: skip
            first = False
        if first:  # no cells
            pd.DataFrame(columns=pd.Index(names), index=pd.Index([], name="cell")).to_csv(path, sep=sep)
    else:
        raise ValueError(f"unknown output format {path.name!r}: use .h5ad, .h5, .npy, .csv or .tsv (optionally .gz)")
    return path


def _write_h5ad(path, blocks, n, names, obs_names, obs, meta, compression, block_size) -> None:
    """An AnnData written without X, then X added as a chunked dense h5 dataset filled block by block."""
    import anndata as ad
    import h5py

    if obs is None:
        obs = pd.DataFrame(index=pd.Index(obs_names))
    else:
        obs = obs.copy()
        obs.index = pd.Index(obs_names)
    shell = ad.AnnData(obs=obs, var=pd.DataFrame(index=pd.Index(names)))
    shell.uns["scmodal_imputation"] = meta
    shell.write_h5ad(path)
    with h5py.File(path, "a") as f:
        if "X" in f:
            del f["X"]
        chunks = (max(1, min(block_size, n)), max(1, len(names))) if n and names else None
        ds = f.create_dataset("X", shape=(n, len(names)), dtype="float32", chunks=chunks, compression=compression)
        ds.attrs["encoding-type"] = "array"
        ds.attrs["encoding-version"] = "0.2.0"
        for start, stop, y in blocks:
            ds[start:stop] = y
