"""Run loggers for the CLI: CSV (no dependency), Weights & Biases (offline without credentials), none."""

from __future__ import annotations

import csv
import logging
import netrc
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RunLogger:
    """Logs nothing; the interface every logger implements."""

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def log_summary(self, summary: dict[str, Any]) -> None:
        pass

    def log_images(self, images: dict[str, Path]) -> None:
        pass

    def close(self) -> None:
        pass


class CSVLogger(RunLogger):
    """Appends each logging point to `<run_dir>/train_log.csv` (the per-step history is written separately)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "train_log.csv"
        self._columns: list[str] | None = None

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **metrics}
        new = self._columns is None
        if new:
            self._columns = list(row)
            # A resumed run appends to the log it left behind.
            new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(configured: str | None) -> str:
    """The configured mode, else WANDB_MODE, else online with credentials and offline without."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if has_wandb_credentials() else "offline"


class WandbLogger(RunLogger):
    def __init__(self, run_dir: Path, config: dict[str, Any], settings: Any):
        try:
            import wandb
        except ImportError as err:  # pragma: no cover - wandb is a dev/extra dependency
            raise ImportError("logger=wandb needs W&B: pip install 'scmodal_jax[wandb]'") from err
        self._wandb = wandb
        mode = wandb_mode(settings.mode)
        log.info("W&B mode: %s", mode)
        self.run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            group=settings.group,
            tags=list(settings.tags),
            config=config,
            dir=str(run_dir),
            mode=mode,
            name=Path(run_dir).name,
        )

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def log_summary(self, summary: dict[str, Any]) -> None:
        for key, value in summary.items():
            self.run.summary[key] = value

    def log_images(self, images: dict[str, Path]) -> None:
        self.run.log({name: self._wandb.Image(str(path)) for name, path in images.items()})

    def close(self) -> None:
        self.run.finish()


def make_logger(settings: Any, run_dir: Path, config: dict[str, Any]) -> RunLogger:
    if settings.name == "csv":
        return CSVLogger(run_dir)
    if settings.name == "wandb":
        return WandbLogger(run_dir, config, settings)
    if settings.name == "none":
        return RunLogger()
    raise ValueError(f"unknown logger {settings.name!r}; choose csv, wandb or none")
