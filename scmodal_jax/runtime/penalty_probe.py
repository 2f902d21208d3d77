"""Whether a data set needs the discriminator gradient penalty, read from a short probe of the paper's training.

The penalty exists to keep the discriminators from winning early: on a small protein panel the paper's
discriminator separates the modalities almost perfectly within a few hundred steps (its loss near 0.1 against
the two-class equilibrium 2 ln 2 = 1.39), the generator then gets no useful adversarial gradient and the
anchors alone decide the cluster matching. Where the discriminator does not win (fine bone-marrow types on 8
weak links: loss 1.0-1.3), the penalty only weakens a GAN that was helping (experiments/few_links/). So
`SCMODAL.fit` with `disc_gp_auto` first trains `disc_gp_probe_steps` steps without the penalty, on the raw links,
and keeps the penalty only if the discriminators' loss over the probe's last two thirds (the first third is the
networks' start-up, where any discriminator wins) averages below `disc_gp_probe_below` x equilibrium. A run of
no more steps than the probe is not probed: it keeps `disc_gp` as given.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.hparams import Hyperparameters
from ..core.step import init_state
from .devices import place, replicated
from .trainer import History, LoopOptions, ProgressView, TrainingData, train

__all__ = ["EQUILIBRIUM", "penalty_decision", "probe_penalty", "wants_probe"]

log = logging.getLogger(__name__)

#: A two-class discriminator's loss (mean BCE of both sides) when it cannot tell them apart: 2 ln 2.
EQUILIBRIUM = 2.0 * math.log(2.0)


def penalty_decision(loss_d: Sequence[float], n_pairs: int, below: float) -> dict[str, float | bool | int]:
    """The probe's reading: `loss_d` is the per-step discriminator loss summed over `n_pairs` dataset pairs.

    Returns `{"ratio": mean loss over the last two thirds / (n_pairs x EQUILIBRIUM), "penalty": ratio < below,
    "steps": len(loss_d)}`."""
    values = np.asarray(loss_d, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"the probe needs a 1-d series of discriminator losses, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("the probe's discriminator loss is not finite; lower lr or check the input scaling")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    window = values[values.size // 3 :]
    ratio = float(window.mean() / (n_pairs * EQUILIBRIUM))
    return {"ratio": ratio, "penalty": bool(ratio < below), "steps": int(values.size), "below": float(below)}


def wants_probe(hp: Hyperparameters) -> bool:
    """Whether a fresh fit with `hp` probes: the penalty is automatic and on, and the run is longer than the probe
    (probing a run no longer than the probe would cost the run itself)."""
    return hp.disc_gp_auto and hp.disc_gp > 0 and hp.steps > hp.disc_gp_probe_steps


def probe_penalty(
    hp: Hyperparameters,
    data: TrainingData,
    links: Sequence[tuple[np.ndarray, np.ndarray]],
    options: LoopOptions | None = None,
    progress: ProgressView | None = None,
) -> tuple[Hyperparameters, dict[str, Any]]:
    """Train `hp.disc_gp_probe_steps` steps of the paper's training (no penalty, raw `links`) on `data` and read
    its discriminator loss; returns `hp` with the decision taken (`disc_gp` kept or 0, `disc_gp_auto` off) and
    the reading of `penalty_decision`."""
    probe_hp = dataclasses.replace(
        hp, steps=hp.disc_gp_probe_steps, disc_gp=0.0, disc_gp_auto=False, link_smoothing=0.0,
        link_smoothing_auto=False, link_smoothing_until=0,
    )  # fmt: skip
    log.info("probing the discriminator for %d steps without the gradient penalty", probe_hp.steps)
    nets, state = init_state(probe_hp, data.n_features)
    history = History()
    probe_options = dataclasses.replace(options or LoopOptions(), log_every=None, checkpoint_every=None)
    _, report = train(nets, place(state, replicated(data.mesh)), data, links, history, probe_options, progress=progress)
    reading = penalty_decision(history.frame["loss_d"].to_numpy(np.float64), len(links), hp.disc_gp_probe_below)
    reading["streamed_chunks"] = report["streamed_chunks"]  # the witness of a streamed probe
    log.info("discriminator loss over the probe at %.2f x equilibrium: gradient penalty %s", reading["ratio"],
             "on" if reading["penalty"] else "off")  # fmt: skip
    return dataclasses.replace(hp, disc_gp=hp.disc_gp if reading["penalty"] else 0.0, disc_gp_auto=False), reading
