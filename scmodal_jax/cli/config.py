"""Structured configs (dataclasses) that Hydra validates `conf/` against: a misspelt key is an error.

Only `train.py` composes them; the library itself takes plain arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore

from ..core.hparams import TRAINING_FIELDS, Hyperparameters


@dataclass
class SyntheticConfig:
    n_cells: int = 2000
    n_features: list[int] = field(default_factory=lambda: [200, 40])
    n_linked: int = 15
    n_clusters: int = 6
    paired: bool = True
    seed: int = 0


@dataclass
class DataConfig:
    """Which data to integrate. `name` picks a builder in `scmodal_jax.data.builders`."""

    name: str = "synthetic"
    # Modality order of the chain (names as the builder calls them); None keeps the builder's default.
    order: list[str] | None = None
    label_key: str | None = "cell_type"
    data_dir: str | None = None
    cache_dir: str | None = None
    n_hvg: int | None = 3000
    joint_pca: int | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # Builder-specific keyword arguments (documented by each builder).
    options: dict[str, Any] = field(default_factory=dict)


def _hyperparameter_fields(names: Any) -> list[tuple[str, type, Any]]:
    """(name, type, field with the default) of these `Hyperparameters` fields: the schema's one source."""
    types = get_type_hints(Hyperparameters)
    return [(f.name, types[f.name], field(default=f.default)) for f in fields(Hyperparameters) if f.name in names]


_MODEL_FIELDS = tuple(f.name for f in fields(Hyperparameters) if f.name not in TRAINING_FIELDS)
#: `model.`: networks, loss weights and the mechanisms beyond the paper (`Hyperparameters` minus TRAINING_FIELDS).
ModelConfig = make_dataclass("ModelConfig", _hyperparameter_fields(_MODEL_FIELDS))


@dataclass
class TrainOptions:
    """`train.` settings that never change what is computed: the host loop, devices, checkpoints."""

    log_every: int = 100
    checkpoint_every: int = 1000
    resume: bool = False
    resume_from: str | None = None
    progress: bool = True
    # "auto" (every device whose count divides the batch), N (the first N) or a list of indices ([0,2])
    devices: Any = "auto"
    data_mode: str = "auto"  # auto | device | stream (host-sampled batches from sparse/backed data)
    prefetch: int = 2
    distributed: bool = False  # call jax.distributed.initialize() first (multi-host launches)
    # Seeds trained together (vmapped), seed, seed+1, ...; the best by the label-free quality score is kept.
    n_seeds: int = 1


#: `train.`: the training fields of `Hyperparameters` (TRAINING_FIELDS) and the host-side `TrainOptions`.
TrainConfig = make_dataclass("TrainConfig", _hyperparameter_fields(TRAINING_FIELDS), bases=(TrainOptions,))


@dataclass
class LoggerConfig:
    name: str = "csv"  # csv | wandb | none
    project: str = "scmodal_jax"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    # W&B mode: None respects WANDB_MODE, else offline when no credentials are found.
    mode: str | None = None


@dataclass
class EvalConfig:
    metrics: bool = True
    umap: bool = True
    umap_max_cells: int = 20_000
    seed: int = 0


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    experiment_name: str = "default"


LOGGERS = ("csv", "wandb", "none")
_TRAIN_ONLY = frozenset(f.name for f in fields(TrainOptions))


def register() -> None:
    """Make the schema available to Hydra as `base_config` (the first entry of conf/config.yaml's defaults)."""
    ConfigStore.instance().store(name="base_config", node=Config)


def hyperparameters(cfg: Any) -> Hyperparameters:
    """Model + training settings of a composed config as the library's Hyperparameters."""
    values = {k: v for k, v in dict(cfg.model).items()}
    values.update({k: v for k, v in dict(cfg.train).items() if k not in _TRAIN_ONLY})
    return Hyperparameters.from_kwargs(**values)


def validate(cfg: Any) -> None:
    """Checks the schema's types cannot express; raises ValueError naming the setting."""
    if cfg.logger.name not in LOGGERS:
        raise ValueError(f"logger.name={cfg.logger.name!r}; choose one of {LOGGERS}")
    hyperparameters(cfg)  # value ranges
    if cfg.train.log_every < 1 or cfg.train.checkpoint_every < 0:
        raise ValueError("train.log_every must be >= 1 and train.checkpoint_every >= 0")
