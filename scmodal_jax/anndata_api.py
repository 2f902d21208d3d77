"""AnnData and MuData in and out of `SCMODAL`: what `fit` takes beyond matrices, and results written back.

`SCMODAL.fit` passes its inputs through :func:`fit_inputs`, which accepts, besides matrices:

* a MuData (modalities from ``mdata.mod``, in ``modalities=`` order or the MuData's own), or a dict or list of
  AnnData (or DataFrames); ``layer=`` reads ``adata.layers[layer]`` instead of ``.X`` (e.g. raw counts), one
  name for every modality or a dict by modality name (``{"rna": "counts", "prot": None}``, None = ``.X``);
* ``recipe=``: a recipe name (:data:`RECIPES`), run here on the raw objects, or a recipe's ``Prepared`` made
  from them; without a recipe the values are taken as already scaled, and raw counts get a ``UserWarning``;
* links by feature name: per consecutive pair (i, i+1) a table of (feature of i, feature of i+1) names (a list
  of pairs or a two-column DataFrame) or a built-in table: ``"protein_gene"`` (the protein -> gene table; the
  dataset with more features is the RNA) or ``"shared_markers"`` (two antibody panels); see
  :mod:`scmodal_jax.data.name_links`. With a recipe, links default to the recipe's own.

:func:`add_results` writes ``obsm['X_scmodal']`` and the imputations (``obsm['imputed_<modality>']``,
DataFrames named by the target's features) into the user's own objects; given a MuData, also into
``mdata.obsm`` (one row per cell of ``mdata.obs_names``: the mean over the modalities that hold the cell, NaN
where none does), where ``mu.pl`` and ``sc.pp.neighbors(mdata, use_rep="X_scmodal")`` look.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._rows import is_backed, iter_row_blocks, row_slice, to_dense
from .analysis.imputation import impute as impute_cells
from .analysis.mapping import encode
from .data.io import IMPUTED_PREFIX, LATENT_KEY
from .data.name_links import LINK_TABLES, is_name_links, resolve_name_links
from .data.recipes import prepare_generic, prepare_protein_protein, prepare_rna_atac, prepare_rna_protein

__all__ = ["RECIPES", "FitInputs", "fit_inputs", "add_results", "count_like_max", "layer_of"]

RECIPES = ("rna_protein", "protein_protein", "rna_atac", "generic")
# Largest value a scaled input reaches: the recipes clip z-scores at 10, and log1p of normalised counts stays below.
_SCALED_MAX = 10.0


@dataclass
class FitInputs:
    """What `training_inputs` takes (matrices or a `Prepared`, links) and what the model keeps about them."""

    datasets: Any
    links: Any
    record: dict[str, Any] | None = None  # model.preprocessing_ when no Prepared supplies one
    obs_names: list[pd.Index] | None = None


def is_mudata(x: Any) -> bool:
    return isinstance(getattr(x, "mod", None), Mapping)


def is_anndata(x: Any) -> bool:
    return hasattr(x, "obs_names") and hasattr(x, "var_names") and hasattr(x, "layers") and not is_mudata(x)


def is_prepared(x: Any) -> bool:
    return hasattr(x, "link_matrices") and hasattr(x, "datasets")


def _named(data: Any, modalities: Sequence[str] | None) -> tuple[list[str] | None, Any]:
    """(names or None, objects) of a MuData, a dict or a list; anything else comes back as it is."""
    if is_mudata(data) or isinstance(data, Mapping):
        mods = dict(data.mod if is_mudata(data) else data)
        names = [str(k) for k in mods] if modalities is None else [str(m) for m in modalities]
        missing = [m for m in names if m not in mods]
        if missing:
            raise ValueError(f"modalities {missing} not found; the input has {list(mods)}")
        return names, [mods[m] for m in names]
    if isinstance(data, (str, bytes, np.ndarray)) or sp.issparse(data) or not isinstance(data, Sequence):
        return None, data
    items = list(data)
    if modalities is not None and len(modalities) != len(items):
        raise ValueError(f"modalities= has {len(modalities)} names for {len(items)} datasets")
    return (None if modalities is None else [str(m) for m in modalities]), items


def layer_of(layer: str | Mapping[str, str | None] | None, names: Sequence[str] | None, i: int) -> str | None:
    """The layer dataset `i` is read from: `layer` itself (one for every modality) or `layer[name of i]` (a dict
    by modality name; a modality it does not name, or maps to None, is read from `.X`)."""
    if layer is None or isinstance(layer, str):
        return layer
    if not isinstance(layer, Mapping):
        raise TypeError(f"layer= must be a layer name or a dict by modality name, got {type(layer).__name__}")
    if names is None:
        raise ValueError("layer= as a dict needs named modalities: a MuData, a dict of AnnData, or modalities=")
    unknown = [k for k in layer if str(k) not in names]
    if unknown:
        raise ValueError(f"layer= names modalities {unknown} that the input does not have; its modalities: {names}")
    return layer.get(names[i])


def _label(names: list[str] | None, i: int) -> str:
    return f"dataset {i}" if names is None else f"dataset {i} ({names[i]})"


def _var_names(x: Any) -> list[str] | None:
    if is_anndata(x):
        return [str(v) for v in x.var_names]
    if isinstance(x, pd.DataFrame):
        return [str(c) for c in x.columns]
    return None


def _matrix(x: Any, layer: str | None, label: str) -> Any:
    """The values `fit` trains on: ``X`` or ``layers[layer]`` of an AnnData, a DataFrame's values, a matrix."""
    if is_anndata(x):
        if layer is None:
            return x  # `training_inputs` reads .X itself (backed data stay backed)
        if layer not in x.layers:
            raise KeyError(
                f"layer {layer!r} not found in {label}; its layers: {list(x.layers.keys())}. A layer per modality: "
                "layer={'rna': 'counts', 'prot': None} (None = .X)"
            )
        return x.layers[layer]
    if layer is not None:
        raise ValueError(f"layer={layer!r} needs AnnData inputs; {label} is a {type(x).__name__}")
    return x.to_numpy(dtype=np.float32) if isinstance(x, pd.DataFrame) else x


