"""scmodal_jax: JAX/Flax scMODAL, deep-learning alignment of unpaired single-cell multi-modal data."""

from .data.io import to_anndata
from .hparams import Hyperparameters
from .inputs import first_columns
from .model import SCMODAL

__all__ = ["SCMODAL", "Hyperparameters", "first_columns", "to_anndata"]
__version__ = "0.1.0"
