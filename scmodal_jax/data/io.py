"""Export a fitted model to AnnData / MuData and read/write them.

The model is used through a small duck-typed interface, so any object with these members works:

* ``model.n_datasets`` -> int
* ``model.latent_`` -> list of ``n_datasets`` arrays (n_i x q), in dataset order
* ``model.impute(X, source=i, target=j)`` -> array (n x p_j): dataset ``i``'s model input mapped into
  dataset ``j``'s scaled feature space (``G_j(E_i(X))``).

A model that also has ``preprocessing_`` (its modality names) and ``add_results(adatas, impute=..., scale=...)``
(``SCMODAL``) names the modalities and imputes from the user's objects with what it stored, so ``datasets=`` is
not needed.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "ModelLike",
    "to_anndata",
    "average_duplicate_columns",
    "make_obs_names_unique",
    "write_h5ad",
    "read_h5ad",
    "to_mudata",
    "write_h5mu",
    "read_h5mu",
]

LATENT_KEY = "X_scmodal"
IMPUTED_PREFIX = "imputed_"  # obsm[IMPUTED_PREFIX + modality]: imputed features of that modality


class ModelLike(Protocol):
    """What :func:`to_anndata` needs from a model."""

    latent_: Sequence[np.ndarray]

    @property
    def n_datasets(self) -> int: ...

    def impute(self, X: Any, source: int, target: int) -> np.ndarray: ...


def average_duplicate_columns(values: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Collapse columns sharing a name into one column holding their mean.

    Linked features appear once per link pair in a model input (a gene linked to two proteins is two
    columns); this returns one column per distinct name, in order of first appearance.
    """
    values = np.asarray(values)
    names = pd.Index(pd.Series(list(names), dtype=object).astype(str))
    if values.ndim != 2 or values.shape[1] != len(names):
        raise ValueError(f"values of shape {values.shape} do not match {len(names)} feature names")
    codes, uniques = pd.factorize(names)
    if len(uniques) == len(names):
        return pd.DataFrame(values, columns=names)
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
    weights = sp.csr_matrix((1.0 / counts[codes], (np.arange(len(names)), codes)), shape=(len(names), len(uniques)))
    averaged = np.asarray(weights.T.dot(values.T).T, dtype=np.result_type(values.dtype, np.float32))
    return pd.DataFrame(averaged, columns=pd.Index(uniques))


def make_obs_names_unique(names_per_modality: Sequence[Sequence[str]], modality_names: Sequence[str]) -> list[str]:
    """Concatenate per-modality obs names, making them unique without dropping any cell.

    A name that occurs in more than one place gets ``"-<modality>"`` appended; if names are still repeated
    (duplicates inside one modality), ``-1``, ``-2``, ... are appended to the later copies.
    """
    flat = pd.Series([str(n) for names in names_per_modality for n in names], dtype=object)
    mods = np.repeat(np.asarray(modality_names, dtype=object), [len(n) for n in names_per_modality])
    dup = flat.duplicated(keep=False).to_numpy()
    flat[dup] = [f"{n}-{m}" for n, m in zip(flat[dup], mods[dup], strict=True)]
    if flat.duplicated().any():
        flat = pd.Series(ad.utils.make_index_unique(pd.Index(flat)).to_numpy(), dtype=object)
    return flat.tolist()


