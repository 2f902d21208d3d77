"""Run loggers for the CLI: CSV (no dependency), Weights & Biases (offline without credentials), none."""

from __future__ import annotations

import csv
import logging
import netrc
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def _netrc_path() -> Path:
    """The netrc file W&B reads: $NETRC, else ~/.netrc, else ~/_netrc (where it exists)."""
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    home = Path("~/.netrc").expanduser()
    windows = Path("~/_netrc").expanduser()
    return windows if not home.exists() and windows.exists() else home


def has_wandb_credentials() -> bool:
    """Whether W&B would find an API key: WANDB_API_KEY, or a netrc entry for the server (WANDB_BASE_URL)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").netloc
    try:
        entry = netrc.netrc(str(_netrc_path())).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return entry is not None and bool(entry[2])  # the password field holds the API key


def wandb_mode(configured: str | None) -> str:
    """The configured mode, else WANDB_MODE, else online with credentials and offline without."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if has_wandb_credentials() else "offline"


@dataclass
class RunIdentity:
    """How a run appears in the W&B dashboard."""

    name: str
    group: str
    tags: list[str]


# Overrides that say where a run goes or how it is logged, not what it computes; the experiment is the group.
_NOT_IN_NAME = ("hydra", "logger", "experiment", "experiment_name", "train.progress")
_MAX_NAME, _MAX_TAG = 128, 64  # W&B's limits: longer names or tags fail the run


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def _names_the_run(override: str) -> bool:
    key = _key(override)
    return not any(key == k or key.startswith(k + ".") for k in _NOT_IN_NAME)


def run_identity(
    config: Mapping[str, Any],
    run_dir: Path,
    settings: Any,
    overrides: Sequence[str] = (),
    swept: Collection[str] | None = None,
    sweep_id: str | None = None,
) -> RunIdentity:
    """Name, group and tags of a run.

    Name: the run's overrides (in a sweep, only the swept ones), else the run directory's name. Group:
    `logger.group`, else the experiment, one group per sweep (`<experiment>-sweep-<sweep_id>`). Tags:
    `logger.tags`, the experiment, the dataset, and "sweep" for sweep jobs.
    """
    experiment = str(config.get("experiment_name", "default"))
    kept = [o for o in overrides if _names_the_run(o)]
    if swept is not None:
        kept = [o for o in kept if _key(o) in swept] or kept
    name = ",".join(o.lstrip("+~") for o in kept) or Path(run_dir).name
    if len(name) > _MAX_NAME:
        name = name[: _MAX_NAME - 3] + "..."
    group = settings.group or (experiment if sweep_id is None else f"{experiment}-sweep-{sweep_id}")
    tags = [*settings.tags, f"experiment:{experiment}", f"data:{config.get('data', {}).get('name')}"]
    if sweep_id is not None:
        tags.append("sweep")
    return RunIdentity(name, group[:_MAX_NAME], list(dict.fromkeys(str(t)[:_MAX_TAG] for t in tags)))


def hydra_overrides() -> tuple[list[str], set[str] | None, str | None]:
    """(this job's overrides, the keys its sweep varies, the sweep's id) under Hydra; ([], None, None) without.

    A sweep job only sees its own values; the swept keys come from the sweep's multirun.yaml (the command line
    with its comma lists and ranges, plus `hydra.sweeper.params`), which Hydra writes before the first job.
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return [], None, None
    hc = HydraConfig.get()
    overrides = [str(o) for o in hc.overrides.task]
    if str(hc.mode) != "RunMode.MULTIRUN":
        return overrides, None, None
    sweep_dir = Path(hc.sweep.dir)
    swept: set[str] | None = None
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        sweep_cfg = OmegaConf.load(sweep_dir / "multirun.yaml").hydra
        params = [f"{k}={v}" for k, v in (sweep_cfg.sweeper.get("params") or {}).items()]
        parsed = OverridesParser.create().parse_overrides([*params, *sweep_cfg.overrides.task])
        swept = {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}
    except Exception as err:  # a custom sweeper may not write it: then every override names the job
        log.warning("could not read the swept keys from %s (%s)", sweep_dir / "multirun.yaml", err)
    return overrides, swept, sweep_dir.name


class WandbLogger(RunLogger):
    """One W&B run: loss curves and throughput per logging point, metrics as the summary, UMAPs as images, the
    resolved config; named, grouped and tagged by `run_identity` (offline without credentials)."""

    def __init__(self, run_dir: Path, config: dict[str, Any], settings: Any):
        try:
            import wandb
        except ImportError as err:  # pragma: no cover - wandb is a dev/extra dependency
            raise ImportError("logger=wandb needs W&B: pip install 'scmodal_jax[wandb]'") from err
        self._wandb = wandb
        self._step = 0
        mode = wandb_mode(settings.mode)
        overrides, swept, sweep_id = hydra_overrides()
        identity = run_identity(config, run_dir, settings, overrides, swept, sweep_id)
        log.info("W&B mode: %s, run %r in group %r", mode, identity.name, identity.group)
        self.run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            group=identity.group,
            tags=identity.tags,
            config=config,
            dir=str(run_dir),
            mode=mode,
            name=identity.name,
        )

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._step = step
        self.run.log(dict(metrics), step=step)

    def log_summary(self, summary: dict[str, Any]) -> None:
        for key, value in summary.items():
            self.run.summary[key] = value

    def log_images(self, images: dict[str, Path]) -> None:
        # At the last training step, so the images sit beside the final losses rather than one step later.
        self.run.log({name: self._wandb.Image(str(path)) for name, path in images.items()}, step=self._step)

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