def _as_anndata(x: Any, layer: str | None, label: str) -> Any:
    """An AnnData whose ``X`` holds the values a recipe reads (``layers[layer]`` swapped in, not copied)."""
    import anndata as ad

    if isinstance(x, pd.DataFrame):
        x = ad.AnnData(x.to_numpy(dtype=np.float32), obs=pd.DataFrame(index=x.index.astype(str)),
                       var=pd.DataFrame(index=x.columns.astype(str)))  # fmt: skip
    if not is_anndata(x):
        raise ValueError(f"a recipe needs AnnData inputs (feature names in var_names); {label} is a {type(x).__name__}")
    if layer is None:
        return x
    return ad.AnnData(_matrix(x, layer, label), obs=x.obs, var=x.var)


def count_like_max(X: Any) -> float | None:
    """The largest value when the first rows of `X` look like raw counts (non-negative integers above the range
    of scaled data), else None."""
    if is_anndata(X):
        X = X.X
    if X is None or not (is_backed(X) or sp.issparse(X) or hasattr(X, "shape")):
        return None
    block = row_slice(X, 0, min(int(X.shape[0]), 2000))
    v = block.data if sp.issparse(block) else np.asarray(block)
    if v.size == 0 or not np.issubdtype(v.dtype, np.number) or not np.all(np.isfinite(v)):
        return None
    top = float(v.max())
    if v.min() < 0 or top <= _SCALED_MAX or not np.all(v == np.round(v)):
        return None
    return top


def _warn_if_counts(X: Any, label: str) -> None:
    top = count_like_max(X)
    if top is not None:
        warnings.warn(
            f"{label} looks like raw counts (non-negative integers up to {top:g}) but without recipe= fit takes the "
            f"values as already scaled. Pass recipe= (one of {', '.join(RECIPES)}) to normalise and scale them, "
            "or normalise, log1p and z-score them first (e.g. scanpy's normalize_total, log1p, scale).",
            UserWarning,
            stacklevel=_caller_outside_package(),  # the user's fit() call
        )


