"""How fast the paper's discriminator wins on each protocol data set: its loss over a short training.

Trains the paper's method (`preset="paper"`) for `--steps` steps per (data set, seed) and records the
discriminator loss averaged over each `--every` steps (one dataset pair: equilibrium 2 ln 2 = 1.39). Used to look
for a label-free reading of whether a data set needs the gradient penalty (issue 15, experiments/few_links/).

    python scripts/probe_discriminator.py --datasets pbmc_cytof bmmc_cite --seeds 0 1 --steps 300 \
        --out experiments/few_links/disc_probe.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def probe(dataset: str, integ, seed: int, steps: int, every: int) -> dict:
    from scmodal_jax.model import SCMODAL

    start = time.perf_counter()
    model = SCMODAL(preset="paper", steps=steps, seed=seed, progress=False).fit(integ.prepared)
    loss_d = model.history_["loss_d"].to_numpy(dtype=float)  # one value per step
    ends = list(range(every, steps + 1, every))
    return {
        "dataset": dataset,
        "seed": seed,
        "steps": steps,
        "every": every,
        "step": ends,  # window ends: loss_d[k] is the mean over steps (ends[k] - every, ends[k]]
        "loss_d": [round(float(loss_d[end - every : end].mean()), 4) for end in ends],
        "fit_s": round(time.perf_counter() - start, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    from bench_accuracy import build_integration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file the records are appended to")
    args = parser.parse_args(argv)
    for dataset in args.datasets:
        integ = build_integration(dataset, args.data_dir)
        for seed in args.seeds:
            rec = probe(dataset, integ, seed, args.steps, args.every)
            with args.out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            curve = " ".join(f"{s}:{v:.2f}" for s, v in zip(rec["step"], rec["loss_d"], strict=True))
            print(dataset, seed, curve, flush=True)


if __name__ == "__main__":
    main()
