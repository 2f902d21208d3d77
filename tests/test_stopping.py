"""Training until converged (`runtime.stopping`): the rule, the on-device signal, and real fits that stop.

Small synthetic fits (32 units, batch 64) measured every 50 steps from step 200; the signal levels off after a few
hundred steps there. The rule's defaults (every 250 steps from step 2,000) are replayed on the recorded curves in
experiments/convergence/ by scripts/stopping_replay.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import scmodal_jax as scm
from scmodal_jax.data.synthetic import make_multimodal
from scmodal_jax.metrics.quality import link_consistency
from scmodal_jax.runtime.stopping import STOP_SUBSAMPLE_SEED, plateau_reached, subsample_rows

CURVES = Path(__file__).resolve().parents[1] / "experiments" / "convergence" / "curves.jsonl"
FAST = dict(hidden=32, disc_hidden=32, batch_size=64, k_anchor=5, steps_per_call=25, seed=3, progress=False,
            stop_every=50, stop_min_steps=200, stop_window=3, stop_tol=0.01, stop_cells=200)  # fmt: skip


def _by_hand(values, steps, window, tol, min_steps):
    """The first evaluation at which the rule fires, written out loop by loop (None: never)."""
    for j in range(len(values)):
        if steps[j] < min_steps or j + 1 < 2 * window:
            continue
        recent = sum(values[j - window + 1 : j + 1]) / window
        before = sum(values[j - 2 * window + 1 : j - window + 1]) / window
        if recent - before < tol:
            return steps[j]
    return None


def _replay(values, steps, **rule):
    return next((s for j, s in enumerate(steps) if plateau_reached(values[: j + 1], steps[: j + 1], **rule)), None)


def test_the_rule_on_a_recorded_signal_equals_a_hand_computation():
    if not CURVES.exists():
        pytest.skip("no recorded curves")
    record = json.loads(CURVES.read_text().splitlines()[0])  # bmmc_cite, seed 0, 10,000 steps
    steps = [e["step"] for e in record["evals"]]
    values = [e["quality_link_consistency"] for e in record["evals"]]
    for rule in (dict(window=4, tol=0.005, min_steps=2000), dict(window=2, tol=0.0, min_steps=500),
                 dict(window=8, tol=-0.01, min_steps=0)):  # fmt: skip
        assert _replay(values, steps, **rule) == _by_hand(values, steps, **rule), rule
    assert _replay([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4], window=2, tol=0.05, min_steps=0) is None  # still rising


def test_the_rule_needs_two_whole_windows_and_the_minimum_step():
    flat = [0.5] * 4
    assert not plateau_reached(flat[:3], [1, 2, 3], window=2, tol=0.1, min_steps=0)  # one window and a half
    assert plateau_reached(flat, [1, 2, 3, 4], window=2, tol=0.1, min_steps=0)
    assert not plateau_reached(flat, [1, 2, 3, 4], window=2, tol=0.1, min_steps=5)  # levelled off, but too early
    assert not plateau_reached([0.1, 0.1, 0.3, 0.3], [1, 2, 3, 4], window=2, tol=0.1, min_steps=0)  # rose 0.2
    assert plateau_reached([0.1, 0.1, 0.15, 0.15], [1, 2, 3, 4], window=2, tol=0.1, min_steps=0)  # rose 0.05
    with pytest.raises(ValueError, match="4 values for 3 steps"):
        plateau_reached(flat, [1, 2, 3], window=2, tol=0.1, min_steps=0)


def test_subsample_is_fixed_by_the_seed():
    a, b = subsample_rows([50, 8], 10, seed=4), subsample_rows([50, 8], 10, seed=4)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert len(a[0]) == 10 and a[1].tolist() == list(range(8)) and np.all(np.diff(a[0]) > 0)


@pytest.fixture(scope="module")
def easy():
    return make_multimodal(n_cells=(300, 250), n_features=(30, 12), n_linked=6, n_clusters=3, seed=0)


@pytest.fixture(scope="module")
def stopped(easy):
    return scm.SCMODAL(steps=3000, **FAST).fit(easy.datasets, scm.first_columns(easy.n_linked))


def test_signal_is_the_quality_scores_link_consistency_of_the_subsample(easy, stopped):
    rows = subsample_rows([x.shape[0] for x in easy.datasets], FAST["stop_cells"], STOP_SUBSAMPLE_SEED)
    latents = [stopped.transform(x[r], modality=i) for i, (x, r) in enumerate(zip(easy.datasets, rows, strict=True))]
    n = easy.n_linked
    reference = link_consistency(latents[0], latents[1], easy.datasets[0][rows[0], :n], easy.datasets[1][rows[1], :n])
    assert stopped.fit_report_["stop"]["values"][-1][0] == pytest.approx(reference, abs=1e-4)


def test_an_easy_fit_stops_early_where_the_rule_says(stopped):
    report = stopped.fit_report_
    stop = report["stopped_at"]
    assert stop is not None and 200 <= stop < 3000 and stop == stopped.step
    assert stopped.history_["step"].iloc[-1] == stop  # the loss history ends there
    record = report["stop"]
    values = [v[0] for v in record["values"]]
    assert _by_hand(values, record["steps"], 3, 0.01, 200) == stop == record["steps"][-1]
    marked = stopped.history_.dropna(subset=["stop_signal"])
    assert marked["step"].tolist() == record["steps"]  # the signal is in the loss history where it was measured


def test_a_fit_whose_signal_does_not_level_off_runs_to_the_maximum(easy, stopped):
    stop = stopped.fit_report_["stopped_at"]
    shorter = scm.SCMODAL(steps=stop - 50, **FAST).fit(easy.datasets, scm.first_columns(easy.n_linked))
    assert shorter.fit_report_["stopped_at"] is None and shorter.step == stop - 50
    assert len(shorter.fit_report_["stop"]["steps"]) == (stop - 50) // 50


def test_resume_after_a_stop_and_before_it(easy, stopped, tmp_path):
    links = scm.first_columns(easy.n_linked)
    stop = stopped.fit_report_["stopped_at"]
    # a run that stopped: resuming it trains no further and gives the same model
    stopped.save(tmp_path / "done")
    again = scm.SCMODAL(steps=3000, **FAST).fit(easy.datasets, links, resume_from=tmp_path / "done")
    assert again.step == stop
    np.testing.assert_array_equal(again.latent_[0], stopped.latent_[0])
    # a run cut off before its stop: resumed, it stops at the same step with the same latent
    cut = scm.SCMODAL(steps=3000, checkpoint_dir=tmp_path / "cut", checkpoint_every=100, **FAST)
    with pytest.raises(_Killed):  # the process dies after step 200 (its checkpoint written)
        cut.fit(easy.datasets, links, callback=lambda step, _: _interrupt(step, 200))
    resumed = scm.SCMODAL(steps=3000, **FAST).fit(easy.datasets, links, resume_from=tmp_path / "cut")
    assert resumed.fit_report_["stopped_at"] == stop
    np.testing.assert_array_equal(resumed.latent_[0], stopped.latent_[0])
    assert resumed.fit_report_["stop"]["values"] == stopped.fit_report_["stop"]["values"]


class _Killed(Exception):
    pass


def _interrupt(step, at):
    if step >= at:
        raise _Killed


def test_ensemble_members_stop_one_by_one_and_are_kept_as_they_were_then(easy):
    """Each member stops where the rule reads its own signal, training goes on for the others, and the member kept
    is its state at its own stop step: its recorded signal there equals the kept model's signal measured afresh.
    (Over hundreds of steps a vmapped member drifts from its single-seed run by float rounding, so the stop steps
    are checked against the rule, not against separate runs.)"""
    links = scm.first_columns(easy.n_linked)
    ensemble = scm.SCMODAL(steps=3000, n_seeds=3, **FAST).fit(easy.datasets, links)
    record, report = ensemble.fit_report_["stop"], ensemble.fit_report_
    for m in range(3):
        values = [v[m] for v in record["values"]]
        assert record["stop_step"][m] == _by_hand(values, record["steps"], 3, 0.01, 200)
    assert len(set(record["stop_step"])) > 1  # they do not all stop together here
    best = report["chosen_seed"] - FAST["seed"]
    stop = record["stop_step"][best]
    assert report["stopped_at"] == stop and ensemble.history_["step"].iloc[-1] == stop
    assert stop < max(record["stop_step"])  # here: members stop at 450 / 600 / 550, the first is kept
    rows = subsample_rows([x.shape[0] for x in easy.datasets], FAST["stop_cells"], STOP_SUBSAMPLE_SEED)
    latents = [ensemble.transform(x[r], modality=i) for i, (x, r) in enumerate(zip(easy.datasets, rows, strict=True))]
    n = easy.n_linked
    fresh = link_consistency(latents[0], latents[1], easy.datasets[0][rows[0], :n], easy.datasets[1][rows[1], :n])
    assert fresh == pytest.approx(record["values"][record["steps"].index(stop)][best], abs=1e-4)