def _caller_outside_package() -> int:
    """The `stacklevel` (for a `warnings.warn` in the calling function) of the first frame outside this package."""
    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _columns(X: Any, cols: np.ndarray) -> np.ndarray:
    """Dense float32 columns `cols` of a dense, sparse or backed matrix (backed: read by row blocks)."""
    if is_anndata(X):
        X = X.X
    if isinstance(X, np.ndarray) or sp.issparse(X):
        return to_dense(X[:, cols] if isinstance(X, np.ndarray) else sp.csr_matrix(X)[:, cols])
    out = np.empty((int(X.shape[0]), len(cols)), np.float32)
    for start, stop, block in iter_row_blocks(X):
        out[start:stop] = to_dense(block[:, cols])
    return out


# ----------------------------------------------------------------------------------------------------------
# fit inputs
# ----------------------------------------------------------------------------------------------------------


def _run_recipe(recipe: str, items: list[Any], names: list[str] | None, links: Any, layer: Any,
                kwargs: dict[str, Any]) -> Any:  # fmt: skip
    labels = [_label(names, i) for i in range(len(items))]
    objs = [_as_anndata(x, layer_of(layer, names, i), labels[i]) for i, x in enumerate(items)]
    feats = [[str(v) for v in a.var_names] for a in objs]
    kw = dict(kwargs)
    if names is not None:
        kw.setdefault("modalities", list(names) if recipe == "generic" else tuple(names))
    if recipe == "generic":
        if links is None:
            raise ValueError("recipe='generic' needs links= by feature name (one table of name pairs per pair)")
        kw.setdefault("normalize", "counts")  # fit(recipe=...) starts from raw counts
        kw.setdefault("scale", True)
        return prepare_generic(objs, resolve_name_links(links, feats, labels), **kw)
    if len(objs) != 2:
        raise ValueError(f"recipe={recipe!r} takes two datasets, got {len(objs)}")
    default = {"rna_protein": "protein_gene", "protein_protein": "shared_markers"}.get(recipe)
    explicit = links is not None and not (isinstance(links, str) and links == default)
    if explicit and recipe == "rna_atac":
        raise ValueError("recipe='rna_atac' links RNA and ATAC by their shared highly variable genes; drop links=")
    if explicit and not is_name_links(links):
        raise ValueError(f"with recipe={recipe!r}, links= are feature names (a table of name pairs or {LINK_TABLES})")
    if recipe == "rna_protein":
        if explicit:  # the recipe takes (protein, gene) pairs; dataset 0 is the RNA
            kw.setdefault("pairs", [(p, g) for g, p in resolve_name_links(links, feats, labels)[0]])
        return prepare_rna_protein(objs[0], objs[1], **kw)
    if recipe == "protein_protein":
        if explicit:
            kw.setdefault("pairs", resolve_name_links(links, feats, labels)[0])
        return prepare_protein_protein(objs[0], objs[1], **kw)
    return prepare_rna_atac(objs[0], objs[1], **kw)


