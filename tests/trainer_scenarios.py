"""Small fits whose loss history and latent must not change when the training code is reorganised.

`python tests/trainer_scenarios.py OUT.npz` records every scenario with the code as it is; `tests/test_trainer.py`
replays them against `tests/data/trainer_golden.npz`, recorded from the estimator before the trainer moved out of
it (commit 66c1032, `SCMODAL._train_loop` / `_decide_penalty`): the reorganisation must leave every number equal.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

SMALL = dict(hidden=32, disc_hidden=32, batch_size=64, k_anchor=5, steps_per_call=10, seed=3, progress=False)
STEPS = 40
PROBE = dict(disc_gp_probe_steps=15)


def toy():
    from scmodal_jax.data.synthetic import make_multimodal

    return make_multimodal(n_cells=(150, 120), n_features=(30, 12), n_linked=6, n_clusters=3, seed=0)


def _fit(data, resume_from=None, **kw):
    import scmodal_jax as scm

    model = scm.SCMODAL(**{**SMALL, "steps": STEPS, **kw})
    return model.fit(data.datasets, scm.first_columns(data.n_linked), resume_from=resume_from)


def _resumed(data, **kw):
    with tempfile.TemporaryDirectory() as tmp:
        first = _fit(data, steps=20, checkpoint_dir=Path(tmp) / "ckpt", checkpoint_every=10, **PROBE)
        del first
        return _fit(data, resume_from=Path(tmp) / "ckpt", **PROBE)


SCENARIOS = {
    "probe_kept": lambda d: _fit(d, disc_gp_probe_below=5.0, **PROBE),
    "probe_dropped": lambda d: _fit(d, disc_gp_probe_below=0.0, **PROBE),
    "paper": lambda d: _fit(d, preset="paper"),
    "streamed": lambda d: _fit(d, data_mode="stream", disc_gp_probe_below=5.0, **PROBE),
    "resumed": _resumed,
    "ensemble": lambda d: _fit(d, n_seeds=2, **PROBE),
}


def record(model) -> dict[str, np.ndarray]:
    out = {"history": model.history_.to_numpy(np.float64)}
    for i, z in enumerate(model.latent_):
        out[f"latent{i}"] = np.asarray(z)
    return out


def run_all() -> dict[str, np.ndarray]:
    data = toy()
    arrays = {}
    for name, scenario in SCENARIOS.items():
        for key, value in record(scenario(data)).items():
            arrays[f"{name}/{key}"] = value
    return arrays


if __name__ == "__main__":
    np.savez(sys.argv[1], **run_all())