def _concat_obs(obs_list: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Outer-join obs tables (missing -> NaN), keeping categorical/boolean columns writable to h5ad."""
    frames = [o.reset_index(drop=True) for o in obs_list]
    combined = pd.concat(frames, axis=0, join="outer", ignore_index=True, sort=False)
    for col in combined.columns:
        kinds = [f[col].dtype for f in frames if col in f.columns]
        series = combined[col]
        if any(isinstance(k, pd.CategoricalDtype) for k in kinds) or (
            series.dtype == object and series.dropna().map(lambda v: isinstance(v, str)).all()
        ):
            cats = []
            for k in kinds:  # keep the input category order, then any new values
                cats.extend(k.categories if isinstance(k, pd.CategoricalDtype) else [])
            present = pd.unique(series.dropna())
            cats = list(dict.fromkeys([*cats, *present]))
            combined[col] = pd.Categorical(series, categories=cats)
        elif series.dtype == object and series.dropna().map(lambda v: isinstance(v, (bool, np.bool_))).all():
            combined[col] = series.astype("boolean")
    return combined


def per_modality_objects(data: Any, model: Any, n: int) -> list[Any]:
    """One object per model dataset, in model order, from a list, a dict by modality name or a MuData.

    A single AnnData (or matrix) is an error, never iterated cell by cell."""
    if hasattr(data, "obs_names") and not isinstance(getattr(data, "mod", None), Mapping):
        raise ValueError(
            f"expected one AnnData per dataset of the model ({n}: a list in model order, a dict by modality name or "
            f"a MuData), got a single {type(data).__name__} of {data.shape[0]} cells"
        )
    mods = getattr(data, "mod", None)
    if isinstance(mods, Mapping) or isinstance(data, Mapping):
        mods = dict(mods if isinstance(mods, Mapping) else data)
        stored = (getattr(model, "preprocessing_", None) or {}).get("modalities")
        names = [str(m) for m in stored] if stored and len(stored) == n else list(mods)
        missing = [m for m in names if m not in mods]
        if missing or len(names) != n:
            raise ValueError(f"the model's modalities are {names}; the input holds {list(mods)} (missing {missing})")
        return [mods[m] for m in names]
    if isinstance(data, (str, bytes, np.ndarray)) or not isinstance(data, Sequence):
        raise ValueError(f"expected one AnnData per dataset of the model, got {type(data).__name__}")
    return list(data)


def to_anndata(
    model: ModelLike,
    adatas: Sequence[ad.AnnData] | Mapping[str, ad.AnnData] | Any,
    modality_names: Sequence[str] | None = None,
    datasets: Sequence[Any] | None = None,
    feature_names: Sequence[Sequence[str]] | None = None,
    impute: bool = True,
    scaling: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    log1p_scale: bool = False,
    combined_X: Literal["empty", "latent"] = "empty",
) -> tuple[ad.AnnData, list[ad.AnnData]]:
    """Collect a fitted model's outputs into AnnData objects.

    Args:
        model: fitted model (see the module docstring for the interface used).
        adatas: one AnnData per dataset, in the model's dataset order (a list), or by modality name (a dict or a
            MuData); their ``obs`` are carried over.
        modality_names: a distinct name per dataset (default: the model's stored modality names, else
            ``modality_0``, ``modality_1``, ...).
        datasets: the model inputs (scaled matrices, cells x features) used for imputation. Default: a model
            with ``add_results`` (``SCMODAL``) imputes from ``adatas`` with its stored preprocessing (feature
            names, normalisation, scaling), the way it was fitted.
        feature_names: ``feature_names[j]`` names the columns of ``datasets[j]`` (default: ``adatas[j]
            .var_names`` when the widths agree). Repeated names (linked features) are averaged into one
            column.
        impute: add the imputed features of every other modality to each per-modality object.
        scaling: ``scaling[j] = (mean, std)`` per column of ``datasets[j]``, the z-score used to build it.
        log1p_scale: undo the z-score (``x * std + mean``) so imputed values are on the log1p scale.
        combined_X: ``"empty"`` gives the combined object an n x 0 ``X``; ``"latent"`` puts the latent
            there (``var_names`` ``latent_0``, ...).

    Returns:
        ``(combined, per_modality)``. ``combined`` holds every cell (datasets stacked in order), the union
        of the input ``obs`` columns (missing -> NaN), a categorical ``obs['modality']`` and
        ``obsm['X_scmodal']``. Obs names repeated across modalities get ``-<modality>`` appended (the input
        name is then kept in ``obs['original_obs_name']``); no cell is dropped. ``per_modality[i]`` is a
        copy of ``adatas[i]`` (same obs names) with ``obsm['X_scmodal']`` and, when ``impute``,
        ``obsm['imputed_<other>']`` DataFrames whose columns are the other modality's feature names (repeated
        names averaged).

    Raises:
        ValueError: mismatched numbers of datasets, cells, features or scaling vectors; missing inputs.
    """
    n = int(model.n_datasets)
    adatas = per_modality_objects(adatas, model, n)
    if len(adatas) != n:
        raise ValueError(f"got {len(adatas)} AnnData objects but the model has {n} datasets")
    if getattr(model, "latent_", None) is None:
        raise ValueError(
            "model.latent_ is not set: fit the model before exporting it (a model loaded from a periodic checkpoint "
            "or from a save made before scmodal_jax 0.2 has no latent: write it with model.add_results(data), "
            "which encodes the cells with the stored preprocessing, or refit)"
        )
    latent = [np.asarray(z) for z in model.latent_]
    if len(latent) != n:
        raise ValueError(f"model.latent_ has {len(latent)} arrays but the model has {n} datasets")
    for i, (z, a) in enumerate(zip(latent, adatas, strict=True)):
        if z.ndim != 2 or z.shape[0] != a.n_obs:
            raise ValueError(f"dataset {i}: latent has shape {z.shape} but the AnnData has {a.n_obs} cells")
    if modality_names is None:
        stored = (getattr(model, "preprocessing_", None) or {}).get("modalities")
        modality_names = stored if stored and len(stored) == n else [f"modality_{i}" for i in range(n)]
    names = [str(m) for m in modality_names]
    if len(names) != n or len(set(names)) != n:
        raise ValueError(f"modality_names must be {n} distinct names, got {modality_names!r}")

    # ---- combined object ---------------------------------------------------------------------------
    obs = _concat_obs([a.obs for a in adatas])
    input_names = [str(x) for a in adatas for x in a.obs_names]
    unique = make_obs_names_unique([a.obs_names for a in adatas], names)
    if unique != input_names:
        obs["original_obs_name"] = input_names
    obs["modality"] = pd.Categorical(np.repeat(names, [a.n_obs for a in adatas]), categories=names)
    obs.index = pd.Index(unique)
    Z = np.concatenate(latent, axis=0).astype(np.float32)
    if combined_X == "latent":
        combined = ad.AnnData(X=Z.copy(), obs=obs, var=pd.DataFrame(index=[f"latent_{k}" for k in range(Z.shape[1])]))
    elif combined_X == "empty":
        combined = ad.AnnData(X=np.zeros((Z.shape[0], 0), dtype=np.float32), obs=obs)
    else:
        raise ValueError(f"combined_X must be 'empty' or 'latent', got {combined_X!r}")
    combined.obsm[LATENT_KEY] = Z
    combined.uns["scmodal"] = {"modalities": list(names), "latent_key": LATENT_KEY}

    # ---- per-modality objects ----------------------------------------------------------------------
    per_modality = []
    for a, z in zip(adatas, latent, strict=True):
        out = a.copy()
        out.obsm[LATENT_KEY] = z.astype(np.float32)
        per_modality.append(out)
    if not impute or n < 2:
        return combined, per_modality

    if datasets is None:
        if not hasattr(model, "add_results"):
            raise ValueError("impute=True needs datasets= (the model input matrices) for this model")
        if feature_names is not None or scaling is not None:
            raise ValueError("feature_names= and scaling= describe datasets=; without it the model's own are used")
        return combined, _imputed_by_model(model, per_modality, names, log1p_scale)
    if len(datasets) != n:
        raise ValueError(f"got {len(datasets)} datasets but the model has {n}")
    shapes = [tuple(np.shape(x)) if not sp.issparse(x) else x.shape for x in datasets]
    for i, (shape, a) in enumerate(zip(shapes, adatas, strict=True)):
        if len(shape) != 2 or shape[0] != a.n_obs:
            raise ValueError(f"datasets[{i}] has shape {shape} but adatas[{i}] has {a.n_obs} cells")
    if feature_names is None:
        feature_names = []
        for j, (shape, a) in enumerate(zip(shapes, adatas, strict=True)):
            if a.n_vars != shape[1]:
                raise ValueError(
                    f"datasets[{j}] has {shape[1]} features but adatas[{j}] has {a.n_vars} variables; "
                    "pass feature_names="
                )
            feature_names.append(list(a.var_names))
    if len(feature_names) != n:
        raise ValueError(f"got {len(feature_names)} feature-name lists but the model has {n} datasets")
    feature_names = [[str(f) for f in fn] for fn in feature_names]
    for j, (fn, shape) in enumerate(zip(feature_names, shapes, strict=True)):
        if len(fn) != shape[1]:
            raise ValueError(f"feature_names[{j}] has {len(fn)} names but datasets[{j}] has {shape[1]} columns")
    if log1p_scale:
        if scaling is None or len(scaling) != n:
            raise ValueError(f"log1p_scale=True needs scaling= with {n} (mean, std) pairs")
        for j, pair in enumerate(scaling):
            if pair is None:
                continue
            mean, std = (np.asarray(v, dtype=np.float64).ravel() for v in pair)
            if mean.shape[0] != shapes[j][1] or std.shape[0] != shapes[j][1]:
                raise ValueError(f"scaling[{j}] needs {shapes[j][1]} means and stds, got {mean.shape}, {std.shape}")

    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            Y = np.asarray(model.impute(datasets[i], source=i, target=j), dtype=np.float64)
            if Y.shape != (adatas[i].n_obs, shapes[j][1]):
                raise ValueError(
                    f"model.impute(source={i}, target={j}) returned shape {Y.shape}, "
                    f"expected {(adatas[i].n_obs, shapes[j][1])}"
                )
            if log1p_scale and scaling[j] is not None:
                mean, std = (np.asarray(v, dtype=np.float64).ravel() for v in scaling[j])
                Y = Y * std + mean
            df = average_duplicate_columns(Y.astype(np.float32), feature_names[j])
            df.index = per_modality[i].obs_names
            per_modality[i].obsm[f"{IMPUTED_PREFIX}{names[j]}"] = df
    return combined, per_modality


def _imputed_by_model(model: Any, per_modality: list[ad.AnnData], names: list[str], log1p: bool) -> list[ad.AnnData]:
    """Imputations written by the model itself (stored preprocessing), renamed to ``names``."""
    latent = [out.obsm[LATENT_KEY] for out in per_modality]
    model.add_results(per_modality, impute=True, scale="log1p" if log1p else "scaled")
    own = [str(m) for m in model.modalities]
    for out, z in zip(per_modality, latent, strict=True):
        out.obsm[LATENT_KEY] = z  # model.latent_, as in the combined object
        moved = {names[j]: out.obsm.pop(f"{IMPUTED_PREFIX}{m}") for j, m in enumerate(own)
                 if f"{IMPUTED_PREFIX}{m}" in out.obsm}  # fmt: skip
        for name, df in moved.items():
            out.obsm[f"{IMPUTED_PREFIX}{name}"] = df
    return per_modality


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike, compression: str | None = "gzip") -> Path:
    """Write ``adata`` to ``.h5ad`` (creating parent folders); obsm DataFrames are kept as DataFrames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(path, compression=compression)
    return path


