"""Collect the runs of a Hydra sweep (or any folder of runs) into one table of overrides and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from ..runtime import files


def collect_runs(root: str | Path) -> pd.DataFrame:
    """One row per run directory below `root`: its overrides, its status, then its metrics.

    A run is a directory with a metrics.json, or a sweep job's directory (`.hydra/overrides.yaml`) without one:
    a job that failed, was killed or is still running (status "no metrics"), so that it is not silently missing.
    """
    root = Path(root)
    run_dirs = {f.parent for f in root.rglob("metrics.json")}
    run_dirs |= {f.parent.parent for f in root.rglob("overrides.yaml") if f.parent.name == ".hydra"}
    rows = []
    for run_dir in sorted(run_dirs):
        row: dict[str, object] = {"run": str(run_dir.relative_to(root)) if run_dir != root else "."}
        overrides_file = run_dir / ".hydra" / "overrides.yaml"
        if overrides_file.exists():
            for item in yaml.safe_load(overrides_file.read_text()) or []:
                key, _, value = str(item).partition("=")
                row[key.lstrip("+~")] = value
        metrics_file = run_dir / "metrics.json"
        row["status"] = "done" if metrics_file.exists() else "no metrics"
        if metrics_file.exists():
            row.update(json.loads(metrics_file.read_text()))
        rows.append(row)
    if not any(row["status"] == "done" for row in rows):
        raise FileNotFoundError(f"no run with a metrics.json below {root}")
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured markdown table (no optional dependency such as tabulate)."""

    def fmt(v: object) -> str:
        return f"{v:.{digits}g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_tables(root: str | Path, out_stem: str | Path | None = None) -> tuple[Path, Path]:
    table = collect_runs(root)
    stem = Path(out_stem) if out_stem is not None else Path(root) / "summary"
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with files.atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    files.write_text(md_path, to_markdown(table))
    return csv_path, md_path
