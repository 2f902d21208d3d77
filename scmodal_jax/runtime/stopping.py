"""Train until the integration has converged: a label-free signal on a fixed subsample, and a plateau rule.

Every `stop_every` steps `StopMonitor` encodes a fixed random subsample of each dataset (`stop_cells` cells,
drawn once, the same for every training seed) on the device and scores it with the link consistency of
`metrics.quality`: each cell's nearest latent neighbour in the next dataset, compared on the linked features
(0 = a random partner, 1 = the best partner on the links themselves), both directions and every dataset pair
averaged. The reference values (random and best partner) are computed once, on the host; each evaluation is one
small jitted program.

`plateau_reached` stops training when that score has stopped rising: the mean of its last `stop_window`
evaluations exceeds the mean of the `stop_window` before them by less than `stop_tol`, from `stop_min_steps` on.
The curves behind the choice (label transfer, FOSCTTM, mixing and this signal every 250 steps of 10,000-step runs
on every protocol set) are in experiments/convergence/.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._neighbors import DEFAULT_BLOCK_SIZE, center32, knn, unit_rows
from .._rows import take_rows, to_dense
from ..core.step import Networks, encode
from .devices import local_copy

__all__ = ["STOP_SUBSAMPLE_SEED", "StopMonitor", "plateau_reached", "subsample_rows"]

#: The subsample does not depend on the training seed: every seed (and every member of an ensemble) is measured on
#: the same cells, so their signals compare, and a member stops where its single-seed run would.
STOP_SUBSAMPLE_SEED = 0


def plateau_reached(values: Sequence[float], steps: Sequence[int], window: int, tol: float, min_steps: int) -> bool:
    """Whether a rising signal has levelled off at its last evaluation.

    `values[j]` was measured at `steps[j]`. True when the last step is at least `min_steps`, there are at least
    2 x `window` values, and mean(last `window`) - mean(the `window` before) < `tol`."""
    values = np.asarray(values, np.float64)
    if len(values) != len(steps):
        raise ValueError(f"{len(values)} values for {len(steps)} steps")
    if len(values) < 2 * window or steps[-1] < min_steps:
        return False
    recent, before = values[-window:], values[-2 * window : -window]
    return bool(np.mean(recent) - np.mean(before) < tol)


def subsample_rows(n_cells: Sequence[int], cells: int, seed: int) -> list[np.ndarray]:
    """Sorted row indices of each dataset's fixed subsample: `cells` rows drawn without replacement (all rows of a
    smaller dataset), from one generator seeded with `seed`, dataset by dataset."""
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(int(n), min(int(cells), int(n)), replace=False)) for n in n_cells]


def _references(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Unit link rows of both sides, and the random- and best-partner mean cosines (one direction)."""
    unit_left, unit_right = unit_rows(left).astype(np.float32), unit_rows(right).astype(np.float32)
    random = float(unit_left.mean(axis=0) @ unit_right.mean(axis=0))
    q, r = center32(unit_left, unit_right)
    _, best = knn(q, r, 1, block_size=DEFAULT_BLOCK_SIZE)
    ceiling = float(np.mean(np.sum(unit_left * unit_right[np.asarray(best)[:, 0]], axis=1)))
    return unit_left, unit_right, random, ceiling


def _matched_cosine(z_from: jax.Array, z_to: jax.Array, unit_from: jax.Array, unit_to: jax.Array) -> jax.Array:
    """Mean linked-feature cosine between each cell and its nearest latent neighbour on the other side."""
    center = jnp.mean(jnp.concatenate([z_from, z_to]), axis=0)  # as the metrics' kNN: pooled mean removed
    z_from, z_to = z_from - center, z_to - center
    dist = (
        jnp.sum(z_from**2, axis=1)[:, None]
        + jnp.sum(z_to**2, axis=1)[None, :]
        - 2.0 * jnp.matmul(z_from, z_to.T, precision=jax.lax.Precision.HIGHEST)
    )
    partner = jnp.argmin(dist, axis=1)  # ties: the first index, as the metrics' kNN
    return jnp.mean(jnp.sum(unit_from * unit_to[partner], axis=1))


