"""Smoke tests of the benchmark scripts' bookkeeping and tables on tiny synthetic inputs (one tiny ensemble trains)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench_accuracy as ba  # noqa: E402
import bench_scale as bs  # noqa: E402
import maxfuse_baseline as mfb  # noqa: E402
import run_benchmarks as rb  # noqa: E402


def _record(dataset, method, variant, seed, steps, paired=True, **metrics):
    base = {k: 0.5 + 0.01 * seed for k in ba.METRICS}
    if not paired:
        base["foscttm"] = base["pair_distance"] = None
    base.update(metrics)
    return {
        "dataset": dataset, "method": method, "variant": variant, "seed": seed, "steps": steps, "fit_s": 1.0,
        "n_cells": [10, 12], "n_features": [5, 4], "paired": paired, "command": f"python bench {dataset}", **base,
    }  # fmt: skip


def test_mean_sd_formats():
    assert ba.mean_sd([0.5]) == "0.500"
    assert ba.mean_sd([1.0, 2.0, 3.0], digits=1) == "2.0 ± 1.0"
    assert ba.mean_sd([None, float("nan")]) == "n/a"


def test_strip_option():
    argv = ["--cache", "/x/y.jsonl", "--steps", "5", "--cache=/z", "--out-dir", "b"]
    assert ba.strip_option(argv, "--cache") == ["--steps", "5", "--out-dir", "b"]


def test_cache_roundtrip_and_keys(tmp_path):
    path = tmp_path / "runs.jsonl"
    rec = _record("d", "linked", "-", 0, 0)
    ba.append_record(path, rec)
    ba.append_record(path, _record("d", "scmodal", "full", 1, 300))
    loaded = ba.load_records(path)
    assert len(loaded) == 2 and loaded[0]["dataset"] == "d"
    assert ba.run_key(loaded[1]) == ("d", "scmodal", "full", 1, 300)
    assert ba.run_key(rec) == ("d", "linked", "-", 0, 0)


def test_plan_respects_dataset_steps():
    args = ba.build_parser().parse_args(["--datasets", "a", "b", "--methods", "scmodal", "linked", "--seeds", "0", "1",
                                         "--steps", "50", "--dataset-steps", "b=7"])  # fmt: skip
    args.dataset_steps = ba.parse_dataset_steps(args.dataset_steps)
    jobs = ba.plan(args)
    assert ("a", "scmodal", "full", 1, 50) in jobs and ("b", "scmodal", "full", 0, 7) in jobs
    assert ("b", "linked", "-", 0, 0) in jobs and len(jobs) == 8


def test_write_tables(tmp_path):
    records = [_record("bmmc_cite", "linked", "-", 0, 0, label_transfer_accuracy=0.25)]
    for seed in range(3):
        records.append(_record("bmmc_cite", "scmodal", "full", seed, 1000))
        records.append(_record("bmmc_cite", "scmodal", "full", seed, 100, label_transfer_accuracy=0.0))  # superseded
        records.append(_record("bmmc_cite", "maxfuse", "-", seed, 0))
        records.append(_record("pbmc_cytof", "scmodal", "full", seed, 500, paired=False))
    records.append(_record("bmmc_cite", "scmodal", "no_gan", 0, 1000, kbet=0.9))
    paths = ba.write_tables(records, tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in paths} == {
        "bmmc_cite/accuracy.md", "pbmc_cytof/accuracy.md", "ablations/ablations.md"}  # fmt: skip
    acc = (tmp_path / "bmmc_cite" / "accuracy.md").read_text()
    assert "## bmmc_cite" in acc and "## pbmc_cytof" not in acc
    assert "## pbmc_cytof" in (tmp_path / "pbmc_cytof" / "accuracy.md").read_text()
    assert "linked features only" in acc and "MaxFuse" in acc
    assert "0.510 ± 0.010" in acc  # mean ± sd over the three seeds of the 1000-step runs
    assert acc.index("| scMODAL (default) | 100 |") < acc.index("| scMODAL (default) | 1000 |")
    assert "unpaired" in (tmp_path / "pbmc_cytof" / "accuracy.md").read_text()
    assert "n/a" in (tmp_path / "pbmc_cytof" / "accuracy.md").read_text()
    assert "python bench bmmc_cite" in acc
    abl = (tmp_path / "ablations" / "ablations.md").read_text()
    assert "w/o GAN" in abl and "0.900" in abl and "## pbmc_cytof" not in abl
    assert "0.50 / 0.51 / 0.52" in acc  # per-seed label transfer


def test_scale_markdown():
    runs = [{
        "n": n, "features": [50, 10, 5], "steps": 200, "data_gib": n * 60 * 4 / bs.GIB, "generate_s": 0.1,
        "ms_per_step": 10.0, "setup_s": 3.0, "encode_s": 0.5, "wall_s": 5.5, "target_steps": 10_000,
        "extrapolated_wall_s": 103.5, "rss_start_gib": 0.5, "rss_data_gib": 0.6, "peak_rss_gib": 0.9,
        "latent_shape": [n, 20],
    } for n in (1000, 10_000)]  # fmt: skip
    rows = [{"shape": "50,10,5", "ms_per_step": 10.0, "floor_ms": 2.0, "ratio": 5.0, "gflop_per_step": 0.1}]
    md = bs.scale_markdown(runs, rows, "python scripts/bench_scale.py --ns 1000", "2 CPU cores")
    assert "10,000" in md and "extrapolat" in md and "| 50,10,5 | 10.0 | 2.0 | 5.00 |" in md
    assert "0.30" in md  # peak - RSS with data
    assert "Memory model fitted" in md


def test_synthetic_pair_shapes_and_links():
    x1, x2 = bs.synthetic_pair(3000, 12, 8, 4, chunk=1000)
    assert x1.shape == (3000, 12) and x2.shape == (3000, 8) and x1.dtype == np.float32

    def rel_diff(a, b):
        return np.abs(a - b).max() / np.abs(a).max()

    # The linked columns share their loadings: same covariance in both datasets (3.5% apart at this size); the
    # next columns have their own loadings (47% apart).
    assert rel_diff(np.cov(x1[:, :4].T), np.cov(x2[:, :4].T)) < 0.15
    assert rel_diff(np.cov(x1[:, 4:8].T), np.cov(x2[:, 4:8].T)) > 0.3


def test_runner_quick_plan(tmp_path):
    args = rb.resolve(rb.build_parser().parse_args(["--quick", "--cache", str(tmp_path / "c.jsonl")]))
    assert args.steps == 200 and args.seeds == 1 and args.scale_ns == [10_000]
    assert "experiments" not in Path(args.out_dir).parts  # quick runs never overwrite the real tables
    calls = rb.accuracy_argv(args)
    assert len(calls) == 3 and "no_gan" in calls[2] and calls[1][calls[1].index("--steps") + 1] == "200"
    full = rb.resolve(rb.build_parser().parse_args(["--steps", "2000", "--dataset-steps", "pbmc_cytof=3000"]))
    assert full.seeds == 3 and full.scale_ns[-1] == 1_000_000
    assert "pbmc_cytof=3000" in rb.accuracy_argv(full)[1]
    assert rb.scale_argv(full)[:2] == ["--ns", "10000"]
    assert Path(full.out_dir).name == "experiments" and rb.scale_argv(full)[-1].endswith("experiments/scale/scale.md")


def test_maxfuse_helpers():
    x = np.zeros((5, 3))
    assert mfb._cap(30, x) == 2
    a = np.random.default_rng(0).normal(size=(6, 3))
    b = a.copy()
    b[:, 1] = 1.0
    left, right = mfb._drop_static(a, b)
    assert left.shape == right.shape == (6, 2)


def test_run_one_linked_on_tiny_synthetic():
    require("jax")
    from scmodal_jax.cli.config import DataConfig, SyntheticConfig
    from scmodal_jax.data.builders import build

    synthetic = SyntheticConfig(n_cells=60, n_features=[12, 8], n_linked=4, n_clusters=3)
    integ = build(DataConfig(name="synthetic", synthetic=synthetic))
    rec = ba.run_one("linked", "-", "synthetic", integ, seed=0, steps=0)
    assert rec["paired"] and rec["steps"] == 0 and rec["dims"] == 4
    assert all(rec[k] is not None for k in ba.METRICS)
    # per type: the cell-weighted mean of the types' accuracies is the overall 1-NN label transfer
    by_type = rec["label_transfer_by_type"]
    assert sum(t["n"] for t in by_type.values()) == 60
    weighted = sum(t["n"] * t["accuracy"] for t in by_type.values()) / 60
    assert weighted == pytest.approx(rec["label_transfer_accuracy"])


def test_run_one_ensemble_records_the_members_and_keeps_the_best_scored(tmp_path):
    require("jax")
    import json

    from scmodal_jax.cli.config import DataConfig, SyntheticConfig
    from scmodal_jax.data.builders import build

    synthetic = SyntheticConfig(n_cells=60, n_features=[12, 8], n_linked=4, n_clusters=3)
    integ = build(DataConfig(name="synthetic", synthetic=synthetic))
    rec = ba.run_one("scmodal", "ens3", "synthetic", integ, seed=5, steps=3)
    members = rec["members"]
    assert [m["seed"] for m in members] == [5, 6, 7]
    best = max(members, key=lambda m: m["link_consistency"])
    assert rec["chosen_seed"] == best["seed"]
    # the record's own quality (scored on the kept latents) is the kept member's
    assert rec["quality_link_consistency"] == pytest.approx(best["link_consistency"], abs=1e-6)
    assert rec["link_smoothing_weights"] == [0.0]  # the paper's training: no smoothing
    json.loads(json.dumps(rec))  # the cache line is plain JSON


def test_paired_subsample_keeps_the_same_cells_on_both_sides():
    import anndata as ad

    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(30)]
    rna = ad.AnnData(rng.normal(size=(30, 4)).astype(np.float32))
    rna.obs_names = names
    protein = ad.AnnData(rng.normal(size=(25, 3)).astype(np.float32))
    protein.obs_names = names[5:]  # 25 cells in common, in a shifted order of rows
    sub_rna, sub_protein = ba.paired_subsample(rna, protein, 10)
    assert list(sub_rna.obs_names) == list(sub_protein.obs_names)
    assert len(set(sub_rna.obs_names)) == 10 and set(sub_rna.obs_names) <= set(names[5:])
    np.testing.assert_array_equal(sub_protein.X, protein[sub_rna.obs_names].X)
    again, _ = ba.paired_subsample(rna, protein, 10)
    assert list(again.obs_names) == list(sub_rna.obs_names)  # seeded
    with pytest.raises(ValueError, match="cannot draw 26 paired cells from 25"):
        ba.paired_subsample(rna, protein, 26)


def test_cross_donor_analogue_splits_the_cells_shifts_the_composition_and_redraws_the_adt():
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(1)
    types = np.repeat(["B", "NK", "CD14 Mono", "naive CD4 T", "CD8 T"], 200)
    obs = pd.DataFrame({"cell_type": types}, index=[f"c{i}" for i in range(len(types))])
    rna = ad.AnnData(rng.poisson(1.0, (len(types), 5)).astype(np.float32), obs=obs)
    counts = rng.poisson(50.0, (len(types), 4)).astype(np.float32)
    protein = ad.AnnData(counts, obs=obs.copy(), var=pd.DataFrame(index=["A", "B", "C", "D"]))
    got_rna, got_protein = ba.cross_donor_analogue(rna, protein, seed=0)
    assert not set(got_rna.obs_names) & set(got_protein.obs_names)  # no cell has its partner
    for side, keep in (("rna", got_rna), ("protein", got_protein)):
        counts_by_type = keep.obs["cell_type"].value_counts()
        for label in np.unique(types):  # each half holds about 100 cells of a type before thinning
            share = ba.CROSS_DONOR_KEEP[side].get(label, 1.0)
            assert abs(counts_by_type.get(label, 0) - 100 * share) < 25, (side, label, counts_by_type.get(label))
    assert np.all(got_protein.X == np.round(got_protein.X))  # counts, re-normalised by the recipe afterwards
    original = protein[got_protein.obs_names].X.mean(axis=0)
    ratio = got_protein.X.mean(axis=0) / original  # a per-antibody efficiency (log-normal, sd 0.5) + background
    assert ratio.std() > 0.1 and np.all(ratio > 0)


def test_cpu_profile_summary_adds_each_tests_own_and_childrens_seconds(tmp_path):
    import json

    import pytest_cpu_profile as cpu

    rows = [{"id": "tests/a.py::x", "self": 1.0, "children": 2.0, "wall": 9.0},
            {"id": "tests/a.py::y", "self": 0.5, "children": 0.0, "wall": 1.0}]  # fmt: skip
    (tmp_path / "cpu_gw0.json").write_text(json.dumps({"rows": rows}))
    (tmp_path / "cpu_gw1.json").write_text(json.dumps({"rows": [{"id": "tests/b.py::z", "self": 4.0,
                                                                  "children": 0.0, "wall": 4.0}]}))  # fmt: skip
    text = cpu.summary(tmp_path, top=2)
    assert text.splitlines()[0] == "3 tests, 8 CPU s"
    assert "     4.0  tests/b.py" in text and "     3.5  tests/a.py" in text
    assert text.splitlines()[-2:] == ["     4.0  tests/b.py::z", "     3.0  tests/a.py::x"]
    cpu.save_costs(tmp_path, tmp_path / "costs.json")
    assert json.loads((tmp_path / "costs.json").read_text()) == {"tests/b.py": 4.0, "tests/a.py": 3.5}
    assert list(json.loads((tmp_path / "costs.json").read_text())) == ["tests/b.py", "tests/a.py"]  # costliest first


def test_neighbourhood_signals_overlap_and_neighbours_against_brute_force():
    import neighbourhood_signals as ns

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(30, 5))
    dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    np.testing.assert_array_equal(np.sort(ns._neighbours(x, 4), axis=1), np.sort(np.argsort(dist, 1)[:, :4], axis=1))
    cross = ((x[:, None] - y[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.sort(ns._cross(x, y, 3), axis=1), np.sort(np.argsort(cross, 1)[:, :3], axis=1))
    assert ns._overlap(np.array([[1, 2, 3], [4, 5, 6]]), np.array([[3, 2, 9], [7, 8, 9]])) == pytest.approx(1 / 3)
