"""The training loop as its own module (`runtime.trainer`): its schedule, its history, and fits unchanged by it."""

from pathlib import Path

import numpy as np
import pytest
import trainer_scenarios as scenarios

import scmodal_jax as scm
from scmodal_jax.runtime import trainer as trainer_module
from scmodal_jax.runtime.trainer import History, schedule

GOLDEN = Path(__file__).parent / "data" / "trainer_golden.npz"


def test_schedule_cuts_at_every_boundary_and_the_chunk_cap():
    # by hand: from 5 to 33, at most 10 steps a call, cut at multiples of 8 (logging) and 12 (checkpoints)
    assert schedule(5, 33, 10, [8, 12]) == [(5, 3), (8, 4), (12, 4), (16, 8), (24, 8), (32, 1)]
    assert schedule(0, 20, 10, [0, 10]) == [(0, 10), (10, 10)]  # a 0 boundary (no checkpoints) is ignored
    assert schedule(20, 20, 10, [10]) == []


def test_history_appends_rows_checks_finiteness_and_keeps_an_ensemble_member():
    from scmodal_jax.core.step import METRIC_NAMES

    history = History()
    chunk = {k: np.arange(3, dtype=np.float32) + i for i, k in enumerate(METRIC_NAMES)}
    history.extend([chunk], step=3)
    assert history.frame["step"].tolist() == [1, 2, 3]
    assert history.means_since(1)["loss_d"] == pytest.approx(1.5)
    bad = {k: np.array([np.nan], np.float32) for k in METRIC_NAMES}
    with pytest.raises(FloatingPointError, match="non-finite loss at step 4"):
        history.extend([bad], step=4)
    members = History()
    stacked = {k: np.array([[0.0, 10.0], [2.0, 20.0]], np.float32) for k in METRIC_NAMES}
    members.extend([stacked], step=2)
    assert members.frame["loss_d"].tolist() == [5.0, 11.0]  # the members' mean while training
    members.keep_member(1)
    assert members.frame["loss_d"].tolist() == [10.0, 20.0] and members.frame["step"].tolist() == [1, 2]


@pytest.fixture(scope="module")
def toy():
    return scenarios.toy()


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_fit_equals_the_estimators_own_loop_before_the_trainer_moved_out(toy, name):
    """Loss history and latent of each scenario against those recorded from the code before the move (commit
    66c1032). Measured here: every value equal (max |difference| 0.0); the tolerance only absorbs a CPU that
    rounds differently, a changed step, decision or member choice moves them by far more."""
    golden = np.load(GOLDEN)
    got = scenarios.record(scenarios.SCENARIOS[name](toy))
    assert set(got) == {k.split("/", 1)[1] for k in golden if k.startswith(f"{name}/")}
    for key, value in got.items():
        np.testing.assert_allclose(value, golden[f"{name}/{key}"], rtol=1e-5, atol=1e-6, err_msg=f"{name}/{key}")


def test_a_fit_densifies_its_inputs_once_and_builds_no_second_estimator(toy, monkeypatch):
    calls, built = [], []
    real_densify = trainer_module.densify
    monkeypatch.setattr(trainer_module, "densify", lambda x: calls.append(x.shape) or real_densify(x))
    real_init = scm.SCMODAL.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(scm.SCMODAL, "__init__", counting_init)
    model = scm.SCMODAL(**{**scenarios.SMALL, "steps": 30}, disc_gp_probe_steps=15, disc_gp_probe_below=5.0)
    model.fit(toy.datasets, scm.first_columns(toy.n_linked))
    assert "disc_gp_probe" in model.fit_report_  # the probe trained too, from the same densified data
    assert calls == [(150, 30), (120, 12)]
    assert len(built) == 1


def test_one_progress_bar_shows_every_stage_and_progress_false_silences_it(toy, monkeypatch, capfd):
    bars, stages = [], []
    real_tqdm = trainer_module.tqdm

    def counting_tqdm(*args, **kwargs):
        bar = real_tqdm(*args, **kwargs)
        bars.append(bar)
        real_describe = bar.set_description
        bar.set_description = lambda desc=None, refresh=True: stages.append(desc) or real_describe(desc, refresh)
        return bar

    monkeypatch.setattr(trainer_module, "tqdm", counting_tqdm)
    settings = {**scenarios.SMALL, "steps": 30, "disc_gp_probe_steps": 15, "disc_gp_probe_below": 5.0}
    scm.SCMODAL(**{**settings, "progress": True}).fit(toy.datasets, scm.first_columns(toy.n_linked))
    shown = capfd.readouterr().err
    assert len(bars) == 1  # the probe trains inside the fit's one bar, not in a second, unlabelled one
    assert stages == ["scMODAL [penalty probe]", "scMODAL [link smoothing]", "scMODAL [training]"]
    assert bars[0].total == 15 + 30 and bars[0].n == 45  # the probe's steps, then the run's
    assert "scMODAL [training]" in shown and "45/45" in shown
    bars.clear()
    scm.SCMODAL(**{**settings, "progress": False}).fit(toy.datasets, scm.first_columns(toy.n_linked))
    assert "scMODAL" not in capfd.readouterr().err


def test_a_callback_can_encode_cells_mid_training(toy):
    """The estimator's state is the trained one at each logging point (as before the loop moved out): a callback
    that encodes cells sees the latent of that step, equal to a run stopped there."""
    seen = {}
    model = scm.SCMODAL(**{**scenarios.SMALL, "steps": 20})
    model.fit(toy.datasets, scm.first_columns(toy.n_linked),
              callback=lambda step, _: seen.setdefault(step, model.transform(toy.datasets[0])))  # fmt: skip
    assert sorted(seen) == [10, 20]
    shorter = scm.SCMODAL(**{**scenarios.SMALL, "steps": 10}).fit(toy.datasets, scm.first_columns(toy.n_linked))
    np.testing.assert_allclose(seen[10], shorter.latent_[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seen[20], model.latent_[0])
