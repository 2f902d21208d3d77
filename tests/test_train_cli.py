"""The research workflow: Hydra composition, the CLI end to end, sweeps, resume, W&B offline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import require, shared_file
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from wandb_offline import read_offline_run

from scmodal_jax.cli import config as config_module
from scmodal_jax.cli.sweeps import collect_runs, write_tables
from scmodal_jax.cli.train import run
from scmodal_jax.data.builders import build
from scmodal_jax.metrics import foscttm, label_transfer_accuracy

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
ABLATIONS = [e for e in EXPERIMENTS if e.startswith("ablation_")]
FAST = [
    "train.steps=20", "train.steps_per_call=10", "train.log_every=10", "train.batch_size=64",
    "model.hidden=32", "model.disc_hidden=32", "train.k_anchor=10", "train.progress=false",
    "data.synthetic.n_cells=200", "data.synthetic.n_features=[30,12]", "data.synthetic.n_linked=6",
]  # fmt: skip
# No credentials anywhere W&B looks (and no WANDB_MODE): the logger must choose offline by itself.
NO_WANDB_CREDENTIALS = {"WANDB_MODE": None, "WANDB_API_KEY": None, "NETRC": None, "WANDB_BASE_URL": None,
                        "WANDB_SILENT": "true"}  # fmt: skip


def _compose(overrides):
    config_module.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _cli(args, cwd, env=None):
    """`python -m scmodal_jax.train ARGS`; `env` adds variables (a None value removes one)."""
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", "WANDB_MODE": "disabled", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "scmodal_jax.train", *args], cwd=cwd, env=full_env, capture_output=True, text=True
    )


@pytest.mark.parametrize("name", [e for e in EXPERIMENTS if e not in ABLATIONS])
def test_every_experiment_composes_and_validates(name):
    cfg = _compose([f"+experiment={name}"])
    config_module.validate(cfg)
    assert cfg.data.name != "synthetic"
    assert cfg.experiment_name == name


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_ablations_override_any_experiment(ablation):
    cfg = _compose([f"+experiment=[pbmc_cytof,{ablation}]"])
    config_module.validate(cfg)
    assert cfg.data.name == "pbmc_cytof"
    switched_off = {
        "ablation_no_gan": [cfg.model.lambda_gan],
        "ablation_no_anchor": [cfg.model.lambda_anchor],
        "ablation_no_geo": [cfg.model.lambda_geo],
        "ablation_no_ae": [cfg.model.lambda_ae, cfg.model.lambda_la],
    }[ablation]
    assert switched_off == [0.0] * len(switched_off)
    assert cfg.experiment_name.startswith("pbmc_cytof_no_")


def test_schema_rejects_misspelt_keys_and_bad_values():
    with pytest.raises(Exception, match="stepz"):
        _compose(["train.stepz=3"])
    with pytest.raises(Exception, match="steps"):
        _compose(["train.steps=many"])
    # the model part of the schema is generated from Hyperparameters: its keys and types are checked too
    with pytest.raises(Exception, match="lambda_gann"):
        _compose(["model.lambda_gann=1"])
    with pytest.raises(Exception, match="disc_gp_auto"):
        _compose(["model.disc_gp_auto=perhaps"])
    with pytest.raises(ValueError, match="logger.name"):
        config_module.validate(_compose(["logger.name=tensorboard"]))


def test_cli_help_cfg_job_and_unknown_experiment(tmp_path):
    helped = _cli(["--help"], tmp_path)
    assert helped.returncode == 0 and "experiment" in helped.stdout
    job = _cli(["+experiment=pbmc_cytof", "--cfg", "job"], tmp_path)
    assert job.returncode == 0
    assert OmegaConf.create(job.stdout).data.name == "pbmc_cytof"
    unknown = _cli(["+experiment=no_such_thing"], tmp_path)
    assert unknown.returncode != 0 and "no_such_thing" in unknown.stderr


def test_bmmc_cite_end_to_end_through_the_cli(tmp_path):
    shared_file("bmmc_cite_starter_600c_1000g_134adt.h5ad")
    run_dir = tmp_path / "run"
    result = _cli(
        ["+experiment=bmmc_cite", "train.steps=200", "train.checkpoint_every=100", "train.progress=false",
         f"hydra.run.dir={run_dir}"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ["config.yaml", "integrated.h5ad", "metrics.json", "loss_history.csv", "train_log.csv",
                 "umap_modality.png", "umap_label.png", "checkpoint/model.json"]:  # fmt: skip
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ["label_transfer_accuracy", "foscttm", "pair_distance", "asw", "mixing_metric", "kbet"]:
        assert np.isfinite(metrics[key]), key
    # a run no longer than the discriminator probe (300 steps) is not probed: the penalty as configured
    assert "disc_gp_kept" not in metrics
    integrated = ad.read_h5ad(run_dir / "integrated.h5ad")
    assert integrated.n_obs == 1200 and integrated.obsm["X_scmodal"].shape == (1200, 20)
    assert list(integrated.obs["modality"].cat.categories) == ["rna", "protein"]
    assert "cell_type" in integrated.obs
    history = pd.read_csv(run_dir / "loss_history.csv")
    assert list(history["step"]) == list(range(1, 201))
    assert "JAX" in (run_dir / "train.log").read_text()
    # metrics.json scores the latent the run wrote ...
    rna, protein = (integrated[(integrated.obs["modality"] == m).to_numpy()] for m in ("rna", "protein"))
    assert metrics["label_transfer_accuracy"] == pytest.approx(label_transfer_accuracy(
        rna.obsm["X_scmodal"], rna.obs["cell_type"].to_numpy(), protein.obsm["X_scmodal"],
        protein.obs["cell_type"].to_numpy()))  # fmt: skip
    assert metrics["foscttm"] == pytest.approx(foscttm(rna.obsm["X_scmodal"], protein.obsm["X_scmodal"]))
    # ... and the latent beats the linked features alone (label transfer 0.258, FOSCTTM 0.250). After 200 steps at
    # today's defaults, seeds 1234 / 0 / 1 / 2 (python scripts/test_margins.py --only bmmc_cli): label transfer
    # 0.320 / 0.305 / 0.317 / 0.295 (margins 0.037-0.062), FOSCTTM 0.155 / 0.161 / 0.152 / 0.146 (0.089-0.104
    # below the links'). The bounds sit about half-way: a run no better than the links fails them.
    prep = build(_compose(["+experiment=bmmc_cite"]).data).prepared
    (left, right), labels = prep.link_matrices()[0], [np.asarray(x) for x in prep.labels]
    assert metrics["label_transfer_accuracy"] > label_transfer_accuracy(left, labels[0], right, labels[1]) + 0.02
    assert metrics["foscttm"] < foscttm(left, right) - 0.05


def test_umap_runs_on_the_exact_neighbours_of_every_cell():
    from sklearn.neighbors import NearestNeighbors

    from scmodal_jax.cli.plotting import umap_neighbours

    latent = np.random.default_rng(0).normal(size=(150, 20)).astype(np.float32)
    index, distances = umap_neighbours(latent, 15)
    expected_d, expected_i = NearestNeighbors(n_neighbors=15).fit(latent).kneighbors(latent)  # self first
    np.testing.assert_array_equal(index, expected_i)
    np.testing.assert_allclose(distances, expected_d, atol=1e-4)


def test_multirun_sweep_over_weights_and_modality_order(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = _cli(
        ["-m", "model.lambda_geo=1,10", "data.order=[mod0,mod1],[mod1,mod0]", *FAST, "eval.umap=false",
         "logger=wandb", f"hydra.sweep.dir={sweep_dir}"],
        tmp_path,
        env=NO_WANDB_CREDENTIALS | {"HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # W&B: the sweep is one group, each job named by the values it sweeps (not by the fixed overrides)
    runs = {r.name: r for r in map(read_offline_run, sweep_dir.glob("*/wandb/offline-run-*"))}
    assert sorted(runs) == sorted(f"model.lambda_geo={g},data.order={o}" for g in (1, 10)
                                  for o in ("[mod0,mod1]", "[mod1,mod0]"))  # fmt: skip
    assert {r.group for r in runs.values()} == {"synthetic-sweep-sweep"}
    for r in runs.values():
        assert {"sweep", "experiment:synthetic", "data:synthetic"} <= set(r.tags)
        assert r.config["model"]["lambda_geo"] == float(r.name.split(",")[0].split("=")[1])
    job_dirs = sorted(p.parent for p in sweep_dir.rglob("metrics.json"))
    assert len(job_dirs) == 4 and len(set(job_dirs)) == 4
    table = collect_runs(sweep_dir)
    assert sorted(table["model.lambda_geo"]) == ["1", "1", "10", "10"]
    assert sorted(table["data.order"]) == ["[mod0,mod1]", "[mod0,mod1]", "[mod1,mod0]", "[mod1,mod0]"]
    assert table["label_transfer_accuracy"].between(0, 1).all()
    csv_path, md_path = write_tables(sweep_dir)
    assert pd.read_csv(csv_path).shape[0] == 4 and md_path.read_text().count("\n") == 6
    reversed_run = ad.read_h5ad(job_dirs[[r.endswith("[mod1,mod0]") for r in table["data.order"]].index(True)]
                                / "integrated.h5ad")  # fmt: skip
    assert list(reversed_run.obs["modality"].cat.categories) == ["mod1", "mod0"]


SHARED_EXPERIMENTS = {
    "pbmc5k_cite": ["pbmc5k_cite_4000g_29adt_labeled.h5ad"],
    "pbmc_cytof": ["cytof_pbmc_mario_4606c_30markers.h5ad", "cite_adt_pbmc5k_mario_5107c_29adt.h5ad"],
    "pbmc_trimodal": ["pbmc5k_cite_4000g_29adt_labeled.h5ad", "cytof_pbmc_mario_4606c_30markers.h5ad"],
    "bmmc_multiome": ["bmmc_multiome_starter_500c_rna600g.h5ad", "hg38_genes_gencode.tsv.gz"],
}


@pytest.mark.parametrize("name", sorted(SHARED_EXPERIMENTS))
def test_shared_data_experiments_run_end_to_end(name, tmp_path):
    for f in SHARED_EXPERIMENTS[name]:
        shared_file(f)
    # a fixed smoothing weight: the automatic choice (tests/test_link_smoothing.py) costs more than the 20 steps
    tiny = [o for o in FAST if not o.startswith("data.synthetic")] + ["model.link_smoothing_auto=false"]
    summary = run(_compose([f"+experiment={name}", *tiny, "eval.umap=false", "logger=none"]), tmp_path)
    assert summary["final_step"] == 20
    integrated = ad.read_h5ad(tmp_path / "integrated.h5ad")
    assert np.isfinite(integrated.obsm["X_scmodal"]).all()
    transfer = [v for k, v in summary.items() if k.startswith("label_transfer_accuracy")]
    assert len(transfer) == len(integrated.obs["modality"].cat.categories) - 1
    assert all(0 <= v <= 1 for v in transfer)


def test_resume_continues_from_the_checkpoint(tmp_path):
    common = [*FAST, "eval.umap=false", "eval.metrics=false", "logger=csv", "train.checkpoint_every=10"]
    first_dir, from_dir, straight_dir = tmp_path / "first", tmp_path / "from", tmp_path / "straight"
    assert run(_compose(common), first_dir)["final_step"] == 20
    run(_compose([*common, "train.steps=40"]), straight_dir)
    straight = pd.read_csv(straight_dir / "loss_history.csv")["loss_total"]
    # train.resume_from: a new run directory continues from another run's checkpoint (at step 20)
    resumed = run(_compose([*common, "train.steps=40", f"train.resume_from={first_dir / 'checkpoint'}"]), from_dir)
    assert resumed["final_step"] == 40
    history = pd.read_csv(from_dir / "loss_history.csv")
    assert list(history["step"]) == list(range(1, 41))
    np.testing.assert_allclose(history["loss_total"], straight, rtol=1e-5)
    # the witness that it resumed (a fresh 40-step run has the same losses): it logged only steps 21-40
    assert list(pd.read_csv(from_dir / "train_log.csv")["step"]) == [30, 40]
    with pytest.raises(FileNotFoundError, match="holds no scmodal_jax checkpoint"):
        run(_compose([*common, f"train.resume_from={tmp_path / 'nowhere'}"]), tmp_path / "bad")
    # the README's form, on the command line: train.resume=true in the earlier run's own directory
    result = _cli([*common, "train.steps=40", "train.resume=true", f"hydra.run.dir={first_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {first_dir / 'checkpoint'}" in (first_dir / "train.log").read_text()
    history = pd.read_csv(first_dir / "loss_history.csv")
    assert list(history["step"]) == list(range(1, 41))
    np.testing.assert_allclose(history["loss_total"], straight, rtol=1e-5)
    log = pd.read_csv(first_dir / "train_log.csv")
    assert list(log["step"]) == [10, 20, 30, 40]


def _without_credentials(monkeypatch, home):
    for key, value in NO_WANDB_CREDENTIALS.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))


def _netrc(path, host):
    path.write_text(f"machine {host}\n  login user\n  password {'k' * 40}\n")
    path.chmod(0o600)
    return path


def test_wandb_mode_follows_the_credentials(tmp_path, monkeypatch):
    from scmodal_jax.cli.loggers import has_wandb_credentials, wandb_mode

    _without_credentials(monkeypatch, tmp_path / "home")
    assert not has_wandb_credentials() and wandb_mode(None) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert has_wandb_credentials() and wandb_mode(None) == "online"
    assert wandb_mode("disabled") == "disabled"  # logger.mode wins over everything
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode(None) == "offline"  # then WANDB_MODE, even with credentials
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY")
    # a netrc named by $NETRC, for the default server, then for a self-hosted one (WANDB_BASE_URL)
    monkeypatch.setenv("NETRC", str(_netrc(tmp_path / "netrc", "api.wandb.ai")))
    assert wandb_mode(None) == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert wandb_mode(None) == "offline"
    _netrc(tmp_path / "netrc", "wandb.example.org")
    assert wandb_mode(None) == "online"
    monkeypatch.delenv("WANDB_BASE_URL")
    monkeypatch.delenv("NETRC")
    # ~/.netrc in the home directory; an entry without a key is no credential
    assert wandb_mode(None) == "offline"
    home_netrc = _netrc(tmp_path / "home" / ".netrc", "api.wandb.ai")
    assert wandb_mode(None) == "online"
    home_netrc.write_text("machine api.wandb.ai login user\n")
    assert wandb_mode(None) == "offline"


def test_wandb_run_identity_from_overrides():
    from types import SimpleNamespace

    from scmodal_jax.cli.loggers import run_identity

    config = {"experiment_name": "bmmc_cite", "data": {"name": "bmmc_cite"}}
    settings = SimpleNamespace(group=None, tags=["t" * 80])
    overrides = ["+experiment=bmmc_cite", "model.lambda_geo=1", "hydra.run.dir=/x", "logger=wandb", "train.steps=9"]
    single = run_identity(config, Path("/runs/2024-01-01"), settings, overrides)
    assert (single.name, single.group) == ("model.lambda_geo=1,train.steps=9", "bmmc_cite")
    assert single.tags == ["t" * 64, "experiment:bmmc_cite", "data:bmmc_cite"]  # W&B refuses tags over 64
    job = run_identity(config, Path("/s/3"), settings, overrides, swept={"train.steps"}, sweep_id="s1")
    assert (job.name, job.group, job.tags[-1]) == ("train.steps=9", "bmmc_cite-sweep-s1", "sweep")
    assert run_identity(config, Path("/runs/2024-01-01"), settings, ["+experiment=bmmc_cite"]).name == "2024-01-01"
    long = run_identity(config, Path("/r"), SimpleNamespace(group="mine", tags=[]), [f"data.x{i}=1" for i in range(40)])
    assert len(long.name) == 128 and long.name.endswith("...") and long.group == "mine"


def test_wandb_offline_run_holds_losses_metrics_images_and_config(tmp_path, monkeypatch):
    require("wandb")
    from scmodal_jax.cli import plotting

    _without_credentials(monkeypatch, tmp_path / "home")
    # The images' path, not UMAP itself (its numba compilation alone takes longer than this test).
    monkeypatch.setattr(plotting, "umap_embedding", lambda latent, seed=0: latent[:, :2])
    run_dir = tmp_path / "run"
    # the penalty probe (8 steps, before the 20) and the stopping signal (every 10 steps) on, so that their records
    # reach metrics.json, the loss history and W&B
    probe_and_stop = ["model.disc_gp_probe_steps=8", "train.stop_every=10", "train.stop_min_steps=10",
                      "train.stop_window=1", "train.stop_tol=-1.0"]  # fmt: skip
    cfg = _compose([*FAST, *probe_and_stop, "logger=wandb", "logger.tags=[mine]"])
    summary = run(cfg, run_dir)
    (offline,) = (run_dir / "wandb").glob("offline-run-*")  # offline chosen without WANDB_MODE: no credentials
    logged = read_offline_run(offline)
    assert (logged.name, logged.group) == ("run", "synthetic")  # no Hydra overrides: the run directory's name
    assert {"mine", "experiment:synthetic", "data:synthetic"} <= set(logged.tags)
    assert logged.config["train"]["steps"] == 20 and logged.config["data"]["synthetic"]["n_linked"] == 6
    # loss curves: the means over each logging interval of the per-step history
    history = pd.read_csv(run_dir / "loss_history.csv")
    for key in ("loss_total", "loss_anchor", "loss_d"):
        steps, values = zip(*logged.series(key), strict=True)
        assert steps == (10, 20)
        expected = [history[key][:10].mean(), history[key][10:].mean()]
        np.testing.assert_allclose(values, expected, rtol=1e-5, err_msg=key)
    assert [s for s, _ in logged.series("steps_per_s")] == [20]
    # metrics: the summary holds what metrics.json holds
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("label_transfer_accuracy", "foscttm", "asw", "kbet", "final_step"):
        assert logged.summary[key] == pytest.approx(metrics[key]), key
    assert summary["final_step"] == logged.summary["final_step"] == 20
    # the probe's reading: what a separate penalty-free raw-link run of its 8 steps reads, in metrics.json and W&B
    from scmodal_jax.model import SCMODAL
    from scmodal_jax.runtime.penalty_probe import penalty_decision

    probe_hp = {**config_module.hyperparameters(cfg).to_dict(), "steps": 8, "disc_gp": 0.0, "disc_gp_auto": False,
                "link_smoothing": 0.0, "link_smoothing_auto": False, "early_stop": False}  # fmt: skip
    alone = SCMODAL(progress=False, **probe_hp).fit(build(cfg.data).prepared)
    reading = penalty_decision(alone.history_["loss_d"].to_numpy(float), 1, 0.75)
    assert metrics["disc_gp_probe_ratio"] == pytest.approx(reading["ratio"], rel=1e-5)
    assert metrics["disc_gp_kept"] is reading["penalty"] and logged.summary["disc_gp_kept"] is reading["penalty"]
    # the stopping signal at steps 10 and 20: in metrics.json, in the loss history and in W&B's series
    signal = metrics["stop_signal"]
    assert signal["steps"] == [10, 20] and metrics["stopped_at"] is None  # tol -1: never levels off
    marked = history.dropna(subset=["stop_signal"])
    assert marked["step"].tolist() == [10, 20]
    np.testing.assert_allclose(marked["stop_signal"], signal["values"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in logged.series("stop_signal")], signal["values"], rtol=1e-6)
    # images: both UMAPs, at the last step, their files inside the run
    for name in ("umap_modality", "umap_label"):
        ((step, image),) = logged.series(name)
        assert step == 20 and image["_type"] == "image-file"
        assert (offline / "files" / image["path"]).stat().st_size > 1000
        assert image["path"] in logged.files


def test_config_schema_covers_every_hyperparameter_with_the_same_defaults():
    from dataclasses import fields

    from scmodal_jax.cli.config import _TRAIN_ONLY, ModelConfig, TrainConfig
    from scmodal_jax.core.hparams import Hyperparameters

    schema = {f.name: f.default for f in fields(ModelConfig)}
    schema.update({f.name: f.default for f in fields(TrainConfig) if f.name not in _TRAIN_ONLY})
    assert schema == {f.name: f.default for f in fields(Hyperparameters)}
    # and the composed default job trains with exactly the library's defaults (the yaml files set none of them)
    composed = config_module.hyperparameters(_compose(["data=bmmc_cite"]))
    assert composed == Hyperparameters(steps=composed.steps)
