"""Time to a result, scMODAL against MaxFuse, in one process on the same machine: from the prepared data to the
latent, then label transfer on it.

    python scripts/time_to_result.py [--datasets pbmc5k_cite pbmc5k_small_panel_p2 pbmc_cytof] [--seed 0]
        [--scmodal-kwargs '{"steps": 10000}'] [--out experiments/speed/time_to_result.jsonl]

For each data set the recipe's `Prepared` inputs are built once (not timed); then MaxFuse (scripts/
maxfuse_baseline.py, tutorial settings) and `SCMODAL(seed=...)` at today's defaults (penalty probe, link
smoothing, training until converged) each produce their latent, timed by wall clock (scMODAL's first run
includes its jit compilations, as a user's would). One JSON line per (data set, method) goes to `--out`, and
`--table` writes the markdown table beside it. Run it on a quiet machine: the two methods share it in turn.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("pbmc5k_cite", "pbmc5k_small_panel_p2", "pbmc_cytof")


def _commit() -> str | None:
    """The code's commit (records of different code versions sit side by side in one file)."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or None


def run(datasets, seed: int, scmodal_kwargs: dict, data_dir: str, out: Path, command: str) -> None:
    from bench_accuracy import build_integration
    from maxfuse_baseline import maxfuse_latents

    from scmodal_jax.metrics import evaluate
    from scmodal_jax.model import SCMODAL

    for dataset in datasets:
        integ = build_integration(dataset, data_dir)
        prepared = integ.prepared
        for method in ("maxfuse", "scmodal"):
            t = time.perf_counter()
            extra = {}
            if method == "maxfuse":
                latents = maxfuse_latents(prepared, seed=seed)
            else:
                model = SCMODAL(seed=seed, progress=False, **scmodal_kwargs).fit(prepared)
                latents = model.latent_
                extra = {"steps_trained": model.step, "stopped_at": model.fit_report_.get("stopped_at"),
                         "disc_gp_kept": model.fit_report_.get("disc_gp_probe", {}).get("penalty"),
                         "hyperparameters": scmodal_kwargs}  # fmt: skip
            seconds = time.perf_counter() - t
            metrics = evaluate(latents, prepared.labels, paired=integ.paired, seed=0)
            rec = {"dataset": dataset, "method": method, "seed": seed, "seconds": round(seconds, 1),
                   **{k: float(v) for k, v in metrics.items()}, **extra, "command": command,
                   "commit": _commit()}  # fmt: skip
            with out.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"[time_to_result] {dataset} {method}: {seconds:.0f} s, label transfer "
                  f"{metrics['label_transfer_accuracy']:.3f}", flush=True)  # fmt: skip


def table(out: Path) -> str:
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    lines = ["| data set | seed | MaxFuse s | scMODAL s | ratio | scMODAL steps | LT MaxFuse | LT scMODAL |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        for seed in sorted({r["seed"] for r in records if r["dataset"] == dataset}):
            mf = [r for r in records if r["dataset"] == dataset and r["seed"] == seed and r["method"] == "maxfuse"]
            sc = [r for r in records if r["dataset"] == dataset and r["seed"] == seed and r["method"] == "scmodal"]
            if not (mf and sc):
                continue
            mf, sc = mf[-1], sc[-1]
            lines.append(f"| {dataset} | {seed} | {mf['seconds']:.0f} | {sc['seconds']:.0f} | "
                         f"{sc['seconds'] / mf['seconds']:.2f} | {sc['steps_trained']} | "
                         f"{mf['label_transfer_accuracy']:.3f} | {sc['label_transfer_accuracy']:.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scmodal-kwargs", default="{}")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "experiments" / "speed" / "time_to_result.jsonl"))
    parser.add_argument("--table", action="store_true", help="only print the table of the recorded runs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.table:
        command = "python scripts/time_to_result.py " + " ".join(shlex.quote(a) for a in argv)
        run(args.datasets, args.seed, json.loads(args.scmodal_kwargs), args.data_dir, out, command)
    print(table(out))


if __name__ == "__main__":
    main()
