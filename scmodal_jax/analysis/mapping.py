"""Map new cells of a trained modality into the shared latent of a saved model (no retraining).

A model fitted from a recipe's ``Prepared`` inputs stores, in ``model.preprocessing_``, the feature names of
every dataset (model column order), the per-feature z-score (``mean``, ``std``, ``max_value``) and the
recipe's ``info`` (normalisation targets). :func:`preprocess` replays that preprocessing on new cells:

1. **feature selection**: the model's features are looked up by name in the input (``var_names`` of an
   AnnData, columns of a DataFrame, or ``feature_names=``); a name repeated in the model (a linked feature used
   by several links) takes the same input column each time. Exact names first, then a case-insensitive match
   when it is unique. Missing features raise a ``ValueError`` that lists them.
2. **normalisation** (``input="counts"`` only): the recipe's rule, per block of model columns (see
   :func:`normalization_plan`). For ``normalize_total+log1p`` blocks, each cell is scaled to the stored
   ``target_sum`` given its total, then ``log1p``; the total is either the cell's sum over the block's model
   columns (``totals="block"``, as the recipe does for linked blocks, duplicated columns counted once per
   column) or over *every* column of the input matrix (``totals="input"``, as the recipe does for the other
   features: the library size over all genes/markers of the input object). Cells with a zero total stay 0.
   ``library_size=`` overrides the ``"input"`` totals (an array or an ``obs`` column) when the new data hold a
   different feature panel from the training data.
3. **z-score and clip**: ``clip((x - mean) / std, -max_value, max_value)`` with the stored statistics
   (skipped when the dataset was not scaled).

``input="normalized"`` starts at step 3 (values already on the recipe's normalised, e.g. log1p, scale) and
``input="scaled"`` takes values already in the model's input space (only step 1).

Everything runs on row blocks (``block_size`` cells), so backed AnnData objects and large matrices stream.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._rows import iter_row_blocks, to_dense
from ..data.io import LATENT_KEY
from ._common import check_block_size, matrix_and_names, n_features, stored_scaling
from .normalization import (
    NormStep,
    model_feature_names,
    normalization_plan,
    require_preprocessing,
    resolve_modality,
)

log = logging.getLogger(__name__)

__all__ = [
    "NormStep",
    "InputKind",
    "resolve_modality",
    "require_preprocessing",
    "model_feature_names",
    "normalization_plan",
    "select_features",
    "iter_preprocess",
    "preprocess",
    "encode",
    "map_cells",
]

InputKind = Literal["counts", "normalized", "scaled"]
INPUT_KINDS = ("counts", "normalized", "scaled")
DEFAULT_BLOCK_SIZE = 4096
#: Rows per compiled model call. Blocks are cut into chunks of this many rows and the last chunk is zero-padded,
#: so every call has the same shape and results do not depend on the block size (bit for bit).
MODEL_BATCH = 1024


# ----------------------------------------------------------------------------------------------------------
# feature selection and row blocks
# ----------------------------------------------------------------------------------------------------------


def select_features(model_names: Sequence[str], input_names: Sequence[str], what: str = "input") -> np.ndarray:
    """Input column of every model feature (duplicates allowed): exact name, else a unique case-insensitive
    match. Raises ``ValueError`` listing the missing features."""
    exact: dict[str, int] = {}
    upper: dict[str, list[int]] = {}
    for j, name in enumerate(input_names):
        exact.setdefault(str(name), j)
        upper.setdefault(str(name).upper(), []).append(j)
    cols, missing = [], []
    for name in model_names:
        j = exact.get(name)
        if j is None:
            cand = upper.get(name.upper(), [])
            j = cand[0] if len(cand) == 1 else None
        if j is None:
            missing.append(name)
        cols.append(-1 if j is None else j)
    if missing:
        uniq = list(dict.fromkeys(missing))
        shown = ", ".join(uniq[:30]) + (f", ... ({len(uniq)} in all)" if len(uniq) > 30 else "")
        raise ValueError(
            f"{len(uniq)} of the model's {len(set(model_names))} features are missing from the {what}: {shown}"
        )
    return np.asarray(cols, np.int64)


def _check_counts_block(block: Any, start: int, modality: str) -> None:
    v = block.data if sp.issparse(block) else np.asarray(block)
    if v.size == 0:
        return
    if not np.all(np.isfinite(v)) or v.min() < 0 or np.abs(v - np.round(v)).max() > 1e-3:
        raise ValueError(
            f"input='counts' but the {modality} values from cell {start} on are not non-negative integers (they "
            "look normalised or scaled): pass input='normalized' for values on the recipe's normalised (log1p) "
            "scale or input='scaled' for values already in the model's input space"
        )


def _library_size(library_size: Any, data: Any, n: int) -> np.ndarray | None:
    if library_size is None:
        return None
    if isinstance(library_size, str):
        if not hasattr(data, "obs") or library_size not in data.obs.columns:
            raise ValueError(f"library_size={library_size!r} is not an obs column of the input")
        library_size = data.obs[library_size].to_numpy()
    arr = np.asarray(library_size, dtype=np.float64).ravel()
    if arr.shape[0] != n:
        raise ValueError(f"library_size has {arr.shape[0]} values but the input has {n} cells")
    return arr


def iter_preprocess(
    model: Any,
    data: Any,
    modality: int | str,
    *,
    input: InputKind = "counts",
    layer: str | None = None,
    feature_names: Sequence[str] | None = None,
    library_size: Any = None,
    normalization: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, Z)`` row blocks of :func:`preprocess` (``Z`` float32, model column order)."""
    i = resolve_modality(model, modality)
    name = model.modalities[i]
    if input not in INPUT_KINDS:
        raise ValueError(f"input must be one of {INPUT_KINDS}, got {input!r}")
    block_size = check_block_size(block_size)
    X, names, _ = matrix_and_names(data, layer, feature_names)
    n, p_in = int(X.shape[0]), int(X.shape[1])
    p = n_features(model, i)
    model_names = model_feature_names(model, i)
    if names is not None:
        if len(names) != p_in:
            raise ValueError(f"{len(names)} feature names for an input with {p_in} columns")
        if getattr(model, "preprocessing_", None) is None:
            require_preprocessing(model, f"selecting the {name} features by name")
        cols = select_features(model_names, names, f"{name} input")
    else:
        if p_in != p:
            raise ValueError(
                f"the {name} input has {p_in} columns but the model's {name} modality has {p}; pass an AnnData or "
                "DataFrame (features are then selected by name) or a matrix in the model's column order"
            )
        cols = np.arange(p)
    plan: list[NormStep] = []
    if input == "counts":
        plan = normalization_plan(model, i, normalization)
        if all(s.transform == "none" for s in plan):
            plan = []
    scaling = None
    if input != "scaled":
        scaling = stored_scaling(model, i)
        if scaling is not None and len(scaling[0]) != p:
            raise ValueError(f"stored scaling has {len(scaling[0])} values for {p} {name} features")
    lib = _library_size(library_size, data, n)
    need_totals = any(s.counts_based and s.totals == "input" for s in plan) and lib is None

    for start, stop, raw in iter_row_blocks(X, block_size):
        if any(s.counts_based for s in plan):
            _check_counts_block(raw, start, name)
        totals = None
        if need_totals:
            totals = np.asarray(raw.sum(axis=1), dtype=np.float64).ravel()
        elif lib is not None:
            totals = lib[start:stop]
        identity = bool(np.array_equal(cols, np.arange(p_in)))
        if not plan and scaling is None:  # values already in the model's space: no float64 round trip
            x32 = np.ascontiguousarray(to_dense(raw if identity else raw[:, cols], np.float32))
            if not np.all(np.isfinite(x32)):
                raise ValueError(f"non-finite {name} values (cells {start}:{stop})")
            yield start, stop, x32
            continue
        x = to_dense(raw[:, cols], np.float64) if not identity or sp.issparse(raw) else np.array(raw, dtype=np.float64)
        for step in plan:
            blk = x[:, step.start : step.stop]
            if step.transform == "normalize_total+log1p":
                tot = blk.sum(axis=1) if step.totals == "block" else totals
                factor = np.divide(step.target_sum, tot, out=np.zeros_like(tot), where=tot > 0)
                x[:, step.start : step.stop] = np.log1p(blk * factor[:, None])
            elif step.transform == "log1p":
                x[:, step.start : step.stop] = np.log1p(blk)
            elif step.transform == "arcsinh":
                x[:, step.start : step.stop] = np.arcsinh(blk / step.cofactor)
        if scaling is not None:
            mean, std, max_value = scaling
            x -= mean
            x /= std
            if max_value is not None:
                np.clip(x, -max_value, max_value, out=x)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"non-finite {name} values after preprocessing (cells {start}:{stop})")
        yield start, stop, x.astype(np.float32)