def fit_inputs(
    datasets: Any,
    links: Any = None,
    *,
    modalities: Sequence[str] | None = None,
    layer: str | Mapping[str, str | None] | None = None,
    recipe: str | Any = None,
    recipe_kwargs: Mapping[str, Any] | None = None,
) -> FitInputs:
    """The inputs of `SCMODAL.fit` (see the module docstring) as `training_inputs` takes them.

    Raises:
        ValueError: an unknown recipe or modality, `layer=` on matrices, a recipe's options without a recipe,
            links by name on matrices or with names not found (listed), cell counts that differ from a Prepared.
        KeyError: a layer not found.
    """
    if recipe_kwargs and not isinstance(recipe, str):
        raise ValueError("recipe_kwargs= are options of a recipe given by name (recipe='rna_protein', ...)")
    if (is_prepared(datasets) or is_prepared(recipe)) and links is not None and is_name_links(links):
        raise ValueError("a Prepared carries its own links; drop links= (or pass link matrices)")
    if is_prepared(datasets):
        if recipe is not None or layer is not None or modalities is not None:
            raise ValueError(
                "datasets is a recipe's Prepared already: recipe=, layer= and modalities= apply to AnnData"
            )
        obs = getattr(datasets, "obs", None) or [None] * len(datasets.datasets)
        return FitInputs(datasets, links, obs_names=[None if o is None else pd.Index(o.index) for o in obs])
    names, items = _named(datasets, modalities)
    if not isinstance(items, list):
        if is_anndata(items):
            raise ValueError(
                "datasets is one AnnData; fit takes one object per modality: a MuData, a dict or list of AnnData"
            )
        return FitInputs(items, links)
    labels = [_label(names, i) for i in range(len(items))]
    obs_names = [pd.Index(x.obs_names) if is_anndata(x) else None for x in items]
    if is_prepared(recipe):
        sizes = [int(x.shape[0]) for x in recipe.datasets]
        if len(items) != len(sizes) or any(int(x.shape[0]) != n for x, n in zip(items, sizes, strict=True)):
            raise ValueError(f"recipe= (a Prepared) has {sizes} cells; the datasets have {[x.shape[0] for x in items]}")
        return FitInputs(recipe, links, obs_names=obs_names)
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; use one of {RECIPES} or pass a Prepared")
        prepared = _run_recipe(recipe, items, names, links, layer, dict(recipe_kwargs or {}))
        # stored with the model: results are later read from the same layer(s)
        prepared.info["layer"] = dict(layer) if isinstance(layer, Mapping) else layer
        return FitInputs(prepared, None, obs_names=obs_names)
    if recipe is not None:
        raise ValueError(f"recipe must be one of {RECIPES} or a Prepared, got {type(recipe).__name__}")

    matrices = [_matrix(x, layer_of(layer, names, i), labels[i]) for i, x in enumerate(items)]
    for X, lab in zip(matrices, labels, strict=True):
        _warn_if_counts(X, lab)
    feats = [_var_names(x) for x in items]
    named = all(f is not None for f in feats)
    if links is not None and is_name_links(links):
        if not named:
            raise ValueError("links by feature name need AnnData (var_names) or DataFrame (columns) datasets")
        tables = resolve_name_links(links, feats, labels)
        pos = [{n: j for j, n in enumerate(f)} for f in feats]
        links = [
            (_columns(matrices[i], np.asarray([pos[i][x] for x, _ in t])),
             _columns(matrices[i + 1], np.asarray([pos[i + 1][y] for _, y in t])))
            for i, t in enumerate(tables)
        ]  # fmt: skip
    record = None
    if named or names is not None:
        record = {
            "modalities": names or [str(i) for i in range(len(items))],
            "feature_names": feats if named else None,
            "scaling": [None] * len(items),
            "info": {"layer": dict(layer) if isinstance(layer, Mapping) else layer},
        }
    return FitInputs(matrices, links, record, obs_names if any(o is not None for o in obs_names) else None)


# ----------------------------------------------------------------------------------------------------------
# results written back
# ----------------------------------------------------------------------------------------------------------


