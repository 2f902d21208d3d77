"""What a saved model knows about its inputs' preprocessing, and the normalisation plan to replay it.

`normalization_plan` turns the recipe's stored `info` (or an explicit override) into `NormStep` blocks over the
model's columns; `scmodal_jax.analysis.mapping` applies them to new cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import n_features

# ----------------------------------------------------------------------------------------------------------
# model metadata
# ----------------------------------------------------------------------------------------------------------


def resolve_modality(model: Any, modality: int | str, what: str = "modality") -> int:
    """Index of ``modality`` (a name of ``model.modalities`` or an index), or a ``ValueError`` listing them."""
    names = list(model.modalities)
    if isinstance(modality, str):
        if modality in names:
            return names.index(modality)
        if modality.isdigit() and int(modality) < len(names):
            return int(modality)
        raise ValueError(f"{what}={modality!r} is not a modality of this model; available: {names}")
    if isinstance(modality, (bool, np.bool_)) or not isinstance(modality, (int, np.integer)):
        raise ValueError(f"{what} must be a modality name or index, got {modality!r}")
    if not 0 <= int(modality) < len(names):
        raise ValueError(f"{what}={modality} is out of range: the model has {len(names)} modalities {names}")
    return int(modality)


def require_preprocessing(model: Any, why: str) -> dict[str, Any]:
    """``model.preprocessing_``, or a ``ValueError`` explaining that ``why`` needs it."""
    rec = getattr(model, "preprocessing_", None)
    if not rec:
        raise ValueError(
            f"{why} needs the preprocessing stored with the model (feature names, scaling statistics), but this "
            "model has none: fit it from a recipe's Prepared inputs (SCMODAL().fit(prepared)) or load a "
            "checkpoint saved from such a model"
        )
    return rec


def model_feature_names(model: Any, modality: int | str) -> list[str]:
    """Names of the model's input columns of ``modality`` (linked names may repeat); ``feature_<j>`` when the
    model stores no names."""
    i = resolve_modality(model, modality)
    rec = getattr(model, "preprocessing_", None)
    if rec and rec.get("feature_names"):
        return [str(f) for f in rec["feature_names"][i]]
    return [f"feature_{j}" for j in range(n_features(model, i))]


# ----------------------------------------------------------------------------------------------------------
# normalisation plan
# ----------------------------------------------------------------------------------------------------------

_TRANSFORMS = ("normalize_total+log1p", "log1p", "arcsinh", "none")


@dataclass(frozen=True)
class NormStep:
    """How the recipe normalised model columns ``start:stop`` of one dataset.

    ``transform``: ``"normalize_total+log1p"`` (``log1p(x * target_sum / total)``, total over the block's columns
    when ``totals == "block"`` or over all input columns when ``"input"``), ``"log1p"``, ``"arcsinh"``
    (``arcsinh(x / cofactor)``) or ``"none"``.
    """

    start: int
    stop: int
    transform: str = "none"
    target_sum: float | None = None
    totals: str = "input"
    cofactor: float = 5.0

    def __post_init__(self) -> None:
        if self.transform not in _TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; use one of {_TRANSFORMS}")
        if self.totals not in ("block", "input"):
            raise ValueError(f"totals must be 'block' or 'input', got {self.totals!r}")
        if self.transform == "normalize_total+log1p" and (self.target_sum is None or self.target_sum <= 0):
            raise ValueError(f"normalize_total+log1p needs a positive target_sum, got {self.target_sum!r}")

    @property
    def counts_based(self) -> bool:
        return self.transform == "normalize_total+log1p"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | NormStep, p: int) -> NormStep:
        if isinstance(spec, NormStep):
            return spec
        spec = dict(spec)
        transform = {"counts": "normalize_total+log1p"}.get(spec.get("transform", "none"), spec.get("transform"))
        return cls(
            start=int(spec.get("start", 0)),
            stop=int(spec.get("stop", p)),
            transform=str(transform),
            target_sum=None if spec.get("target_sum") is None else float(spec["target_sum"]),
            totals=str(spec.get("totals", "input")),
            cofactor=float(spec.get("cofactor", 5.0)),
        )


def _check_plan(plan: list[NormStep], p: int) -> list[NormStep]:
    pos = 0
    for step in sorted(plan, key=lambda s: s.start):
        if step.start != pos or step.stop <= step.start:
            raise ValueError(f"normalisation steps must tile the {p} model columns without gaps: {plan}")
        pos = step.stop
    if pos != p:
        raise ValueError(f"normalisation steps cover {pos} of the {p} model columns: {plan}")
    return sorted(plan, key=lambda s: s.start)


def _index_by_name(names: Sequence[str], name: str, default: int) -> int:
    return names.index(name) if name in names else default


def normalization_plan(model: Any, modality: int | str, normalization: Any = None) -> list[NormStep]:
    """The normalisation the recipe applied to ``modality``'s columns, as :class:`NormStep` blocks.

    ``normalization`` overrides it: ``"none"``, ``"log1p"``, ``"arcsinh"``, a dict (one step over all columns,
    e.g. ``{"transform": "counts", "target_sum": 1e4}``) or a list of step dicts/``NormStep``.
    Otherwise it is read from ``model.preprocessing_["info"]``: a per-dataset ``info["normalization"]`` list
    when present, else the recipe's documented rule:

    * ``rna_protein``: RNA linked block (the leading ``link_widths[0]`` columns) to ``target_sum_linked`` with
      block totals, other genes to ``target_sum_rna`` with totals over all input genes; protein counts the same
      with ``target_sum_linked`` / ``target_sum_protein`` (totals over the whole input panel), protein
      intensities ``arcsinh(x / 5)``; the dataset named ``"rna"`` is the RNA one (else the first).
    * ``rna_atac``: every column to ``target_sum_rna`` / ``target_sum_atac``, totals over all input features.
    * ``protein_protein``: per panel ``info["transforms"]`` (targets over the whole panel).
    * ``generic``: ``"log1p"``, ``"arcsinh"`` (cofactor 5), ``"none"``; ``"counts"`` needs an override
      (its target is not stored).
    * ``synthetic``: none.

    Raises:
        ValueError: no stored preprocessing, an unknown recipe or an unstored target (pass ``normalization=``).
    """
    i = resolve_modality(model, modality)
    p = n_features(model, i)
    if normalization is not None:
        if isinstance(normalization, str):
            return [NormStep.from_spec({"transform": normalization}, p)]
        if isinstance(normalization, (Mapping, NormStep)):
            return _check_plan([NormStep.from_spec(normalization, p)], p)
        return _check_plan([NormStep.from_spec(s, p) for s in normalization], p)
    rec = require_preprocessing(model, "normalising counts")
    info = rec.get("info") or {}
    names = [str(m) for m in rec.get("modalities") or model.modalities]
    if "normalization" in info:
        return _check_plan([NormStep.from_spec(s, p) for s in info["normalization"][i]], p)
    recipe = info.get("recipe")
    if recipe == "synthetic":
        return [NormStep(0, p, "none")]
    if recipe == "rna_protein":
        widths = tuple(getattr(model, "link_widths", None) or ())
        if not widths:
            raise ValueError("the rna_protein rule needs model.link_widths (the size of the linked block)")
        k = int(widths[0])
        rna = _index_by_name(names, "rna", 0)
        if i == rna:
            target, total_key = info["target_sum_rna"], "target_sum_rna"
        else:
            kind = info.get("protein_transform", "counts")
            if kind == "arcsinh":
                return [NormStep(0, p, "arcsinh", cofactor=5.0)]
            if kind == "none":
                return [NormStep(0, p, "none")]
            target, total_key = info.get("target_sum_protein"), "target_sum_protein"
        steps = [NormStep(0, k, "normalize_total+log1p", float(info["target_sum_linked"]), "block")]
        if p > k:
            if target is None:
                raise ValueError(f"the model's info has no {total_key}; pass normalization=")
            steps.append(NormStep(k, p, "normalize_total+log1p", float(target), "input"))
        return steps
    if recipe == "rna_atac":
        rna = _index_by_name(names, "rna", 0)
        key = "target_sum_rna" if i == rna else "target_sum_atac"
        return [NormStep(0, p, "normalize_total+log1p", float(info[key]), "input")]
    if recipe == "protein_protein":
        tr = info["transforms"][i]
        kind = tr.get("transform", "none")
        if kind == "normalize_total+log1p":
            return [NormStep(0, p, kind, float(tr["target_sum"]), "input")]
        if kind == "arcsinh":
            return [NormStep(0, p, "arcsinh", cofactor=float(tr.get("cofactor", 5.0)))]
        return [NormStep(0, p, "none")]
    if recipe == "generic":
        how = (info.get("normalize") or ["none"] * len(names))[i]
        if how in ("none", "log1p", "arcsinh"):
            return [NormStep(0, p, how)]
        raise ValueError(
            f"modality {names[i]!r} was normalised with {how!r}, whose parameters are not stored with the "
            "model; pass normalization= (e.g. {'transform': 'counts', 'target_sum': <median library size>})"
        )
    raise ValueError(
        f"unknown recipe {recipe!r} in the model's preprocessing info: pass normalization= (e.g. 'none') or "
        "input='normalized'"
    )
