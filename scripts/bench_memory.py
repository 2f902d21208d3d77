"""Peak resident memory of a full fit against the number of steps and the number of cells.

    python scripts/bench_memory.py [--features 2000 100] [--steps 100 400] [--cells 2000 20000]
    python scripts/bench_memory.py --trace 4000      # current RSS at every logging point of one long fit

Each configuration runs in a fresh subprocess (peak RSS from getrusage); the data bytes are printed beside it
so growth with n can be compared with the data itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import numpy as np
import scmodal_jax as scm
n, steps, p1, p2, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = np.random.default_rng(0)
xs = [rng.normal(size=(n, p)).astype(np.float32) for p in (p1, p2)]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
scm.SCMODAL(steps=steps, progress=False, steps_per_call=50, data_mode=mode).fit(xs, scm.first_columns(min(p1, p2) // 2))
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_fit_mb": base / 1024, "data_mb": sum(x.nbytes for x in xs) / 2**20,
                  "seconds": time.perf_counter() - t}))
"""


TRACE = """
import os, sys
import numpy as np
import scmodal_jax as scm
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
rng = np.random.default_rng(0)
xs = [rng.normal(size=(2000, p)).astype(np.float32) for p in (200, 40)]
trace = []
model = scm.SCMODAL(
    steps=int(sys.argv[1]), progress=False, steps_per_call=100, hidden=64, disc_hidden=64, batch_size=200
)
model.fit(xs, scm.first_columns(20), callback=lambda step, m: trace.append((step, rss_mb())))
for step, mb in trace[::4]:
    print(f"step {step:>6}: RSS {mb:.1f} MB")
"""


def measure(n: int, steps: int, p1: int, p2: int, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(steps), str(p1), str(p2), mode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, nargs=2, default=[2000, 100])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--cells", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--mode", default="device", choices=["device", "stream"])
    parser.add_argument("--trace", type=int, default=0, help="steps of one fit whose RSS is sampled instead")
    args = parser.parse_args()
    if args.trace:
        subprocess.run([sys.executable, "-c", TRACE, str(args.trace)], check=True)
        return
    p1, p2 = args.features
    print(f"features {p1},{p2}; data_mode={args.mode}")
    print(f"{'cells':>8} {'steps':>6} {'data MB':>8} {'peak RSS MB':>12} {'RSS before fit':>15} {'s':>6}")
    configs = [(args.cells[0], s) for s in args.steps] + [(n, args.steps[0]) for n in args.cells[1:]]
    for n, steps in configs:
        r = measure(n, steps, p1, p2, args.mode)
        print(
            f"{n:>8} {steps:>6} {r['data_mb']:8.1f} {r['peak_rss_mb']:12.1f} {r['rss_before_fit_mb']:15.1f} "
            f"{r['seconds']:6.1f}"
        )


if __name__ == "__main__":
    main()
