"""Replay the stopping rule on the recorded convergence curves: where would each run have stopped, and what label
transfer would it have had there?

    python scripts/stopping_replay.py signals [--store /work/convergence_store]   # measure the signal per run
    python scripts/stopping_replay.py replay [--window 4 --tol 0.005 --min-steps 2000] [--grid]

`signals` reads the latents that scripts/convergence.py stored every 250 steps, computes the stopping signal on
the fixed subsample exactly as `runtime.stopping.StopMonitor` does (link consistency of `stop_cells` cells per
dataset drawn with `STOP_SUBSAMPLE_SEED`; tests/test_stopping.py checks the two agree) and appends one line per
run to experiments/convergence/signals.jsonl. `replay` applies `plateau_reached` to those series and compares
the label transfer at the stop with the 10,000-step run's (curves.jsonl); `--grid` scans rule settings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
CURVES = ROOT / "experiments" / "convergence" / "curves.jsonl"
SIGNALS = ROOT / "experiments" / "convergence" / "signals.jsonl"
# The bar: the stopped runs' label transfer within this of the 10,000-step runs' (mean over seeds).
MARGIN = 0.005


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def measure_signals(store: Path, data_dir: str, cells: int) -> None:
    from bench_accuracy import build_integration

    from scmodal_jax.metrics.quality import link_consistency
    from scmodal_jax.runtime.stopping import STOP_SUBSAMPLE_SEED, subsample_rows

    done = {(r["dataset"], r["seed"], r["cells"]) for r in _records(SIGNALS)}
    integrations = {}
    for run in _records(CURVES):
        key = (run["dataset"], run["seed"], cells)
        if key in done:
            continue
        folder = store / f"{run['dataset']}_s{run['seed']}_{run['steps']}"
        if not folder.is_dir():  # its latents were lost: `replay` falls back on the curves' own series
            print(f"[signals] {folder.name}: no stored latents, skipped", flush=True)
            continue
        if run["dataset"] not in integrations:
            integrations[run["dataset"]] = build_integration(run["dataset"], data_dir)
        prepared = integrations[run["dataset"]].prepared
        links = prepared.link_matrices()
        rows = subsample_rows([x.shape[0] for x in prepared.datasets], cells, STOP_SUBSAMPLE_SEED)
        steps, values = [], []
        for e in run["evals"]:
            f = folder / f"latent_{e['step']:06d}.npz"
            with np.load(f) as z:
                latents = [z[f"arr_{i}"][r] for i, r in enumerate(rows)]
            pair_scores = [
                link_consistency(latents[p], latents[p + 1], left[rows[p]], right[rows[p + 1]])
                for p, (left, right) in enumerate(links)
            ]
            steps.append(e["step"])
            values.append(float(np.mean(pair_scores)))
        with SIGNALS.open("a") as fh:
            fh.write(json.dumps({"dataset": run["dataset"], "seed": run["seed"], "cells": cells, "steps": steps,
                                 "values": values}) + "\n")  # fmt: skip
        print(f"[signals] {run['dataset']} s{run['seed']}: {len(steps)} evaluations", flush=True)


def stop_step(steps: list[int], values: list[float], window: int, tol: float, min_steps: int) -> int:
    from scmodal_jax.runtime.stopping import plateau_reached

    for j in range(len(steps)):
        if plateau_reached(values[: j + 1], steps[: j + 1], window, tol, min_steps):
            return steps[j]
    return steps[-1]


def _signal(run: dict, measured: dict | None, cells: int) -> tuple[list[int], list[float], str]:
    """A run's signal series and where it comes from.

    "subsample": measured by `signals` on the stored latents. Without a measured line (the run's latents are gone)
    the curves' own link consistency on all cells stands in: "exact" where no dataset has more than `cells` cells
    (the subsample is then every cell, the same numbers: checked on bmmc_cite and bmmc_cite_cross_batch seed 0),
    "all cells" otherwise (a proxy: on pbmc_cytof seed 0 the two series differ by at most 0.008)."""
    if measured is not None:
        return measured["steps"], measured["values"], "subsample"
    steps = [e["step"] for e in run["evals"]]
    values = [e["quality_link_consistency"] for e in run["evals"]]
    return steps, values, "exact" if max(run["n_cells"]) <= cells else "all cells"


def replay(window: int, tol: float, min_steps: int, cells: int, verbose: bool = True) -> dict:
    signals = {(r["dataset"], r["seed"]): r for r in _records(SIGNALS) if r["cells"] == cells}
    by_set: dict[str, list[dict]] = {}
    for run in _records(CURVES):
        steps, values, source = _signal(run, signals.get((run["dataset"], run["seed"])), cells)
        stop = stop_step(steps, values, window, tol, min_steps)
        at = {e["step"]: e for e in run["evals"]}
        family = "pbmc5k_small_panels" if run["dataset"].startswith("pbmc5k_small_panel") else run["dataset"]
        last = run["evals"][-1]
        by_set.setdefault(family, []).append({
            "dataset": run["dataset"], "seed": run["seed"], "stop": stop, "signal": source,
            "lt_stop": at[stop]["label_transfer_accuracy"], "lt_full": last["label_transfer_accuracy"],
            "fos_stop": at[stop].get("foscttm"), "fos_full": last.get("foscttm"),
            "mix_stop": at[stop]["mixing_metric"], "mix_full": last["mixing_metric"],
            "collapsed": bool(at[stop].get("quality_collapsed", False)),
        })  # fmt: skip
    summary = {}
    for family, runs in by_set.items():
        gap = float(np.mean([r["lt_stop"] for r in runs]) - np.mean([r["lt_full"] for r in runs]))
        steps = float(np.mean([r["stop"] for r in runs]))
        ok = gap >= -MARGIN and not any(r["collapsed"] for r in runs)
        summary[family] = {"gap": gap, "mean_stop": steps, "ok": ok, "runs": runs}
        if verbose:
            per_run = ", ".join(f"{r['dataset'].removeprefix('pbmc5k_small_panel_')} s{r['seed']}: stop {r['stop']} "
                                f"LT {r['lt_stop']:.3f} (10k {r['lt_full']:.3f})" for r in runs)  # fmt: skip
            print(f"{family:24s} mean gap {gap:+.4f}  mean stop {steps:6.0f}  {'ok' if ok else 'MISS'}  | {per_run}")
    return summary


def write_markdown(summary: dict, window: int, tol: float, min_steps: int, cells: int, path: Path) -> None:
    """replay.md: per set and run, the stop step and the metrics there beside the 10,000-step run's."""

    def fmt(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["# The stopping rule replayed on the convergence curves", "",
             f"Rule: stop at the first evaluation (every 250 steps) from step {min_steps:,} where the mean link "
             f"consistency of the last {window} evaluations exceeds the mean of the {window} before by less than "
             f"{tol} ({cells} cells per dataset). Each run's signal: signals.jsonl (\"subsample\"), or where the run's "
             "stored latents were lost before it was measured, the curves' link consistency on all cells "
             "(\"exact\" where no dataset has more cells than the subsample, else \"all cells\", a proxy); its "
             "metrics: curves.jsonl. "
             f"Bar: the stopped runs' mean label transfer at most {MARGIN} below the 10,000-step runs' mean, no "
             "collapse. `python scripts/stopping_replay.py replay` prints this.", "",
             "| set | run | signal | stop step | label transfer (stop / 10k) | FOSCTTM (stop / 10k) "
             "| mixing (stop / 10k) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for family, s in summary.items():
        for r in s["runs"]:
            name = r["dataset"].removeprefix("pbmc5k_small_panel_")
            lines.append(f"| {family} | {name} seed {r['seed']} | {r['signal']} | {r['stop']:,} | "
                         f"{fmt(r['lt_stop'])} / {fmt(r['lt_full'])} | {fmt(r['fos_stop'])} / {fmt(r['fos_full'])} | "
                         f"{fmt(r['mix_stop'], 1)} / {fmt(r['mix_full'], 1)} |")  # fmt: skip
        verdict = "within the bar" if s["ok"] else "MISSES the bar"
        lines.append(f"| **{family}** | mean of {len(s['runs'])} | | {s['mean_stop']:,.0f} | gap {s['gap']:+.4f} "
                     f"({verdict}) | | |")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["signals", "replay"])
    parser.add_argument("--store", default="/work/convergence_store")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--tol", type=float, default=0.005)
    parser.add_argument("--min-steps", type=int, default=2000)
    parser.add_argument("--grid", action="store_true")
    args = parser.parse_args(argv)
    if args.what == "signals":
        measure_signals(Path(args.store), args.data_dir, args.cells)
        return
    if not args.grid:
        summary = replay(args.window, args.tol, args.min_steps, args.cells)
        write_markdown(summary, args.window, args.tol, args.min_steps, args.cells, SIGNALS.with_name("replay.md"))
        return
    rows = []
    for window, tol, min_steps in itertools.product((2, 3, 4, 6, 8), (0.0, 0.002, 0.005, 0.01), (1000, 2000, 3000)):
        s = replay(window, tol, min_steps, args.cells, verbose=False)
        rows.append((all(v["ok"] for v in s.values()), np.mean([v["mean_stop"] for v in s.values()]), window, tol,
                     min_steps, min(v["gap"] for v in s.values())))  # fmt: skip
    for ok, mean_stop, window, tol, min_steps, worst in sorted(rows, key=lambda r: (not r[0], r[1])):
        print(f"{'ok  ' if ok else 'MISS'} mean stop {mean_stop:6.0f}  window {window} tol {tol} min {min_steps}  "
              f"worst gap {worst:+.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
