"""Hyperparameters of an scMODAL model: one frozen dataclass shared by the model, the step and checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .nets import INITS


@dataclass(frozen=True)
class Hyperparameters:
    """Defaults are the original scMODAL's."""

    n_latent: int = 20
    hidden: int = 512
    disc_hidden: int = 512
    init: str = "normal"
    init_std: float = 0.1
    logit_clamp: float = 50.0
    steps: int = 10_000
    batch_size: int = 500
    k_anchor: int = 30
    d_steps: int = 5
    lr: float = 1e-3
    disc_lr: float = 1e-3
    weight_decay: float = 1e-3
    disc_weight_decay: float = 1e-3
    clip_norm: float = 5.0
    lambda_gan: float = 1.0
    lambda_ae: float = 10.0
    lambda_la: float = 10.0
    lambda_anchor: float = 1.0
    lambda_geo: float = 10.0
    geo_clamp: float = 0.975
    seed: int = 1234
    steps_per_call: int = 100

    def __post_init__(self) -> None:
        positive_ints = ("n_latent", "hidden", "disc_hidden", "batch_size", "k_anchor", "steps_per_call")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("steps", "d_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        non_negative = (
            "init_std", "lr", "disc_lr", "weight_decay", "disc_weight_decay", "clip_norm",
            "lambda_gan", "lambda_ae", "lambda_la", "lambda_anchor", "lambda_geo", "logit_clamp",
        )  # fmt: skip
        for name in non_negative:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or value != value:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Hyperparameters:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown hyperparameter(s) {unknown}; known: {sorted(known)}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
