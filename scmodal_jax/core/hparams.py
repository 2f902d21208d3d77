"""Hyperparameters of an scMODAL model: one frozen dataclass shared by the model, the step and checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .nets import INITS, MATMUL_PRECISIONS


@dataclass(frozen=True)
class Hyperparameters:
    """The original scMODAL's networks, loss weights and optimisers, plus two mechanisms beyond the paper that
    won the few-links protocol (issue 15, experiments/few_links/): a discriminator gradient penalty
    (`disc_gp=1`, kept only where a short probe without it sees the discriminator win early: `disc_gp_auto`)
    and anchors searched on links smoothed over each dataset's neighbours (`link_smoothing=0.7` at most, each
    pair's weight chosen by held-out link agreement: `link_smoothing_auto`).
    `from_preset("paper")` (`SCMODAL(preset="paper")`) switches both off: the paper's training exactly."""

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
    # Beyond the paper (off in PAPER; disc_gp and link_smoothing on by default; docs/architecture.md, issue 15):
    gan_warmup: int = 0  # steps over which the generator's GAN weight ramps linearly from 0 to lambda_gan
    disc_smoothing: float = 0.0  # two-sided label smoothing of the discriminators' targets
    disc_gp: float = 1.0  # weight of the discriminators' zero-centred input-gradient penalty
    # > 0: a pair's penalty acts only while its discriminator loss is below this fraction of the two-class
    # equilibrium (2 log 2), scaled up linearly to disc_gp at loss 0; 0 = the penalty always at disc_gp.
    disc_gp_below: float = 0.0
    disc_gp_until: int = 0  # step by which the penalty has faded linearly to 0; 0 = constant
    # Cheaper penalties (experiments/speed/): on every disc_gp_every-th discriminator update only, at disc_gp_every
    # x the weight (lazy regularisation), and/or on the first disc_gp_rows of each batch's rows (a random subsample).
    disc_gp_every: int = 1
    disc_gp_rows: float = 1.0
    # Decide the penalty by a probe (label-free): train disc_gp_probe_steps steps without it (raw links) and keep
    # disc_gp only if the discriminator's loss over the probe's last two thirds averages below
    # disc_gp_probe_below x the two-class equilibrium (2 log 2 per dataset pair): only where the paper's
    # discriminator wins early. False = disc_gp as given, as for a run of no more steps than the probe.
    disc_gp_auto: bool = True
    disc_gp_probe_steps: int = 300
    disc_gp_probe_below: float = 0.75
    lambda_refine: float = 0.0  # weight of the refined anchors (pairs found on all features, see losses)
    refine_start: int = 0  # step from which the refined anchors count
    refine_agree_k: int = 100  # neighbourhood on the linked features that a refined pair must agree with
    # Anchors searched on linked features smoothed over each dataset's own k-NN graph (runtime/link_smoothing):
    # weight w of the neighbours' mean, 0 = the raw links (the paper).
    link_smoothing: float = 0.7
    link_smoothing_k: int = 15
    # Choose each pair's weight in 0, 0.1, ..., link_smoothing by held-out link agreement (label-free), so the
    # smoothing is kept only where it helps the links find partners; False = link_smoothing as given.
    link_smoothing_auto: bool = True
    # Step by which that weight has fallen linearly to 0 (coarse anchors early, the raw links late); 0 = constant.
    link_smoothing_until: int = 0
    # The networks' matmuls: "float32" (pinned, the same results on every platform), or "tf32" / "bfloat16"
    # for speed on accelerators. The losses' kernel, distance and cosine matmuls are always float32.
    matmul_precision: str = "float32"
    seed: int = 1234
    steps_per_call: int = 100
    # Train until converged (runtime/stopping.py): every stop_every steps the link consistency of a fixed subsample
    # of stop_cells cells per dataset is measured; training stops once the mean of its last stop_window values
    # exceeds the mean of the stop_window before them by less than stop_tol (from stop_min_steps on). `steps` is
    # then the maximum. False = exactly `steps` steps (the paper).
    early_stop: bool = True
    stop_every: int = 250
    stop_window: int = 4
    stop_tol: float = 0.005
    stop_min_steps: int = 2000
    stop_cells: int = 1000

    def __post_init__(self) -> None:
        positive_ints = (
            "n_latent", "hidden", "disc_hidden", "batch_size", "k_anchor", "steps_per_call", "refine_agree_k",
            "link_smoothing_k", "disc_gp_probe_steps", "stop_every", "stop_window", "stop_cells", "disc_gp_every",
        )  # fmt: skip
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("steps", "d_steps", "gan_warmup", "refine_start", "link_smoothing_until", "disc_gp_until",
                     "stop_min_steps"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        non_negative = (
            "init_std", "lr", "disc_lr", "weight_decay", "disc_weight_decay", "clip_norm",
            "lambda_gan", "lambda_ae", "lambda_la", "lambda_anchor", "lambda_geo", "logit_clamp", "disc_gp",
            "disc_gp_below", "lambda_refine", "disc_gp_probe_below",
        )  # fmt: skip
        for name in non_negative:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or value != value:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not isinstance(self.disc_smoothing, (int, float)) or not 0.0 <= self.disc_smoothing < 0.5:
            raise ValueError(f"disc_smoothing must be in [0, 0.5), got {self.disc_smoothing!r}")
        if (
            isinstance(self.stop_tol, bool)
            or not isinstance(self.stop_tol, (int, float))
            or not -1e9 < self.stop_tol < 1e9
        ):
            raise ValueError(
                f"stop_tol must be a finite number (negative: the signal must fall to stop), got {self.stop_tol!r}"
            )
        if not isinstance(self.disc_gp_rows, (int, float)) or not 0.0 < self.disc_gp_rows <= 1.0:
            raise ValueError(f"disc_gp_rows must be in (0, 1], got {self.disc_gp_rows!r}")
        if not isinstance(self.link_smoothing, (int, float)) or not 0.0 <= self.link_smoothing <= 1.0:
            raise ValueError(f"link_smoothing must be in [0, 1], got {self.link_smoothing!r}")
        for name in ("link_smoothing_auto", "disc_gp_auto", "early_stop"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.matmul_precision not in MATMUL_PRECISIONS:
            choices = tuple(MATMUL_PRECISIONS)
            raise ValueError(f"matmul_precision must be one of {choices}, got {self.matmul_precision!r}")

    @classmethod
    def from_preset(cls, preset: str = "default", **kwargs: Any) -> Hyperparameters:
        """The preset's settings (`PRESETS`), then `kwargs` on top."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        return cls.from_kwargs(**{**PRESETS[preset], **kwargs})

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Hyperparameters:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown hyperparameter(s) {unknown}; known: {sorted(known)}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The fields Hydra puts under `train.` (how long and how the optimisers run); every other field is under `model.`.
TRAINING_FIELDS = (
    "steps", "batch_size", "k_anchor", "d_steps", "lr", "disc_lr", "weight_decay", "disc_weight_decay", "clip_norm",
    "steps_per_call", "seed", "early_stop", "stop_every", "stop_window", "stop_tol", "stop_min_steps", "stop_cells",
)  # fmt: skip

#: The original scMODAL's training, written out: every loss weight and optimiser setting of the paper and each
#: mechanism beyond it switched off. `SCMODAL(preset="paper")` and Hydra's `model=paper` give exactly this.
PAPER: dict[str, Any] = {
    "n_latent": 20, "hidden": 512, "disc_hidden": 512, "init": "normal", "init_std": 0.1, "logit_clamp": 50.0,
    "batch_size": 500, "k_anchor": 30, "d_steps": 5, "lr": 1e-3, "disc_lr": 1e-3, "weight_decay": 1e-3,
    "disc_weight_decay": 1e-3, "clip_norm": 5.0, "lambda_gan": 1.0, "lambda_ae": 10.0, "lambda_la": 10.0,
    "lambda_anchor": 1.0, "lambda_geo": 10.0, "geo_clamp": 0.975, "gan_warmup": 0, "disc_smoothing": 0.0,
    "disc_gp": 0.0, "disc_gp_below": 0.0, "disc_gp_until": 0, "disc_gp_auto": False, "disc_gp_every": 1,
    "disc_gp_rows": 1.0, "lambda_refine": 0.0,
    "refine_start": 0, "link_smoothing": 0.0, "link_smoothing_auto": False, "link_smoothing_until": 0,
    "early_stop": False,
}  # fmt: skip
#: Named starting points: "default" = this package's defaults, "paper" = the original's training.
PRESETS: dict[str, dict[str, Any]] = {"default": {}, "paper": PAPER}