def read_h5ad(path: str | os.PathLike) -> ad.AnnData:
    """Read an ``.h5ad`` file written by :func:`write_h5ad` (obsm DataFrames come back as DataFrames)."""
    return ad.read_h5ad(Path(path))


def _mudata():
    try:
        import mudata
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "MuData support needs the optional 'mudata' package: pip install scmodal_jax[mudata]"
        ) from err
    return mudata


@contextlib.contextmanager
def _quiet_mudata() -> Iterator[None]:
    """Silence mudata 0.3's notice about its future update() defaults and shared var names."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="mudata")
        warnings.filterwarnings("ignore", message="Cannot join columns", category=UserWarning)
        yield


def to_mudata(
    per_modality: Sequence[ad.AnnData] | Mapping[str, ad.AnnData],
    modality_names: Sequence[str] | None = None,
    paired: bool = False,
) -> Any:
    """Bundle per-modality AnnData objects (e.g. from :func:`to_anndata`) into a ``mudata.MuData``.

    MuData treats equal obs names in different modalities as the same cell. For unpaired data
    (``paired=False``) names repeated across modalities are therefore made unique as in
    :func:`to_anndata` (input name kept in ``obs['original_obs_name']``), and the global
    ``obsm['X_scmodal']`` is filled from the modalities. With ``paired=True`` names are left alone.
    """
    mudata = _mudata()
    if isinstance(per_modality, Mapping):
        mods = {str(k): v.copy() for k, v in per_modality.items()}
    else:
        names = [f"modality_{i}" for i in range(len(per_modality))] if modality_names is None else modality_names
        if len(names) != len(per_modality):
            raise ValueError(f"{len(per_modality)} modalities but {len(names)} modality names")
        mods = {str(k): v.copy() for k, v in zip(names, per_modality, strict=True)}
    if not paired:
        keys = list(mods)
        unique = make_obs_names_unique([m.obs_names for m in mods.values()], keys)
        start = 0
        for m in mods.values():
            new = unique[start : start + m.n_obs]
            if list(new) != list(m.obs_names):
                m.obs["original_obs_name"] = m.obs_names.to_numpy()
                m.obs_names = new
            start += m.n_obs
    with _quiet_mudata():
        mdata = mudata.MuData(mods)
        if not paired and all(LATENT_KEY in m.obsm for m in mods.values()):
            frames = [pd.DataFrame(np.asarray(m.obsm[LATENT_KEY]), index=m.obs_names) for m in mods.values()]
            mdata.obsm[LATENT_KEY] = pd.concat(frames).loc[mdata.obs_names].to_numpy(dtype=np.float32)
    return mdata


def write_h5mu(mdata: Any, path: str | os.PathLike) -> Path:
    """Write a ``MuData`` (or a mapping / sequence of AnnData, passed through :func:`to_mudata`) to ``.h5mu``."""
    mudata = _mudata()
    if not isinstance(mdata, mudata.MuData):
        mdata = to_mudata(mdata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_mudata():
        mdata.write_h5mu(path)
    return path


def read_h5mu(path: str | os.PathLike) -> Any:
    """Read an ``.h5mu`` file into a ``mudata.MuData`` (needs the optional ``mudata`` package)."""
    mudata = _mudata()
    with _quiet_mudata():
        return mudata.read_h5mu(Path(path))