def _pooled_by_cell(mdata: Any, parts: list[tuple[pd.Index, Any]], key: str) -> Any:
    """One row per cell of the MuData (`mdata.obs_names` order): the mean of the rows that the modalities holding
    the cell wrote (a cell measured in two modalities, as in CITE-seq, gets the mean of its two latents), NaN for
    a cell that none of them holds. DataFrames stay DataFrames (columns kept, index the MuData's cells)."""
    width = parts[0][1].shape[1]
    total = np.zeros((mdata.n_obs, width), np.float64)
    count = np.zeros(mdata.n_obs, np.int64)
    for names, values in parts:
        pos = mdata.obs_names.get_indexer(names)
        if (pos < 0).any():
            raise ValueError(
                f"{int((pos < 0).sum())} cells of a modality are not in mdata.obs_names (e.g. "
                f"{list(names[pos < 0][:3])}); call mdata.update() after changing its modalities"
            )
        np.add.at(total, pos, np.asarray(values, np.float64))
        np.add.at(count, pos, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (total / count[:, None]).astype(np.float32)
    pooled[count == 0] = np.nan
    if isinstance(parts[0][1], pd.DataFrame):
        return pd.DataFrame(pooled, index=mdata.obs_names, columns=parts[0][1].columns)
    return pooled


def _by_model_modality(model: Any, data: Any, modalities: Sequence[str] | None) -> list[tuple[int, Any]]:
    """(model modality index, object) for every object of `data`."""
    model_names = [str(m) for m in model.modalities]
    n = len(model_names)
    if is_anndata(data) or isinstance(data, (np.ndarray, pd.DataFrame)) or sp.issparse(data):
        raise ValueError(
            f"expected one AnnData per modality of the model {model_names} (a list in that order, a dict by name or "
            f"a MuData), got a single {type(data).__name__}"
        )
    if is_mudata(data) or isinstance(data, Mapping):
        mods = dict(data.mod if is_mudata(data) else data)
        if modalities is not None:
            keys = [str(m) for m in modalities]
            if len(keys) != n or any(k not in mods for k in keys):
                raise ValueError(f"modalities= must name {n} of the input's modalities {list(mods)}, got {keys}")
            return [(i, mods[k]) for i, k in enumerate(keys)]
        if all(str(k) in model_names for k in mods):
            return [(model_names.index(str(k)), v) for k, v in mods.items()]
        if len(mods) == n:
            return list(enumerate(mods.values()))
        raise ValueError(f"the input's modalities {list(mods)} are not the model's {model_names}; pass modalities=")
    items = list(data)
    if len(items) != n:
        raise ValueError(f"got {len(items)} objects but the model has {n} modalities {model_names}")
    return list(enumerate(items))


def add_results(
    model: Any,
    data: Any,
    impute: bool | str | Sequence[str] = False,
    *,
    layer: str | Mapping[str, str | None] | None = None,
    input: str | None = None,
    scale: str | None = None,
    modalities: Sequence[str] | None = None,
    key_added: str | None = None,
) -> Any:
    """Write the shared latent (``obsm[key_added]``, by default ``LATENT_KEY``) and imputations into the user's
    objects; return `data`.

    See `SCMODAL.add_results` for the arguments. Cells the model was fitted on (same obs names, same order)
    get ``model.latent_``; other cells are encoded from their values with the stored preprocessing.
    """
    key_added = LATENT_KEY if key_added is None else key_added
    model_names = [str(m) for m in model.modalities]
    pairs = _by_model_modality(model, data, modalities)
    rec = getattr(model, "preprocessing_", None) or {}
    info = rec.get("info") or {}
    recipe = info.get("recipe")
    layer = info.get("layer") if layer is None else layer  # one name, or a dict by modality
    kind = input or ("counts" if recipe else "scaled")
    scale = scale or ("log1p" if recipe else "scaled")
    if impute is True:
        targets = list(range(len(model_names)))
    elif impute is False or impute is None:
        targets = []
    else:
        wanted = [impute] if isinstance(impute, str) else [str(t) for t in impute]
        unknown = [t for t in wanted if t not in model_names]
        if unknown:
            raise ValueError(f"impute={unknown} are not modalities of the model: {model_names}")
        targets = [model_names.index(t) for t in wanted]
    fitted = getattr(model, "obs_names_", None)
    latent = getattr(model, "latent_", None)
    written: dict[str, list[tuple[pd.Index, Any]]] = {key_added: []}
    for i, obj in pairs:
        if not is_anndata(obj):
            raise ValueError(
                f"add_results writes into AnnData objects; modality {model_names[i]} is {type(obj).__name__}"
            )
        layer_i = layer_of(layer, model_names, i)
        if rec.get("feature_names"):
            source, options = obj, {"layer": layer_i}  # features selected by name
        else:
            source, options = _matrix(obj, layer_i, model_names[i]), {}
            source = source.X if is_anndata(source) else source
        same = (fitted is not None and latent is not None and fitted[i] is not None
                and obj.obs_names.equals(fitted[i]))  # fmt: skip
        z = latent[i] if same else encode(model, source, i, input=kind, **options)
        obj.obsm[key_added] = np.asarray(z, np.float32)
        written[key_added].append((obj.obs_names, obj.obsm[key_added]))
        for t in targets:
            if t == i:
                continue
            df = impute_cells(model, source, i, t, scale=scale, input=kind, **options)
            df.index = obj.obs_names
            key = f"{IMPUTED_PREFIX}{model_names[t]}"
            obj.obsm[key] = df
            written.setdefault(key, []).append((obj.obs_names, df))
    if is_mudata(data):
        for key, parts in written.items():
            data.obsm[key] = _pooled_by_cell(data, parts, key)
    return data
