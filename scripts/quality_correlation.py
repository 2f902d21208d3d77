"""Spearman correlation between the label-free quality score and label transfer over benchmark runs.

    python scripts/quality_correlation.py [--cache /tmp/scmodal_bench/accuracy_runs.jsonl] [--datasets ...]

Reads the run records of `scripts/bench_accuracy.py` (each carries `quality_link_consistency`,
`quality_anchor_contrast`, `quality_collapsed` and `label_transfer_accuracy`), prints one line per run and the
correlations, overall and per dataset (a dataset with fewer than 3 runs gets none).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import DEFAULT_CACHE, load_records  # noqa: E402

SCORES = ("quality_link_consistency", "quality_anchor_contrast")


def correlations(records: list[dict]) -> dict[str, float]:
    out = {}
    labelled = [r for r in records if r.get("label_transfer_accuracy") is not None]
    for score in SCORES:
        pairs = [(r[score], r["label_transfer_accuracy"]) for r in labelled if r.get(score) is not None]
        pairs = [(a, b) for a, b in pairs if np.isfinite(a) and np.isfinite(b)]
        if len(pairs) >= 3:
            out[score] = float(spearmanr(*zip(*pairs, strict=True)).statistic)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--datasets", nargs="*", default=None)
    args = parser.parse_args(argv)
    # The linked features alone score ~1 by construction: only trained runs (scMODAL, MaxFuse) are compared.
    records = [r for r in load_records(Path(args.cache)) if "quality_link_consistency" in r and r["method"] != "linked"]
    if args.datasets:
        records = [r for r in records if r["dataset"] in args.datasets]
    for r in sorted(records, key=lambda r: (r["dataset"], r["method"], r["variant"], r["seed"], r["steps"])):
        print(f"{r['dataset']:24s} {r['method']:8s} {r['variant']:8s} seed {r['seed']} steps {r['steps']:6d}  "
              f"label transfer {r['label_transfer_accuracy']:.3f}  link_consistency "
              f"{r['quality_link_consistency']:.3f}  anchor_contrast {r['quality_anchor_contrast']:.3f}  "
              f"collapsed {r['quality_collapsed']}")  # fmt: skip
    print(f"all {len(records)} runs: {correlations(records)}")
    for dataset in sorted({r["dataset"] for r in records}):
        group = [r for r in records if r["dataset"] == dataset]
        print(f"{dataset} ({len(group)} runs): {correlations(group)}")


if __name__ == "__main__":
    main()
