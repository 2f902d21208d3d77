"""scmodal_jax: JAX/Flax scMODAL, deep-learning alignment of unpaired single-cell multi-modal data."""

from .analysis.label_transfer import transfer_labels
from .core.hparams import Hyperparameters
from .data.io import to_anndata
from .model import SCMODAL
from .runtime.inputs import first_columns

__all__ = ["SCMODAL", "Hyperparameters", "first_columns", "to_anndata", "transfer_labels"]
__version__ = "0.1.0"
