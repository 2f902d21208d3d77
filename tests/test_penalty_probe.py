"""The gradient penalty decided by a probe of the paper's discriminator (`disc_gp_auto`)."""

import math

import numpy as np
import pytest

import scmodal_jax as scm
from scmodal_jax.data.synthetic import make_multimodal
from scmodal_jax.runtime.penalty_probe import EQUILIBRIUM, penalty_decision

SMALL = dict(hidden=32, disc_hidden=32, batch_size=64, k_anchor=5, steps_per_call=10, seed=3)


@pytest.fixture(scope="module")
def toy():
    return make_multimodal(n_cells=(150, 120), n_features=(30, 12), n_linked=6, n_clusters=3, seed=0)


def test_decision_reads_the_last_two_thirds_against_the_pairs_equilibrium():
    loss = [0.0] * 10 + [1.0] * 20  # the first third (start-up) is left out
    got = penalty_decision(loss, n_pairs=1, below=0.75)
    assert got["ratio"] == pytest.approx(1.0 / (2 * math.log(2)))
    assert got["penalty"] is True and got["steps"] == 30
    # two pairs: the summed loss is read against twice the equilibrium
    two = penalty_decision([2 * EQUILIBRIUM * 0.8] * 9, n_pairs=2, below=0.75)
    assert two["ratio"] == pytest.approx(0.8) and two["penalty"] is False
    with pytest.raises(ValueError, match="not finite"):
        penalty_decision([1.0, float("nan"), 1.0], 1, 0.75)
    with pytest.raises(ValueError, match="1-d series"):
        penalty_decision([], 1, 0.75)


def _fit(toy, **kw):
    settings = {"steps": 30, **SMALL, **kw}
    return scm.SCMODAL(progress=False, **settings).fit(toy.datasets, scm.first_columns(toy.n_linked))


def test_probe_is_the_penalty_free_raw_link_run_and_training_equals_the_resolved_settings(toy):
    auto = _fit(toy, disc_gp_probe_steps=18, disc_gp_probe_below=5.0)  # any discriminator counts as winning
    reading = auto.fit_report_["disc_gp_probe"]
    assert reading["penalty"] is True and reading["steps"] == 18
    assert auto.hp.disc_gp == 1.0 and auto.hp.disc_gp_auto is False
    # independent reference: the probe's settings trained as a model of their own, read by hand
    alone = _fit(toy, steps=18, disc_gp=0.0, disc_gp_auto=False, link_smoothing=0.0, link_smoothing_auto=False)
    loss = alone.history_["loss_d"].to_numpy(np.float64)
    assert reading["ratio"] == pytest.approx(loss[6:].mean() / EQUILIBRIUM, rel=1e-6)
    # the probe leaves the main run untouched: same latent as the decision given explicitly
    explicit = _fit(toy, disc_gp_probe_steps=18, disc_gp_auto=False)
    for a, b in zip(auto.latent_, explicit.latent_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_probe_turns_the_penalty_off_where_the_discriminator_does_not_win(toy):
    off = _fit(toy, disc_gp_probe_steps=12, disc_gp_probe_below=0.0)  # no loss is below 0
    assert off.fit_report_["disc_gp_probe"]["penalty"] is False and off.hp.disc_gp == 0.0
    plain = _fit(toy, disc_gp=0.0, disc_gp_auto=False)
    for a, b in zip(off.latent_, plain.latent_, strict=True):
        np.testing.assert_array_equal(a, b)
    # a second fit probes afresh from the requested settings (the first fit's decision, disc_gp=0, would skip it)
    off.fit(toy.datasets, scm.first_columns(toy.n_linked))
    assert "disc_gp_probe" in off.fit_report_ and off.hp.disc_gp == 0.0


def test_no_probe_without_a_penalty_for_a_run_within_the_probe_or_with_the_paper_preset(toy):
    assert "disc_gp_probe" not in _fit(toy, disc_gp=0.0).fit_report_
    short = _fit(toy, steps=12, disc_gp_probe_steps=12, disc_gp_probe_below=0.0)
    assert "disc_gp_probe" not in short.fit_report_ and short.hp.disc_gp == 1.0
    untrained = _fit(toy, steps=0)  # nothing to train: nothing to probe
    assert "disc_gp_probe" not in untrained.fit_report_
    paper = scm.SCMODAL(preset="paper", steps=5, progress=False, **SMALL)
    assert paper.hp.disc_gp_auto is False


def test_resume_continues_with_the_checkpoints_decision(toy, tmp_path):
    first = _fit(toy, steps=20, disc_gp_probe_steps=12, disc_gp_probe_below=0.0)
    assert first.hp.disc_gp == 0.0
    first.save(tmp_path / "ckpt")
    resumed = scm.SCMODAL(steps=30, progress=False, disc_gp_probe_steps=12, disc_gp_probe_below=0.0, **SMALL)
    resumed.fit(toy.datasets, scm.first_columns(toy.n_linked), resume_from=tmp_path / "ckpt")
    assert resumed.hp.disc_gp == 0.0 and resumed.step == 30
    assert "disc_gp_probe" not in resumed.fit_report_
