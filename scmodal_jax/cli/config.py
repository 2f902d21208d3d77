"""Structured configs (dataclasses) that Hydra validates `conf/` against: a misspelt key is an error.

Only `train.py` composes them; the library itself takes plain arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from ..core.hparams import Hyperparameters


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


@dataclass
class ModelConfig:
    n_latent: int = 20
    hidden: int = 512
    disc_hidden: int = 512
    init: str = "normal"
    init_std: float = 0.1
    logit_clamp: float = 50.0
    lambda_gan: float = 1.0
    lambda_ae: float = 10.0
    lambda_la: float = 10.0
    lambda_anchor: float = 1.0
    lambda_geo: float = 10.0
    geo_clamp: float = 0.975
    # Beyond the paper (conf/model/paper.yaml turns every one off): see scmodal_jax/core/hparams.py.
    gan_warmup: int = 0
    disc_smoothing: float = 0.0
    disc_gp: float = 1.0
    disc_gp_below: float = 0.0
    disc_gp_until: int = 0
    disc_gp_auto: bool = True
    disc_gp_probe_steps: int = 300
    disc_gp_probe_below: float = 0.75
    lambda_refine: float = 0.0
    refine_start: int = 0
    refine_agree_k: int = 100
    link_smoothing: float = 0.7
    link_smoothing_k: int = 15
    link_smoothing_auto: bool = True
    link_smoothing_until: int = 0
    matmul_precision: str = "float32"  # networks' matmuls: float32 | tf32 | bfloat16 (losses stay float32)


@dataclass
class TrainConfig:
    steps: int = 10_000
    batch_size: int = 500
    k_anchor: int = 30
    d_steps: int = 5
    lr: float = 1e-3
    disc_lr: float = 1e-3
    weight_decay: float = 1e-3
    disc_weight_decay: float = 1e-3
    clip_norm: float = 5.0
    steps_per_call: int = 100
    seed: int = 1234
    log_every: int = 100
    checkpoint_every: int = 1000
    resume: bool = False
    resume_from: str | None = None
    progress: bool = True
    devices: str = "auto"  # "auto" (all devices) or a number: batch rows sharded over that many devices
    data_mode: str = "auto"  # auto | device | stream (host-sampled batches from sparse/backed data)
    prefetch: int = 2
    distributed: bool = False  # call jax.distributed.initialize() first (multi-host launches)
    # Seeds trained together (vmapped), seed, seed+1, ...; the best by the label-free quality score is kept.
    n_seeds: int = 1


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
_TRAIN_ONLY = {
    "log_every", "checkpoint_every", "resume", "resume_from", "progress", "devices", "data_mode", "prefetch",
    "distributed", "n_seeds",
}  # fmt: skip


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
