"""Steps/s and peak host memory for device-resident vs streamed training, and 1 vs 2 (emulated) devices.

    python scripts/bench_stream.py [--cells 10000 100000 1000000] [--steps 60] [--density 0.05]

Dataset 0 is a sparse CSR matrix of n cells x 3000 features (`density` of entries stored), dataset 1 a dense
n x 100 matrix; 50 linked columns. Each configuration runs in a fresh subprocess; peak RSS from getrusage.
Device-resident mode densifies dataset 0 (n x 3000 float32) and is skipped when that would not fit in half of
the machine's memory. Two devices are emulated on the CPU with XLA_FLAGS, so their timings say nothing about
real multi-GPU speed-ups; they check that the sharded program runs and what it costs here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, scipy.sparse as sp, jax
import scmodal_jax as scm
n, steps, density, mode, devices = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
p1, p2, s = 3000, 100, 50
rng = np.random.default_rng(0)
per_row = max(1, int(density * p1))
indices = np.sort(rng.integers(0, p1, size=(n, per_row), dtype=np.int32), axis=1).ravel()
x0 = sp.csr_matrix((rng.standard_normal(n * per_row, dtype=np.float32), indices,
                    np.arange(0, n * per_row + 1, per_row, dtype=np.int64)), shape=(n, p1))
x1 = rng.standard_normal((n, p2), dtype=np.float32)
links = [(x0[:, :s].toarray(), x1[:, :s])]
rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
stamps = []
t0 = time.perf_counter()
model = scm.SCMODAL(steps=steps, progress=False, steps_per_call=10, log_every=10, data_mode=mode, devices=devices)
model.fit([x0, x1], links, callback=lambda step, m: stamps.append((step, time.perf_counter())))
wall = time.perf_counter() - t0
(s_a, t_a), (s_b, t_b) = stamps[1], stamps[-1]
print(json.dumps({
    "steps_per_s": (s_b - s_a) / (t_b - t_a), "wall_s": wall, "setup_s": stamps[0][1] - t0,
    "csr_gb": (x0.data.nbytes + x0.indices.nbytes + x0.indptr.nbytes) / 2**30,
    "rss_with_data_gb": rss_data, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    "devices": jax.device_count(),
}))
"""


def run(n: int, steps: int, density: float, mode: str, devices: int) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(steps), str(density), mode, str(devices)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument(
        "--memory-gb", type=float, default=os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    )
    args = parser.parse_args()
    print("| cells | mode | devices | steps/s | setup s | CSR GiB | RSS with data GiB | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.cells:
        for mode, devices in [("device", 1), ("stream", 1), ("device", 2), ("stream", 2)]:
            dense_gb = n * 3000 * 4 / 2**30
            if mode == "device" and 2 * dense_gb > 0.5 * args.memory_gb:
                print(f"| {n:,} | {mode} | {devices} | skipped: {dense_gb:.1f} GiB dense would not fit | | | | |")
                continue
            r = run(n, args.steps, args.density, mode, devices)
            if "error" in r:
                print(f"| {n:,} | {mode} | {devices} | error: {r['error']} | | | | |")
                continue
            print(
                f"| {n:,} | {mode} | {devices} | {r['steps_per_s']:.2f} | {r['setup_s']:.1f} | {r['csr_gb']:.2f} | "
                f"{r['rss_with_data_gb']:.2f} | {r['peak_rss_gb']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
