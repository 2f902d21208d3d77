"""`python -m scmodal_jax.train +experiment=NAME [overrides]`: one integration end to end.

Config -> data builder -> SCMODAL.fit (checkpointing, logging) -> outputs in the Hydra run directory:
config.yaml, checkpoint/, integrated.h5ad, metrics.json, loss_history.csv, umap_*.png.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import anndata as ad
import hydra
import jax
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ..data.builders import Integration, build
from ..data.io import to_anndata, write_h5ad
from ..model import SCMODAL
from . import config as config_module
from .loggers import RunLogger, make_logger

log = logging.getLogger("scmodal_jax.train")
config_module.register()

CHECKPOINT_DIR = "checkpoint"
# The configs live in the top-level conf/ (beside the package); an absolute path makes Hydra read them as files
# whichever module calls `main`.
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _labels(integration: Integration) -> list[np.ndarray] | None:
    return None if integration.prepared.labels is None else [np.asarray(x) for x in integration.prepared.labels]


def evaluate(model: SCMODAL, integration: Integration, seed: int) -> dict[str, float]:
    from ..metrics import evaluate as evaluate_latents

    paired = integration.paired and len(model.latent_) == 2
    return evaluate_latents(model.latent_, _labels(integration), paired=paired, seed=seed)


def _resume_path(cfg: DictConfig, run_dir: Path) -> Path | None:
    if cfg.train.resume_from:
        path = Path(cfg.train.resume_from)
        if not (path / "model.json").exists():
            raise FileNotFoundError(f"train.resume_from={path} holds no scmodal_jax checkpoint")
        return path
    if cfg.train.resume:
        path = run_dir / CHECKPOINT_DIR
        if (path / "model.json").exists():
            return path
        log.warning("train.resume=true but %s holds no checkpoint yet: starting from step 0", path)
    return None


def write_outputs(model: SCMODAL, integration: Integration, run_dir: Path) -> Path:
    prep = integration.prepared
    adatas = [ad.AnnData(obs=obs.copy()) for obs in prep.obs]
    combined, _ = to_anndata(model, adatas, modality_names=prep.modalities, impute=False)
    path = run_dir / "integrated.h5ad"
    write_h5ad(combined, path)
    return path


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Everything `main` does, callable without Hydra's decorator (tests, notebooks)."""
    config_module.validate(cfg)
    if cfg.train.distributed:
        jax.distributed.initialize()  # coordinator, process count and id from the launcher's environment
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("JAX %s on %s, %d device(s): %s", jax.__version__, jax.default_backend(), jax.device_count(),
             [str(d) for d in jax.devices()])  # fmt: skip
    integration = build(cfg.data)
    prep = integration.prepared
    log.info(
        "data %s: %s",
        cfg.data.name,
        ", ".join(f"{m} {x.shape}" for m, x in zip(prep.modalities, prep.datasets, strict=True)),
    )
    hp = config_module.hyperparameters(cfg)
    model = SCMODAL(
        **hp.to_dict(),
        progress=cfg.train.progress,
        log_every=cfg.train.log_every,
        checkpoint_dir=run_dir / CHECKPOINT_DIR if cfg.train.checkpoint_every else None,
        checkpoint_every=cfg.train.checkpoint_every or None,
        devices=cfg.train.devices,
        data_mode=cfg.train.data_mode,
        prefetch=cfg.train.prefetch,
    )
    run_logger: RunLogger = make_logger(cfg.logger, run_dir, OmegaConf.to_container(cfg, resolve=True))
    clock = {"t": time.perf_counter(), "step": None}

    def on_log(step: int, metrics: dict[str, float]) -> None:
        now = time.perf_counter()
        if clock["step"] is not None:
            metrics = {**metrics, "steps_per_s": (step - clock["step"]) / max(now - clock["t"], 1e-9)}
        clock.update(t=now, step=step)
        run_logger.log_metrics(step, metrics)

    try:
        resume = _resume_path(cfg, run_dir)
        if resume is not None:
            log.info("resuming from %s", resume)
        t0 = time.perf_counter()
        model.fit(prep, resume_from=resume, callback=on_log)
        fit_seconds = time.perf_counter() - t0
        model.save(run_dir / CHECKPOINT_DIR)
        model.history_.to_csv(run_dir / "loss_history.csv", index=False)
        write_outputs(model, integration, run_dir)
        summary: dict[str, Any] = {
            "fit_seconds": fit_seconds,
            "final_step": model.step,
            "platform": jax.default_backend(),
            "device_count": jax.device_count(),
        }
        if cfg.eval.metrics:
            summary.update(evaluate(model, integration, cfg.eval.seed))
        (run_dir / "metrics.json").write_text(json.dumps(summary, indent=1))
        run_logger.log_summary(summary)
        if cfg.eval.umap:
            from .plotting import umap_plots

            latent = np.concatenate(model.latent_)
            colourings = {"modality": np.repeat(prep.modalities, [len(z) for z in model.latent_])}
            labels = _labels(integration)
            if labels is not None:
                colourings["label"] = np.concatenate(labels)
            images = umap_plots(latent, colourings, run_dir, cfg.eval.umap_max_cells, cfg.eval.seed)
            run_logger.log_images(images)
        log.info("metrics: %s", json.dumps(summary))
        return summary
    finally:
        run_logger.close()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    return run(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
