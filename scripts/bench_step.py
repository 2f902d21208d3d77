"""ms/step of the fused scMODAL training step, next to a matmul-FLOP floor measured in the same run.

    python scripts/bench_step.py [--steps-per-call 50] [--calls 4] [--shapes 2000,100,50 3000,30,15]

The floor is (matmul FLOPs of one step, counted layer by layer) / (best GEMM throughput jax reaches here on
matrices of the step's shapes). XLA's own flop count of the compiled program is printed beside it as a
cross-check; XLA counts a loop body once, so it covers one step with a single discriminator update.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from scmodal_jax.core.hparams import Hyperparameters
from scmodal_jax.core.step import Trainer, init_state

DEFAULT_SHAPES = [(2000, 100, 50), (3000, 30, 15), (3000, 230, 200)]


def dense_flops(rows: int, n_in: int, n_out: int, weight_grad: bool, input_grad: bool) -> int:
    """Forward plus the backward matmuls a dense layer needs."""
    one = 2 * rows * n_in * n_out
    return one * (1 + int(weight_grad) + int(input_grad))


def step_matmul_flops(hp: Hyperparameters, p: list[int], link_widths: list[int]) -> dict[str, int]:
    b, h, q, hd = hp.batch_size, hp.hidden, hp.n_latent, hp.disc_hidden
    n = len(p)

    def encoder(pi, rows, from_data):
        return dense_flops(rows, pi, h, True, not from_data) + dense_flops(rows, h, q, True, True)

    def decoder(pi, rows):
        return dense_flops(rows, q, h, True, True) + dense_flops(rows, h, pi, True, True)

    def disc(rows, weight_grad, first_input_grad):
        return (
            dense_flops(rows, q, hd, weight_grad, first_input_grad)
            + dense_flops(rows, hd, hd, weight_grad, True)
            + dense_flops(rows, hd, 1, weight_grad, True)
        )

    counts = {
        # The encoder pass E_i(x_i) is shared by the discriminator updates and the generator loss.
        "D_updates": hp.d_steps * sum(disc(2 * b, True, False) for _ in range(n - 1)),
        "autoencoder": sum(encoder(pi, b, True) + decoder(pi, b) for pi in p),
        # Cross-modal cycle: G_j then E_j on the other dataset's latent, both directions per pair.
        "cycle": sum(
            decoder(p[i + 1], b) + encoder(p[i + 1], b, False) + decoder(p[i], b) + encoder(p[i], b, False)
            for i in range(n - 1)
        ),
        "D_in_generator_loss": sum(disc(2 * b, False, True) for _ in range(n - 1)),
        # B x B Gram matrices: input kernels (no grad), latent kernels and anchor distances (fwd + 2 bwd), cosine.
        "gram_input_kernel": sum(2 * b * b * pi for pi in p),
        "gram_latent": n * 3 * 2 * b * b * q + (n - 1) * 3 * 2 * b * b * q,
        "mnn_cosine": sum(2 * b * b * s for s in link_widths),
    }
    counts["total"] = sum(counts.values())
    return counts


def gemm_throughput(shapes: list[tuple[int, int, int]], repeats: int = 20) -> float:
    """Best FLOP/s of a plain jitted jnp.dot over the given (m, k, n) shapes."""
    best = 0.0
    for m, k, n in shapes:
        a = jnp.asarray(np.random.default_rng(0).normal(size=(m, k)), jnp.float32)
        w = jnp.asarray(np.random.default_rng(1).normal(size=(k, n)), jnp.float32)
        f = jax.jit(lambda a, w: a @ w)
        f(a, w).block_until_ready()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            f(a, w).block_until_ready()
            times.append(time.perf_counter() - t)
        best = max(best, 2 * m * k * n / np.median(times))
    return best


def bench(p1: int, p2: int, s: int, steps_per_call: int, calls: int, hp_overrides: dict) -> dict:
    hp = Hyperparameters(steps_per_call=steps_per_call, **hp_overrides)
    rng = np.random.default_rng(0)
    n_cells = 5000
    xs = [jnp.asarray(rng.normal(size=(n_cells, pi)), jnp.float32) for pi in (p1, p2)]
    data = (tuple(xs), ((xs[0][:, :s], xs[1][:, :s]),))
    nets, state = init_state(hp, [p1, p2])
    trainer = Trainer(nets)
    _, runner = trainer._runner(steps_per_call)
    compiled = runner.lower(state, data, jnp.int32(steps_per_call)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    # XLA counts the body of a loop once: this is one step with one discriminator update.
    xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    state, m = trainer.run(state, data, steps_per_call)  # warm-up (compiles the jit cache entry)
    jax.block_until_ready(m)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        state, m = trainer.run(state, data, steps_per_call)
        jax.block_until_ready(m)
        times.append((time.perf_counter() - t) / steps_per_call)
    b, h = hp.batch_size, hp.hidden
    gemm = gemm_throughput([(b, p1, h), (b, h, p1), (2 * b, h, h), (b, p1, b)])
    flops = step_matmul_flops(hp, [p1, p2], [s])
    floor = flops["total"] / gemm
    return {
        "shape": (p1, p2, s),
        "ms_per_step": 1e3 * float(np.median(times)),
        "floor_ms": 1e3 * floor,
        "ratio": float(np.median(times)) / floor,
        "gflop_per_step": flops["total"] / 1e9,
        "xla_gflop_per_step": xla_flops / 1e9,
        "gemm_gflops": gemm / 1e9,
        "breakdown": {k: v / 1e9 for k, v in flops.items() if k != "total"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps-per-call", type=int, default=50)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--shapes", nargs="*", default=[",".join(map(str, s)) for s in DEFAULT_SHAPES])
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--matmul-precision", default="float32", help="the networks' matmuls: float32|tf32|bfloat16")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="hyperparameters, e.g. disc_gp=1")
    args = parser.parse_args()
    extra = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in Hyperparameters.__dataclass_fields__:
            parser.error(f"--set {item!r}: unknown hyperparameter {name!r}")
        extra[name] = type(getattr(Hyperparameters(), name))(float(value))
    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.device_count()} device(s)), {os.cpu_count()} CPUs,"
          f" networks' matmuls at {args.matmul_precision}, hyperparameters {extra or 'default'}")  # fmt: skip
    print(
        f"{'p1,p2,s':>16} {'ms/step':>9} {'floor ms':>9} {'ratio':>6} {'GFLOP':>7} {'XLA GFLOP*':>10} {'GEMM GF/s':>10}"
    )
    for shape in args.shapes:
        p1, p2, s = (int(v) for v in shape.split(","))
        overrides = {"batch_size": args.batch_size, "matmul_precision": args.matmul_precision, **extra}
        r = bench(p1, p2, s, args.steps_per_call, args.calls, overrides)
        print(
            f"{shape:>16} {r['ms_per_step']:9.1f} {r['floor_ms']:9.1f} {r['ratio']:6.2f} {r['gflop_per_step']:7.2f} "
            f"{r['xla_gflop_per_step']:10.2f} {r['gemm_gflops']:10.1f}"
        )
        print("    matmul GFLOP by part: " + ", ".join(f"{k} {v:.2f}" for k, v in r["breakdown"].items()))


if __name__ == "__main__":
    main()