class StopMonitor:
    """The label-free convergence signal of a fit, and the decision to stop.

    `evaluate(state, step)` scores the state's generator (a stack of them for an ensemble: one score per member)
    and records it; `stopped` per member. `history` holds (step, score per member) of every evaluation; `restore`
    continues a resumed run with its checkpoint's record.
    """

    def __init__(
        self,
        nets: Networks,
        sources: Sequence[Any],
        links: Sequence[tuple[np.ndarray, np.ndarray]],
        every: int,
        window: int,
        tol: float,
        min_steps: int,
        cells: int,
        seed: int,
        members: int = 1,
    ):
        self.every, self.window, self.tol, self.min_steps = int(every), int(window), float(tol), int(min_steps)
        self.members = int(members)
        rows = subsample_rows([s.shape[0] for s in sources], cells, seed)
        self._xs = [jnp.asarray(to_dense(take_rows(s, r))) for s, r in zip(sources, rows, strict=True)]
        pairs = []
        for p, (left, right) in enumerate(links):
            lo, hi = np.asarray(left)[rows[p]], np.asarray(right)[rows[p + 1]]
            ul, ur, random_lr, best_lr = _references(lo, hi)
            _, _, random_rl, best_rl = _references(hi, lo)
            pairs.append((jnp.asarray(ul), jnp.asarray(ur), (random_lr, best_lr), (random_rl, best_rl)))
        self._pairs = pairs
        self._score = jax.jit(self._make_score(nets))
        if self.members > 1:
            self._score = jax.jit(jax.vmap(self._make_score(nets)))
        self.steps: list[int] = []
        self.values: list[list[float]] = []  # per evaluation, one value per member
        self.stop_step: list[int | None] = [None] * self.members

    def _make_score(self, nets: Networks):
        xs, pairs = self._xs, self._pairs

        def score(gen_params):
            zs = [encode(nets, gen_params, x, i) for i, x in enumerate(xs)]
            total = jnp.zeros((), jnp.float32)
            for p, (unit_left, unit_right, (rnd_lr, best_lr), (rnd_rl, best_rl)) in enumerate(pairs):
                forward = (_matched_cosine(zs[p], zs[p + 1], unit_left, unit_right) - rnd_lr) / (best_lr - rnd_lr)
                backward = (_matched_cosine(zs[p + 1], zs[p], unit_right, unit_left) - rnd_rl) / (best_rl - rnd_rl)
                total = total + 0.5 * (forward + backward)
            return total / len(pairs)

        return score

    @property
    def stopped(self) -> bool:
        """Whether every member has stopped."""
        return all(s is not None for s in self.stop_step)

    def score(self, gen_params: Any) -> np.ndarray:
        """The signal of the generator parameters (one value per member), without recording it."""
        # Replicated parameters (a mesh, or other processes' devices) are read from this process's first copy.
        return np.atleast_1d(np.asarray(jax.device_get(self._score(local_copy(gen_params))), np.float64))

    def evaluate(self, gen_params: Any, step: int) -> list[int]:
        """Score and record the parameters at `step`; returns the members that stop at this evaluation."""
        values = self.score(gen_params)
        self.steps.append(int(step))
        self.values.append([float(v) for v in values])
        newly = []
        for m in range(self.members):
            if self.stop_step[m] is not None:
                continue
            series = [v[m] for v in self.values]
            if plateau_reached(series, self.steps, self.window, self.tol, self.min_steps):
                self.stop_step[m] = int(step)
                newly.append(m)
        return newly

    def record(self) -> dict[str, Any]:
        """JSON-able record (fit_report_["stop"], checkpoints): every evaluation and each member's stop step."""
        return {"signal": "link_consistency", "steps": list(self.steps), "values": [list(v) for v in self.values],
                "stop_step": list(self.stop_step), "every": self.every, "window": self.window, "tol": self.tol,
                "min_steps": self.min_steps}  # fmt: skip

    def restore(self, record: dict[str, Any]) -> None:
        """Continue from a checkpoint's record (its evaluations and stops) so a resumed run decides as the
        uninterrupted one."""
        self.steps = [int(s) for s in record.get("steps", [])]
        self.values = [[float(x) for x in v] for v in record.get("values", [])]
        stops = record.get("stop_step") or [None] * self.members
        self.stop_step = [None if s is None else int(s) for s in stops]
