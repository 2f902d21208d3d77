"""`python -m scmodal_jax.train +experiment=NAME [overrides]`: one integration end to end.

Config -> data builder -> SCMODAL.fit (checkpointing, logging) -> outputs in the Hydra run directory:
config.yaml, checkpoint/, integrated.h5ad, metrics.json, loss_history.csv, umap_*.png.
"""

from __future__ import annotations

import importlib.util
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
from ..runtime import checkpoint, files
from ..runtime.devices import broadcast_text, initialize_distributed, is_primary
from . import config as config_module
from .loggers import RunLogger, make_logger

log = logging.getLogger("scmodal_jax.train")
config_module.register()

CHECKPOINT_DIR = "checkpoint"
# The configs live in the top-level conf/, installed (wheel, sdist or editable) as the package scmodal_jax.conf
# (setup.py); a source tree used without installing it has only the folder, read as files by absolute path.
CONF_PACKAGE = "scmodal_jax.conf"
CONF_PATH = (
    f"pkg://{CONF_PACKAGE}"
    if importlib.util.find_spec(CONF_PACKAGE) is not None
    else str(Path(__file__).resolve().parents[2] / "conf")
)


def _labels(integration: Integration) -> list[np.ndarray] | None:
    return None if integration.prepared.labels is None else [np.asarray(x) for x in integration.prepared.labels]


def evaluate(model: SCMODAL, integration: Integration, seed: int) -> dict[str, float]:
    from ..metrics import evaluate as evaluate_latents

    paired = integration.paired and len(model.latent_) == 2
    return evaluate_latents(model.latent_, _labels(integration), paired=paired, seed=seed)


def _resume_path(cfg: DictConfig, run_dir: Path) -> Path | None:
    if cfg.train.resume_from:
        path = Path(cfg.train.resume_from)
        if not checkpoint.exists(path):
            raise FileNotFoundError(f"train.resume_from={path} holds no scmodal_jax checkpoint")
        return path
    if cfg.train.resume:
        path = run_dir / CHECKPOINT_DIR
        if checkpoint.exists(path):
            return path
        if path.exists():
            # Never silently restart from step 0 over a checkpoint that is there but unreadable.
            raise checkpoint.CheckpointError(
                f"train.resume=true but {path} holds no complete checkpoint ({checkpoint.METADATA_FILE} missing): "
                "it is damaged; restore it or remove it to start from step 0"
            )
        log.warning("train.resume=true but %s holds no checkpoint yet: starting from step 0", path)
    return None


def write_outputs(model: SCMODAL, integration: Integration, run_dir: Path) -> Path:
    prep = integration.prepared
    adatas = [ad.AnnData(obs=obs.copy()) for obs in prep.obs]
    combined, _ = to_anndata(model, adatas, modality_names=prep.modalities, impute=False)
    path = run_dir / "integrated.h5ad"
    with files.atomic_path(path) as tmp:
        write_h5ad(combined, tmp)
    return path


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Everything `main` does, callable without Hydra's decorator (tests, notebooks)."""
    config_module.validate(cfg)
    if cfg.train.distributed:
        initialize_distributed()  # coordinator, process count and id from the launcher's environment
        # Every process trains; process 0 writes the outputs, into its run directory (Hydra's ${now:} may differ).
        run_dir = Path(broadcast_text(str(Path(run_dir).absolute())))
    primary = is_primary()
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    run_dir.mkdir(parents=True, exist_ok=True)
    if primary:
        files.write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
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
        # An ensemble keeps one member at the end: periodic checkpoints of all of them are not written.
        checkpoint_dir=run_dir / CHECKPOINT_DIR if cfg.train.checkpoint_every and cfg.train.n_seeds == 1 else None,
        checkpoint_every=(cfg.train.checkpoint_every or None) if cfg.train.n_seeds == 1 else None,
        n_seeds=cfg.train.n_seeds,
        devices=OmegaConf.to_object(cfg.train.devices) if OmegaConf.is_list(cfg.train.devices) else cfg.train.devices,
        data_mode=cfg.train.data_mode,
        prefetch=cfg.train.prefetch,
    )
    logger_cfg = cfg.logger if primary else OmegaConf.merge(cfg.logger, {"name": "none"})
    run_logger: RunLogger = make_logger(logger_cfg, run_dir, OmegaConf.to_container(cfg, resolve=True))
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
        model.save(run_dir / CHECKPOINT_DIR)  # every process: a collective write
        summary: dict[str, Any] = {
            "fit_seconds": fit_seconds,
            "final_step": model.step,
            "platform": jax.default_backend(),
            "device_count": jax.device_count(),
            "mesh_devices": model.fit_report_.get("devices", 1),  # how many the batch rows were sharded over
            "process_count": jax.process_count(),
        }
        if not primary:
            return summary
        # Each output appears complete under its final name or not at all (a killed run leaves no half file).
        with files.atomic_path(run_dir / "loss_history.csv") as tmp:
            model.history_.to_csv(tmp, index=False)
        write_outputs(model, integration, run_dir)
        # The label-free quality score (no labels needed): there for every run, labelled data or not.
        summary.update({f"quality_{k}": v for k, v in model.fit_report_.get("quality", {}).items()})
        summary["link_smoothing_weights"] = model.fit_report_.get("link_smoothing", [])  # chosen per dataset pair
        if "disc_gp_probe" in model.fit_report_:  # model.disc_gp_auto: the probe's reading and decision
            probe = model.fit_report_["disc_gp_probe"]
            summary["disc_gp_probe_ratio"], summary["disc_gp_kept"] = probe["ratio"], probe["penalty"]
        if "stop" in model.fit_report_:  # train.early_stop: where it stopped (None: ran to train.steps) and why
            stop = model.fit_report_["stop"]
            summary["stopped_at"] = model.fit_report_["stopped_at"]
            summary["stop_signal"] = {"steps": stop["steps"], "values": [float(np.mean(v)) for v in stop["values"]]}
        if "chosen_seed" in model.fit_report_:  # train.n_seeds > 1: which member was kept, and every member's score
            summary["chosen_seed"] = model.fit_report_["chosen_seed"]
            summary["members_link_consistency"] = [m["link_consistency"] for m in model.fit_report_["members"]]
        if cfg.eval.metrics:
            summary.update(evaluate(model, integration, cfg.eval.seed))
        files.write_text(run_dir / "metrics.json", json.dumps(summary, indent=1))
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


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    return run(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