def preprocess(
    model: Any,
    data: Any,
    modality: int | str,
    *,
    input: InputKind = "counts",
    layer: str | None = None,
    feature_names: Sequence[str] | None = None,
    library_size: Any = None,
    normalization: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    """New cells of ``modality`` in the model's input space (n x p float32), preprocessed as the recipe did.

    Args:
        data: AnnData (``X`` or ``layer``; in memory or backed), DataFrame (cells x features) or a matrix
            (then ``feature_names`` names its columns, or it must already be in the model's column order).
        input: ``"counts"`` (raw counts: normalise, z-score, clip), ``"normalized"`` (z-score, clip) or
            ``"scaled"`` (as is). See the module docstring for the exact rule.
        library_size: per-cell totals replacing "all input columns" totals (array or ``obs`` column name).
        normalization: overrides the stored rule (see :func:`normalization_plan`).

    Raises:
        ValueError: unknown modality, missing features (listed), wrong shapes, non-count values with
            ``input="counts"``, or no stored preprocessing when it is needed.
    """
    i = resolve_modality(model, modality)
    X, _, _ = matrix_and_names(data, layer, feature_names)
    out = np.empty((X.shape[0], n_features(model, i)), np.float32)
    for start, stop, z in iter_preprocess(
        model, data, i, input=input, layer=layer, feature_names=feature_names, library_size=library_size,
        normalization=normalization, block_size=block_size,
    ):  # fmt: skip
        out[start:stop] = z
    return out


def fixed_shape_call(fn: Any, z: np.ndarray, batch: int = MODEL_BATCH) -> np.ndarray:
    """``fn(padded, batch)[:len(z)]`` with ``z`` zero-padded to a multiple of ``batch`` rows (see MODEL_BATCH)."""
    n = z.shape[0]
    if n == 0:
        return fn(np.zeros((batch, z.shape[1]), np.float32), batch)[:0]
    padded = np.zeros((-(-n // batch) * batch, z.shape[1]), np.float32)
    padded[:n] = z
    return fn(padded, batch)[:n]


def encode(model: Any, data: Any, modality: int | str, *, block_size: int = DEFAULT_BLOCK_SIZE, **options: Any):
    """Latent coordinates (n x n_latent) of new cells: :func:`preprocess` then ``model.transform``, by blocks."""
    i = resolve_modality(model, modality)
    X, _, _ = matrix_and_names(data, options.get("layer"), options.get("feature_names"))
    out = np.empty((X.shape[0], model.hp.n_latent), np.float32)
    for start, stop, z in iter_preprocess(model, data, i, block_size=block_size, **options):
        out[start:stop] = fixed_shape_call(lambda x, b: model.transform(x, modality=i, batch_size=b), z)
    return out


def map_cells(
    model: Any,
    data: Any,
    modality: int | str,
    *,
    reference: Any = None,
    label_key: str | None = None,
    reference_modality: str | Sequence[str] | None = None,
    k: int = 15,
    modality_key: str = "modality",
    block_size: int = DEFAULT_BLOCK_SIZE,
    **options: Any,
) -> Any:
    """Encode new cells with a saved model and (optionally) transfer labels to them.

    Args:
        data: the new cells (see :func:`preprocess`; ``options`` are its keyword arguments).
        reference: an AnnData with the reference latent in ``obsm['X_scmodal']`` and ``obs[label_key]`` (e.g. a
            run's ``integrated.h5ad``); with ``label_key`` the new cells get ``obs['predicted_<label_key>']``
            and ``obs['predicted_<label_key>_confidence']`` by a k-NN majority vote over reference cells
            (those of ``reference_modality`` when given, with a non-missing label).

    Returns:
        A new AnnData: the input's ``obs`` (or ``cell<i>`` names), no features, ``obsm['X_scmodal']``,
        ``obs['modality']`` = the modality name, ``uns['scmodal_mapping']`` describing what was applied.
    """
    import anndata as ad

    from .label_transfer import transfer_labels

    i = resolve_modality(model, modality)
    latent = encode(model, data, i, block_size=block_size, **options)
    _, _, obs_names = matrix_and_names(data, options.get("layer"), options.get("feature_names"))
    if hasattr(data, "obs"):
        obs = data.obs.copy()
    else:
        obs = pd.DataFrame(index=obs_names or [f"cell{j}" for j in range(latent.shape[0])])
    obs.index = obs.index.astype(str)
    obs[modality_key] = pd.Categorical([model.modalities[i]] * latent.shape[0])
    out = ad.AnnData(X=np.zeros((latent.shape[0], 0), np.float32), obs=obs)
    out.obsm[LATENT_KEY] = latent
    out.uns["scmodal_mapping"] = {
        "modality": model.modalities[i],
        "input": options.get("input", "counts"),
        "n_features": n_features(model, i),
    }
    if label_key is not None:
        if reference is None:
            raise ValueError("label_key needs reference= (an AnnData with obsm['X_scmodal'] and obs[label_key])")
        ref_latent, ref_labels = _reference(reference, label_key, reference_modality, modality_key)
        pred, conf = transfer_labels(ref_latent, ref_labels, query=latent, k=k)
        out.obs[f"predicted_{label_key}"] = pd.Categorical(pred)
        out.obs[f"predicted_{label_key}_confidence"] = conf
    return out


def _reference(reference: Any, label_key: str, reference_modality: Any, modality_key: str):
    if LATENT_KEY not in reference.obsm:
        raise ValueError(f"the reference has no obsm[{LATENT_KEY!r}]; keys: {list(reference.obsm.keys())}")
    if label_key not in reference.obs.columns:
        raise ValueError(f"label_key={label_key!r} is not a reference obs column: {list(reference.obs.columns)}")
    keep = reference.obs[label_key].notna().to_numpy()
    if reference_modality is not None:
        mods = [reference_modality] if isinstance(reference_modality, str) else list(reference_modality)
        if modality_key not in reference.obs.columns:
            raise ValueError(f"reference_modality needs obs[{modality_key!r}] in the reference")
        present = set(reference.obs[modality_key].astype(str))
        unknown = [m for m in mods if m not in present]
        if unknown:
            raise ValueError(f"reference_modality {unknown} not in the reference's modalities {sorted(present)}")
        keep &= reference.obs[modality_key].astype(str).isin(mods).to_numpy()
    if not keep.any():
        raise ValueError(f"no reference cell has a {label_key!r} label")
    latent = np.asarray(reference.obsm[LATENT_KEY])[keep]
    labels = reference.obs[label_key].to_numpy()[keep]
    return latent, np.asarray(labels.astype(str) if labels.dtype == object else labels)
