"""Answers in the users' own feature names after integration: imputation, feature relationships, label
transfer and mapping of new cells with a saved model. The same analyses run on a finished run directory
through ``python -m scmodal_jax.analyze``."""

from .genomic import genomic_coordinates, window_pairs
from .imputation import DuplicateAverager, impute, imputed_feature_names, iter_impute, write_imputed
from .label_transfer import transfer_labels
from .mapping import (
    NormStep,
    encode,
    iter_preprocess,
    map_cells,
    model_feature_names,
    normalization_plan,
    preprocess,
    resolve_modality,
    select_features,
)
from .relationships import feature_correlations, infer_relationships

__all__ = [
    "DuplicateAverager",
    "NormStep",
    "encode",
    "feature_correlations",
    "genomic_coordinates",
    "impute",
    "imputed_feature_names",
    "infer_relationships",
    "iter_impute",
    "iter_preprocess",
    "map_cells",
    "model_feature_names",
    "normalization_plan",
    "preprocess",
    "resolve_modality",
    "select_features",
    "transfer_labels",
    "window_pairs",
    "write_imputed",
]
