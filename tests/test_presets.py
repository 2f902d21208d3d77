"""The paper's training is one switch away: `SCMODAL(preset="paper")` and Hydra's `model=paper`."""

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from scmodal_jax import SCMODAL
from scmodal_jax.cli import config as config_module
from scmodal_jax.core.hparams import PAPER, PRESETS, Hyperparameters

CONF = Path(__file__).resolve().parents[1] / "conf"

# The original scMODAL's settings as published (its model.py defaults), written independently of PAPER.
ORIGINAL = dict(n_latent=20, hidden=512, disc_hidden=512, batch_size=500, k_anchor=30, d_steps=5, lr=1e-3,
                disc_lr=1e-3, weight_decay=1e-3, lambda_gan=1.0, lambda_ae=10.0, lambda_la=10.0, lambda_anchor=1.0,
                lambda_geo=10.0, geo_clamp=0.975)  # fmt: skip
BEYOND_THE_PAPER_OFF = dict(
    gan_warmup=0,
    disc_smoothing=0.0,
    disc_gp=0.0,
    disc_gp_below=0.0,
    disc_gp_until=0,
    disc_gp_auto=False,
    lambda_refine=0.0,
    link_smoothing=0.0,
    link_smoothing_until=0,
    link_smoothing_auto=False,
)


def test_paper_preset_is_the_original_training():
    hp = SCMODAL(preset="paper", steps=7, seed=3).hp
    for key, value in {**ORIGINAL, **BEYOND_THE_PAPER_OFF}.items():
        assert getattr(hp, key) == value, key
    assert hp.steps == 7 and hp.seed == 3
    assert SCMODAL(preset="paper", lambda_anchor=5.0).hp.lambda_anchor == 5.0  # explicit values win


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'papper'"):
        Hyperparameters.from_preset("papper")
    assert set(PRESETS) == {"default", "paper"}


def test_hydra_model_paper_gives_the_paper_hyperparameters():
    config_module.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=paper", "+experiment=pbmc_cytof"])
    hp = config_module.hyperparameters(cfg)
    want = Hyperparameters.from_preset("paper", steps=hp.steps, seed=hp.seed, steps_per_call=hp.steps_per_call)
    assert dataclasses.asdict(hp) == dataclasses.asdict(want)
    # every setting PAPER pins is written out in conf/model/paper.yaml (so the two cannot drift apart)
    text = (CONF / "model" / "paper.yaml").read_text()
    for key in PAPER:
        assert f"  {key}:" in text, key
