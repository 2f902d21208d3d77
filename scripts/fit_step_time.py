"""Seconds per training step of `SCMODAL.fit` at given feature counts, any number of modalities (compilation
excluded: the time between the logging points at step 100 and the last step). Random data: the step's cost
depends on the feature counts, the link widths and the batch, not on the values or the number of cells.

    python scripts/fit_step_time.py 200,40:15 3028,29,30:28,17      # p1,p2[,p3...]:link widths of each pair

The README's table of experiment times multiplies these by each experiment's step count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import scmodal_jax as scm


def parse_shape(spec: str) -> tuple[list[int], list[int]]:
    """'p1,p2,p3:l1,l2' -> ([p1, p2, p3], [l1, l2]): one link width per consecutive pair."""
    dims, _, widths = spec.partition(":")
    p, w = [int(x) for x in dims.split(",")], [int(x) for x in widths.split(",")]
    if len(p) < 2 or len(w) != len(p) - 1:
        raise ValueError(f"{spec!r}: need p1,p2[,...]:w1[,...] with one link width per consecutive pair")
    return p, w


def step_seconds(dims: list[int], widths: list[int], steps: int, batch_size: int, n_cells: int = 2000) -> float:
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(n_cells, p)).astype(np.float32) for p in dims]
    links = [tuple(rng.normal(size=(n_cells, w)).astype(np.float32) for _ in range(2)) for w in widths]
    marks: dict[int, float] = {}
    model = scm.SCMODAL(steps=steps, batch_size=batch_size, log_every=100, progress=False, seed=0)
    model.fit(xs, links, callback=lambda step, _: marks.__setitem__(step, time.perf_counter()))
    return (marks[steps] - marks[100]) / (steps - 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shapes", nargs="+", help="p1,p2[,p3...]:w1[,w2...]")
    parser.add_argument("--steps", type=int, default=300, help="steps per shape (> 100; the first 100 are warm-up)")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    if args.steps <= 100 or args.steps % 100:
        parser.error("--steps must be a multiple of 100 above 100")
    print("| features | link widths | ms/step |\n|---|---|---|")
    for spec in args.shapes:
        dims, widths = parse_shape(spec)
        ms = 1000 * step_seconds(dims, widths, args.steps, args.batch_size)
        print(f"| {', '.join(map(str, dims))} | {', '.join(map(str, widths))} | {ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
