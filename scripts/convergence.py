"""Convergence curves: one long default run per (data set, seed), evaluated along the way.

    python scripts/convergence.py --runs bmmc_cite:0 pbmc_cytof:0 ... [--steps 10000] [--every 250]
        [--out experiments/convergence/curves.jsonl] [--store /work/convergence_store]

Each run trains `SCMODAL(steps=..., seed=...)` at today's defaults and, every `--every` steps, encodes every cell
and records label transfer, FOSCTTM (paired sets), the mixing metric, kBET, ASW and the label-free quality score;
the latents of every evaluation go to `--store` (float32 .npz, outside the repository: for replaying candidate
stopping signals offline) together with the per-step loss history. One JSON line per finished run goes to
`--out`; a run already there is skipped, so an interrupted queue resumes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("label_transfer_accuracy", "foscttm", "asw", "mixing_metric", "kbet")


def _done(path: Path) -> set[tuple[str, int, int]]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out.add((r["dataset"], int(r["seed"]), int(r["steps"])))
    return out


def run_one(dataset: str, seed: int, steps: int, every: int, integ: Any, store: Path, hp: dict) -> dict[str, Any]:
    from scmodal_jax.metrics import evaluate, label_transfer_accuracy
    from scmodal_jax.metrics.quality import integration_quality
    from scmodal_jax.model import SCMODAL

    prepared = integ.prepared
    links = prepared.link_matrices()
    run_dir = store / f"{dataset}_s{seed}_{steps}"
    run_dir.mkdir(parents=True, exist_ok=True)
    model = SCMODAL(steps=steps, seed=seed, log_every=every, progress=False, **hp)
    evals: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    eval_seconds = [0.0]

    def on_log(step: int, _metrics: dict[str, float]) -> None:
        t = time.perf_counter()
        latents = [model.transform(x, modality=i) for i, x in enumerate(prepared.datasets)]
        np.savez(run_dir / f"latent_{step:06d}.npz", *latents)
        m = evaluate(latents, prepared.labels, paired=integ.paired, seed=0)
        q = integration_quality(latents, links, k=model.hp.k_anchor)
        rec = {"step": step, **{k: float(v) for k, v in m.items() if k.startswith(METRICS)}}
        if len(latents) > 2 and prepared.labels is not None:  # a chain: label transfer along each consecutive pair
            for p in range(len(latents) - 1):
                rec[f"label_transfer_pair_{p}"] = float(label_transfer_accuracy(
                    latents[p], prepared.labels[p], latents[p + 1], prepared.labels[p + 1]))  # fmt: skip
        rec.update({f"quality_{k}": (float(v) if not isinstance(v, bool) else v) for k, v in q.items()})
        evals.append(rec)
        eval_seconds[0] += time.perf_counter() - t
        lt = rec.get("label_transfer_accuracy", rec.get("label_transfer_pair_0", float("nan")))
        print(f"  [{dataset} s{seed}] step {step}: LT {lt:.3f} "
              f"mix {rec['mixing_metric']:.1f} lc {rec['quality_link_consistency']:.3f}", flush=True)  # fmt: skip

    model.fit(prepared, callback=on_log)
    wall = time.perf_counter() - t0
    model.history_.to_csv(run_dir / "history.csv.gz", index=False)
    report = model.fit_report_
    probe = report.get("disc_gp_probe", {})
    return {
        "dataset": dataset,
        "seed": int(seed),
        "steps": int(steps),
        "every": int(every),
        "hyperparameters": hp,
        "wall_s": round(wall, 1),
        "eval_s": round(eval_seconds[0], 1),
        "disc_gp_kept": probe.get("penalty"),
        "disc_gp_probe_ratio": probe.get("ratio"),
        "link_smoothing_weights": [float(w) for w in report.get("link_smoothing", [])],
        "n_cells": [int(x.shape[0]) for x in prepared.datasets],
        "n_features": [int(x.shape[1]) for x in prepared.datasets],
        "paired": bool(integ.paired),
        "evals": evals,
    }


MILESTONES = (500, 1000, 2000, 5000, 10_000)
TABLE_METRICS = (("label_transfer_accuracy", "label transfer", 3), ("foscttm", "FOSCTTM", 3),
                 ("mixing_metric", "mixing", 1), ("quality_link_consistency", "link consistency", 3))  # fmt: skip


def _family(dataset: str) -> str:
    return "pbmc5k_small_panels (p0/p1/p2)" if dataset.startswith("pbmc5k_small_panel") else dataset


def write_tables(records: list[dict], out: Path) -> None:
    """curves.md (each metric at the milestones, mean over the runs of a set, and per run) and curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families: dict[str, list[dict]] = {}
    for r in records:
        families.setdefault(_family(r["dataset"]), []).append(r)
    lines = ["# Convergence curves of today's default", "",
             "Each run: `SCMODAL(steps=10000, seed=s)` at the defaults (penalty probe, link smoothing), trained the "
             "full 10,000 steps (the first four at commit 66c1032, before the stopping rule; the later ones with "
             "`early_stop=False`, which leaves the training itself unchanged), evaluated every 250 steps "
             "(scripts/convergence.py; each record holds its command). Values at 500, 1,000, 2,000, 5,000 and "
             "10,000 steps: the mean over the set's runs, then each run.", ""]  # fmt: skip
    for family, runs in families.items():
        lines += [f"## {family}", "", "| metric | " + " | ".join(f"{m:,}" for m in MILESTONES) + " |",
                  "|---|" + "---|" * len(MILESTONES)]  # fmt: skip
        for key, label, digits in TABLE_METRICS:
            if not all(key in e for r in runs for e in r["evals"]):
                continue
            means = []
            for m in MILESTONES:
                vals = [e[key] for r in runs for e in r["evals"] if e["step"] == m]
                means.append(f"{np.mean(vals):.{digits}f}" if vals else "-")
            lines.append(f"| {label} (mean of {len(runs)}) | " + " | ".join(means) + " |")
            for r in runs:
                at = {e["step"]: e[key] for e in r["evals"]}
                name = r["dataset"].removeprefix("pbmc5k_small_panel_")
                cells = [f"{at[m]:.{digits}f}" if m in at else "-" for m in MILESTONES]
                lines.append(f"| &nbsp; {name} seed {r['seed']} | " + " | ".join(cells) + " |")
        lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))
    fig, axes = plt.subplots(2, len(families), figsize=(3.2 * len(families), 5.5), squeeze=False)
    for col, (family, runs) in enumerate(families.items()):
        for r in runs:
            steps = [e["step"] for e in r["evals"]]
            label = f"{r['dataset'].removeprefix('pbmc5k_small_panel_')} s{r['seed']}"
            axes[0, col].plot(steps, [e["label_transfer_accuracy"] for e in r["evals"]], label=label, lw=1)
            axes[1, col].plot(steps, [e["quality_link_consistency"] for e in r["evals"]], lw=1)
        axes[0, col].set_title(family, fontsize=8)
        axes[0, col].legend(fontsize=6)
        axes[1, col].set_xlabel("step", fontsize=7)
    axes[0, 0].set_ylabel("label transfer", fontsize=7)
    axes[1, 0].set_ylabel("link consistency (stopping signal)", fontsize=7)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=[], help="DATASET:SEED items, run in this order")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "convergence" / "curves.jsonl"))
    parser.add_argument("--store", default="/work/convergence_store")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--hp", default="{}", help="extra hyperparameters as JSON (default: none, today's default)")
    parser.add_argument("--tables", action="store_true", help="only write curves.md / curves.png from --out")
    args = parser.parse_args(argv)
    if args.tables:
        out = Path(args.out)
        write_tables([json.loads(x) for x in out.read_text().splitlines() if x.strip()], out)
        return
    from bench_accuracy import build_integration

    out, store = Path(args.out), Path(args.store)
    out.parent.mkdir(parents=True, exist_ok=True)
    hp = json.loads(args.hp)
    command = "python scripts/convergence.py " + " ".join(shlex.quote(a) for a in argv)
    integrations: dict[str, Any] = {}
    for item in args.runs:
        dataset, _, seed = item.partition(":")
        seed = int(seed or 0)
        if (dataset, seed, args.steps) in _done(out):
            continue
        if dataset not in integrations:
            integrations[dataset] = build_integration(dataset, args.data_dir)
        print(f"[convergence] {dataset} seed {seed}, {args.steps} steps", flush=True)
        rec = run_one(dataset, seed, args.steps, args.every, integrations[dataset], store, hp)
        rec["command"] = command
        with out.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        last = rec["evals"][-1]
        print(f"[convergence] done {dataset} s{seed}: {rec['wall_s']} s, final LT "
              f"{last.get('label_transfer_accuracy')}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
