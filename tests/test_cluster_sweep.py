"""Cluster sweeps: a sweep through the submitit launcher (local executor: one process per job, as SLURM would
run them), then scripts/collect_sweep.py over its outputs. The SLURM config composes (it cannot run here).

Two jobs keep it small (each is a whole process: imports and compilation); the grid semantics are Hydra's, the
same with every launcher, and a 2 x 2 grid of weights x modality order runs in tests/test_train_cli.py."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from conftest import require
from omegaconf import OmegaConf

require("hydra_plugins.hydra_submitit_launcher", reason="the [cluster] extra is not installed")

REPO = Path(__file__).resolve().parents[1]
FAST = [
    "train.steps=20", "train.steps_per_call=10", "train.log_every=10", "train.batch_size=64",
    "model.hidden=32", "model.disc_hidden=32", "train.k_anchor=10", "train.progress=false",
    "data.synthetic.n_cells=200", "data.synthetic.n_features=[30,12]", "data.synthetic.n_linked=6",
    "eval.umap=false", "logger=none",
]  # fmt: skip
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "WANDB_MODE": "disabled"}


def test_sweep_over_weights_and_modality_order_through_submitit_local(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "scmodal_jax.train", "-m", "hydra/launcher=submitit_local", "model.lambda_geo=1,10",
         "data.order=[mod1,mod0]", *FAST, f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # submitit ran each job in its own process: one job folder per sweep point, with its logs and result.
    job_folders = [p for p in (sweep_dir / ".submitit").iterdir() if p.name != "%j"]
    assert len(job_folders) == 2 and all(list(p.glob("*_0_result.pkl")) for p in job_folders)
    collected = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "collect_sweep.py"), str(sweep_dir)],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stderr[-3000:]
    table = pd.read_csv(sweep_dir / "summary.csv", dtype={"model.lambda_geo": str})
    assert sorted(zip(table["model.lambda_geo"], table["data.order"], strict=True)) == [
        ("1", "[mod1,mod0]"), ("10", "[mod1,mod0]")
    ]  # fmt: skip
    assert (table["status"] == "done").all() and (table["final_step"] == 20).all()
    assert table["label_transfer_accuracy"].between(0, 1).all()
    assert (sweep_dir / "summary.md").read_text().count("\n") == 4
    # Each job trained with its own weight and the reversed modality order.
    for job in ("0", "1"):
        config = OmegaConf.load(sweep_dir / job / "config.yaml")
        assert list(config.data.order) == ["mod1", "mod0"]
        assert config.model.lambda_geo == float(table.set_index("run").loc[int(job), "model.lambda_geo"])

    # A job that died leaves its overrides but no metrics: it is listed, not silently dropped.
    (sweep_dir / "0" / "metrics.json").unlink()
    subprocess.run([sys.executable, str(REPO / "scripts" / "collect_sweep.py"), str(sweep_dir)], env=ENV,
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert sorted(table["status"]) == ["done", "no metrics"]


def test_slurm_launcher_config_composes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scmodal_jax.train", "hydra/launcher=slurm", "--cfg", "hydra"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    launcher = OmegaConf.create(result.stdout).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.max_num_timeout == 3 and launcher.gpus_per_node == 1
