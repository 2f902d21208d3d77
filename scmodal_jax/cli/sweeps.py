"""Collect the runs of a Hydra sweep (or any folder of runs) into one table of overrides and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml


def collect_runs(root: str | Path) -> pd.DataFrame:
    """One row per run directory below `root` that holds a metrics.json: its overrides, then its metrics."""
    rows = []
    for metrics_file in sorted(Path(root).rglob("metrics.json")):
        run_dir = metrics_file.parent
        row: dict[str, object] = {"run": str(run_dir.relative_to(root)) if run_dir != Path(root) else "."}
        overrides_file = run_dir / ".hydra" / "overrides.yaml"
        if overrides_file.exists():
            for item in yaml.safe_load(overrides_file.read_text()) or []:
                key, _, value = str(item).partition("=")
                row[key.lstrip("+~")] = value
        row.update(json.loads(metrics_file.read_text()))
        rows.append(row)
    if not rows:
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
    table.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(table))
    return csv_path, md_path
