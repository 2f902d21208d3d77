"""Speed and scale: ms/step of the training step (scripts/bench_step.py) and, per number of cells n, the wall
time and peak memory of an scMODAL fit on synthetic data, each n in a fresh subprocess.

    python scripts/bench_scale.py [--ns 10000 100000 1000000] [--steps 300] [--features 500,50,20]
        [--step-shapes 3028,32,28 1000,134,8 30,29,17] [--out experiments/scale/scale.md]

Training draws a batch of `batch_size` cells per step, so its cost does not depend on n; only the data (and
the final encoding of every cell, `model.latent_`) grow with n. A worker generates n cells per modality
(float32, clustered low-rank data; the first s columns are the linked features), fits `steps` steps with a
timestamp at every 100 steps, and reports: per-step time (from the timestamps after the first, so compilation
is excluded), the setup (data transfer + compilation) and final-encoding times, the end-to-end wall time of the
measured run, the end-to-end time extrapolated to `--target-steps` (10,000: setup + encoding + 10,000 x the
per-step time; labelled as an extrapolation), and the process's peak RSS next to its RSS before and after
generating the data.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3


def current_rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - psutil is optional
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def synthetic_pair(n: int, p1: int, p2: int, s: int, seed: int = 0, chunk: int = 100_000) -> list[np.ndarray]:
    """Two float32 (n, p) datasets from 8 clusters in a 10-d latent; the first s columns of both share loadings."""
    rng = np.random.default_rng(seed)
    rank, n_clusters = 10, 8
    centers = rng.normal(scale=2.0, size=(n_clusters, rank)).astype(np.float32)
    shared = rng.normal(size=(rank, s)).astype(np.float32)
    loadings = []
    for p in (p1, p2):
        w = rng.normal(size=(rank, p)).astype(np.float32) / np.sqrt(rank)
        w[:, :s] = shared / np.sqrt(rank)
        loadings.append(w)
    out = [np.empty((n, p1), np.float32), np.empty((n, p2), np.float32)]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        for x, w in zip(out, loadings, strict=True):
            z = centers[rng.integers(n_clusters, size=m)] + rng.standard_normal((m, rank), dtype=np.float32)
            x[start : start + m] = z @ w + 0.5 * rng.standard_normal((m, w.shape[1]), dtype=np.float32)
    return out


def worker(n: int, p1: int, p2: int, s: int, steps: int, target_steps: int) -> dict[str, Any]:
    from scmodal_jax import SCMODAL, first_columns

    rss_start = current_rss()
    t = time.perf_counter()
    xs = synthetic_pair(n, p1, p2, s)
    gen_s = time.perf_counter() - t
    rss_data = current_rss()
    data_bytes = sum(x.nbytes for x in xs)
    stamps: list[tuple[int, float]] = []
    model = SCMODAL(steps=steps, seed=0, progress=False, log_every=100)
    t0 = time.perf_counter()
    model.fit(xs, first_columns(s), callback=lambda step, _m: stamps.append((step, time.perf_counter())))
    total = time.perf_counter() - t0
    (s0, t_first), (s1, t_last) = stamps[0], stamps[-1]
    per_step = (t_last - t_first) / max(s1 - s0, 1)
    setup = (t_first - t0) - s0 * per_step  # device transfer + compilation (+ the first chunk's excess)
    encode = t0 + total - t_last  # model.latent_ for all n cells of both datasets
    return {
        "n": n,
        "features": [p1, p2, s],
        "steps": steps,
        "data_gib": data_bytes / GIB,
        "generate_s": gen_s,
        "ms_per_step": 1e3 * per_step,
        "setup_s": setup,
        "encode_s": encode,
        "wall_s": total,
        "target_steps": target_steps,
        "extrapolated_wall_s": setup + encode + target_steps * per_step,
        "rss_start_gib": rss_start / GIB,
        "rss_data_gib": rss_data / GIB,
        "peak_rss_gib": peak_rss() / GIB,
        "latent_shape": list(model.latent_[0].shape),
    }


def run_worker(n: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--n", str(n), "--steps", str(args.steps),
           "--features", args.features, "--target-steps", str(args.target_steps)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker n={n} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def step_rows(shapes: Sequence[str], steps_per_call: int, calls: int) -> list[dict[str, Any]]:
    from bench_step import bench

    rows = []
    for shape in shapes:
        p1, p2, s = (int(v) for v in shape.split(","))
        r = bench(p1, p2, s, steps_per_call, calls, {})
        rows.append({"shape": shape, **{k: r[k] for k in ("ms_per_step", "floor_ms", "ratio", "gflop_per_step")}})
    return rows


def scale_markdown(runs: list[dict[str, Any]], steps_rows: list[dict[str, Any]], command: str, machine: str) -> str:
    import pandas as pd

    from scmodal_jax.cli.sweeps import to_markdown

    lines = ["# Speed and scale (CPU)", "", f"Machine: {machine}. Produced by:", "", f"    {command}", ""]
    lines += [_NOISE, ""]
    if steps_rows:
        lines += ["## ms per training step (batch 500, default hyperparameters, `scripts/bench_step.py`)", ""]
        lines += [_STEP_NOTES, ""]
        table = pd.DataFrame([{
            "p1,p2,s": r["shape"], "ms/step": f"{r['ms_per_step']:.1f}", "FLOP floor ms": f"{r['floor_ms']:.1f}",
            "ratio": f"{r['ratio']:.2f}", "GFLOP/step": f"{r['gflop_per_step']:.2f}",
        } for r in steps_rows])  # fmt: skip
        lines += [to_markdown(table)]
    if runs:
        f = runs[0]["features"]
        lines += [f"## End to end vs number of cells (synthetic, {f[0]} + {f[1]} features, {f[2]} linked)", ""]
        lines += [_SCALE_NOTES.format(steps=runs[0]["steps"], target=runs[0]["target_steps"]), ""]
        table = pd.DataFrame([{
            "cells per modality": f"{r['n']:,}",
            "data GiB": f"{r['data_gib']:.2f}",
            "ms/step": f"{r['ms_per_step']:.1f}",
            "setup s": f"{r['setup_s']:.1f}",
            "encode all s": f"{r['encode_s']:.1f}",
            f"measured wall s ({r['steps']} steps)": f"{r['wall_s']:.1f}",
            f"extrapolated wall s ({r['target_steps']:,} steps)": f"{r['extrapolated_wall_s']:.0f}",
            "RSS before data GiB": f"{r['rss_start_gib']:.2f}",
            "RSS with data GiB": f"{r['rss_data_gib']:.2f}",
            "peak RSS GiB": f"{r['peak_rss_gib']:.2f}",
            "peak - RSS with data GiB": f"{r['peak_rss_gib'] - r['rss_data_gib']:.2f}",
        } for r in runs])  # fmt: skip
        lines += [to_markdown(table)]
        lines += [memory_fit(runs)]
    return "\n".join(lines).rstrip() + "\n"


def memory_fit(runs: list[dict[str, Any]]) -> str:
    """Least-squares fit of (peak RSS - RSS before data) = fixed + copies x data over the runs, as a sentence."""
    data = np.array([r["data_gib"] for r in runs])
    grown = np.array([r["peak_rss_gib"] - r["rss_start_gib"] for r in runs])
    if len(runs) < 2 or np.ptp(data) <= 0:
        return ""
    copies, fixed = np.polyfit(data, grown, 1)
    return (
        f"Memory model fitted over these runs: peak RSS - RSS before data ≈ {fixed:.2f} GiB + {copies:.2f} x data. "
        "The fixed part (compiled step, parameters, optimiser state, batch buffers) does not grow with n; the "
        "data term counts the host arrays plus the copy JAX holds of them (and the n x 20 latents), i.e. about "
        "two copies of the data."
    )


_NOISE = """\
Timings come from a shared machine (2 CPU cores, other jobs running at the same time, no GPU): they are
noisy, typically within a factor of 1.5-2 between repeats; compare rows of one run, not across runs."""

_STEP_NOTES = """\
Median over calls of `steps-per-call` fused steps (compiled once, warm-up excluded). The floor is the step's
matmul FLOPs divided by the best GEMM throughput measured in the same run; `ratio` = measured / floor. Shapes:
the prepared inputs of `pbmc5k_cite` (3,028 + 32 features, 28 links), `bmmc_cite` (1,000 + 134, 8),
`pbmc_cytof` (30 + 29, 17) and the synthetic shape of the scale runs."""

_SCALE_NOTES = """\
Each n runs in a fresh subprocess. Measured: {steps} training steps end to end (`SCMODAL.fit`, including the
transfer of the data, compilation and the final encoding of every cell). `ms/step` is taken between the
timestamps at steps 100 and {steps} (compilation excluded); `setup s` is the time before training proper
(transfer + compilation); `encode all s` is `model.latent_` for all cells of both modalities. The
{target:,}-step column is an **extrapolation** (setup + encode + {target:,} x ms/step), not a measurement.
Memory: peak RSS of the worker process; `RSS with data` is after generating the two float32 matrices;
`peak - RSS with data` is what training and encoding add on top of the data (a second copy of the data made
when it is handed to JAX counts here)."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=300, help="steps actually run per n (>= 200)")
    parser.add_argument("--target-steps", type=int, default=10_000)
    parser.add_argument("--features", default="500,50,20", help="p1,p2,s of the synthetic data")
    parser.add_argument("--step-shapes", nargs="*", default=["3028,32,28", "1000,134,8", "30,29,17"])
    parser.add_argument("--steps-per-call", type=int, default=20)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "scale" / "scale.md"))
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--from-json", default=None, help="only rewrite the markdown from a --json file")
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.steps < 200:
        parser.error("--steps must be at least 200 (per-step time is taken after the first 100 steps)")
    if args.worker:
        p1, p2, s = (int(v) for v in args.features.split(","))
        print(json.dumps(worker(args.n, p1, p2, s, args.steps, args.target_steps)), flush=True)
        return
    import jax

    machine = f"{os.cpu_count()} CPU cores, JAX {jax.__version__} on {jax.default_backend()}"
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        command = args.command or saved.get("command", "python scripts/bench_scale.py")
        Path(args.out).write_text(scale_markdown(saved["runs"], saved["steps"], command, machine))
        print(f"[bench_scale] wrote {args.out}")
        return
    shapes = list(args.step_shapes) + [args.features]
    rows = step_rows(shapes, args.steps_per_call, args.calls) if args.step_shapes is not None else []
    for r in rows:
        print(f"[bench_scale] step {r['shape']}: {r['ms_per_step']:.1f} ms (floor {r['floor_ms']:.1f})", flush=True)
    runs = []
    for n in args.ns:
        r = run_worker(n, args)
        print(f"[bench_scale] n={n}: {r['ms_per_step']:.1f} ms/step, wall {r['wall_s']:.1f}s, "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB (data {r['data_gib']:.2f} GiB)", flush=True)  # fmt: skip
        runs.append(r)
    from bench_accuracy import strip_option

    command = "python scripts/bench_scale.py " + " ".join(strip_option(strip_option(argv, "--out"), "--json"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(scale_markdown(runs, rows, command.strip(), machine))
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": rows, "runs": runs, "command": command.strip()}, indent=1))
    print(f"[bench_scale] wrote {out}")


if __name__ == "__main__":
    main()
