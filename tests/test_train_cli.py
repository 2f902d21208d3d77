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
from conftest import shared_file
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scmodal_jax.cli import config as config_module
from scmodal_jax.cli.sweeps import collect_runs, write_tables
from scmodal_jax.cli.train import run

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
ABLATIONS = [e for e in EXPERIMENTS if e.startswith("ablation_")]
FAST = [
    "train.steps=20", "train.steps_per_call=10", "train.log_every=10", "train.batch_size=64",
    "model.hidden=32", "model.disc_hidden=32", "train.k_anchor=10", "train.progress=false",
    "data.synthetic.n_cells=200", "data.synthetic.n_features=[30,12]", "data.synthetic.n_linked=6",
]  # fmt: skip


def _compose(overrides):
    config_module.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _cli(args, cwd, env=None):
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", "WANDB_MODE": "disabled", **(env or {})}
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
    integrated = ad.read_h5ad(run_dir / "integrated.h5ad")
    assert integrated.n_obs == 1200 and integrated.obsm["X_scmodal"].shape == (1200, 20)
    assert list(integrated.obs["modality"].cat.categories) == ["rna", "protein"]
    assert "cell_type" in integrated.obs
    history = pd.read_csv(run_dir / "loss_history.csv")
    assert list(history["step"]) == list(range(1, 201))
    assert "JAX" in (run_dir / "train.log").read_text()


def test_multirun_sweep_over_weights_and_modality_order(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = _cli(
        ["-m", "model.lambda_geo=1,10", "data.order=[mod0,mod1],[mod1,mod0]", *FAST, "eval.umap=false",
         "logger=none", f"hydra.sweep.dir={sweep_dir}"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
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
    tiny = [o for o in FAST if not o.startswith("data.synthetic")]
    summary = run(_compose([f"+experiment={name}", *tiny, "eval.umap=false", "logger=none"]), tmp_path)
    assert summary["final_step"] == 20
    integrated = ad.read_h5ad(tmp_path / "integrated.h5ad")
    assert np.isfinite(integrated.obsm["X_scmodal"]).all()
    transfer = [v for k, v in summary.items() if k.startswith("label_transfer_accuracy")]
    assert len(transfer) == len(integrated.obs["modality"].cat.categories) - 1
    assert all(0 <= v <= 1 for v in transfer)


def test_resume_continues_from_the_checkpoint(tmp_path):
    common = [*FAST, "eval.umap=false", "eval.metrics=false", "logger=csv", "train.checkpoint_every=10"]
    first = run(_compose(common), tmp_path)
    assert first["final_step"] == 20
    resumed = run(_compose([*common, "train.steps=40", "train.resume=true"]), tmp_path)
    assert resumed["final_step"] == 40
    history = pd.read_csv(tmp_path / "loss_history.csv")
    assert list(history["step"]) == list(range(1, 41))
    run(_compose([*common, "train.steps=40"]), tmp_path / "straight")
    np.testing.assert_allclose(
        history["loss_total"], pd.read_csv(tmp_path / "straight" / "loss_history.csv")["loss_total"], rtol=1e-5
    )
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert list(log["step"]) == [10, 20, 30, 40]


def test_wandb_offline_writes_a_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    summary = run(_compose([*FAST, "eval.umap=false", "logger=wandb"]), tmp_path)
    assert summary["final_step"] == 20
    offline_runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert any(offline_runs[0].glob("*.wandb"))


def test_config_schema_covers_every_hyperparameter_with_the_same_defaults():
    from dataclasses import fields

    from scmodal_jax.cli.config import _TRAIN_ONLY, ModelConfig, TrainConfig
    from scmodal_jax.core.hparams import Hyperparameters

    schema = {f.name: f.default for f in fields(ModelConfig)}
    schema.update({f.name: f.default for f in fields(TrainConfig) if f.name not in _TRAIN_ONLY})
    assert schema == {f.name: f.default for f in fields(Hyperparameters)}
