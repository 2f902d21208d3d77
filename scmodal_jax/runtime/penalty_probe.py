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

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["EQUILIBRIUM", "penalty_decision"]

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
