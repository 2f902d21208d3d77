"""Regenerate every benchmark table: accuracy (experiments/<dataset>/accuracy.md), ablations
(experiments/ablations/ablations.md) and speed/scale (experiments/scale/scale.md).

    python scripts/run_benchmarks.py [--quick] [--steps N] [--seeds 3] [--dataset-steps NAME=N ...]
        [--ablation-seeds K] [--ablation-datasets ...] [--skip-accuracy] [--skip-ablations] [--skip-scale]

Defaults are the paper's settings: 10,000 training steps, 3 seeds, every dataset, every ablation, scale at
n = 10k, 100k, 1M cells per modality. That is hours of CPU time (about 0.15-0.6 s per step here); pass a
smaller `--steps` (or per-dataset `--dataset-steps`) on a CPU and say so next to the tables, which record the
exact commands and step counts. `--quick` is a smoke run (200 steps, one seed, the two small datasets, scale
at 10k cells only) that exercises the whole pipeline in a few minutes and writes its tables
under /tmp, not over the real ones.

Finished runs are cached (`--cache`, JSON lines); rerunning with the same settings only rewrites the tables.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_accuracy  # noqa: E402
import bench_scale  # noqa: E402


def accuracy_argv(args: argparse.Namespace) -> list[list[str]]:
    """The bench_accuracy invocations this runner makes (main rows, then ablations)."""
    seeds = [str(s) for s in range(args.seeds)]
    common = ["--cache", args.cache, "--data-dir", args.data_dir, "--out-dir", args.out_dir, "--no-tables"]
    steps = ["--steps", str(args.steps)]
    if args.dataset_steps:
        steps += ["--dataset-steps", *args.dataset_steps]
    calls = []
    if not args.skip_accuracy:
        calls.append(["--datasets", *args.datasets, "--methods", "linked", "--seeds", "0", *common])
        calls.append(["--datasets", *args.datasets, "--methods", "scmodal", "maxfuse", "--seeds", *seeds, *steps,
                      *common])  # fmt: skip
    if not args.skip_ablations:
        ab_seeds = [str(s) for s in range(args.ablation_seeds or args.seeds)]
        calls.append(["--datasets", *args.ablation_datasets, "--methods", "scmodal", "--variants", "no_gan",
                      "no_anchor", "no_geo", "no_ae", "anchor5", "--seeds", *ab_seeds, *steps, *common])  # fmt: skip
    return calls


def scale_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--ns", *[str(n) for n in args.scale_ns], "--steps", str(args.scale_steps)]
    return argv + ["--out", str(Path(args.out_dir) / "scale" / "scale.md")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 steps, 1 seed, small data")
    parser.add_argument("--steps", type=int, default=None, help="scMODAL training steps (default 10,000)")
    parser.add_argument("--dataset-steps", nargs="*", default=[], help="per-dataset step overrides, NAME=STEPS")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--ablation-datasets", nargs="+", default=None)
    parser.add_argument("--ablation-seeds", type=int, default=None, help="seeds for the ablations (default --seeds)")
    parser.add_argument("--scale-ns", nargs="+", type=int, default=None)
    parser.add_argument("--scale-steps", type=int, default=None)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-ablations", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--data-dir", default=str(bench_accuracy.ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache", default=None, help="JSON-lines cache of finished runs")
    parser.add_argument("--out-dir", default=None, help="experiments root (default experiments/; --quick: /tmp)")
    return parser


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    quick = args.quick
    if args.steps is None:
        args.steps = 200 if quick else 10_000
    if args.seeds is None:
        args.seeds = 1 if quick else 3
    if args.datasets is None:
        args.datasets = ["bmmc_cite", "pbmc_cytof"] if quick else list(bench_accuracy.DATASETS)
    if args.ablation_datasets is None:
        args.ablation_datasets = ["bmmc_cite"] if quick else list(args.datasets)
    if args.scale_ns is None:
        args.scale_ns = [10_000] if quick else [10_000, 100_000, 1_000_000]
    if args.cache is None:
        name = "quick_runs.jsonl" if quick else bench_accuracy.DEFAULT_CACHE.name
        args.cache = str(bench_accuracy.DEFAULT_CACHE.with_name(name))
    if args.out_dir is None:  # a smoke run must not overwrite the real tables
        args.out_dir = (
            str(bench_accuracy.DEFAULT_CACHE.parent / "quick") if quick else str(bench_accuracy.ROOT / "experiments")
        )
    if args.scale_steps is None:
        args.scale_steps = 200 if quick else 300
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = resolve(build_parser().parse_args(argv))
    for call in accuracy_argv(args):
        bench_accuracy.main(call)
    if not (args.skip_accuracy and args.skip_ablations):
        records = bench_accuracy.load_records(Path(args.cache))
        for path in bench_accuracy.write_tables(records, Path(args.out_dir)):
            print(f"[run_benchmarks] wrote {path}")
    if not args.skip_scale:
        bench_scale.main(scale_argv(args))


if __name__ == "__main__":
    main()
